import { Level } from 'level'
import { TollgateError } from '../errors/index.js'
import type { ChannelRecord } from '../ledger/types.js'
import { BatchedStore } from './batchedStore.js'
import { channelIdOfKey, decodeRecord, recordKey } from './recordCodec.js'
import { type ResolvedStoreOptions, resolveStoreOptions } from './resolveStoreOptions.js'
import type { StoreOptions, WriteBatch } from './types.js'

// Key space (keys are bytes): `c` + 32-byte channel id -> record (recordCodec.ts layout);
// `m` + UTF-8 key -> UTF-8 meta value; `s` + name -> the store's own bookkeeping.
const RECORDS_FROM = Buffer.from('c')
const RECORDS_TO = Buffer.from('d')
const META_PREFIX = 'm'
/** Present while a process has the store open; deleted by a clean `close()`. */
const OPEN_MARKER = Buffer.from('s/open')
/** The version of this key space and record layout. */
const FORMAT_KEY = Buffer.from('s/format')
const FORMAT = '1'
/** Entries read per native call when loading. */
const LOAD_CHUNK = 4096
const LOAD_CHUNK_BYTES = 4 << 20

/** An operation as classic-level's native batch reads it: type, key and value bytes. */
type NativeOperation = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }
/**
 * classic-level's `_batch`, the backend method behind `db.batch` (abstract-level's implementer
 * API). `db.batch` clones, validates and re-encodes every operation in JavaScript first: several
 * µs per record (measured: ~10 µs), for keys and values that are already buffers. The store writes
 * through `_batch` directly, once it checked the database is open (what `db.batch` would check).
 */
type WithNativeBatch = {
  _batch(operations: NativeOperation[], options: { readonly sync: boolean }): Promise<void>
}
/** Every batch is fsynced, in both modes. */
const SYNC = Object.freeze({ sync: true })

/**
 * A {@link ChannelStore} in a LevelDB directory (package `level`), the embedded default.
 *
 * Crash detection: `open` reads the key `s/open`; if present, the previous process did not
 * close the store (`recoveredFromCrash`). It then writes `s/open` (pid and time) with fsync.
 * `close` deletes it, with fsync, only after every queued write is on disk; if that final
 * flush fails, the marker stays and the next open reports a crash. The marker thus stays set
 * across any number of crashed runs until one closes cleanly.
 *
 * Every batch is written with `sync: true` (fsync) in both modes; in `relaxed` mode there is
 * at most one batch per flush interval.
 *
 * @example
 * const store = await LevelStore.open('./data/channels')
 * if (store.recoveredFromCrash) applyCrashRule(await store.loadAll())
 * await store.put(hold.record) // durable: on disk once this resolves
 * await store.close()
 */
export class LevelStore extends BatchedStore {
  /** The directory of the LevelDB database. */
  readonly location: string
  private readonly db: Level<Buffer, Buffer>

  private constructor(
    location: string,
    db: Level<Buffer, Buffer>,
    options: ResolvedStoreOptions,
    recoveredFromCrash: boolean,
  ) {
    super(options, recoveredFromCrash)
    this.location = location
    this.db = db
  }

  /**
   * Opens (creating if missing) the store in `location` and marks it open.
   *
   * @param location A directory; one process at a time may hold it (LevelDB lock).
   * @param options Mode and flush interval.
   * @returns The open store; check `recoveredFromCrash` before serving.
   * @throws TollgateError `tollgate_invalid_config` on bad options; `tollgate_store_failed` when
   * the database cannot be opened (locked by another process, unreadable, unknown format).
   */
  static async open(location: string, options: StoreOptions = {}): Promise<LevelStore> {
    if (typeof location !== 'string' || location === '') {
      throw new TollgateError('tollgate_invalid_config', 'store location must be a directory path.')
    }
    const resolved = resolveStoreOptions(options)
    const db = new Level<Buffer, Buffer>(location, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    })
    try {
      await db.open()
    } catch (cause) {
      throw new TollgateError('tollgate_store_failed', `Cannot open the store at ${location}.`, {
        cause,
      })
    }
    try {
      const [format, marker] = await db.getMany([FORMAT_KEY, OPEN_MARKER])
      if (format !== undefined && format.toString() !== FORMAT) {
        throw new TollgateError(
          'tollgate_store_failed',
          `The store at ${location} has format ${format.toString()}; this version reads ${FORMAT}.`,
        )
      }
      const openedBy = JSON.stringify({ pid: process.pid, openedAt: Date.now() })
      await db.batch(
        [
          { type: 'put', key: FORMAT_KEY, value: Buffer.from(FORMAT) },
          { type: 'put', key: OPEN_MARKER, value: Buffer.from(openedBy) },
        ],
        { sync: true },
      )
      return new LevelStore(location, db, resolved, marker !== undefined)
    } catch (error) {
      await db.close().catch(() => {})
      if (error instanceof TollgateError) throw error
      throw new TollgateError('tollgate_store_failed', `Cannot open the store at ${location}.`, {
        cause: error,
      })
    }
  }

  protected async writeBatch(batch: WriteBatch): Promise<void> {
    if (this.db.status !== 'open') {
      throw new TollgateError('tollgate_store_failed', `The database is ${this.db.status}.`)
    }
    const ops: NativeOperation[] = []
    for (const [channelId, value] of batch.records) {
      ops.push({ type: 'put', key: recordKey(channelId), value })
    }
    for (const [key, value] of batch.meta) {
      ops.push(
        value === undefined
          ? { type: 'del', key: metaKey(key) }
          : { type: 'put', key: metaKey(key), value: Buffer.from(value) },
      )
    }
    await (this.db as unknown as WithNativeBatch)._batch(ops, SYNC)
  }

  protected async readRecords(): Promise<ChannelRecord[]> {
    const records: ChannelRecord[] = []
    const legacyInFlight = this.recoveredFromCrash ? 'ceiling' : 'charged'
    const iterator = this.db.iterator({
      gte: RECORDS_FROM,
      lt: RECORDS_TO,
      highWaterMarkBytes: LOAD_CHUNK_BYTES,
    })
    try {
      for (;;) {
        const entries = await iterator.nextv(LOAD_CHUNK)
        if (entries.length === 0) break
        for (const [key, value] of entries)
          records.push(decodeRecord(channelIdOfKey(key), value, legacyInFlight))
      }
    } finally {
      await iterator.close()
    }
    return records
  }

  protected async readMeta(key: string): Promise<string | undefined> {
    const value = await this.db.get(metaKey(key))
    return value?.toString()
  }

  protected async readMetaRange(prefix: string): Promise<[string, string][]> {
    const from = metaKey(prefix)
    // 0xff never occurs in UTF-8, so every key starting with `prefix` sorts below this bound.
    const to = Buffer.concat([from, Buffer.from([0xff])])
    const entries = await this.db.iterator({ gte: from, lt: to }).all()
    return entries.map(([key, value]) => [key.toString('utf8', 1), value.toString()])
  }

  protected async markClean(): Promise<void> {
    await this.db.del(OPEN_MARKER, { sync: true })
  }

  protected async closeBackend(): Promise<void> {
    await this.db.close()
  }
}

function metaKey(key: string): Buffer {
  return Buffer.from(META_PREFIX + key)
}
