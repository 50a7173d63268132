import { Buffer } from 'node:buffer'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type ErrorCode, TollgateError } from '../../src/errors/index.js'
import {
  type BatchPayload,
  buildRequirements,
  correctiveRequired,
  decodePaymentHeader,
  decodePaymentPayload,
  encodeHeader,
  MAX_PAYMENT_HEADER_BYTES,
  paymentPayload,
} from '../../src/protocol/index.js'
import {
  CHANNEL_STATE,
  clone,
  DEPOSIT_PAYLOAD,
  NETWORK,
  REFUND_PAYLOAD,
  REQUIREMENTS_PARAMETERS,
  setPath,
  toHeader,
  USDC_CHECKSUMMED,
  VOUCHER_PAYLOAD,
} from './fixtures.js'

const accepted = buildRequirements(REQUIREMENTS_PARAMETERS)

/** A wire payment (JSON object) carrying `payload`. */
function wire(payload: BatchPayload = VOUCHER_PAYLOAD): Record<string, unknown> {
  return clone(paymentPayload({ accepted, payload, resource: { url: 'https://api.test/data' } }))
}

function decodeWire(value: unknown) {
  return decodePaymentHeader(toHeader(value))
}

const BS = 'invalid_batch_settlement_evm_'
const BIG = `0x${'cd'.repeat(64)}1b`

describe('decodePaymentHeader round trips', () => {
  it.each([
    ['voucher', VOUCHER_PAYLOAD],
    ['deposit', DEPOSIT_PAYLOAD],
    ['refund with amount', REFUND_PAYLOAD],
    ['refund of everything', { ...REFUND_PAYLOAD, amount: undefined }],
  ] as const)('decodes a %s payment built by paymentPayload', (_, payload) => {
    const header = encodeHeader(paymentPayload({ accepted, payload }))
    const decoded = decodePaymentHeader(header)
    expect(decoded).toEqual({ ok: true, value: { x402Version: 2, accepted, payload } })
  })

  it('keeps resource and extensions', () => {
    const value = { ...wire(), extensions: { bazaar: { info: 1 } } }
    const decoded = decodeWire(value)
    expect(decoded.ok && decoded.value.resource).toEqual({ url: 'https://api.test/data' })
    expect(decoded.ok && decoded.value.extensions).toEqual({ bazaar: { info: 1 } })
  })

  it('lowercases checksummed addresses and upper-case hex', () => {
    const value = wire()
    setPath(value, 'payload.channelConfig.token', USDC_CHECKSUMMED)
    setPath(value, 'payload.voucher.channelId', `0x${'AB'.repeat(32)}`)
    setPath(value, 'payload.voucher.signature', `0x${'CD'.repeat(64)}1B`)
    const decoded = decodeWire(value)
    if (!decoded.ok) throw new Error(decoded.message)
    expect(decoded.value.payload.channelConfig.token).toBe(USDC_CHECKSUMMED.toLowerCase())
    expect(decoded.value.payload.voucher.channelId).toBe(`0x${'ab'.repeat(32)}`)
    expect(decoded.value.payload.voucher.signature).toBe(`0x${'cd'.repeat(64)}1b`)
  })

  it('returns accepted exactly as received, echoed corrective state included', () => {
    const corrective = correctiveRequired({
      resource: { url: 'https://api.test/data' },
      accepts: [accepted],
      network: NETWORK,
      channelState: CHANNEL_STATE,
    })
    const value = wire()
    value.accepted = corrective.accepts[0]
    const decoded = decodeWire(value)
    expect(decoded.ok && decoded.value.accepted).toEqual(corrective.accepts[0])
  })

  it('decodes the same object whether it comes as a header or as a JSON value', () => {
    const value = wire(DEPOSIT_PAYLOAD)
    expect(decodePaymentPayload(value)).toEqual(decodeWire(value))
  })

  it('ignores unknown keys, as x402 extensions add some', () => {
    const value = wire()
    setPath(value, 'payload.future', { anything: true })
    setPath(value, 'payload.voucher.note', 'hello')
    expect(decodeWire(value).ok).toBe(true)
  })
})

