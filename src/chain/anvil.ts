import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { TollgateError } from '../errors/index.js'

/** Chain id of a local development chain (CAIP-2 `eip155:31337`). */
export const LOCAL_CHAIN_ID = 31337

/** The mnemonic anvil derives its funded development accounts from. Development only. */
export const DEV_MNEMONIC = 'test test test test test test test test test test test junk'

export interface AnvilOptions {
  /** Port on 127.0.0.1; a free one is picked when omitted. */
  port?: number
  /** @default 31337 */
  chainId?: number
  /** Seconds between blocks; blocks are mined per transaction when omitted. */
  blockTime?: number
  /** Path to the anvil binary. @default $ANVIL_PATH, else the `@foundry-rs/anvil-linux-amd64` package, else `anvil` on PATH */
  binary?: string
  /** How long to wait for the node to listen. @default 15000 */
  startTimeoutMs?: number
}

export interface Anvil {
  readonly rpcUrl: string
  readonly port: number
  readonly chainId: number
  /** Stops the node and waits for its process to exit. Idempotent. */
  stop(): Promise<void>
}

/** Where the anvil binary is, in the order documented on {@link AnvilOptions.binary}. */
export function anvilBinary(explicit?: string): string {
  if (explicit) return explicit
  if (process.env.ANVIL_PATH) return process.env.ANVIL_PATH
  try {
    const require = createRequire(import.meta.url)
    const pkg = require.resolve('@foundry-rs/anvil-linux-amd64/package.json')
    const bin = join(dirname(pkg), 'bin', 'anvil')
    if (existsSync(bin)) return bin
  } catch {
    // The package is only installable on linux x64; other hosts use anvil from PATH.
  }
  return 'anvil'
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts anvil on 127.0.0.1 and resolves once it listens.
 *
 * @throws TollgateError `tollgate_anvil_not_found` when the binary is not there (the package
 *   `@foundry-rs/anvil-linux-amd64` is an optional dependency: installed on linux x64 only);
 *   `tollgate_chain_unavailable` when it does not start or listen.
 * @example
 * const anvil = await startAnvil()
 * // ... use anvil.rpcUrl
 * await anvil.stop()
 */
export async function startAnvil(options: AnvilOptions = {}): Promise<Anvil> {
  const chainId = options.chainId ?? LOCAL_CHAIN_ID
  const port = options.port ?? (await freePort())
  const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(chainId)]
  args.push('--hardfork', 'prague', '--mnemonic', DEV_MNEMONIC, '--balance', '1000000')
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime))
  const binary = anvilBinary(options.binary)
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const rpcUrl = `http://127.0.0.1:${port}`
  // Ready means this process said it listens: polling the port could reach another node
  // that already holds it.
  const ready = new Promise<void>((resolve, reject) => {
    let output = ''
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000)
      if (output.includes(`Listening on 127.0.0.1:${port}`)) {
        child.stdout?.off('data', onData)
        child.stdout?.resume()
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new TollgateError(
              'tollgate_anvil_not_found',
              `${binary} not found: npm install @foundry-rs/anvil-linux-amd64 (linux x64), or put anvil on PATH or set ANVIL_PATH.`,
              { cause: err },
            )
          : new TollgateError('tollgate_chain_unavailable', `anvil did not start: ${err.message}`),
      ),
    )
    child.once('exit', (code) =>
      reject(
        new TollgateError(
          'tollgate_chain_unavailable',
          `anvil exited with ${code} before listening: ${output.trim().slice(-500)}`,
        ),
      ),
    )
  })
  const timeoutMs = options.startTimeoutMs ?? 15_000
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TollgateError(
            'tollgate_chain_unavailable',
            `anvil did not listen on ${rpcUrl} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    )
  })
  try {
    await Promise.race([ready, timedOut])
  } catch (err) {
    await kill(child, exited)
    throw err
  } finally {
    clearTimeout(timer)
  }

  let stopped: Promise<void> | undefined
  return {
    rpcUrl,
    port,
    chainId,
    stop() {
      stopped ??= kill(child, exited)
      return stopped
    },
  }
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}
