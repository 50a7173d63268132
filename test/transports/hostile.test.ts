/**
 * The hostile-input suite: 100 000 generated payment headers against the HTTP plugin and 100 000
 * generated frames against a billed WebSocket feed, over a real payee (real signature checks).
 * Malformed base64 and JSON, deep nesting, huge numbers, wrong types, prototype keys, wrong
 * versions, networks and schemes, truncated, oversized and binary input, and well-formed
 * payments mutated field by field. Every one is refused with a stable code and a 4xx (an error
 * frame over WebSocket); nothing crashes, nothing is served or charged, and the server still
 * serves an honest payer afterwards.
 */
import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isErrorCode } from '../../src/errors/index.js'
import { mutate, PAYMENT_FIELDS } from '../helpers/hostilePayments.js'
import {
  acceptedFor,
  makeApp as makeHttpApp,
  openChannel,
  PRICE,
  type TestApp,
  voucherHeader,
} from './http/fixtures.js'
import {
  PRICE as FEED_PRICE,
  FrameClient,
  makeApp as makeWsApp,
  voucherPayment,
} from './ws/fixtures.js'

/** Inputs per transport. */
const INPUTS = 100_000
/** Inputs in flight at once. */
const BATCH = 200
/** A bound on each transport's run on this 2-core machine (about 10 s each alone). */
const SUITE_TIMEOUT_MS = 180_000
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201)

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')

/** A value nested `depth` levels deep in arrays or objects. */
function nested(depth: number, inObject: boolean): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = inObject ? { a: value } : [value]
  return value
}

const PLAUSIBLE = [
  1,
  2,
  3,
  'voucher',
  'deposit',
  'refund',
  'exact',
  'batch-settlement',
  'eip155:1',
  'eip155:8453',
  'solana:mainnet',
  `0x${'ab'.repeat(20)}`,
  `0x${'ab'.repeat(32)}`,
  `0x${'ab'.repeat(65)}`,
  '1000',
  '-1',
  '0x10',
  '1e3',
  `${2n ** 256n}`,
  '9'.repeat(400),
  1e308,
  -0,
  Number.MAX_SAFE_INTEGER + 2,
  900,
  2_592_001,
  true,
  {},
  [],
  null,
]

/** A well-formed payment to mutate, set by the suite. */
let valid: Record<string, unknown> = {}

const mutated = fc
  .tuple(
    fc.constantFrom(...PAYMENT_FIELDS),
    fc.oneof(fc.constantFrom(...PLAUSIBLE), fc.jsonValue({ maxDepth: 3 })),
  )
  .map(([path, value]) => mutate(valid, path, value))

/** JSON texts of payments: mutated valid ones, random JSON, deep nesting, prototype keys. */
const paymentJson = fc.oneof(
  { weight: 6, arbitrary: mutated.map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 100, max: 3000 }), fc.boolean())
      .map(([depth, inObject]) => JSON.stringify(nested(depth, inObject))),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"__proto__":{"polluted":true},"x402Version":2}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"x402Version":2,"payload":{"voucher":{"maxClaimableAmount":1e999}}}',
    ),
  },
)

/** Truncates a JSON text somewhere. */
const truncated = mutated.chain((v) => {
  const text = JSON.stringify(v)
  return fc.nat({ max: Math.max(0, text.length - 1) }).map((n) => text.slice(0, n))
})

const header = fc.oneof(
  { weight: 8, arbitrary: paymentJson.map(base64) },
  { weight: 2, arbitrary: truncated.map(base64) },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }).map(base64) },
  { weight: 1, arbitrary: fc.nat({ max: 20_000 }).map((n) => 'A'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '=', '====', 'e30=', 'bnVsbA==', 'W10=') },
)

/** Frames: text (pay frames carrying hostile payments, other JSON, garbage), binary, oversized. */
const frame = fc.oneof(
  {
    weight: 6,
    arbitrary: paymentJson.map((payment) => ({ text: `{"type":"pay","payment":${payment}}` })),
  },
  { weight: 1, arbitrary: truncated.map((t) => ({ text: `{"type":"pay","payment":${t}` })) },
  {
    weight: 2,
    arbitrary: fc
      .jsonValue({ maxDepth: 4 })
      .filter((v) => !isBenign(v))
      .map((v) => ({ text: JSON.stringify(v) })),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }).map((text) => ({ text })) },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ binary: Buffer.from(bytes) })),
  },
  {
    weight: 1,
    // Above the frame limit (16 KiB), below the socket's payload limit (64 KiB).
    arbitrary: fc.nat({ max: 40_000 }).map((n) => ({ text: `"${'x'.repeat(n + 17_000)}"` })),
  },
)

/** Frames that are not refusals: an `end`, a `subscribe` (they end or start the session). */
function isBenign(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const type = (value as { type?: unknown }).type
  return type === 'end' || type === 'subscribe'
}