type HostileCase = readonly [
  name: string,
  mutate: (value: Record<string, unknown>) => void,
  code: ErrorCode,
]

const set =
  (path: string, value: unknown, payload: BatchPayload = VOUCHER_PAYLOAD) =>
  (target: Record<string, unknown>) => {
    Object.assign(target, wire(payload))
    setPath(target, path, value)
  }

const HOSTILE: readonly HostileCase[] = [
  ['x402Version 1', set('x402Version', 1), 'invalid_x402_version'],
  ['x402Version "2"', set('x402Version', '2'), 'invalid_x402_version'],
  ['no x402Version', set('x402Version', undefined), 'invalid_x402_version'],
  ['no accepted', set('accepted', undefined), 'invalid_payment_requirements'],
  ['accepted an array', set('accepted', []), 'invalid_payment_requirements'],
  ['accepted scheme exact', set('accepted.scheme', 'exact'), `${BS}scheme`],
  ['accepted scheme missing', set('accepted.scheme', undefined), `${BS}scheme`],
  [
    'accepted network solana',
    set('accepted.network', 'solana:mainnet'),
    'invalid_payment_requirements',
  ],
  [
    'accepted network eip155:01',
    set('accepted.network', 'eip155:01'),
    'invalid_payment_requirements',
  ],
  ['accepted amount a number', set('accepted.amount', 1000), 'invalid_payment_requirements'],
  [
    'accepted amount 2^128',
    set('accepted.amount', (1n << 128n).toString()),
    'invalid_payment_requirements',
  ],
  ['accepted asset short', set('accepted.asset', '0x1234'), 'invalid_payment_requirements'],
  ['accepted payTo missing', set('accepted.payTo', undefined), 'invalid_payment_requirements'],
  ['accepted timeout 0', set('accepted.maxTimeoutSeconds', 0), 'invalid_payment_requirements'],
  ['accepted timeout 1.5', set('accepted.maxTimeoutSeconds', 1.5), 'invalid_payment_requirements'],
  ['accepted extra a string', set('accepted.extra', 'x'), 'invalid_payment_requirements'],
  ['resource a string', set('resource', 'https://x'), 'invalid_payload'],
  ['resource without url', set('resource', { description: 'd' }), 'invalid_payload'],
  ['extensions an array', set('extensions', []), 'invalid_payload'],
  ['payload missing', set('payload', undefined), 'invalid_payload'],
  ['payload a string', set('payload', 'voucher'), 'invalid_payload'],
  ['payload type claim', set('payload.type', 'claim'), `${BS}payload_type`],
  ['payload type missing', set('payload.type', undefined), `${BS}payload_type`],
  ['payload type Voucher', set('payload.type', 'Voucher'), `${BS}payload_type`],
  ['channelConfig missing', set('payload.channelConfig', undefined), `${BS}missing_channel`],
  ['channelConfig null', set('payload.channelConfig', null), `${BS}missing_channel`],
  ['payer not hex', set('payload.channelConfig.payer', `0x${'zz'.repeat(20)}`), 'invalid_payload'],
  ['payer 21 bytes', set('payload.channelConfig.payer', `0x${'11'.repeat(21)}`), 'invalid_payload'],
  ['payer without 0x', set('payload.channelConfig.payer', '11'.repeat(21)), 'invalid_payload'],
  ['token missing', set('payload.channelConfig.token', undefined), 'invalid_payload'],
  ['salt 31 bytes', set('payload.channelConfig.salt', `0x${'00'.repeat(31)}`), 'invalid_payload'],
  ['withdrawDelay "900"', set('payload.channelConfig.withdrawDelay', '900'), 'invalid_payload'],
  ['withdrawDelay 900.5', set('payload.channelConfig.withdrawDelay', 900.5), 'invalid_payload'],
  [
    'withdrawDelay 899',
    set('payload.channelConfig.withdrawDelay', 899),
    `${BS}withdraw_delay_out_of_range`,
  ],
  [
    'withdrawDelay 2592001',
    set('payload.channelConfig.withdrawDelay', 2_592_001),
    `${BS}withdraw_delay_out_of_range`,
  ],
  ['voucher missing', set('payload.voucher', undefined), `${BS}voucher_payload`],
  [
    'channelId 20 bytes',
    set('payload.voucher.channelId', `0x${'ab'.repeat(20)}`),
    `${BS}voucher_payload`,
  ],
  [
    'maxClaimable a number',
    set('payload.voucher.maxClaimableAmount', 5000),
    `${BS}voucher_payload`,
  ],
  [
    'signature 64 bytes',
    set('payload.voucher.signature', `0x${'cd'.repeat(64)}`),
    `${BS}voucher_payload`,
  ],
  ['signature odd hex', set('payload.voucher.signature', `${BIG}0`), `${BS}voucher_payload`],
  [
    'signature 66 bytes from an EOA',
    set('payload.voucher.signature', `${BIG}00`),
    `${BS}voucher_payload`,
  ],
  ['deposit missing', set('payload.deposit', undefined, DEPOSIT_PAYLOAD), `${BS}deposit_payload`],
  ['deposit amount 0', set('payload.deposit.amount', '0', DEPOSIT_PAYLOAD), `${BS}deposit_payload`],
  [
    'deposit amount "1e4"',
    set('payload.deposit.amount', '1e4', DEPOSIT_PAYLOAD),
    `${BS}deposit_payload`,
  ],
  [
    'deposit authorization missing',
    set('payload.deposit.authorization', undefined, DEPOSIT_PAYLOAD),
    `${BS}deposit_payload`,
  ],
  [
    'deposit without erc3009Authorization',
    set('payload.deposit.authorization', {}, DEPOSIT_PAYLOAD),
    `${BS}erc3009_authorization_required`,
  ],
  [
    'deposit by Permit2',
    set('payload.deposit.authorization', { permit2Authorization: { nonce: '1' } }, DEPOSIT_PAYLOAD),
    `${BS}erc3009_authorization_required`,
  ],
  [
    'deposit with both authorizations',
    set('payload.deposit.authorization.permit2Authorization', { nonce: '1' }, DEPOSIT_PAYLOAD),
    `${BS}deposit_payload`,
  ],
  [
    'validBefore a number',
    set(
      'payload.deposit.authorization.erc3009Authorization.validBefore',
      1_900_000_000,
      DEPOSIT_PAYLOAD,
    ),
    `${BS}deposit_payload`,
  ],
  [
    'validAfter above uint256',
    set(
      'payload.deposit.authorization.erc3009Authorization.validAfter',
      (1n << 256n).toString(),
      DEPOSIT_PAYLOAD,
    ),
    `${BS}deposit_payload`,
  ],
  [
    'authorization salt missing',
    set('payload.deposit.authorization.erc3009Authorization.salt', undefined, DEPOSIT_PAYLOAD),
    `${BS}deposit_payload`,
  ],
  [
    'authorization signature 10 bytes',
    set(
      'payload.deposit.authorization.erc3009Authorization.signature',
      `0x${'00'.repeat(10)}`,
      DEPOSIT_PAYLOAD,
    ),
    `${BS}deposit_payload`,
  ],
  ['refund amount a number', set('payload.amount', 4000, REFUND_PAYLOAD), `${BS}refund_payload`],
  ['refund amount "04000"', set('payload.amount', '04000', REFUND_PAYLOAD), `${BS}refund_payload`],
  ['refund amount "-1"', set('payload.amount', '-1', REFUND_PAYLOAD), `${BS}refund_payload`],
  ['refund amount 0', set('payload.amount', '0', REFUND_PAYLOAD), `${BS}refund_amount_invalid`],
  [
    'refund amount 2^128',
    set('payload.amount', (1n << 128n).toString(), REFUND_PAYLOAD),
    `${BS}refund_amount_invalid`,
  ],
  [
    'refund amount of 100 digits',
    set('payload.amount', '9'.repeat(100), REFUND_PAYLOAD),
    `${BS}refund_amount_invalid`,
  ],
]

