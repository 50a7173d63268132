/**
 * client: the payer SDK. A paid `fetch` for x402 batch-settlement servers (tollgate's and stock
 * ones), paid MCP tool calls, a WebSocket client for tollgate's billed feeds and requests, spend
 * limits that hold across restarts, receipts checked as x402 says, and the channel operations
 * (refund, withdraw).
 */
export {
  type CallToolOptions,
  type ToolCall,
  type ToolClient,
  toolPayer,
} from './callTool.js'
export { connectPaid, DEFAULT_CLIENT_CREDIT_WINDOW, type PaidSession } from './connect.js'
export {
  type ChannelRefund,
  type ChannelSummary,
  createPayer,
  type Payer,
  type PayerOptions,
  type PayerStats,
  type UnacknowledgedCharge,
} from './createPayer.js'
export {
  JOURNAL_FILE,
  type JournalStats,
  type PaidResource,
  type PayerChannel,
  type Reservation,
  type SpendEntry,
} from './journal.js'
export { type KeySigner, keySigner, signingOf, type VoucherSigning } from './keySigner.js'
export { type OnChainChannel, type PayerChain, payerChain } from './payerChain.js'
export {
  DEFAULT_DEPOSIT_PRICES,
  DEFAULT_RESERVATION_CALLS,
  type DepositMethod,
  type DepositPolicy,
  RESERVATION_TTL_MS,
  type ReservationPolicy,
} from './payerCore.js'
export {
  checkDeposit,
  checkSpend,
  isOrigin,
  originOf,
  type ResolvedLimits,
  resolveLimits,
  type SpendLimits,
  type SpendReport,
  spendHeadroom,
  spendReport,
} from './spendPolicy.js'
export { DEFAULT_MAX_TICKS, type TickOptions } from './ticks.js'
export { type PendingPayment, type VerifiedReceipt, verifyReceipt } from './verifyReceipt.js'
