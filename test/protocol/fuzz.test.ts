import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { type ErrorCode, isErrorCode, type Result } from '../../src/errors/index.js'
import {
  type BatchPayload,
  buildRequirements,
  type ChannelConfig,
  type ChannelState,
  decodeChannelState,
  decodePaymentHeader,
  decodePaymentPayload,
  decodePaymentRequired,
  decodePaymentRequiredObject,
  decodeSettleResponse,
  decodeSettleResponseObject,
  decodeVoucherState,
  depositReceipt,
  encodeHeader,
  paymentPayload,
  voucherReceipt,
} from '../../src/protocol/index.js'
import {
  clone,
  DEPOSIT_PAYLOAD,
  NETWORK,
  REFUND_PAYLOAD,
  REQUIREMENTS_PARAMETERS,
  toHeader,
  VOUCHER_PAYLOAD,
} from './fixtures.js'

const BS = 'invalid_batch_settlement_evm_'
const PAYMENT_CODES = new Set<ErrorCode>([
  'tollgate_payment_header_too_large',
  'invalid_payload',
  'invalid_x402_version',
  'invalid_payment_requirements',
  `${BS}scheme`,
  `${BS}payload_type`,
  `${BS}missing_channel`,
  `${BS}withdraw_delay_out_of_range`,
  `${BS}voucher_payload`,
  `${BS}deposit_payload`,
  `${BS}erc3009_authorization_required`,
  `${BS}refund_payload`,
  `${BS}refund_amount_invalid`,
])
const REQUIRED_CODES = new Set<ErrorCode>([
  'tollgate_payment_header_too_large',
  'invalid_x402_version',
  'tollgate_invalid_payment_required',
])
const RESPONSE_CODES = new Set<ErrorCode>([
  'tollgate_payment_header_too_large',
  'tollgate_invalid_payment_response',
])

const headerDecoders = [
  ['decodePaymentHeader', decodePaymentHeader, PAYMENT_CODES],
  ['decodePaymentRequired', decodePaymentRequired, REQUIRED_CODES],
  ['decodeSettleResponse', decodeSettleResponse, RESPONSE_CODES],
] as const

const objectDecoders = [
  ['decodePaymentPayload', decodePaymentPayload, PAYMENT_CODES],
  ['decodePaymentRequiredObject', decodePaymentRequiredObject, REQUIRED_CODES],
  ['decodeSettleResponseObject', decodeSettleResponseObject, RESPONSE_CODES],
  ['decodeChannelState', decodeChannelState, REQUIRED_CODES],
  ['decodeVoucherState', decodeVoucherState, REQUIRED_CODES],
] as const

/** A result is either accepted or a rejection whose code is in the table and in `codes`. */
function expectWellFormed(result: Result<unknown>, codes: ReadonlySet<ErrorCode>): void {
  if (result.ok) return
  expect(isErrorCode(result.code)).toBe(true)
  expect(codes.has(result.code)).toBe(true)
  expect(typeof result.message).toBe('string')
}

describe.each(headerDecoders)('%s on hostile headers', (_, decode, codes) => {
  it('never throws on arbitrary strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.base64String()),
        (header) => {
          expectWellFormed(decode(header), codes)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('never throws on base64 of arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        expectWellFormed(decode(Buffer.from(bytes).toString('base64')), codes)
      }),
      { numRuns: 500 },
    )
  })

  it('never throws on base64 of arbitrary JSON, and refuses it', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const result = decode(toHeader(value))
        expectWellFormed(result, codes)
        expect(result.ok).toBe(false)
      }),
      { numRuns: 500 },
    )
  })
})

describe.each(objectDecoders)('%s on hostile values', (_, decode, codes) => {
  it('never throws on arbitrary values', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything({ withNullPrototype: true })), (value) => {
        expectWellFormed(decode(value), codes)
      }),
      { numRuns: 500 },
    )
  })
})

/** Every path of a JSON object, inner nodes included, as key lists. */
function pathsOf(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null) return [prefix]
  const inner = Object.entries(value).flatMap(([key, child]) => pathsOf(child, [...prefix, key]))
  return prefix.length === 0 ? inner : [prefix, ...inner]
}

