/**
 * transports/http: the x402 v2 HTTP transport, a Fastify plugin. Priced routes answer 402
 * unpaid and serve requests paid by batch-settlement voucher (x402.md sections 1 and 2).
 */

export { type Price, parsePrice } from '../../protocol/parsePrice.js'
export {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  type PaymentTerms,
  type TollgateAsset,
} from '../terms.js'
export {
  DEFAULT_MIN_DEPOSIT_MULTIPLIER,
  DEFAULT_RATE_LIMIT_PER_IP,
  DEFAULT_RATE_LIMIT_PER_PAYER,
  type RateLimitRule,
} from './constants.js'
export type { ExactPayment } from './exactHooks.js'
export type { Payment } from './paidRequest.js'
export { tollgate } from './plugin.js'
export type { ErrorBody } from './replies.js'
export type { TollgateOptions, TollgateOracle, TollgateRateLimit } from './resolveOptions.js'
