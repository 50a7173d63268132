import { decodePaymentRequiredHeader } from '@x402/core/http'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import {
  buildRequirements,
  correctiveRequired,
  decodeChannelState,
  decodePaymentRequired,
  decodePaymentRequiredObject,
  decodeVoucherState,
  encodeHeader,
  type PaymentRequirements,
  paymentRequired,
} from '../../src/protocol/index.js'
import {
  CHANNEL_STATE,
  clone,
  NETWORK,
  REQUIREMENTS_PARAMETERS,
  SIGNATURE,
  setPath,
  toHeader,
} from './fixtures.js'

const resource = {
  url: 'https://api.test/data',
  description: 'Weather',
  mimeType: 'application/json',
}
const requirements = buildRequirements(REQUIREMENTS_PARAMETERS)
/** An entry of another scheme on another chain family, as a stock server may list. */
const exactSolana: PaymentRequirements = {
  scheme: 'exact',
  network: 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1',
  amount: '1000',
  asset: '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU',
  payTo: '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin',
  maxTimeoutSeconds: 60,
}

describe('paymentRequired', () => {
  it('builds the 402 body in a fixed key order', () => {
    const body = paymentRequired({ resource, accepts: [requirements], error: 'invalid_payload' })
    expect(Object.keys(body)).toEqual(['x402Version', 'error', 'resource', 'accepts'])
    expect(body.x402Version).toBe(2)
  })

  it('leaves out error and extensions when not given', () => {
    expect(Object.keys(paymentRequired({ resource, accepts: [requirements] }))).toEqual([
      'x402Version',
      'resource',
      'accepts',
    ])
  })

  it('round trips through its header and decodePaymentRequired', () => {
    const body = paymentRequired({
      resource,
      accepts: [requirements, exactSolana],
      extensions: { bazaar: { info: { input: {} } } },
    })
    expect(decodePaymentRequired(encodeHeader(body))).toEqual({ ok: true, value: body })
  })

  it('is read identically by the stock x402 decoder', () => {
    const body = paymentRequired({ resource, accepts: [requirements] })
    expect(decodePaymentRequiredHeader(encodeHeader(body))).toEqual(body)
  })
})

describe('correctiveRequired', () => {
  const voucherState = { signedMaxClaimable: 5000n, signature: SIGNATURE }
  const corrective = correctiveRequired({
    resource,
    accepts: [exactSolana, requirements],
    network: NETWORK,
    channelState: { ...CHANNEL_STATE, withdrawRequestedAt: 1_750_000_000 },
    voucherState,
  })

  it('carries the cumulative mismatch error and the channel figures as strings', () => {
    expect(corrective.error).toBe('invalid_batch_settlement_evm_cumulative_amount_mismatch')
    expect(corrective.accepts[1]?.extra).toEqual({
      ...requirements.extra,
      channelState: {
        channelId: CHANNEL_STATE.channelId,
        balance: '10000',
        totalClaimed: '2000',
        withdrawRequestedAt: 1_750_000_000,
        refundNonce: '3',
        chargedCumulativeAmount: '5000',
      },
      voucherState: { signedMaxClaimable: '5000', signature: SIGNATURE },
    })
  })

  it('leaves other schemes and the issued requirements untouched', () => {
    expect(corrective.accepts[0]).toBe(exactSolana)
    expect(requirements.extra).not.toHaveProperty('channelState')
  })

  it('omits voucherState when the server holds no voucher', () => {
    const body = correctiveRequired({
      resource,
      accepts: [requirements],
      network: NETWORK,
      channelState: CHANNEL_STATE,
    })
    expect(body.accepts[0]?.extra).toHaveProperty('channelState')
    expect(body.accepts[0]?.extra).not.toHaveProperty('voucherState')
  })

  it('round trips: the client reads back the same bigints', () => {
    const decoded = decodePaymentRequired(encodeHeader(corrective))
    if (!decoded.ok) throw new Error(decoded.message)
    const extra = decoded.value.accepts[1]?.extra
    expect(decodeChannelState(extra?.channelState)).toEqual({
      ok: true,
      value: { ...CHANNEL_STATE, withdrawRequestedAt: 1_750_000_000 },
    })
    expect(decodeVoucherState(extra?.voucherState)).toEqual({ ok: true, value: voucherState })
  })

  it('throws when no entry is batch-settlement on the channel network', () => {
    expect(() =>
      correctiveRequired({
        resource,
        accepts: [requirements],
        network: 'eip155:8453',
        channelState: CHANNEL_STATE,
      }),
    ).toThrow(TollgateError)
  })

  it('throws rather than send a negative balance', () => {
    expect(() =>
      correctiveRequired({
        resource,
        accepts: [requirements],
        network: NETWORK,
        channelState: { ...CHANNEL_STATE, balance: -1n },
      }),
    ).toThrow(expect.objectContaining({ code: 'tollgate_internal' }))
  })
})

