/**
 * settlement: turns held vouchers into money at the receiver's address. A pure planner picks
 * what to claim (withdrawal deadlines first, thresholds, sweeps, gas against value); an executor
 * on viem sends claim batches and the settle sweep; a journal and a lease in the store make it
 * idempotent across crashes and single-runner; a scheduler runs it inside the server.
 */

export {
  type ClaimExecutor,
  type ClaimExecutorOptions,
  claimExecutor,
  DEFAULT_CONFIRM_TIMEOUT_MS,
  DEFAULT_FEE_BUMP_PERCENT,
  DEFAULT_MAX_REPLACEMENTS,
  DEFAULT_REPLACE_AFTER_MS,
  DEFAULT_SETTLEMENT_CONFIRMATIONS,
  type OnSent,
  type SentTransaction,
} from './claimExecutor.js'
export {
  createJournal,
  JOURNAL_PREFIX,
  type Journal,
  type JournalEntry,
  type JournalMeta,
} from './journal.js'
export {
  acquireLease,
  DEFAULT_LEASE_MS,
  defaultHolder,
  LEASE_KEY,
  type Lease,
  type LeaseMeta,
} from './lease.js'
export {
  CLAIM_GAS_MODEL,
  type ClaimMethod,
  type ClaimReason,
  DEFAULT_CLAIM_THRESHOLD,
  DEFAULT_MAX_PER_TX,
  DEFAULT_SAFETY_MARGIN_SECONDS,
  EXPOSURE_CAP_CLAIM_PERCENT,
  type PlanInput,
  type PlannedBatch,
  type PlannedClaim,
  planSettlement,
  type SettlementPlan,
  type SkippedClaim,
} from './planSettlement.js'
export { reportJson, type SettlementReportJson } from './reportJson.js'
export { type SettlementMetricsOptions, settlementMetrics } from './settlementMetrics.js'
export {
  createSettlementSchedule,
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  NUDGE_INTERVAL_MS,
  type SettlementSchedule,
  type SettlementScheduleOptions,
  type SettlementTrigger,
} from './settlementSchedule.js'
export {
  type ClaimedBatch,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY_DELAY_MS,
  type RunOptions,
  type SettlementFailure,
  type SettlementLedger,
  type SettlementLog,
  type SettlementReport,
  Settler,
  type SettlerOptions,
  type SettlerStats,
} from './settler.js'
