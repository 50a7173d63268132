import { accept, type Result, reject } from '../errors/index.js'
import { MAX_UINT128, MAX_UINT256 } from './constants.js'
import { parseChannelState } from './decodeChannelState.js'
import { decodeHeaderJson } from './headerJson.js'
import { type HeaderOptions, headerLimit } from './headerLimit.js'
import { isOptionalString, isRecord, type Mutable, parseCaip2, parseUint } from './parse.js'
import type { ChannelState, DecodedSettleResponse, SettleResponse } from './types.js'

/**
 * Decodes a `PAYMENT-RESPONSE` (or `X-PAYMENT-RESPONSE`) header, on the payer's side:
 * size limit first, strict base64, UTF-8 JSON, then {@link decodeSettleResponseObject}.
 * Never throws on any header value.
 *
 * @param header The header value.
 * @param options `maxBytes`, the size limit.
 * @returns The response with its figures as bigints, or `tollgate_payment_header_too_large`,
 *   or `tollgate_invalid_payment_response`.
 * @throws TollgateError `tollgate_invalid_config` when `maxBytes` is not a positive integer.
 * @example
 * const receipt = decodeSettleResponse(response.headers.get('PAYMENT-RESPONSE') ?? undefined)
 */
export function decodeSettleResponse(
  header: string | undefined,
  options?: HeaderOptions,
): Result<DecodedSettleResponse> {
  const json = decodeHeaderJson(header, headerLimit(options), 'tollgate_invalid_payment_response')
  return json.ok ? decodeSettleResponseObject(json.value) : json
}

/**
 * Validates a JSON value as an x402 `SettleResponse` (as a WebSocket frame carries it) and
 * reads the batch-settlement figures of its `extra`: `chargedAmount` and `channelState`.
 *
 * @param value A JSON value.
 * @returns The decoded response, or `tollgate_invalid_payment_response`.
 * @example
 * const receipt = decodeSettleResponseObject(frame.paymentResponse)
 */
export function decodeSettleResponseObject(value: unknown): Result<DecodedSettleResponse> {
  if (!isRecord(value)) return malformed('it is not an object')
  const { success, transaction, network, payer, errorReason, errorMessage, amount, extra } = value
  if (typeof success !== 'boolean') return malformed('success is not a boolean')
  if (typeof transaction !== 'string') return malformed('transaction is not a string')
  if (parseCaip2(network) === undefined) return malformed('network is not CAIP-2')
  if (
    !isOptionalString(payer) ||
    !isOptionalString(errorReason) ||
    !isOptionalString(errorMessage)
  ) {
    return malformed('payer, errorReason or errorMessage is not a string')
  }
  const decoded: Mutable<DecodedSettleResponse> = { response: value as SettleResponse }
  if (amount !== undefined && amount !== '') {
    decoded.amount = parseUint(amount, MAX_UINT256)
    if (decoded.amount === undefined) return malformed('amount is not a decimal')
  }
  if (extra !== undefined) {
    if (!isRecord(extra)) return malformed('extra is not an object')
    const { chargedAmount, channelState } = extra
    if (chargedAmount !== undefined) {
      decoded.chargedAmount = parseUint(chargedAmount, MAX_UINT128)
      if (decoded.chargedAmount === undefined) return malformed('chargedAmount is not a uint128')
    }
    if (channelState !== undefined) {
      const state: Partial<ChannelState> | undefined = parseChannelState(channelState)
      if (state === undefined) return malformed('channelState is malformed')
      decoded.channelState = state
    }
  }
  return accept(decoded)
}

function malformed(detail: string) {
  return reject('tollgate_invalid_payment_response', `${detail}.`)
}