describe('decodePaymentHeader on mutated payments', () => {
  const accepted = buildRequirements(REQUIREMENTS_PARAMETERS)
  const valid = [VOUCHER_PAYLOAD, DEPOSIT_PAYLOAD, REFUND_PAYLOAD].map((payload) =>
    clone(paymentPayload({ accepted, payload })),
  )
  const mutation = fc
    .constantFrom(...valid)
    .chain((base) =>
      fc.tuple(
        fc.constant(base),
        fc.constantFrom(...pathsOf(base)),
        fc.option(fc.jsonValue(), { nil: undefined }),
      ),
    )

  it('answers a decoder code for any one field replaced or deleted, and re-encodes what it accepts', () => {
    let accepted = 0
    fc.assert(
      fc.property(mutation, ([base, path, replacement]) => {
        const value = clone(base) as Record<string, unknown>
        let node = value
        for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>
        const last = path.at(-1) as string
        if (replacement === undefined) delete node[last]
        else node[last] = replacement

        const decoded = decodePaymentHeader(toHeader(value))
        expectWellFormed(decoded, PAYMENT_CODES)
        if (!decoded.ok) return
        accepted++
        const again = decodePaymentHeader(encodeHeader(paymentPayload(decoded.value)))
        expect(again).toEqual({ ok: true, value: decoded.value })
      }),
      { numRuns: 2000 },
    )
    expect(accepted).toBeGreaterThan(0)
  })
})

const hex = (bytes: number) =>
  fc
    .uint8Array({ minLength: bytes, maxLength: bytes })
    .map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex)
const address = hex(20) as fc.Arbitrary<Address>
const uint128 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })
const uint256 = fc.bigInt({ min: 0n, max: (1n << 256n) - 1n })

const channelConfig: fc.Arbitrary<ChannelConfig> = fc.record({
  payer: address,
  payerAuthorizer: address,
  receiver: address,
  receiverAuthorizer: address,
  token: address,
  withdrawDelay: fc.integer({ min: 900, max: 2_592_000 }),
  salt: hex(32),
})
const voucher = fc.record({ channelId: hex(32), maxClaimableAmount: uint128, signature: hex(65) })
const batchPayload: fc.Arbitrary<BatchPayload> = fc.oneof(
  fc.record({ type: fc.constant('voucher' as const), channelConfig, voucher }),
  fc.record(
    {
      type: fc.constant('refund' as const),
      channelConfig,
      voucher,
      amount: fc.bigInt({ min: 1n, max: (1n << 128n) - 1n }),
    },
    { requiredKeys: ['type', 'channelConfig', 'voucher'] },
  ),
  fc.record({
    type: fc.constant('deposit' as const),
    channelConfig,
    voucher,
    deposit: fc.record({
      amount: fc.bigInt({ min: 1n, max: (1n << 128n) - 1n }),
      erc3009Authorization: fc.record({
        validAfter: uint256,
        validBefore: uint256,
        salt: hex(32),
        signature: hex(65),
      }),
    }),
  }),
)
const channelState: fc.Arbitrary<ChannelState> = fc.record({
  channelId: hex(32),
  balance: uint128,
  totalClaimed: uint128,
  withdrawRequestedAt: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
  refundNonce: uint256,
  chargedCumulativeAmount: uint128,
})

describe('round trips of arbitrary valid values', () => {
  const accepted = buildRequirements(REQUIREMENTS_PARAMETERS)

  it('paymentPayload → header → decodePaymentHeader gives the payload back', () => {
    fc.assert(
      fc.property(batchPayload, (payload) => {
        const decoded = decodePaymentHeader(encodeHeader(paymentPayload({ accepted, payload })))
        expect(decoded).toEqual({ ok: true, value: { x402Version: 2, accepted, payload } })
      }),
      { numRuns: 300 },
    )
  })

  it('voucher and deposit receipts → header → decodeSettleResponse give the figures back', () => {
    fc.assert(
      fc.property(
        channelState,
        uint128,
        uint128,
        hex(32),
        (state, chargedAmount, amount, transaction) => {
          const payer = '0x3333333333333333333333333333333333333333' as const
          const voucherDecoded = decodeSettleResponse(
            encodeHeader(
              voucherReceipt({ network: NETWORK, payer, chargedAmount, channelState: state }),
            ),
          )
          expect(voucherDecoded.ok && voucherDecoded.value.channelState).toEqual(state)
          expect(voucherDecoded.ok && voucherDecoded.value.chargedAmount).toBe(chargedAmount)
          const deposit = depositReceipt({
            network: NETWORK,
            payer,
            transaction,
            amount,
            chargedAmount,
            channelState: state,
          })
          const depositDecoded = decodeSettleResponse(encodeHeader(deposit))
          expect(depositDecoded.ok && depositDecoded.value.amount).toBe(amount)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('refuses any maxClaimableAmount above uint128', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n << 128n, max: 1n << 300n }), (amount) => {
        const value = clone(paymentPayload({ accepted, payload: VOUCHER_PAYLOAD })) as Record<
          string,
          unknown
        >
        ;(
          (value.payload as Record<string, unknown>).voucher as Record<string, unknown>
        ).maxClaimableAmount = amount.toString()
        expect(decodePaymentPayload(value)).toMatchObject({
          ok: false,
          code: `${BS}voucher_payload`,
        })
      }),
    )
  })
})
