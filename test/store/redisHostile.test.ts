/**
 * Hostile payments against two instances on one real redis-server: a well-formed payment mutated
 * field by field (every field of the payload and its requirements, set to each of a list of
 * plausible and implausible values, prototype keys included), truncated and garbage headers, each
 * sent to either instance; then one valid voucher replayed to both instances at once, many times.
 * Every hostile one is refused with a 4xx and a stable code, nothing is served or charged, a
 * voucher is spent once across instances, and an honest payer is served afterwards.
 */
import { Buffer } from 'node:buffer'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isErrorCode } from '../../src/errors/index.js'
import type { OnChainChannel } from '../../src/ledger/ledger.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import { RedisStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { mutate, PAYMENT_FIELDS } from '../helpers/hostilePayments.js'
import { type RedisServer, startRedis } from '../helpers/redisServer.js'
import { CHAIN_ID, IDENTITY } from '../ledger/fixtures.js'
import {
  ASSET,
  acceptedFor,
  NETWORK,
  openChannel,
  PRICE,
  voucherHeader,
} from '../transports/http/fixtures.js'

const KEY_PREFIX = 'hostile:'
const REPLAYS = 50

const VALUES = [
  1,
  3,
  'deposit',
  'exact',
  'eip155:8453',
  `0x${'ab'.repeat(20)}`,
  `0x${'ab'.repeat(32)}`,
  `0x${'ab'.repeat(65)}`,
  '1000',
  '2000',
  '-1',
  '1e3',
  `${2n ** 256n}`,
  '9'.repeat(400),
  1e308,
  900,
  true,
  {},
  [],
  null,
]

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')

let redis: RedisServer
const apps: FastifyInstance[] = []
const payees: Payee[] = []
const chain = new Map<Hex, OnChainChannel>()
let served = 0

beforeAll(async () => {
  redis = await startRedis()
  for (let i = 0; i < 2; i++) {
    const payee = await openPayee({
      chainId: CHAIN_ID,
      escrow: CANONICAL_ADDRESSES.escrow,
      identity: IDENTITY,
      store: await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX }),
      readChannel: async (id) =>
        chain.get(id) ?? { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
    })
    payees.push(payee)
    const app = Fastify({ logger: false })
    await app.register(tollgate, {
      payee,
      network: NETWORK,
      asset: ASSET,
      payTo: IDENTITY.receiver,
      receiverAuthorizer: IDENTITY.receiverAuthorizer,
      withdrawDelay: IDENTITY.withdrawDelay,
      rateLimit: false,
      maxPaymentHeaderBytes: 16_384,
    })
    app.get('/paid', { config: { price: PRICE } }, async () => {
      served += 1
      return { ok: true }
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    apps.push(app)
  }
})

afterAll(async () => {
  for (const app of apps) await app.close()
  for (const payee of payees) await payee.close()
  await redis?.stop()
})

describe('hostile payments against two instances on one Redis', () => {
  it('refuses every mutated, truncated or garbage header with a 4xx and a stable code, and charges nothing', async () => {
    const t = { chain }
    const accepted = await acceptedFor(apps[0] as FastifyInstance, '/paid')
    // Twice the price: even a mutation that keeps it well-formed is refused.
    const good = await voucherHeader(accepted, openChannel(t), 2n * PRICE)
    const valid = JSON.parse(Buffer.from(good, 'base64').toString('utf8'))
    const headers: string[] = [good]
    for (const path of PAYMENT_FIELDS) {
      for (const value of VALUES) headers.push(base64(JSON.stringify(mutate(valid, path, value))))
    }
    const text = JSON.stringify(valid)
    for (let n = 0; n < text.length; n += 7) headers.push(base64(text.slice(0, n)))
    headers.push('', '=', 'e30=', 'bnVsbA==', 'A'.repeat(20_000), base64('{"x402Version":2'))
    const statuses: number[] = []
    const codes = new Set<string>()
    await Promise.all(
      headers.map(async (value, i) => {
        const response = await (apps[i % 2] as FastifyInstance).inject({
          url: '/paid',
          headers: { [i % 3 ? 'payment-signature' : 'x-payment']: value },
        })
        statuses.push(response.statusCode)
        const { error } = response.json() as { error?: unknown }
        codes.add(typeof error === 'string' && isErrorCode(error) ? error : 'no code')
      }),
    )
    expect(statuses.filter((s) => s < 400 || s >= 500)).toEqual([])
    expect(codes.has('no code')).toBe(false)
    // Not vacuous: the inputs reach the scripts in Redis.
    expect([...codes]).toEqual(
      expect.arrayContaining([
        'invalid_payload',
        'invalid_batch_settlement_evm_voucher_signature',
        'invalid_batch_settlement_evm_cumulative_amount_mismatch',
      ]),
    )
    expect(served).toBe(0)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const store = await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX })
    try {
      for (const record of await store.loadAll()) expect(record.chargedCumulativeAmount).toBe(0n)
    } finally {
      await store.close()
    }
  })

  it('spends a voucher replayed to both instances at once exactly once, and serves an honest payer', async () => {
    const t = { chain }
    const accepted = await acceptedFor(apps[0] as FastifyInstance, '/paid')
    const channel = openChannel(t)
    let charged = 0n
    for (let round = 0; round < REPLAYS; round++) {
      const header = await voucherHeader(accepted, channel, charged + PRICE)
      const before = served
      const responses = await Promise.all(
        [0, 1, 0, 1].map((i) =>
          (apps[i] as FastifyInstance).inject({
            url: '/paid',
            headers: { 'payment-signature': header },
          }),
        ),
      )
      const ok = responses.filter((r) => r.statusCode === 200)
      expect(ok).toHaveLength(1)
      expect(served - before).toBe(ok.length)
      for (const refused of responses.filter((r) => r.statusCode !== 200)) {
        expect(refused.statusCode).toBeGreaterThanOrEqual(400)
        expect(refused.statusCode).toBeLessThan(500)
      }
      charged += BigInt(ok.length) * PRICE
    }
    const store = await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX })
    try {
      expect((await store.load(channel.id))?.chargedCumulativeAmount).toBe(charged)
    } finally {
      await store.close()
    }
    // An honest payer, alternating instances.
    for (let i = 0; i < 6; i++) {
      const response = await (apps[i % 2] as FastifyInstance).inject({
        url: '/paid',
        headers: { 'payment-signature': await voucherHeader(accepted, channel, charged + PRICE) },
      })
      expect(response.statusCode).toBe(200)
      charged += PRICE
    }
  })
})
