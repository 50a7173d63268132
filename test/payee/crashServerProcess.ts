/**
 * Starts test/payee/crashServer.ts in a process of its own, for tests that SIGKILL it: resolves
 * once it listens, with its base URL and the lines it printed. The process is killed by `cleanups`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

export interface Running {
  child: ChildProcess
  base: string
  lines: string[]
  waitFor(line: string): Promise<void>
}

export async function startCrashServer(dir: string, cleanups: (() => unknown)[]): Promise<Running> {
  const script = join(import.meta.dirname, 'crashServer.ts')
  const child = spawn(process.execPath, ['--import', 'tsx', script, dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  cleanups.push(() => child.kill('SIGKILL'))
  const lines: string[] = []
  const waiters: (() => void)[] = []
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
    for (const wake of waiters.splice(0)) wake()
  })
  const waitFor = async (prefix: string) => {
    const deadline = Date.now() + 20_000
    while (!lines.some((l) => l.startsWith(prefix))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${prefix}" line`)
      await new Promise<void>((resolve) => {
        waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
  }
  await waitFor('listening ')
  const port = lines.find((l) => l.startsWith('listening '))?.split(' ')[1]
  return { child, base: `http://127.0.0.1:${port}`, lines, waitFor }
}
