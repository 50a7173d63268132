/**
 * A sequential payer whose requests alternate between two tollgate instances on one Redis never
 * finds its channel busy: its next voucher, signed on from the receipt, ends a commit that has not
 * landed yet (HOLD_SCRIPT), and an instance answers a request whose upstream failed only once Redis
 * acknowledged its release. Our payer, two `tollgate serve` servers (createServer)
 * on a real redis-server and the anvil dev chain; the first instance reaches Redis through a TCP
 * relay that holds what it sends for a while (a slower network path), so that an end written
 * behind would land after the payer's next request.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import type { Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { generatePrivateKey } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPayer, keySigner } from '../../src/client/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import { RedisStore } from '../../src/store/index.js'
import { fundedAccount } from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'
import { type RedisServer, slowRelay, startRedis } from '../helpers/redisServer.js'

const dev = useDevChain()
/** Token units a call: `'$0.002'` of the 6-decimal test USDC. */
const PRICE = 2000n
const CALLS = 40
/** How long the relay holds each chunk the first instance sends to Redis. */
const RELAY_DELAY_MS = 40

let redis: RedisServer
let relay: Server | undefined
let upstream: FastifyInstance
const servers: TollgateServer[] = []
const bases: string[] = []
const dirs: string[] = []
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  redis = await startRedis()
  upstream = Fastify()
  upstream.get('/api/echo', async (request) => ({ q: (request.query as { q?: string }).q }))
  upstream.get('/api/broken', async (_request, reply) => reply.code(503).send({ down: true }))
  const upstreamBase = await upstream.listen({ host: '127.0.0.1', port: 0 })
  const slow = await slowRelay(redis.port, RELAY_DELAY_MS)
  relay = slow.server
  for (const url of [slow.url, redis.url]) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-redis-alt-'))
    dirs.push(dataDir)
    const config = parseConfig(
      {
        network: 'local',
        rpcUrl: dev.rpcUrl,
        dataDir,
        confirmations: 0,
        withdrawDelay: 3600,
        store: { url, keyPrefix: 'alt:' },
        listen: { port: 0 },
        settlement: { enabled: false },
        routes: [{ path: '/api/*', price: '$0.002', upstream: upstreamBase }],
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
  relay?.close()
  await redis?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  await revert?.()
})

describe('a sequential payer alternating two instances', () => {
  it('is never refused channel_busy, and both instances and Redis agree on what it paid', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-redis-alt-payer-'))
    dirs.push(dataDir)
    const payer = await createPayer({
      rpcUrl: dev.rpcUrl,
      chainId: dev.chainId,
      account: await fundedAccount(dev, 10_000_000n),
      payerAuthorizer: keySigner(generatePrivateKey()),
      dataDir,
      policy: { deposit: { amount: 1000n * PRICE } },
    })
    const statuses: number[] = []
    const charged: bigint[] = []
    for (let i = 0; i < CALLS; i++) {
      const base = bases[i % 2] as string
      // Every fifth call's upstream fails: its hold is released, on the other instance next.
      const path = i % 5 === 4 ? '/api/broken' : `/api/echo?q=${i}`
      const response = await payer.fetch(`${base}${path}`)
      statuses.push(response.status)
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (receipt.ok) charged.push(receipt.value.channelState?.chargedCumulativeAmount ?? -1n)
      await response.arrayBuffer()
    }
    const paidCalls = CALLS - CALLS / 5
    expect(statuses.filter((s) => s === 200)).toHaveLength(paidCalls)
    expect(statuses.filter((s) => s === 503)).toHaveLength(CALLS / 5)
    // Each receipt one price above the last: no call charged twice, none skipped.
    expect(charged).toEqual(Array.from({ length: paidCalls }, (_, k) => BigInt(k + 1) * PRICE))
    const [channel] = await payer.channels()
    if (!channel) throw new Error('no channel')
    expect(channel.charged).toBe(BigInt(paidCalls) * PRICE)
    const store = await RedisStore.open({ url: redis.url, keyPrefix: 'alt:' })
    try {
      expect(await store.load(channel.channelId)).toMatchObject({
        chargedCumulativeAmount: BigInt(paidCalls) * PRICE,
        inFlightCumulativeAmount: BigInt(paidCalls) * PRICE,
        signedMaxClaimable: BigInt(paidCalls) * PRICE,
      })
    } finally {
      await store.close()
    }
    await payer.close()
  })
})
