import { Buffer } from 'node:buffer'
import { decodePaymentResponseHeader } from '@x402/core/http'
import fc from 'fast-check'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { describe as describeCode, TollgateError } from '../../src/errors/index.js'
import {
  decodeSettleResponse,
  decodeSettleResponseObject,
  depositReceipt,
  encodeHeader,
  failureResponse,
  refundReceipt,
  type SettleResponse,
  supported,
  voucherReceipt,
  voucherReceiptHeader,
} from '../../src/protocol/index.js'
import { CHANNEL_STATE, NETWORK, PAYER, RECEIVER_AUTHORIZER, toHeader } from './fixtures.js'

const TX: Hex = `0x${'9f'.repeat(32)}`
const WIRE_STATE = {
  channelId: CHANNEL_STATE.channelId,
  balance: '10000',
  totalClaimed: '2000',
  withdrawRequestedAt: 0,
  refundNonce: '3',
  chargedCumulativeAmount: '5000',
}

describe('voucherReceipt', () => {
  const receipt = voucherReceipt({
    network: NETWORK,
    payer: PAYER,
    chargedAmount: 1000n,
    channelState: CHANNEL_STATE,
  })

  it('sends no transaction and no amount, and the charge in extra', () => {
    expect(receipt).toEqual({
      success: true,
      payer: PAYER,
      transaction: '',
      network: NETWORK,
      amount: '',
      extra: { chargedAmount: '1000', channelState: WIRE_STATE },
    })
  })

  it('round trips through its header with the figures as bigints', () => {
    expect(decodeSettleResponse(encodeHeader(receipt))).toEqual({
      ok: true,
      value: { response: receipt, chargedAmount: 1000n, channelState: CHANNEL_STATE },
    })
  })

  it('is read identically by the stock x402 decoder', () => {
    expect(decodePaymentResponseHeader(encodeHeader(receipt))).toEqual(receipt)
  })

  it('throws rather than put a charge above uint128 on the wire', () => {
    expect(() =>
      voucherReceipt({
        network: NETWORK,
        payer: PAYER,
        chargedAmount: 1n << 128n,
        channelState: CHANNEL_STATE,
      }),
    ).toThrow(TollgateError)
  })

  it('throws on a withdrawRequestedAt that is not a uint40', () => {
    for (const withdrawRequestedAt of [-1, 1.5, 2 ** 40]) {
      expect(() =>
        voucherReceipt({
          network: NETWORK,
          payer: PAYER,
          chargedAmount: 1n,
          channelState: { ...CHANNEL_STATE, withdrawRequestedAt },
        }),
      ).toThrow(TollgateError)
    }
  })
})

describe('depositReceipt and refundReceipt', () => {
  it('gives the deposit transaction, the deposited amount and the charge', () => {
    const receipt = depositReceipt({
      network: NETWORK,
      payer: PAYER,
      transaction: TX,
      amount: 10_000n,
      chargedAmount: 1000n,
      channelState: CHANNEL_STATE,
    })
    expect(receipt).toMatchObject({ success: true, transaction: TX, amount: '10000' })
    expect(decodeSettleResponse(encodeHeader(receipt))).toEqual({
      ok: true,
      value: {
        response: receipt,
        amount: 10_000n,
        chargedAmount: 1000n,
        channelState: CHANNEL_STATE,
      },
    })
  })

  it('gives the refund transaction and the refunded amount, and charges nothing', () => {
    const receipt = refundReceipt({
      network: NETWORK,
      payer: PAYER,
      transaction: TX,
      amount: 5000n,
      channelState: CHANNEL_STATE,
    })
    expect(receipt).toEqual({
      success: true,
      payer: PAYER,
      transaction: TX,
      network: NETWORK,
      amount: '5000',
      extra: { channelState: WIRE_STATE },
    })
    const decoded = decodeSettleResponse(encodeHeader(receipt))
    expect(decoded.ok && decoded.value.amount).toBe(5000n)
    expect(decoded.ok && decoded.value.chargedAmount).toBeUndefined()
  })
})

describe('failureResponse', () => {
  it('reports the code as errorReason with its description', () => {
    const response = failureResponse('invalid_batch_settlement_evm_channel_busy', {
      network: NETWORK,
    })
    expect(response).toEqual({
      success: false,
      errorReason: 'invalid_batch_settlement_evm_channel_busy',
      errorMessage: describeCode('invalid_batch_settlement_evm_channel_busy'),
      transaction: '',
      network: NETWORK,
    })
    expect(decodeSettleResponse(encodeHeader(response))).toEqual({ ok: true, value: { response } })
  })

  it('carries the payer, a failed transaction and a custom message', () => {
    const response = failureResponse('invalid_batch_settlement_evm_deposit_transaction_failed', {
      network: NETWORK,
      payer: PAYER,
      transaction: TX,
      message: 'reverted: insufficient allowance',
    })
    expect(response).toMatchObject({
      payer: PAYER,
      transaction: TX,
      errorMessage: 'reverted: insufficient allowance',
    })
  })
})

