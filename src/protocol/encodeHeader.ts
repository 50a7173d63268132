import { Buffer } from 'node:buffer'
import { TollgateError } from '../errors/index.js'
import type { PaymentPayload, PaymentRequired, SettleResponse } from './types.js'

/**
 * Encodes an x402 object for a header: base64 (standard alphabet, with padding) of its UTF-8
 * JSON. Wire objects hold strings and numbers only; the builders of this module make them so.
 *
 * @param value A `PaymentRequired`, `PaymentPayload` or `SettleResponse`.
 * @returns The header value.
 * @throws TollgateError `tollgate_internal` when the value is not JSON (a bigint or a cycle).
 * @example
 * reply.header(HEADERS.paymentResponse, encodeHeader(voucherReceipt({ network, payer, chargedAmount, channelState })))
 */
export function encodeHeader(value: PaymentRequired | PaymentPayload | SettleResponse): string {
  let json: string
  try {
    json = JSON.stringify(value)
  } catch (cause) {
    throw new TollgateError('tollgate_internal', 'The x402 object is not JSON.', { cause })
  }
  return Buffer.from(json, 'utf8').toString('base64')
}
