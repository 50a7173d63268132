/**
 * store: where the server keeps each channel's latest record (highest voucher, charged total)
 * and a few metadata strings. Group-committed writes, `durable` (default) or `relaxed` mode,
 * crash detection (DESIGN.md, Durability).
 */

export { CommitLog, type CommitSummary, type Distribution } from './commitLog.js'
export {
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_STORE_MODE,
  MAX_FLUSH_INTERVAL_MS,
  type StoreMode,
} from './constants.js'
export { LevelStore } from './levelStore.js'
export { MemoryStore } from './memoryStore.js'
export {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  RedisStore,
  type RedisStoreOptions,
} from './redis/redisStore.js'
export type {
  ChannelState,
  HoldOutcome,
  HoldRequest,
  SharedLedger,
} from './redis/sharedLedger.js'
export type { ChannelStore, StoreOptions, StoreStats } from './types.js'