describe('decodeSettleResponse', () => {
  const receipt = voucherReceipt({
    network: NETWORK,
    payer: PAYER,
    chargedAmount: 1000n,
    channelState: CHANNEL_STATE,
  })

  it('accepts the partial channelState of a stock deposit receipt', () => {
    const stock = {
      ...receipt,
      transaction: TX,
      amount: '10000',
      extra: { channelState: { chargedCumulativeAmount: '6000' }, chargedAmount: '1000' },
    }
    expect(decodeSettleResponse(toHeader(stock))).toEqual({
      ok: true,
      value: {
        response: stock,
        amount: 10_000n,
        chargedAmount: 1000n,
        channelState: { chargedCumulativeAmount: 6000n },
      },
    })
  })

  it.each<[string, Partial<Record<keyof SettleResponse, unknown>>]>([
    ['success as a string', { success: 'true' }],
    ['no transaction', { transaction: undefined }],
    ['a network without namespace', { network: '84532' }],
    ['payer a number', { payer: 5 }],
    ['errorReason an object', { errorReason: {} }],
    ['amount "1.5"', { amount: '1.5' }],
    ['extra an array', { extra: [] }],
    ['chargedAmount a number', { extra: { chargedAmount: 1000 } }],
    ['chargedAmount above uint128', { extra: { chargedAmount: (1n << 128n).toString() } }],
    ['channelState with a short channelId', { extra: { channelState: { channelId: '0x12' } } }],
    ['channelState with refundNonce negative', { extra: { channelState: { refundNonce: '-1' } } }],
    [
      'channelState with withdrawRequestedAt fractional',
      { extra: { channelState: { withdrawRequestedAt: 1.5 } } },
    ],
  ])('refuses %s', (_, override) => {
    const value = { ...receipt, ...override }
    expect(decodeSettleResponseObject(value)).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_response',
    })
    expect(decodeSettleResponse(toHeader(value))).toMatchObject({
      ok: false,
      code: 'tollgate_invalid_payment_response',
    })
  })

  it('refuses an oversized header before decoding', () => {
    expect(decodeSettleResponse(encodeHeader(receipt), { maxBytes: 100 })).toMatchObject({
      ok: false,
      code: 'tollgate_payment_header_too_large',
    })
  })
})

describe('encodeHeader', () => {
  it('is standard base64 with padding of UTF-8 JSON', () => {
    const response = failureResponse('invalid_payload', { network: NETWORK, message: 'Ünïcode ✓' })
    const header = encodeHeader(response)
    expect(header).toMatch(/^[A-Za-z0-9+/]*={0,2}$/)
    expect(header.length % 4).toBe(0)
    expect(JSON.parse(Buffer.from(header, 'base64').toString('utf8'))).toEqual(response)
  })

  it('throws a TollgateError when a bigint slipped into a wire object', () => {
    const response = {
      ...failureResponse('invalid_payload', { network: NETWORK }),
      extra: { amount: 5n },
    }
    expect(() => encodeHeader(response)).toThrow(
      expect.objectContaining({ code: 'tollgate_internal' }),
    )
  })
})

describe('supported', () => {
  it('lists one batch-settlement kind per network and the signers under eip155:*', () => {
    const signer = PAYER
    expect(
      supported({
        networks: [NETWORK, 'eip155:8453'],
        receiverAuthorizer: RECEIVER_AUTHORIZER,
        signers: [signer],
      }),
    ).toEqual({
      kinds: [
        {
          x402Version: 2,
          scheme: 'batch-settlement',
          network: NETWORK,
          extra: { receiverAuthorizer: RECEIVER_AUTHORIZER },
        },
        {
          x402Version: 2,
          scheme: 'batch-settlement',
          network: 'eip155:8453',
          extra: { receiverAuthorizer: RECEIVER_AUTHORIZER },
        },
      ],
      extensions: [],
      signers: { 'eip155:*': [signer] },
    })
  })
})

describe('voucherReceiptHeader', () => {
  const MAX_UINT128 = 2n ** 128n - 1n
  const hex = (bytes: number) =>
    fc
      .uint8Array({ minLength: bytes, maxLength: bytes })
      .map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex)

  it('is byte for byte encodeHeader(voucherReceipt(...)), for any channel state', () => {
    fc.assert(
      fc.property(
        fc.record({
          network: fc.constantFrom(NETWORK, 'eip155:8453', 'eip155:84532'),
          payer: hex(20),
          chargedAmount: fc.bigInt({ min: 0n, max: MAX_UINT128 }),
          channelId: hex(32),
          balance: fc.bigInt({ min: 0n, max: MAX_UINT128 }),
          totalClaimed: fc.bigInt({ min: 0n, max: MAX_UINT128 }),
          withdrawRequestedAt: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
          refundNonce: fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
          chargedCumulativeAmount: fc.bigInt({ min: 0n, max: MAX_UINT128 }),
        }),
        ({ network, payer, chargedAmount, ...channelState }) => {
          const parameters = {
            network: network as typeof NETWORK,
            payer,
            chargedAmount,
            channelState: { ...CHANNEL_STATE, ...channelState },
          }
          expect(voucherReceiptHeader(parameters)).toBe(encodeHeader(voucherReceipt(parameters)))
        },
      ),
    )
  })

  it('refuses an amount outside its Solidity type, as voucherReceipt does', () => {
    expect(() =>
      voucherReceiptHeader({
        network: NETWORK,
        payer: PAYER,
        chargedAmount: 2n ** 128n,
        channelState: CHANNEL_STATE,
      }),
    ).toThrow(TollgateError)
  })
})
