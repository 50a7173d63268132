/**
 * A real redis-server for tests: on 127.0.0.1 on a free port, AOF on (`appendfsync always` unless
 * told otherwise) in a temporary directory. `restart()` SIGKILLs it and starts it again on the
 * same port and directory (what survives is what the AOF held); `stop()` kills it for good.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** SIGKILLs the server (no shutdown save) and starts it again from its AOF. */
  restart(): Promise<void>
  /** SIGKILLs the server; `start()` brings it back. */
  kill(): Promise<void>
  start(): Promise<void>
  /** Kills it and removes its directory. */
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
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

export async function startRedis(
  options: {
    appendfsync?: 'always' | 'everysec'
    /** Serve TLS only (`rediss://`), with this certificate and key (PEM files); clients need none. */
    tls?: { cert: string; key: string; ca: string }
  } = {},
): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async () => {
    const proc = spawn(
      'redis-server',
      [
        ...(options.tls
          ? [
              '--port',
              '0',
              '--tls-port',
              String(port),
              '--tls-cert-file',
              options.tls.cert,
              '--tls-key-file',
              options.tls.key,
              '--tls-ca-cert-file',
              options.tls.ca,
              '--tls-auth-clients',
              'no',
            ]
          : ['--port', String(port)]),
        '--bind',
        '127.0.0.1',
        '--appendonly',
        'yes',
        '--appendfsync',
        options.appendfsync ?? 'always',
        '--save',
        '',
        '--dir',
        dir,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    child = proc
    await new Promise<void>((resolve, reject) => {
      let out = ''
      proc.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) resolve()
      })
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)))
      proc.once('error', reject)
    })
  }
  const kill = async () => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null) return
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.kill('SIGKILL')
    })
  }
  await start()
  return {
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    start,
    kill,
    async restart() {
      await kill()
      await start()
    },
    async stop() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** A TCP relay to 127.0.0.1:`port` that delivers what its clients send `delayMs` late, in order. */
export async function slowRelay(
  port: number,
  delayMs: number,
): Promise<{ url: string; server: Server }> {
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port })
    client.on('data', (chunk) => {
      setTimeout(() => upstream.write(chunk), delayMs)
    })
    upstream.pipe(client)
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no relay port')
  return { url: `redis://127.0.0.1:${address.port}`, server }
}
