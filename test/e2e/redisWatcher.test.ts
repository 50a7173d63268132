/**
 * The chain watcher on a shared Redis: an instance mirrors the events of a channel another
 * instance opened (it asks Redis which channels it holds), so any one instance may watch; and
 * a second watcher applying the same events again changes nothing. Two `tollgate serve` servers
 * (createServer) on a real redis-server and the anvil dev chain, our payer, a direct deposit.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { generatePrivateKey } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createChainWatcher } from '../../src/chain/watcher.js'
import { createPayer, keySigner } from '../../src/client/index.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import { RedisStore } from '../../src/store/index.js'
import { fundedAccount } from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'
import { type RedisServer, startRedis } from '../helpers/redisServer.js'

const dev = useDevChain()
const PRICE = 1000n
const KEY_PREFIX = 'watch:'

let redis: RedisServer
let upstream: FastifyInstance
const servers: TollgateServer[] = []
const bases: string[] = []
const dirs: string[] = []
let revert: () => Promise<void>

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-watch-'))
  dirs.push(dir)
  return dir
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

beforeAll(async () => {
  revert = await dev.snapshot()
  redis = await startRedis()
  upstream = Fastify()
  upstream.get('/api/echo', async () => ({ ok: true }))
  const upstreamBase = await upstream.listen({ host: '127.0.0.1', port: 0 })
  for (let i = 0; i < 2; i++) {
    const dataDir = tempDir()
    const config = parseConfig(
      {
        network: 'local',
        rpcUrl: dev.rpcUrl,
        dataDir,
        confirmations: 0,
        withdrawDelay: 3600,
        store: { url: redis.url, keyPrefix: KEY_PREFIX },
        listen: { port: 0 },
        settlement: { enabled: false },
        routes: [{ path: '/api/*', price: '$0.001', upstream: upstreamBase }],
      },
      dataDir,
    )
    const server = await createServer(config, dev.privateKeys[4] as `0x${string}`)
    servers.push(server)
    bases.push(await server.app.listen({ host: '127.0.0.1', port: 0 }))
  }
})

afterAll(async () => {
  for (const server of servers) await server.close()
  await upstream?.close()
  await redis?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  await revert?.()
})

describe('the chain watcher on a shared Redis', () => {
  it('mirrors a deposit on a channel another instance opened, and applying it twice changes nothing', async () => {
    const [a, b] = servers as [TollgateServer, TollgateServer]
    // Only A watches.
    await b.watcher.stop()
    const payer = await createPayer({
      rpcUrl: dev.rpcUrl,
      chainId: dev.chainId,
      account: await fundedAccount(dev, 10_000_000n),
      payerAuthorizer: keySigner(generatePrivateKey()),
      dataDir: tempDir(),
      policy: { deposit: { amount: 10n * PRICE } },
    })
    // The channel is opened and first paid on B: A has never seen it.
    expect((await payer.fetch(`${bases[1]}/api/echo`)).status).toBe(200)
    const [channel] = await payer.channels()
    if (!channel) throw new Error('no channel')
    const id = channel.channelId
    expect(a.payee.isKnown(id)).toBe(false)

    // Someone tops the channel up on chain, directly.
    const topUp = 5n * PRICE
    const sender = await fundedAccount(dev, topUp, true)
    await dev.harness.approve(sender, topUp)
    await dev.harness.depositDirect(sender, channel.config, topUp)
    const balance = 10n * PRICE + topUp
    expect((await dev.harness.channel(id)).balance).toBe(balance)

    const store = await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX })
    try {
      // A's watcher mirrors it in Redis, though A does not know the channel itself.
      await waitFor(async () => (await store.load(id))?.balance === balance)
      const mirrored = await store.load(id)

      // A second watcher (B's payee) applies every event from the first block again.
      let progress = new Map<string, string>()
      const again = createChainWatcher({
        client: dev.harness.publicClient,
        escrow: dev.contracts.escrow,
        sink: b.payee,
        meta: {
          getMeta: async (key) => progress.get(key),
          putMeta: async (key, value) => {
            progress = new Map(progress).set(key, value)
          },
        },
        confirmations: 0,
        fromBlock: 0n,
      })
      const head = await dev.harness.publicClient.getBlockNumber()
      try {
        const polled = await again.pollOnce()
        expect(polled.lastProcessedBlock).toBeGreaterThanOrEqual(head)
        expect(polled.applied).toBeGreaterThanOrEqual(2)
      } finally {
        await again.stop()
      }
      await waitFor(async () => (await store.load(id))?.syncedAt !== mirrored?.syncedAt)
      const { syncedAt: _first, ...before } = mirrored ?? {}
      const { syncedAt: _second, ...after } = (await store.load(id)) ?? {}
      expect(after).toEqual(before)
      // B serves the next call on the raised balance.
      expect((await payer.fetch(`${bases[1]}/api/echo`)).status).toBe(200)
    } finally {
      await store.close()
      await payer.close()
    }
  })
})
