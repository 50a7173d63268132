/**
 * payee: the one small API the transports and settlement use. It joins the pure core
 * (ledger, verify) to the edges (store, chain reads) behind injected interfaces.
 */
export {
  type AcceptedPayloads,
  type Admission,
  admission,
  type PaidRoute,
  screenPayment,
  type VoucherCarrying,
} from './admit.js'
export { type Dollars, dollarsToTokenUnits, type TokenRate } from './dollarsToTokenUnits.js'
export {
  DEFAULT_MAX_PENDING_TRANSFERS,
  EXACT_NONCE_PREFIX,
  type ExactAdmission,
  ExactPayee,
  type ExactPayeeOptions,
  type ExactRoute,
  openExactPayee,
  type SettledExact,
  VALID_BEFORE_MARGIN_SECONDS,
  type VerifiedExact,
} from './exactPayee.js'
export {
  type FacilitatorClient,
  type HttpFacilitatorOptions,
  httpFacilitator,
} from './facilitatorClient.js'
export {
  type ActionLimit,
  DEFAULT_ONCHAIN_LIMITS,
  type OnChainLimits,
} from './onChainGuard.js'
export {
  DEFAULT_HOLD_TTL_MS,
  DEFAULT_PERSIST_EVERY_MESSAGES,
  type Decision,
  type DepositDecision,
  type DepositOptions,
  openPayee,
  Payee,
  type PayeeOptions,
  type Recovery,
  type RefundOutcome,
} from './payee.js'
