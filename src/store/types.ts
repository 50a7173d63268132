import type { Hex } from 'viem'
import type { ChannelRecord } from '../ledger/types.js'
import type { StoreMode } from './constants.js'

/** Options shared by every {@link ChannelStore} implementation. */
export interface StoreOptions {
  /** @default DEFAULT_STORE_MODE (`'durable'`) */
  readonly mode?: StoreMode
  /** Relaxed mode only: the longest a record waits before it is written. @default DEFAULT_FLUSH_INTERVAL_MS */
  readonly flushIntervalMs?: number
}

/** Counters of a store's writes, for tests and operators. Live, read-only. */
export interface StoreStats {
  /** Batches written successfully; in durable mode each one is one fsync. */
  readonly batches: number
  /** Channel records written by those batches (one per channel per batch). */
  readonly records: number
  /** Batches whose write failed. */
  readonly failedBatches: number
}

/**
 * Where the server keeps, per channel, the latest {@link ChannelRecord} (the highest voucher
 * and the charged total), plus a few metadata strings (chain watcher block, settlement
 * journal, lease). Vouchers are cumulative, so only the latest record of a channel is kept.
 *
 * Writes are group-committed: puts made while a batch is being written share the next batch
 * (and its fsync); a later record of a channel replaces an earlier one still waiting.
 */
export interface ChannelStore {
  /** The store's mode, as resolved from the options. */
  readonly mode: StoreMode
  /**
   * True when the previous process that opened this store did not `close()` it: records may
   * then carry a charged total older than their voucher (it is written behind it), and the
   * server applies its crash rule (`charged := signedMaxClaimable`). The flag stays set across
   * crashed runs until one closes cleanly, so put the corrected records before `close()`.
   */
  readonly recoveredFromCrash: boolean
  /** Write counters. */
  readonly stats: StoreStats
  /**
   * Tells `observer` of each batch written: the seconds its write took and the channel records
   * it held (the store's commit latency and batch size metrics). One observer; a later one
   * replaces it.
   */
  observeCommits?(observer: (seconds: number, records: number) => void): void

  /**
   * Keeps `record` as the latest of its channel. Durable mode: resolves once it (or a later
   * record of the channel) is on disk. Relaxed mode: resolves at once.
   *
   * @throws TollgateError `tollgate_store_failed` when the write fails or the store is closed
   * (nothing may be charged then); `tollgate_internal` when the record cannot be encoded.
   */
  put(record: ChannelRecord): Promise<void>
  /** Every channel's latest record, including those not yet written, in channelId order. */
  loadAll(): Promise<ChannelRecord[]>
  /** A metadata value, or `undefined`. */
  getMeta(key: string): Promise<string | undefined>
  /** Stores a metadata value; resolves once it is on disk, in both modes. */
  putMeta(key: string, value: string): Promise<void>
  /** Deletes a metadata value; resolves once the deletion is on disk, in both modes. */
  deleteMeta(key: string): Promise<void>
  /** Every metadata entry whose key starts with `prefix`, in key order. */
  listMeta(prefix: string): Promise<[key: string, value: string][]>
  /** Resolves once everything put so far is on disk. */
  flush(): Promise<void>
  /** Flushes, marks the store as closed cleanly and closes it. Idempotent. */
  close(): Promise<void>
  /**
   * Flushes and closes it as it was found: a store that was not closed cleanly before this open
   * stays marked so. For a start that fails after opening the store. Idempotent, like `close`.
   */
  closeAsFound(): Promise<void>
}

/** One batch of writes, keyed so that a later write of a key replaces an earlier one. */
export interface WriteBatch {
  /** Encoded records by channel id. */
  readonly records: Map<Hex, Buffer>
  /** Metadata values by key; `undefined` deletes. */
  readonly meta: Map<string, string | undefined>
}
