/**
 * A load generator in a child process of its own, so that it never shares the server's event
 * loop: the parent forks the generator's module, sends it the spec once it is ready, and measures
 * its own CPU (the server's) between the child's `started` and `stopped`.
 */
import { fork } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

/** What a generator child sends its parent. */
export type GeneratorMessage<R> =
  | { kind: 'ready' }
  | { kind: 'started' }
  | { kind: 'stopped' }
  | { kind: 'result'; result: R }
  | { kind: 'failed'; error: string }

/** The child's result, with the parent's CPU over the measured phase. */
export interface Measured<R> {
  result: R
  /** Server CPU time over wall time between `started` and `stopped` (1 = one core). */
  serverCpuShare: number
  /** Server CPU microseconds over the same phase. */
  serverCpuUs: number
}

/**
 * Forks `moduleUrl` (a module that calls {@link serveGenerator} with the same `flag`), runs
 * `spec` in it and returns its result. The child is killed if it is still there at the end.
 * `onStarted` runs when the child starts its measured phase, before the clock starts here.
 */
export async function runGenerator<S, R>(
  moduleUrl: string,
  flag: string,
  spec: S,
  onStarted?: () => void,
): Promise<Measured<R>> {
  const child = fork(fileURLToPath(moduleUrl), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [flag]: '1' },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  let cpu0: NodeJS.CpuUsage | undefined
  let wall0 = 0
  let server = { share: 0, us: 0 }
  try {
    const result = await new Promise<R>((resolve, reject) => {
      child.on('message', (message: GeneratorMessage<R>) => {
        if (message.kind === 'ready') {
          child.send(spec as object)
        } else if (message.kind === 'started') {
          onStarted?.()
          cpu0 = process.cpuUsage()
          wall0 = performance.now()
        } else if (message.kind === 'stopped') {
          const wall = performance.now() - wall0
          const used = cpu0 ? process.cpuUsage(cpu0) : { user: 0, system: 0 }
          const us = used.user + used.system
          server = { share: us / 1000 / wall, us }
        } else if (message.kind === 'result') {
          resolve(message.result)
        } else {
          reject(new Error(`load generator (${flag}) failed: ${message.error}`))
        }
      })
      child.once('exit', (code) =>
        reject(new Error(`load generator (${flag}) exited with ${code}`)),
      )
      child.once('error', reject)
    })
    return { result, serverCpuShare: server.share, serverCpuUs: server.us }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  }
}

/**
 * The child side: when this process was forked by {@link runGenerator} with `flag`, waits for the
 * spec, runs `measure` (which sends `started` and `stopped` around the measured phase) and sends
 * back its result or its failure.
 */
export function serveGenerator<S, R>(
  flag: string,
  measure: (spec: S, send: (message: GeneratorMessage<R>) => void) => Promise<R>,
): void {
  if (process.env[flag] !== '1' || !process.send) return
  const send = (message: GeneratorMessage<R>) => process.send?.(message)
  process.once('message', (spec: S) => {
    measure(spec, send).then(
      (result) => {
        send({ kind: 'result', result })
        process.disconnect()
      },
      (err: unknown) => {
        send({
          kind: 'failed',
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        })
        process.disconnect()
      },
    )
  })
  send({ kind: 'ready' })
}
