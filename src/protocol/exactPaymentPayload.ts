import { MAX_UINT256, X402_VERSION } from './constants.js'
import type { ExactPayload, PaymentPayload, PaymentRequirements, ResourceInfo } from './types.js'
import { decimal } from './wire.js'

/**
 * Builds an exact-scheme `PaymentPayload` for the payer's side, in the wire form stock x402
 * servers take (`payload: { authorization, signature }`, amounts as decimal strings);
 * {@link decodeExactPayment} inverts it.
 *
 * @param accepted The exact requirements being paid, exactly as the server sent them.
 * @example
 * const header = encodeHeader(exactPaymentPayload(requirements, { signature, authorization }))
 */
export function exactPaymentPayload(
  accepted: PaymentRequirements,
  payload: ExactPayload,
  resource?: ResourceInfo,
): PaymentPayload {
  const { authorization: a } = payload
  return {
    x402Version: X402_VERSION,
    ...(resource === undefined ? {} : { resource }),
    accepted,
    payload: {
      authorization: {
        from: a.from,
        to: a.to,
        value: decimal(a.value, 'value', MAX_UINT256),
        validAfter: decimal(a.validAfter, 'validAfter', MAX_UINT256),
        validBefore: decimal(a.validBefore, 'validBefore', MAX_UINT256),
        nonce: a.nonce,
      },
      signature: payload.signature,
    },
  }
}
