/**
 * ledger: one serialized state machine per channel, enforcing the money invariants of
 * DESIGN.md. Pure: no I/O; the store persists its records and the chain watcher feeds it events.
 */
export {
  type BeginResult,
  DEFAULT_EXPOSURE_CAP,
  type Hold,
  Ledger,
  type LedgerOptions,
  type OnChainChannel,
  recordFromChain,
  sameConfig,
  type VoucherPayment,
} from './ledger.js'
export {
  acceptVoucher,
  applyEvent,
  charge,
  checkVoucher,
  claimCandidate,
  putInFlight,
  recoverInFlight,
  settleInFlight,
  type VoucherRule,
} from './transitions.js'
export type { ChainEvent, ChannelRecord, ClaimCandidate, ServerIdentity } from './types.js'