describe('hostile payment headers, 100 000 of them', () => {
  let t: TestApp
  let served = 0
  beforeAll(async () => {
    t = await makeHttpApp(
      (app) => {
        app.route({
          method: ['GET', 'POST'],
          url: '/paid',
          config: { price: PRICE },
          handler: async () => {
            served += 1
            return { ok: true }
          },
        })
      },
      { maxPaymentHeaderBytes: 16_384 },
    )
    const accepted = await acceptedFor(t.app, '/paid')
    // Pays twice the price: even a mutation that keeps it valid is refused.
    const good = await voucherHeader(accepted, openChannel(t), 2n * PRICE)
    valid = JSON.parse(Buffer.from(good, 'base64').toString('utf8'))
  })
  afterAll(async () => {
    await t.app.close()
  })

  it(
    'refuses every one with a 4xx and a stable code, serves nothing, and still serves a payer',
    async () => {
      const headers = fc.sample(header, { numRuns: INPUTS, seed: SEED })
      const statuses = new Map<number, number>()
      const codes = new Set<string>()
      for (let i = 0; i < headers.length; i += BATCH) {
        const responses = await Promise.all(
          headers.slice(i, i + BATCH).map((value, k) =>
            t.app.inject({
              method: 'POST',
              url: '/paid',
              headers: { [(i + k) % 2 ? 'payment-signature' : 'x-payment']: value },
              payload: { any: 'body' },
            }),
          ),
        )
        for (const response of responses) {
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
          const body = response.json() as { error?: unknown }
          if (typeof body.error === 'string' && isErrorCode(body.error)) codes.add(body.error)
          else codes.add(`no code: ${response.body.slice(0, 80)}`)
        }
      }
      expect([...statuses.keys()].filter((s) => s < 400 || s >= 500)).toEqual([])
      expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(INPUTS)
      expect([...codes].filter((c) => c.startsWith('no code'))).toEqual([])
      // Not vacuous: the inputs reach every stage, from base64 to the ledger.
      expect([...codes]).toEqual(
        expect.arrayContaining([
          'invalid_payload',
          'tollgate_payment_header_too_large',
          'invalid_payment_requirements',
          'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        ]),
      )
      expect(served).toBe(0)
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      for (const record of t.payee.ledger.records()) expect(record.chargedCumulativeAmount).toBe(0n)

      const accepted = await acceptedFor(t.app, '/paid')
      const honest = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': await voucherHeader(accepted, openChannel(t), PRICE) },
      })
      expect(honest.statusCode).toBe(200)
    },
    SUITE_TIMEOUT_MS,
  )
})

describe('hostile WebSocket frames, 100 000 of them', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await makeWsApp(
      (app) =>
        app.tollgateFeed('/feed', {
          price: FEED_PRICE,
          source: async function* () {
            for (let n = 1; ; n++) yield n
          },
        }),
      // Bad frames are what this suite sends: no connection is closed for them here.
      // A connection with no accepted voucher is not timed out either: the suite takes a while.
      { maxBadFrames: 1e9, maxBadFramesPerIp: 1e9, payTimeoutMs: 0 },
    )
  })
  afterAll(async () => {
    await t.app.close()
  })

  it(
    'answers every one with an error frame and a stable code, charges nothing, and still bills a payer',
    async () => {
      const frames = fc.sample(frame, { numRuns: INPUTS, seed: SEED })
      const client = await FrameClient.connect(t.app, '/feed')
      const accepted = await client.accepted()
      // A channel holding less than the voucher: even a mutation that keeps it valid is refused.
      const poor = openChannel(t, FEED_PRICE)
      valid = (await voucherPayment(accepted, poor, 2n * FEED_PRICE)) as unknown as Record<
        string,
        unknown
      >
      const payments = fc.sample(frame, { numRuns: INPUTS, seed: SEED + 1 })
      const all = [...frames.slice(0, INPUTS / 2), ...payments.slice(0, INPUTS / 2)]
      for (let i = 0; i < all.length; i += BATCH) {
        for (const f of all.slice(i, i + BATCH)) {
          if ('binary' in f) client.ws.send(f.binary, { binary: true })
          else client.send(f.text)
        }
        await client.count('error', Math.min(i + BATCH, all.length), 30_000)
      }
      const errors = client.all('error')
      expect(errors).toHaveLength(INPUTS)
      const codes = new Set(errors.map((e) => e.code))
      expect([...codes].every(isErrorCode)).toBe(true)
      expect([...codes]).toEqual(
        expect.arrayContaining([
          'tollgate_ws_bad_frame',
          'tollgate_ws_frame_too_large',
          'invalid_payload',
          'invalid_payment_requirements',
        ]),
      )
      expect(client.all('data')).toEqual([])
      for (const record of t.payee.ledger.records()) expect(record.chargedCumulativeAmount).toBe(0n)

      // The same connection still takes an honest voucher and bills the feed.
      const channel = openChannel(t)
      await client.pay(accepted, channel, 5n * FEED_PRICE)
      client.send({ type: 'subscribe' })
      await client.count('data', 5)
      await client.close()
      expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(5n * FEED_PRICE)
    },
    SUITE_TIMEOUT_MS,
  )
})
