import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isErrorCode } from '../../../src/errors/index.js'
import { decodePaymentRequired } from '../../../src/protocol/index.js'
import {
  acceptedFor,
  makeApp,
  openChannel,
  PRICE,
  type TestApp,
  voucherHeader,
} from './fixtures.js'

/** Runs per property: bounded, the suite shares two cores. */
const RUNS = 150

let t: TestApp
let valid: Record<string, unknown>
let served = 0
const seen = new Set<string>()

beforeAll(async () => {
  t = await makeApp(
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
    { maxPaymentHeaderBytes: 4096 },
  )
  const accepted = await acceptedFor(t.app, '/paid')
  // A well-formed payment for a channel with a deposit, to mutate field by field. Its voucher
  // pays 2 000 where 1 000 is due, so even a mutation that keeps it valid is refused.
  const header = await voucherHeader(accepted, openChannel(t), 2n * PRICE)
  valid = JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
})
afterAll(async () => {
  await t.app.close()
})

const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')

/** Sets `value` at a random path of a deep copy of `object`. */
function mutate(object: unknown, path: string[], value: unknown): unknown {
  const copy = structuredClone(object) as Record<string, unknown>
  let node: Record<string, unknown> = copy
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (typeof next !== 'object' || next === null) {
      node[key] = {}
    }
    node = node[key] as Record<string, unknown>
  }
  node[path.at(-1) ?? 'x'] = value
  return copy
}

const PATHS = [
  ['x402Version'],
  ['accepted'],
  ['accepted', 'scheme'],
  ['accepted', 'network'],
  ['accepted', 'amount'],
  ['accepted', 'extra'],
  ['accepted', 'extra', 'withdrawDelay'],
  ['accepted', 'extra', 'channelState'],
  ['payload'],
  ['payload', 'type'],
  ['payload', 'channelConfig'],
  ['payload', 'channelConfig', 'payer'],
  ['payload', 'channelConfig', 'withdrawDelay'],
  ['payload', 'channelConfig', 'salt'],
  ['payload', 'voucher'],
  ['payload', 'voucher', 'channelId'],
  ['payload', 'voucher', 'maxClaimableAmount'],
  ['payload', 'voucher', 'signature'],
  ['resource'],
  ['extensions'],
  ['__proto__'],
  ['constructor', 'prototype'],
]

/** Values that pass some checks and fail later ones. */
const PLAUSIBLE = [
  'voucher',
  'deposit',
  'refund',
  'batch-settlement',
  'eip155:1',
  'eip155:31337',
  `0x${'ab'.repeat(20)}`,
  `0x${'ab'.repeat(32)}`,
  `0x${'ab'.repeat(65)}`,
  '1000',
  '0',
  `${2n ** 128n}`,
  900,
  3600,
  2_592_001,
  1,
  2,
  {},
  [],
  null,
]

const hostile = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ maxLength: 200 }).map(base64),
  fc.jsonValue({ maxDepth: 4 }).map((v) => base64(JSON.stringify(v))),
  fc
    .tuple(
      fc.constantFrom(...PATHS),
      fc.oneof(fc.constantFrom(...PLAUSIBLE), fc.jsonValue({ maxDepth: 3 })),
    )
    .map(([path, value]) => base64(JSON.stringify(mutate(valid, path, value)))),
  fc.nat({ max: 8000 }).map((n) => 'A'.repeat(n)),
  fc.constantFrom('', ' ', '=', '====', 'e30=', 'bnVsbA==', 'W10=', 'dHJ1ZQ==', 'MQ=='),
)

/** Every refusal: a 4xx, a stable code in the body, and a decodable PAYMENT-REQUIRED that agrees. */
function expectRefused(response: LightMyRequestResponse): void {
  expect(response.statusCode).toBeGreaterThanOrEqual(400)
  expect(response.statusCode).toBeLessThan(500)
  const body = response.json() as { error?: unknown; message?: unknown }
  expect(typeof body.error === 'string' && isErrorCode(body.error)).toBe(true)
  expect(typeof body.message).toBe('string')
  const header = response.headers['payment-required']
  expect(typeof header).toBe('string')
  const required = decodePaymentRequired(header as string)
  expect(required.ok && required.value.error).toBe(body.error)
  seen.add(`${response.statusCode} ${String(body.error)}`)
}

describe('hostile payment headers', () => {
  it.each(['payment-signature', 'x-payment'])(
    'never crash and always get a 4xx with a code (%s)',
    async (name) => {
      await fc.assert(
        fc.asyncProperty(hostile, async (header) => {
          const response = await t.app.inject({
            method: 'POST',
            url: '/paid',
            headers: { [name]: header },
            payload: { any: 'body' },
          })
          expectRefused(response)
        }),
        // A fixed default seed keeps the coverage assertions below deterministic in CI;
        // FUZZ_SEED explores other sequences.
        { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20_261_124) },
      )
      expect(served).toBe(0)
      // Not vacuous: the headers reach every stage, from base64 to the ledger's corrective 402.
      expect([...seen]).toEqual(
        expect.arrayContaining([
          '400 invalid_payload',
          '431 tollgate_payment_header_too_large',
          '402 invalid_batch_settlement_evm_cumulative_amount_mismatch',
        ]),
      )
      expect(seen.size).toBeGreaterThanOrEqual(8)
      expect(t.payee.ledger.records().next().value?.chargedCumulativeAmount ?? 0n).toBe(0n)
    },
  )
})
