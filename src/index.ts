/**
 * tollgate, for API providers: `createTollgate` (everything opened and closed in one call), the
 * Fastify plugins that bill HTTP routes and WebSocket messages, the payee they share, its stores,
 * paid MCP tools (`paidTools`), the chain edge (reads, watcher, presets), settlement (for your own
 * schedule or cron) and the errors.
 * Payers import `tollgate/client`; the x402 wire codecs are in `tollgate/protocol`.
 */
export {
  type AuthorizationTransfers,
  authorizationTransfers,
  type ChainPreset,
  type ChainWatcher,
  type ChainWatcherClient,
  type ChainWatcherOptions,
  type ChannelReader,
  type ChannelReaderClient,
  type ContractSignatureCheckClient,
  channelReader,
  contractSignatureCheck,
  createChainWatcher,
  createTransactionSender,
  type EscrowWriter,
  type EscrowWriterOptions,
  type EscrowWriterPublicClient,
  escrowWriter,
  type FeedRate,
  localChain,
  PRESETS,
  type PresetName,
  type PriceFeed,
  type PriceFeedClient,
  type PriceFeedOptions,
  type TransactionSender,
  watchPriceFeed,
} from './chain/index.js'
export {
  ERROR_CODES,
  type ErrorCode,
  isErrorCode,
  type Rejection,
  type Result,
  TollgateError,
} from './errors/index.js'
export {
  type GasKind,
  RouteMeter,
  TollgateMetrics,
  type TollgateMetricsOptions,
} from './metrics/index.js'
export {
  type ActionLimit,
  DEFAULT_ONCHAIN_LIMITS,
  type Decision,
  ExactPayee,
  type ExactPayeeOptions,
  type FacilitatorClient,
  httpFacilitator,
  type OnChainLimits,
  openExactPayee,
  openPayee,
  Payee,
  type PayeeOptions,
} from './payee/index.js'
export {
  type BatchFacilitator,
  type BatchFacilitatorClient,
  type BatchFacilitatorOptions,
  batchFacilitator,
} from './server/batchFacilitator.js'
export { loadConfig, parseConfig, type ServerConfig } from './server/config.js'
export { createServer, type TollgateServer } from './server/createServer.js'
export {
  type CreateTollgateOptions,
  createTollgate,
  type ExactOptions,
  type OracleOptions,
  type SettlementOptions,
  type Tollgate,
  type TollgateLogger,
} from './server/createTollgate.js'
export {
  type ChannelPage,
  type DashboardOptions,
  type DashboardSource,
  dashboardPlugin,
  type Overview,
  type SettlementEvent,
  SettlementHistory,
  type SettlementPage,
} from './server/dashboard/index.js'
export { type FacilitatorOptions, facilitatorApp } from './server/facilitator.js'
export {
  type ClaimExecutor,
  claimExecutor,
  createSettlementSchedule,
  planSettlement,
  reportJson,
  type SettlementPlan,
  type SettlementReport,
  type SettlementReportJson,
  type SettlementSchedule,
  Settler,
  settlementMetrics,
} from './settlement/index.js'
export {
  type ChannelStore,
  LevelStore,
  MemoryStore,
  type StoreMode,
  type StoreOptions,
} from './store/index.js'
export {
  type ExactPayment,
  type Price,
  parsePrice,
  type TollgateAsset,
  type TollgateOptions,
  type TollgateOracle,
  tollgate,
} from './transports/http/index.js'
export {
  type PaidToolConfig,
  type PaidToolOptions,
  type PaidTools,
  type PaidToolsOptions,
  paidTools,
} from './transports/mcp/index.js'
export {
  type FeedRouteOptions,
  type RequestRouteOptions,
  type TollgateWsOptions,
  tollgateWs,
} from './transports/ws/index.js'