describe('decodePaymentRequired rejects malformed 402s', () => {
  const body = () =>
    clone(paymentRequired({ resource, accepts: [requirements] })) as unknown as Record<
      string,
      unknown
    >

  it.each([
    ['x402Version 1', 'x402Version', 1, 'invalid_x402_version'],
    ['error a number', 'error', 5, 'tollgate_invalid_payment_required'],
    ['resource missing', 'resource', undefined, 'tollgate_invalid_payment_required'],
    ['accepts an object', 'accepts', {}, 'tollgate_invalid_payment_required'],
    ['an entry null', 'accepts', [null], 'tollgate_invalid_payment_required'],
    ['extensions a string', 'extensions', 'x', 'tollgate_invalid_payment_required'],
    [
      'a network without namespace',
      'accepts.0.network',
      '84532',
      'tollgate_invalid_payment_required',
    ],
    ['an amount "1e3"', 'accepts.0.amount', '1e3', 'tollgate_invalid_payment_required'],
    ['a timeout "60"', 'accepts.0.maxTimeoutSeconds', '60', 'tollgate_invalid_payment_required'],
    [
      'a batch entry on solana',
      'accepts.0.network',
      exactSolana.network,
      'tollgate_invalid_payment_required',
    ],
    [
      'a batch amount above uint128',
      'accepts.0.amount',
      (1n << 128n).toString(),
      'tollgate_invalid_payment_required',
    ],
    [
      'a batch asset not hex',
      'accepts.0.asset',
      exactSolana.asset,
      'tollgate_invalid_payment_required',
    ],
    [
      'a batch entry without extra',
      'accepts.0.extra',
      undefined,
      'tollgate_invalid_payment_required',
    ],
    [
      'a short receiverAuthorizer',
      'accepts.0.extra.receiverAuthorizer',
      '0x22',
      'tollgate_invalid_payment_required',
    ],
    ['withdrawDelay 60', 'accepts.0.extra.withdrawDelay', 60, 'tollgate_invalid_payment_required'],
    ['no token name', 'accepts.0.extra.name', undefined, 'tollgate_invalid_payment_required'],
    ['an empty token version', 'accepts.0.extra.version', '', 'tollgate_invalid_payment_required'],
    [
      'assetTransferMethod "magic"',
      'accepts.0.extra.assetTransferMethod',
      'magic',
      'tollgate_invalid_payment_required',
    ],
    ['minDeposit "-5"', 'accepts.0.extra.minDeposit', '-5', 'tollgate_invalid_payment_required'],
    [
      'channelState a string',
      'accepts.0.extra.channelState',
      'x',
      'tollgate_invalid_payment_required',
    ],
    [
      'channelState balance a number',
      'accepts.0.extra.channelState',
      { balance: 5 },
      'tollgate_invalid_payment_required',
    ],
    [
      'withdrawRequestedAt as a string',
      'accepts.0.extra.channelState',
      { withdrawRequestedAt: '0' },
      'tollgate_invalid_payment_required',
    ],
    [
      'voucherState signature short',
      'accepts.0.extra.voucherState',
      { signature: '0x1234' },
      'tollgate_invalid_payment_required',
    ],
  ])('%s', (_, path, value, code) => {
    const target = body()
    setPath(target, path, value)
    expect(decodePaymentRequired(toHeader(target))).toMatchObject({ ok: false, code })
    expect(decodePaymentRequiredObject(target)).toMatchObject({ ok: false, code })
  })

  it('accepts a stock partial channelState with chargedCumulativeAmount alone', () => {
    const target = body()
    setPath(target, 'accepts.0.extra.channelState', { chargedCumulativeAmount: '7' })
    expect(decodePaymentRequired(toHeader(target)).ok).toBe(true)
    expect(decodeChannelState({ chargedCumulativeAmount: '7' })).toEqual({
      ok: true,
      value: { chargedCumulativeAmount: 7n },
    })
  })

  it('refuses an undecodable header and an oversized one', () => {
    expect(decodePaymentRequired('not base64!')).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_required',
    })
    expect(decodePaymentRequired(undefined)).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_required',
    })
    expect(decodePaymentRequired(toHeader(body()), { maxBytes: 16 })).toMatchObject({
      ok: false,
      code: 'tollgate_payment_header_too_large',
    })
  })

  it('refuses channel and voucher states that are not objects', () => {
    expect(decodeChannelState(null)).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_required',
    })
    expect(decodeVoucherState([])).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_required',
    })
  })
})
