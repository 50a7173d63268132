import type { Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { CommitLog } from './commitLog.js'
import type { ResolvedStoreOptions } from './resolveStoreOptions.js'
import type { StoreStats, WriteBatch } from './types.js'

interface Waiter {
  readonly promise: Promise<void>
  readonly resolve: () => void
  readonly reject: (error: TollgateError) => void
}

interface PendingBatch extends WriteBatch {
  /** Created when someone waits on the batch; then it is written as soon as it can be. */
  waiter: Waiter | undefined
  /** With a {@link CommitLog} attached: when each record was put, and how many batches had started by then. */
  puts: { at: number[]; started: number } | undefined
}

const RESOLVED = Promise.resolve()

/** Told of each batch written: the seconds its write took and the channel records it held. */
export type CommitObserver = (seconds: number, records: number) => void

/**
 * The group-commit write pipeline shared by the stores. At most one batch is being written at a
 * time; writes arriving meanwhile accumulate in the next batch, keyed so that a later write of a
 * channel (or meta key) replaces an earlier one, and that batch is written as soon as the current
 * one is done. Everyone waiting on a batch shares its outcome (and its one fsync).
 *
 * Durable record writes and every meta write wait on their batch. Relaxed record writes do not:
 * a timer makes their batch due within `flushIntervalMs`. When such a batch fails, its records
 * go back into the next batch (unless a later version of them is there) and are retried on the
 * next interval; until a write succeeds again, new relaxed writes are refused, so that nothing is
 * lost silently.
 */
export class GroupCommit {
  private readonly counters = { batches: 0, records: 0, failedBatches: 0 }
  /** Batches whose write has started. */
  private started = 0
  private next: PendingBatch = emptyBatch()
  private writing: PendingBatch | undefined
  /** A run is scheduled or in progress. */
  private running = false
  /** The relaxed-mode timer fired: the next batch is due even if nobody waits on it. */
  private due = false
  private timer: NodeJS.Timeout | undefined
  /** Relaxed mode: set while records of a failed batch wait for a retry. */
  private failure: TollgateError | undefined
  /** Told of each batch written: seconds it took and the channel records in it. */
  observer: CommitObserver | undefined
  /** Notes every batch written, with its records' waits, while set. */
  log: CommitLog | undefined

  constructor(
    private readonly write: (batch: WriteBatch) => Promise<void>,
    private readonly options: ResolvedStoreOptions,
  ) {}

  /** Write counters, live. */
  get stats(): StoreStats {
    return this.counters
  }

  /** Queues an encoded record; durable mode resolves when its batch is written. */
  putRecord(channelId: Hex, bytes: Buffer): Promise<void> {
    if (this.options.mode === 'durable') {
      this.next.records.set(channelId, bytes)
      if (this.log) this.notePut(this.next)
      return this.wait(this.next)
    }
    if (this.failure !== undefined) return Promise.reject(this.failure)
    this.next.records.set(channelId, bytes)
    if (this.log) this.notePut(this.next)
    this.arm()
    return RESOLVED
  }

  private notePut(batch: PendingBatch): void {
    batch.puts ??= { at: [], started: this.started }
    batch.puts.at.push(performance.now())
  }

  /** Queues a meta write (`undefined` deletes); resolves when its batch is written. */
  putMeta(key: string, value: string | undefined): Promise<void> {
    this.next.meta.set(key, value)
    return this.wait(this.next)
  }

  /** Resolves when everything queued so far is written; rejects if that write fails. */
  flush(): Promise<void> {
    if (!isEmpty(this.next)) return this.wait(this.next)
    if (this.writing !== undefined) return this.wait(this.writing)
    return RESOLVED
  }

  /** Records queued or being written, the newest version of each channel. */
  pendingRecords(): Map<Hex, Buffer> {
    if (this.writing === undefined) return new Map(this.next.records)
    const merged = new Map(this.writing.records)
    for (const [channelId, bytes] of this.next.records) merged.set(channelId, bytes)
    return merged
  }

  /** Meta writes queued or being written, the newest of each key (`undefined`: deleted). */
  pendingMeta(): Map<string, string | undefined> {
    if (this.writing === undefined) return new Map(this.next.meta)
    const merged = new Map(this.writing.meta)
    for (const [key, value] of this.next.meta) merged.set(key, value)
    return merged
  }

  /** Stops the relaxed-mode timer; whatever is still queued is dropped. */
  dispose(): void {
    this.clearTimer()
  }

  private clearTimer(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private wait(batch: PendingBatch): Promise<void> {
    batch.waiter ??= waiter()
    if (batch === this.next) this.start()
    return batch.waiter.promise
  }

  private arm(): void {
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.due = true
      this.start()
    }, this.options.flushIntervalMs)
  }

  private start(): void {
    if (this.running) return
    this.running = true
    queueMicrotask(() => void this.run())
  }

  private async run(): Promise<void> {
    try {
      while (!isEmpty(this.next) && (this.next.waiter !== undefined || this.due)) {
        const batch = this.next
        this.next = emptyBatch()
        this.due = false
        this.clearTimer()
        this.writing = batch
        await this.commit(batch)
        this.writing = undefined
      }
    } finally {
      this.running = false
      if (!isEmpty(this.next)) {
        if (this.next.waiter !== undefined) this.start()
        else this.arm()
      }
    }
  }

  private async commit(batch: PendingBatch): Promise<void> {
    const skipped = batch.puts ? this.started - batch.puts.started : 0
    this.started++
    const started = this.observer || this.log ? performance.now() : 0
    try {
      await this.write(batch)
    } catch (cause) {
      this.counters.failedBatches++
      const error = new TollgateError(
        'tollgate_store_failed',
        `Writing a batch of ${batch.records.size} records and ${batch.meta.size} meta entries failed.`,
        { cause },
      )
      if (this.options.mode === 'relaxed' && batch.records.size > 0) {
        for (const [channelId, bytes] of batch.records) {
          if (!this.next.records.has(channelId)) this.next.records.set(channelId, bytes)
        }
        this.failure = error
      }
      batch.waiter?.reject(error)
      return
    }
    this.counters.batches++
    this.counters.records += batch.records.size
    const done = this.observer || this.log ? performance.now() : 0
    this.observer?.((done - started) / 1000, batch.records.size)
    if (this.log && batch.puts) {
      const waits = batch.puts.at.map((at) => done - at)
      this.log.batch(batch.records.size, done - started, waits, skipped)
    }
    this.failure = undefined
    batch.waiter?.resolve()
  }
}

function emptyBatch(): PendingBatch {
  return { records: new Map(), meta: new Map(), waiter: undefined, puts: undefined }
}

function isEmpty(batch: WriteBatch): boolean {
  return batch.records.size === 0 && batch.meta.size === 0
}

function waiter(): Waiter {
  let resolve!: () => void
  let reject!: (error: TollgateError) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}