/** Every code decodePaymentHeader can return. */
const DECODER_CODES: readonly ErrorCode[] = [
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
]

describe('decodePaymentHeader rejects hostile payments with a stable code', () => {
  it.each(HOSTILE)('%s', (_, mutate, code) => {
    const value: Record<string, unknown> = {}
    mutate(value)
    const decoded = decodeWire(value)
    expect(decoded).toMatchObject({ ok: false, code })
  })

  it('reaches every code of the decoder with some case', () => {
    const reached = new Set<ErrorCode>(HOSTILE.map(([, , code]) => code))
    reached.add('tollgate_payment_header_too_large')
    expect([...reached].sort()).toEqual([...DECODER_CODES].sort())
  })

  it('names the Permit2 refusal in the message', () => {
    const value: Record<string, unknown> = {}
    set('payload.deposit.authorization', { permit2Authorization: {} }, DEPOSIT_PAYLOAD)(value)
    const decoded = decodeWire(value)
    expect(!decoded.ok && decoded.message).toMatch(/Permit2/)
  })
})

describe('uint128 amounts', () => {
  const MAX = (1n << 128n) - 1n
  it.each([
    ['0', 0n],
    ['1', 1n],
    [MAX.toString(), MAX],
  ])('accepts maxClaimableAmount %s', (text, expected) => {
    const decoded = decodeWire(setAndGet(text))
    expect(decoded.ok && decoded.value.payload.voucher.maxClaimableAmount).toBe(expected)
  })

  it.each([
    (1n << 128n).toString(),
    '01',
    '00',
    '1e3',
    '-1',
    '+1',
    ' 1',
    '1 ',
    '0x10',
    '1.0',
    '1_000',
    '',
    '١',
  ])('rejects maxClaimableAmount %j', (text) => {
    expect(decodeWire(setAndGet(text))).toMatchObject({ ok: false, code: `${BS}voucher_payload` })
  })

  function setAndGet(text: string): Record<string, unknown> {
    const value: Record<string, unknown> = {}
    set('payload.voucher.maxClaimableAmount', text)(value)
    return value
  }
})

