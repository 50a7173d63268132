/** Percentiles of a set of samples. */
export interface Distribution {
  readonly count: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/** What {@link CommitLog.summary} reports. */
export interface CommitSummary {
  /** Channel records per batch written. */
  readonly batchRecords: Distribution
  /** Milliseconds each batch's write took (its one fsync included). */
  readonly writeMs: Distribution
  /** Milliseconds from each record's `put` until its batch was on disk. */
  readonly waitMs: Distribution
  /**
   * The most batches any record saw start between its `put` and its own batch: 0 when every
   * record went into the batch written next, so none waited for more than the write in
   * progress and its own.
   */
  readonly maxBatchesSkipped: number
}

/**
 * A record of the batches a store's group commit writes while it is attached
 * ({@link BatchedStore.logCommits}): their sizes, write times and each record's wait. For
 * benchmarks and tuning; it grows with every batch, so attach it for a bounded run.
 */
export class CommitLog {
  private readonly records: number[] = []
  private readonly writes: number[] = []
  private readonly waits: number[] = []
  private skipped = 0

  /** Notes one batch written: its records, its write time and its records' waits (ms). */
  batch(records: number, writeMs: number, waitsMs: readonly number[], skipped: number): void {
    this.records.push(records)
    this.writes.push(writeMs)
    for (const wait of waitsMs) this.waits.push(wait)
    if (skipped > this.skipped) this.skipped = skipped
  }

  /** The distributions of everything noted so far. */
  summary(): CommitSummary {
    return {
      batchRecords: distribution(this.records),
      writeMs: distribution(this.writes),
      waitMs: distribution(this.waits),
      maxBatchesSkipped: this.skipped,
    }
  }
}

function distribution(samples: readonly number[]): Distribution {
  const sorted = Float64Array.from(samples).sort()
  const at = (q: number) =>
    sorted.length === 0 ? 0 : (sorted[Math.ceil(q * sorted.length) - 1] ?? 0)
  let sum = 0
  for (const value of sorted) sum += value
  return {
    count: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted.length === 0 ? 0 : (sorted[sorted.length - 1] ?? 0),
    mean: sorted.length === 0 ? 0 : sum / sorted.length,
  }
}
