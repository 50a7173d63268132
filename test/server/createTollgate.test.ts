/**
 * createTollgate and the standalone server at start and stop: the data directory is bound to its
 * identity, a start that fails leaves the store as it found it, and closing the app closes the
 * store cleanly. No chain: nothing here is read from one (the RPC URL goes nowhere).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import type { Hex } from 'viem'
import { afterEach, describe, expect, it } from 'vitest'
import { PRESETS } from '../../src/chain/presets.js'
import { TollgateError } from '../../src/errors/index.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer } from '../../src/server/createServer.js'
import { createTollgate } from '../../src/server/createTollgate.js'
import { LevelStore } from '../../src/store/index.js'
import { makeRecord } from '../store/fixtures.js'

const KEY_A: Hex = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d'
const KEY_B: Hex = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a'
/** Nothing listens there: a start that reached the chain would fail loudly. */
const RPC_URL = 'http://127.0.0.1:9'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-start-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const open = (dataDir: string, account: Hex) =>
  createTollgate({ network: 'local', rpcUrl: RPC_URL, account, dataDir, withdrawDelay: 900 })

async function failure(promise: Promise<unknown>): Promise<TollgateError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof TollgateError) return err
    throw err
  }
  throw new Error('expected a failure')
}

/** A record of the local chain's identity under key A with a committed dynamic charge: 30 of 11 000. */
function committedRecord(receiverAuthorizer: string) {
  const base = makeRecord(1, 11_000n, 30n)
  return {
    ...base,
    config: {
      ...base.config,
      receiver: receiverAuthorizer as Hex,
      receiverAuthorizer: receiverAuthorizer as Hex,
      token: PRESETS.local.usdc.address.toLowerCase() as Hex,
      withdrawDelay: 900,
    },
  }
}

describe('createTollgate', () => {
  it('closes the store cleanly when the app closes', async () => {
    const dataDir = tempDir()
    const tg = await open(dataDir, KEY_A)
    const app = Fastify()
    await app.register(tg.http)
    app.get('/paid', { config: { price: '$0.001' } }, async () => 'ok')
    await app.ready()
    expect((await app.inject('/paid')).statusCode).toBe(402)
    await app.close()
    const store = await LevelStore.open(join(dataDir, 'vouchers'))
    cleanups.push(() => store.close())
    expect(store.recoveredFromCrash).toBe(false)
  })

  it('refuses a missing or malformed key with a configuration error, before opening anything', async () => {
    const dataDir = tempDir()
    for (const account of [undefined, '0x1234', 'not a key']) {
      const refused = await failure(
        createTollgate({
          network: 'local',
          rpcUrl: RPC_URL,
          account: account as unknown as Hex,
          dataDir,
        }),
      )
      expect(refused.code).toBe('tollgate_invalid_config')
      expect(refused.message).toMatch(/account must be/)
    }
  })

  it('refuses a data directory of another key, says how to rotate, and changes nothing', async () => {
    const dataDir = tempDir()
    const first = await open(dataDir, KEY_A)
    const authorizer = first.terms.receiverAuthorizer
    await first.close()

    const refused = await failure(open(dataDir, KEY_B))
    expect(refused.code).toBe('tollgate_identity_mismatch')
    expect(refused.message).toContain(authorizer.toLowerCase())
    expect(refused.message).toMatch(/rotate the key/)

    const again = await open(dataDir, KEY_A)
    expect(again.payee.recovery.fromCrash).toBe(false)
    await again.close()
  })

  it('judges a store from before the identity was kept by its channels', async () => {
    const dataDir = tempDir()
    const a = await open(dataDir, KEY_A)
    const authorizer = a.terms.receiverAuthorizer.toLowerCase()
    await a.close()
    const store = await LevelStore.open(join(dataDir, 'vouchers'))
    await store.deleteMeta('identity')
    await store.put(committedRecord(authorizer))
    await store.close()
    expect((await failure(open(dataDir, KEY_B))).code).toBe('tollgate_identity_mismatch')
  })
})

describe('a server start that fails', () => {
  /** A configuration whose admin port is taken: the start fails after the store was opened. */
  const config = async (dataDir: string) => {
    const taken = createNetServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)))
    const { port } = taken.address() as AddressInfo
    return parseConfig(
      {
        network: 'local',
        rpcUrl: RPC_URL,
        dataDir,
        withdrawDelay: 900,
        routes: [{ path: '/api/*', price: '$0.001', upstream: 'http://127.0.0.1:9' }],
        settlement: { adminPort: port, checkIntervalSeconds: 30, safetyMarginSeconds: 300 },
      },
      dataDir,
    )
  }

  it('leaves a clean store clean and every charge as it was (the admin port is in use)', async () => {
    const dataDir = tempDir()
    const tg = await open(dataDir, KEY_A)
    const record = committedRecord(tg.terms.receiverAuthorizer.toLowerCase())
    await tg.close()
    const seeded = await LevelStore.open(join(dataDir, 'vouchers'))
    await seeded.put(record)
    await seeded.close()

    await expect(createServer(await config(dataDir), KEY_A)).rejects.toThrow(/EADDRINUSE/)

    const store = await LevelStore.open(join(dataDir, 'vouchers'))
    cleanups.push(() => store.close())
    expect(store.recoveredFromCrash).toBe(false)
    const [stored] = await store.loadAll()
    expect(stored?.chargedCumulativeAmount).toBe(30n)
  })

  it('leaves a store found unclean unclean, so the next start still recovers it', async () => {
    const dataDir = tempDir()
    const vouchers = join(dataDir, 'vouchers')
    // A process that wrote a voucher and died without closing the store.
    const script = join(import.meta.dirname, '../payee/crashedServer.ts')
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, vouchers], {
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(child.status).toBe(0)
    // Its channel is of the test identity, so a start with key A is refused as another
    // identity; either way the failed start must leave the crash mark in place.
    await expect(createServer(await config(dataDir), KEY_A)).rejects.toThrow()
    const store = await LevelStore.open(vouchers)
    cleanups.push(() => store.close())
    expect(store.recoveredFromCrash).toBe(true)
  })
})

describe('a gateway behind a reverse proxy', () => {
  it('with trustProxy, limits each client address, not the proxy', async () => {
    const dataDir = tempDir()
    const config = parseConfig(
      {
        network: 'local',
        rpcUrl: RPC_URL,
        dataDir,
        withdrawDelay: 900,
        listen: { trustProxy: true },
        rateLimit: { unpaidPerIp: { max: 1, timeWindowSeconds: 60 } },
        routes: [{ path: '/api/*', price: '$0.001', upstream: 'http://127.0.0.1:9' }],
      },
      dataDir,
    )
    const server = await createServer(config, KEY_A)
    cleanups.push(() => server.close())
    const from = (client: string) =>
      server.app.inject({ url: '/api/x', headers: { 'x-forwarded-for': client } })
    expect((await from('203.0.113.1')).statusCode).toBe(402)
    expect((await from('203.0.113.1')).statusCode).toBe(429)
    expect((await from('203.0.113.2')).statusCode).toBe(402)
  })
})