describe('signatures', () => {
  const zeroAuthorizer = (signature: string) => {
    const value: Record<string, unknown> = {}
    set('payload.channelConfig.payerAuthorizer', `0x${'00'.repeat(20)}`)(value)
    setPath(value, 'payload.voucher.signature', signature)
    return value
  }

  it('accepts a smart-wallet signature up to 4096 bytes when payerAuthorizer is zero', () => {
    const decoded = decodeWire(zeroAuthorizer(`0x${'ab'.repeat(4096)}`))
    expect(decoded.ok && decoded.value.payload.voucher.signature.length).toBe(2 + 8192)
    expect(decodeWire(zeroAuthorizer(`0x${'ab'.repeat(65)}`)).ok).toBe(true)
  })

  it('rejects a smart-wallet signature above 4096 bytes or below 65', () => {
    const big = decodePaymentPayload(zeroAuthorizer(`0x${'ab'.repeat(4097)}`))
    expect(big).toMatchObject({ ok: false, code: `${BS}voucher_payload` })
    const small = decodeWire(zeroAuthorizer(`0x${'ab'.repeat(64)}`))
    expect(small).toMatchObject({ ok: false, code: `${BS}voucher_payload` })
  })
})

describe('header encoding', () => {
  const good = toHeader(wire())

  it.each([
    ['undefined', undefined],
    ['empty', ''],
    ['padding stripped', good.replace(/=+$/, '')],
    ['base64url alphabet', Buffer.from(JSON.stringify(wire())).toString('base64url')],
    ['a line break inside', `${good.slice(0, 40)}\n${good.slice(40)}`],
    ['a space inside', `${good.slice(0, 40)} ${good.slice(40)}`],
    ['padding in the middle', `QQ==${good}`],
    ['{} with non-zero padding bits', 'e31='],
    ['non-ASCII characters', `${good.slice(0, 8)}é${good.slice(9)}`],
    ['JSON text not base64', JSON.stringify(wire())],
    ['base64 of non-JSON', Buffer.from('{"x402Version":2,').toString('base64')],
    [
      'base64 of invalid UTF-8',
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64'),
    ],
    [
      'base64 of JSON after a byte-order mark',
      Buffer.from(`\ufeff${JSON.stringify(wire())}`).toString('base64'),
    ],
    ['base64 of a JSON array', toHeader([wire()])],
    ['base64 of JSON null', toHeader(null)],
  ])('rejects a header that is %s', (_, header) => {
    expect(decodePaymentHeader(header)).toMatchObject({ ok: false, code: 'invalid_payload' })
  })

  it('accepts the same bytes with proper padding', () => {
    expect(decodePaymentHeader(good).ok).toBe(true)
  })

  it('decodes each header alone, larger and smaller ones in turn (decoding reuses its buffer)', () => {
    const large = wire()
    setPath(large, 'resource.description', 'x'.repeat(9000))
    const small = wire(REFUND_PAYLOAD)
    const expected = [large, small, large, wire(), small].map((value) => ({
      value,
      decoded: decodePaymentPayload(clone(value)),
    }))
    for (const { value, decoded } of expected) {
      expect(decoded.ok).toBe(true)
      expect(decodeWire(value)).toEqual(decoded)
    }
    // A malformed header after a longer good one is refused, not read from what is left.
    expect(decodePaymentHeader(toHeader(large)).ok).toBe(true)
    expect(decodePaymentHeader(good.slice(0, 100))).toMatchObject({ ok: false })
  })

  it('decodes non-ASCII UTF-8 text in the payload', () => {
    const value = wire()
    setPath(value, 'resource.description', 'Données météo ☀')
    const decoded = decodeWire(value)
    expect(decoded.ok && decoded.value.resource?.description).toBe('Données météo ☀')
  })
})

