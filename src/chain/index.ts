/**
 * chain: the edge to the escrow contract. viem reads (channel state), the event watcher that
 * mirrors on-chain state into the ledger, the packed claim encoding, the compiled contracts, and
 * the local development chain the tests, the demo and the benchmarks run against.
 */
export {
  type Anvil,
  type AnvilOptions,
  anvilBinary,
  DEV_MNEMONIC,
  freePort,
  LOCAL_CHAIN_ID,
  startAnvil,
} from './anvil.js'
export {
  type ContractSignatureCheckClient,
  contractSignatureCheck,
} from './contractSignatureCheck.js'
export {
  BatchSettlement,
  ERC3009DepositCollector,
  MockAggregatorV3,
  Multicall3,
  TestUSDC,
} from './contracts.generated.js'
export {
  BATCH_CLAIMED_ROW_BYTES,
  type BatchClaimedRow,
  decodeBatchClaimed,
} from './decodeBatchClaimed.js'
export {
  DEV_ACCOUNT_COUNT,
  DEV_FUNDING,
  DEV_USDC_DOMAIN,
  type DevChain,
  type DevContracts,
  deployDevContracts,
  devAccounts,
  devPublicClient,
  LOCAL_POLLING_MS,
  startDevChain,
} from './devChain.js'
export {
  type EscrowReceipt,
  type EscrowWriter,
  type EscrowWriterOptions,
  type EscrowWriterPublicClient,
  escrowWriter,
} from './escrowWriter.js'
export { evmChain, localChain } from './evmChain.js'
export { encodePackedClaim, type PackedClaimHeader, type PackedClaimRow } from './packedClaim.js'
export { type ChainPreset, PRESETS, type PresetName } from './presets.js'
export {
  AGGREGATOR_V3_ABI,
  checkRound,
  DEFAULT_FEED_REFRESH_SECONDS,
  type FeedGuard,
  type FeedRate,
  type FeedRound,
  type PriceFeed,
  type PriceFeedClient,
  type PriceFeedOptions,
  watchPriceFeed,
} from './priceFeed.js'
export { type ChannelReader, type ChannelReaderClient, channelReader } from './readChannel.js'
export {
  createTransactionSender,
  type MinedTransaction,
  type SendCodes,
  type TransactionSender,
  type TransactionSenderOptions,
} from './sendTransaction.js'
export {
  type AuthorizationTransfers,
  type AuthorizationTransfersOptions,
  authorizationTransfers,
  EIP3009_ABI,
  type MinedTransfer,
} from './transferWithAuthorization.js'
export {
  type ChainEventSink,
  type ChainEventSource,
  type ChainWatcher,
  type ChainWatcherClient,
  type ChainWatcherOptions,
  type ChainWatcherStatus,
  createChainWatcher,
  DEFAULT_CONFIRMATIONS,
  DEFAULT_MAX_BACKOFF_MS,
  DEFAULT_MAX_BLOCK_RANGE,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_WATCHER_META_KEY,
  type PollResult,
  type WatcherMeta,
} from './watcher.js'
