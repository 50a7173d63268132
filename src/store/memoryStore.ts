import type { Hex } from 'viem'
import type { ChannelRecord } from '../ledger/types.js'
import { BatchedStore } from './batchedStore.js'
import { decodeRecord } from './recordCodec.js'
import { resolveStoreOptions } from './resolveStoreOptions.js'
import type { StoreOptions, WriteBatch } from './types.js'

/**
 * A {@link ChannelStore} in memory, for tests: the same semantics as {@link LevelStore}
 * (group commit, modes, encoding, errors), nothing durable, `recoveredFromCrash` always false.
 * Records are kept encoded, so what round-trips here round-trips on disk.
 *
 * @example
 * const store = await MemoryStore.open()
 * store.failWrites(new Error('disk full')) // the next writes reject with tollgate_store_failed
 */
export class MemoryStore extends BatchedStore {
  private readonly records = new Map<Hex, Buffer>()
  private readonly meta = new Map<string, string>()
  private writeFault: Error | undefined

  private constructor(options: StoreOptions) {
    super(resolveStoreOptions(options), false)
  }

  /**
   * Opens an empty store.
   *
   * @throws TollgateError `tollgate_invalid_config` on bad options.
   */
  static async open(options: StoreOptions = {}): Promise<MemoryStore> {
    return new MemoryStore(options)
  }

  /** Makes every batch write fail with `error` until called with `undefined`. */
  failWrites(error: Error | undefined): void {
    this.writeFault = error
  }

  protected async writeBatch(batch: WriteBatch): Promise<void> {
    // Yield like a disk write would, so that writes arriving meanwhile group into the next batch.
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (this.writeFault !== undefined) throw this.writeFault
    for (const [channelId, bytes] of batch.records) this.records.set(channelId, bytes)
    for (const [key, value] of batch.meta) {
      if (value === undefined) this.meta.delete(key)
      else this.meta.set(key, value)
    }
  }

  protected async readRecords(): Promise<ChannelRecord[]> {
    return [...this.records.keys()]
      .sort()
      .map((channelId) => decodeRecord(channelId, this.records.get(channelId) as Buffer))
  }

  protected async readMeta(key: string): Promise<string | undefined> {
    return this.meta.get(key)
  }

  protected async readMetaRange(prefix: string): Promise<[string, string][]> {
    return [...this.meta]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  }

  protected async markClean(): Promise<void> {}

  protected async closeBackend(): Promise<void> {}
}
