/**
 * SIGINT and SIGTERM stop the long-running commands cleanly: the voucher store is flushed and
 * marked clean (a reopen reports no crash), the exit code is the conventional one, no stack
 * trace is printed, and a second Ctrl-C while closing changes nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LevelStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { start } from './run.js'

const dev = useDevChain()
const key = dev.privateKeys[7] as Hex
const dirs: string[] = []
let silentRpc: Server
let silentUrl: string
const sockets: Socket[] = []

beforeAll(async () => {
  // A node that takes connections and never answers: a command waits on it until interrupted.
  silentRpc = createServer((socket) => sockets.push(socket))
  await new Promise<void>((resolve) => silentRpc.listen(0, '127.0.0.1', resolve))
  const address = silentRpc.address()
  silentUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
})

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => silentRpc.close(resolve))
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function configFile(rpcUrl: string): { file: string; dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-signals-'))
  dirs.push(dataDir)
  const file = join(dataDir, 'tollgate.json')
  writeFileSync(
    file,
    JSON.stringify({
      network: 'local',
      rpcUrl,
      dataDir,
      withdrawDelay: 900,
      listen: { port: 0 },
      routes: [{ path: '/api/*', price: '1000', upstream: 'http://127.0.0.1:9' }],
      settlement: { enabled: false },
    }),
  )
  return { file, dataDir }
}

/** Whether the store in `dataDir` was closed cleanly by its last user. */
async function closedCleanly(dataDir: string): Promise<boolean> {
  const store = await LevelStore.open(join(dataDir, 'vouchers'))
  const clean = !store.recoveredFromCrash
  await store.close()
  return clean
}

describe('clean stops', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'tollgate settle on %s while it waits for the chain: store closed clean, exit %i',
    async (signal, code) => {
      const { file, dataDir } = configFile(silentUrl)
      const before = sockets.length
      const settle = start(['settle', '--config', file], { TOLLGATE_PRIVATE_KEY: key })
      // The store is opened before the first chain request: once the node is asked, it is open.
      while (sockets.length === before) await new Promise((resolve) => setTimeout(resolve, 50))
      settle.child.kill(signal)
      const result = await settle.finished
      expect(result.code).toBe(code)
      expect(result.stderr).toBe(`tollgate: ${signal}, closing...\n`)
      expect(await closedCleanly(dataDir)).toBe(true)
    },
  )

  it('a payer command on SIGINT while it waits for the chain: one line, no stack trace, exit 130', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-signals-payer-'))
    dirs.push(dataDir)
    const before = sockets.length
    const fund = start(['fund', '--rpc', silentUrl, '--data-dir', dataDir], {
      TOLLGATE_PAYER_KEY: key,
    })
    while (sockets.length === before) await new Promise((resolve) => setTimeout(resolve, 50))
    fund.child.kill('SIGINT')
    const result = await fund.finished
    expect(result.code).toBe(130)
    expect(result.stderr).toBe('tollgate: SIGINT, closing...\n')
  })

  it('tollgate serve on SIGINT, twice: closes once, store clean, exit 0', async () => {
    const { file, dataDir } = configFile(dev.rpcUrl)
    const serve = start(['serve', '--config', file], { TOLLGATE_PRIVATE_KEY: key })
    await serve.waitFor(/tollgate serving on/)
    serve.child.kill('SIGINT')
    await serve.waitFor(/closing\.\.\./)
    serve.child.kill('SIGINT')
    const result = await serve.finished
    expect(result.code).toBe(0)
    expect(result.stderr).not.toMatch(/\n\s+at /)
    expect(result.stderr.startsWith('tollgate: SIGINT, closing...\n')).toBe(true)
    expect(await closedCleanly(dataDir)).toBe(true)
  })
})
