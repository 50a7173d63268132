import { accept, type Result } from '../errors/index.js'
import { EXACT_SCHEME } from './constants.js'
import { decodeExactPayment } from './decodeExactPayment.js'
import { decodePaymentPayload } from './decodePaymentPayload.js'
import { decodeHeaderJson } from './headerJson.js'
import { type HeaderOptions, headerLimit } from './headerLimit.js'
import { isRecord } from './parse.js'
import type { SchemePayment } from './types.js'

/**
 * Decodes a `PaymentPayload` of either scheme tollgate speaks, by its `accepted.scheme`: `exact`
 * with {@link decodeExactPayment}, anything else with {@link decodePaymentPayload} (which refuses
 * a scheme other than batch-settlement).
 *
 * @example
 * const decoded = decodeSchemePayment(frame.payment)
 * if (decoded.ok && decoded.value.scheme === 'exact') settleExact(decoded.value.payment)
 */
export function decodeSchemePayment(value: unknown): Result<SchemePayment> {
  const accepted = isRecord(value) ? value.accepted : undefined
  if (isRecord(accepted) && accepted.scheme === EXACT_SCHEME) {
    const exact = decodeExactPayment(value)
    return exact.ok ? accept({ scheme: EXACT_SCHEME, payment: exact.value }) : exact
  }
  const batch = decodePaymentPayload(value)
  return batch.ok ? accept({ scheme: 'batch-settlement', payment: batch.value }) : batch
}

/**
 * Decodes a `PAYMENT-SIGNATURE` (or `X-PAYMENT`) header of either scheme: the checks of
 * {@link decodePaymentHeader} (size, base64, UTF-8, JSON), then {@link decodeSchemePayment}.
 * Never throws on any header value.
 *
 * @example
 * const decoded = decodeSchemePaymentHeader(request.headers['payment-signature'])
 */
export function decodeSchemePaymentHeader(
  header: string | undefined,
  options?: HeaderOptions,
): Result<SchemePayment> {
  const json = decodeHeaderJson(header, headerLimit(options), 'invalid_payload')
  return json.ok ? decodeSchemePayment(json.value) : json
}
