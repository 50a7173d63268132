/**
 * WebSocket sessions on two instances sharing one real redis-server: a payer whose sessions
 * alternate between them never finds its channel busy when the next session opens on the other
 * instance the moment the last one closed. The first instance reaches Redis through a relay that
 * holds what it sends for a while, so that a hold's end written behind would land after the
 * payer's next voucher.
 */
import type { Server } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OnChainChannel } from '../../../src/ledger/index.js'
import type { Payee } from '../../../src/payee/index.js'
import { RedisStore } from '../../../src/store/index.js'
import { tollgateWs } from '../../../src/transports/ws/index.js'
import { type RedisServer, slowRelay, startRedis } from '../../helpers/redisServer.js'
import {
  type Channel,
  FrameClient,
  fixturePayee,
  openChannel,
  PRICE,
  pluginOptions,
  until,
  voucherPayment,
} from './fixtures.js'

const RELAY_DELAY_MS = 40
const KEY_PREFIX = 'ws-alt:'
/** Messages of each feed session: the feed ends after them, and so does the session. */
const FEED_MESSAGES = 3
const SESSIONS = 6

let redis: RedisServer
let relay: Server | undefined
const chain = new Map<Hex, OnChainChannel>()
const payees: Payee[] = []
const apps: FastifyInstance[] = []

beforeAll(async () => {
  redis = await startRedis()
  const slow = await slowRelay(redis.port, RELAY_DELAY_MS)
  relay = slow.server
  for (const url of [slow.url, redis.url]) {
    const store = await RedisStore.open({ url, keyPrefix: KEY_PREFIX })
    const { payee } = await fixturePayee({
      store,
      readChannel: async (id) =>
        chain.get(id) ?? { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
    })
    payees.push(payee)
    apps.push(await wsApp(payee))
  }
})

/** An app of `payee` with a request route (`/rpc`) and a feed that ends after a few messages. */
async function wsApp(payee: Payee): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(tollgateWs, pluginOptions(payee))
  app.tollgateRequests('/rpc', {
    price: PRICE,
    creditWindow: 10,
    handler: async (body) => ({ echo: body }),
  })
  app.tollgateFeed('/feed', {
    price: PRICE,
    creditWindow: 10,
    source: async function* () {
      for (let n = 1; n <= FEED_MESSAGES; n++) yield { n }
    },
  })
  await app.ready()
  return app
}

afterAll(async () => {
  for (const app of apps) await app.close()
  for (const payee of payees) await payee.close()
  relay?.close()
  await redis?.stop()
})

/**
 * Opens a session on `app` with a voucher `window` prices above what the channel was charged,
 * and returns its client, or throws with the error frame that refused the voucher.
 */
async function openSession(app: FastifyInstance, path: string, channel: Channel, charged: bigint) {
  const client = await FrameClient.connect(app, path)
  const accepted = await client.accepted()
  client.send({
    type: 'pay',
    payment: await voucherPayment(accepted, channel, charged + 10n * PRICE),
  })
  await until(() => client.log.some((frame) => frame.type === 'receipt' || frame.type === 'error'))
  expect(client.all('error').map((frame) => frame.code)).toEqual([])
  const receipt = await client.next('receipt')
  expect(receipt.paymentResponse.extra).toMatchObject({
    channelState: { chargedCumulativeAmount: charged.toString() },
  })
  return client
}

describe('a payer alternating two instances on one Redis', () => {
  it('opens a request session on the other instance the moment the last one closed on an end frame', async () => {
    const channel = openChannel({ chain })
    let charged = 0n
    for (let i = 0; i < SESSIONS; i++) {
      const client = await openSession(apps[i % 2] as FastifyInstance, '/rpc', channel, charged)
      client.send({ type: 'request', id: i, body: i })
      const response = await client.next('response')
      expect(response).toMatchObject({ id: i, body: { echo: i }, charged: PRICE.toString() })
      charged += PRICE
      client.send({ type: 'end' })
      const final = await client.next('receipt')
      expect(final.final).toBe(true)
      expect(final.paymentResponse.extra).toMatchObject({
        channelState: { chargedCumulativeAmount: charged.toString() },
      })
      expect((await client.closed).code).toBe(1000)
    }
  })

  it('opens a feed session on the other instance the moment the last one closed at the end of its feed', async () => {
    const channel = openChannel({ chain })
    let charged = 0n
    for (let i = 0; i < SESSIONS; i++) {
      const client = await openSession(apps[i % 2] as FastifyInstance, '/feed', channel, charged)
      client.send({ type: 'subscribe' })
      const final = await client.next('receipt')
      charged += BigInt(FEED_MESSAGES) * PRICE
      expect(final.final).toBe(true)
      expect(client.all('data')).toHaveLength(FEED_MESSAGES)
      expect(final.paymentResponse.extra).toMatchObject({
        channelState: { chargedCumulativeAmount: charged.toString() },
      })
      expect((await client.closed).code).toBe(1000)
    }
  })
  it('opens a session on the other instance the moment one ended by a shutdown got its final receipt', async () => {
    const channel = openChannel({ chain })
    // A third instance on the first payee (the slow path to Redis), shut down with a session open.
    const closing = await wsApp(payees[0] as Payee)
    const client = await openSession(closing, '/rpc', channel, 0n)
    client.send({ type: 'request', id: 1 })
    await client.next('response')
    await closing.close()
    const final = await client.next('receipt')
    expect(final.final).toBe(true)
    expect((await client.closed).code).toBe(1001)
    const next = await openSession(apps[1] as FastifyInstance, '/rpc', channel, PRICE)
    await next.close()
  })
})
