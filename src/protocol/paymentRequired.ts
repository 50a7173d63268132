import { X402_VERSION } from './constants.js'
import type { PaymentRequired, PaymentRequirements, ResourceInfo } from './types.js'

/** Parameters of {@link paymentRequired}. */
export type PaymentRequiredParameters = {
  resource: ResourceInfo
  accepts: PaymentRequirements[]
  /** Why the payment sent, if any, was refused: an error code. */
  error?: string
  extensions?: Record<string, unknown>
}

/**
 * Builds the body of a 402, `PaymentRequired`, with keys in a fixed order. Send it with
 * {@link encodeHeader} in the `PAYMENT-REQUIRED` header.
 *
 * @returns `{ x402Version: 2, error?, resource, accepts, extensions? }`
 * @example
 * reply.header(HEADERS.paymentRequired, encodeHeader(paymentRequired({ resource, accepts: [requirements] })))
 */
export function paymentRequired(parameters: PaymentRequiredParameters): PaymentRequired {
  const { resource, accepts, error, extensions } = parameters
  return {
    x402Version: X402_VERSION,
    ...(error === undefined ? {} : { error }),
    resource,
    accepts,
    ...(extensions === undefined ? {} : { extensions }),
  }
}
