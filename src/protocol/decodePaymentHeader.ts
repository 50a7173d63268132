import type { Result } from '../errors/index.js'
import { decodePaymentPayload } from './decodePaymentPayload.js'
import { decodeHeaderJson } from './headerJson.js'
import { type HeaderOptions, headerLimit } from './headerLimit.js'
import type { DecodedPayment } from './types.js'

/**
 * Decodes a `PAYMENT-SIGNATURE` (or `X-PAYMENT`) header: size limit first, then strict base64
 * (standard alphabet, padded), strict UTF-8, JSON, and {@link decodePaymentPayload}.
 * Never throws on any header value.
 *
 * @param header The header value; `undefined` when the request carries none.
 * @param options `maxBytes`, the size limit.
 * @returns The decoded payment, or a rejection: `tollgate_payment_header_too_large` over the
 *   limit, `invalid_payload` for a missing or undecodable header, else as {@link decodePaymentPayload}.
 * @throws TollgateError `tollgate_invalid_config` when `maxBytes` is not a positive integer.
 * @example
 * const decoded = decodePaymentHeader(request.headers['payment-signature'])
 * if (!decoded.ok) return reply.code(statusOf(decoded.code)).send(decoded)
 */
export function decodePaymentHeader(
  header: string | undefined,
  options?: HeaderOptions,
): Result<DecodedPayment> {
  const json = decodeHeaderJson(header, headerLimit(options), 'invalid_payload')
  return json.ok ? decodePaymentPayload(json.value) : json
}
