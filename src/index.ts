/**
 * tollgate, for API providers: the Fastify plugins that bill HTTP routes and WebSocket messages,
 * the payee they share, its stores, the chain edge (reads, watcher, presets) and the errors.
 * Payers import `tollgate/client`; the x402 wire codecs are in `tollgate/protocol`.
 */
export {
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
  type EscrowWriter,
  type EscrowWriterOptions,
  type EscrowWriterPublicClient,
  escrowWriter,
  localChain,
  PRESETS,
  type PresetName,
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
  type Decision,
  openPayee,
  Payee,
  type PayeeOptions,
} from './payee/index.js'
export { loadConfig, parseConfig, type ServerConfig } from './server/config.js'
export { createServer, type TollgateServer } from './server/createServer.js'
export {
  type ChannelStore,
  LevelStore,
  MemoryStore,
  type StoreMode,
  type StoreOptions,
} from './store/index.js'
export {
  type Price,
  parsePrice,
  type TollgateAsset,
  type TollgateOptions,
  tollgate,
} from './transports/http/index.js'
export {
  type FeedRouteOptions,
  type RequestRouteOptions,
  type TollgateWsOptions,
  tollgateWs,
} from './transports/ws/index.js'
