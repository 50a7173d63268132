import type { Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { ChannelRecord } from '../ledger/types.js'
import type { CommitLog } from './commitLog.js'
import type { StoreMode } from './constants.js'
import { type CommitObserver, GroupCommit } from './groupCommit.js'
import { decodeRecord, encodeRecord, normalizeChannelId } from './recordCodec.js'
import type { ResolvedStoreOptions } from './resolveStoreOptions.js'
import type { ChannelStore, StoreStats, WriteBatch } from './types.js'

/**
 * What {@link LevelStore} and {@link MemoryStore} share: the group-commit pipeline, validation,
 * reads that see writes still queued, and the close sequence. Subclasses supply the backend.
 */
export abstract class BatchedStore implements ChannelStore {
  readonly mode: StoreMode
  readonly recoveredFromCrash: boolean
  private readonly queue: GroupCommit
  private closing: Promise<void> | undefined

  protected constructor(options: ResolvedStoreOptions, recoveredFromCrash: boolean) {
    this.mode = options.mode
    this.recoveredFromCrash = recoveredFromCrash
    this.queue = new GroupCommit((batch) => this.writeBatch(batch), options)
  }

  get stats(): StoreStats {
    return this.queue.stats
  }

  observeCommits(observer: CommitObserver): void {
    this.queue.observer = observer
  }

  /**
   * Notes every batch written from now on in `log` (batch sizes, write times, each record's wait
   * from its `put` until it is on disk); `undefined` detaches it.
   */
  logCommits(log: CommitLog | undefined): void {
    this.queue.log = log
  }

  put(record: ChannelRecord): Promise<void> {
    if (this.closing !== undefined) return Promise.reject(closedError())
    let channelId: Hex
    let bytes: Buffer
    try {
      channelId = normalizeChannelId(record.channelId)
      bytes = encodeRecord(record)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.queue.putRecord(channelId, bytes)
  }

  async loadAll(): Promise<ChannelRecord[]> {
    this.assertOpen()
    const pending = this.queue.pendingRecords()
    const stored = await this.guardRead(() => this.readRecords())
    if (pending.size === 0) return stored
    const index = new Map<Hex, number>()
    for (let i = 0; i < stored.length; i++) index.set((stored[i] as ChannelRecord).channelId, i)
    let appended = false
    for (const [channelId, bytes] of pending) {
      const record = decodeRecord(channelId, bytes)
      const at = index.get(channelId)
      if (at === undefined) {
        stored.push(record)
        appended = true
      } else {
        stored[at] = record
      }
    }
    if (appended) stored.sort((a, b) => (a.channelId < b.channelId ? -1 : 1))
    return stored
  }

  async getMeta(key: string): Promise<string | undefined> {
    assertString(key, 'meta key')
    this.assertOpen()
    const pending = this.queue.pendingMeta()
    if (pending.has(key)) return pending.get(key)
    return this.guardRead(() => this.readMeta(key))
  }

  async putMeta(key: string, value: string): Promise<void> {
    assertString(key, 'meta key')
    assertString(value, 'meta value')
    this.assertOpen()
    return this.queue.putMeta(key, value)
  }

  async deleteMeta(key: string): Promise<void> {
    assertString(key, 'meta key')
    this.assertOpen()
    return this.queue.putMeta(key, undefined)
  }

  async listMeta(prefix: string): Promise<[key: string, value: string][]> {
    assertString(prefix, 'meta prefix')
    this.assertOpen()
    const pending = this.queue.pendingMeta()
    const stored = await this.guardRead(() => this.readMetaRange(prefix))
    let changed = false
    const merged = new Map(stored)
    for (const [key, value] of pending) {
      if (!key.startsWith(prefix)) continue
      changed = true
      if (value === undefined) merged.delete(key)
      else merged.set(key, value)
    }
    if (!changed) return stored
    return [...merged].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  }

  flush(): Promise<void> {
    return this.queue.flush()
  }

  close(): Promise<void> {
    this.closing ??= this.closeOnce(true)
    return this.closing
  }

  closeAsFound(): Promise<void> {
    this.closing ??= this.closeOnce(!this.recoveredFromCrash)
    return this.closing
  }

  /** Writes one batch atomically (and durably, for a disk backend). */
  protected abstract writeBatch(batch: WriteBatch): Promise<void>
  /** Every stored record, in channelId order. */
  protected abstract readRecords(): Promise<ChannelRecord[]>
  /** One stored meta value. */
  protected abstract readMeta(key: string): Promise<string | undefined>
  /** Stored meta entries whose key starts with `prefix`, in key (UTF-8 byte) order. */
  protected abstract readMetaRange(prefix: string): Promise<[string, string][]>
  /** Records that the store was closed cleanly (runs only once everything is written). */
  protected abstract markClean(): Promise<void>
  /** Releases the backend. */
  protected abstract closeBackend(): Promise<void>

  private async closeOnce(clean: boolean): Promise<void> {
    let failure: unknown
    try {
      await this.queue.flush()
      if (clean) await this.markClean()
    } catch (error) {
      failure = error
    }
    this.queue.dispose()
    try {
      await this.closeBackend()
    } catch (error) {
      failure ??= error
    }
    if (failure !== undefined) throw asStoreFailure(failure, 'Closing the store failed.')
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw closedError()
  }

  private async guardRead<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read()
    } catch (error) {
      throw asStoreFailure(error, 'Reading the store failed.')
    }
  }
}

function closedError(): TollgateError {
  return new TollgateError('tollgate_store_failed', 'The store is closed.')
}

function asStoreFailure(error: unknown, details: string): TollgateError {
  if (error instanceof TollgateError) return error
  return new TollgateError('tollgate_store_failed', details, { cause: error })
}

function assertString(value: unknown, what: string): void {
  if (typeof value !== 'string') {
    throw new TollgateError('tollgate_internal', `The store ${what} must be a string.`)
  }
}