describe('size limit', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('refuses a header over 16 KiB by default, before decoding it', () => {
    const parse = vi.spyOn(JSON, 'parse')
    const from = vi.spyOn(Buffer, 'from')
    const write = vi.spyOn(Buffer.prototype, 'write')
    const header = 'A'.repeat(MAX_PAYMENT_HEADER_BYTES + 1)
    expect(decodePaymentHeader(header)).toMatchObject({
      ok: false,
      code: 'tollgate_payment_header_too_large',
    })
    expect(parse).not.toHaveBeenCalled()
    expect(from).not.toHaveBeenCalled()
    expect(write).not.toHaveBeenCalled()
  })

  it('applies a given maxBytes, inclusive', () => {
    const header = toHeader(wire())
    expect(decodePaymentHeader(header, { maxBytes: header.length }).ok).toBe(true)
    expect(decodePaymentHeader(header, { maxBytes: header.length - 1 })).toMatchObject({
      ok: false,
      code: 'tollgate_payment_header_too_large',
    })
  })

  it('fits a deposit with two 65-byte signatures in the default limit', () => {
    expect(toHeader(wire(DEPOSIT_PAYLOAD)).length).toBeLessThan(MAX_PAYMENT_HEADER_BYTES / 4)
  })

  it.each([0, -1, 1.5, Number.NaN])('throws on maxBytes %s, a misuse', (maxBytes) => {
    expect(() => decodePaymentHeader('e30=', { maxBytes })).toThrow(TollgateError)
  })
})
