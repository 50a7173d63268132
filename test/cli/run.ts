/**
 * Runs the `tollgate` CLI as a child process (`node --import tsx src/cli/main.ts`), as an
 * operator would, and collects its exit code and output.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts')

/** What a finished run printed and how it exited. */
export interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

/** A running CLI: its process, and its end. */
export interface Running {
  child: ChildProcess
  /** Resolves once `pattern` appears on stdout or stderr. */
  waitFor(pattern: RegExp): Promise<void>
  finished: Promise<Finished>
}

/** Starts `tollgate <args>` with `env` added to this process's environment. */
export function start(args: readonly string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const waiters: { pattern: RegExp; resolve: () => void }[] = []
  const check = () => {
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(stdout) || waiter.pattern.test(stderr)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
  }
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    check()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    check()
  })
  const finished = new Promise<Finished>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  )
  return {
    child,
    waitFor: (pattern) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ pattern, resolve })
        check()
        void finished.then((f) =>
          reject(new Error(`exited with ${f.code} before ${pattern}: ${f.stdout}\n${f.stderr}`)),
        )
      }),
    finished,
  }
}

/** Runs `tollgate <args>` to its end. */
export function run(args: readonly string[], env: Record<string, string> = {}): Promise<Finished> {
  return start(args, env).finished
}
