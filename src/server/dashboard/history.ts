import type { Hex } from 'viem'
import type { ErrorCode } from '../../errors/index.js'
import type { SettlementReport } from '../../settlement/index.js'

/** Entries kept by default: the most recent claims, settles and failures. */
export const DEFAULT_HISTORY_ENTRIES = 500

/** One thing a settlement run did on chain, or failed to do. */
export type SettlementEvent =
  | {
      readonly kind: 'claim'
      /** Unix milliseconds. */
      readonly at: number
      readonly hash: Hex
      readonly method: string
      readonly amount: bigint
      readonly gasUsed: bigint
      readonly claimed: readonly { readonly channelId: Hex; readonly amount: bigint }[]
    }
  | {
      readonly kind: 'settle'
      readonly at: number
      readonly hash: Hex
      readonly amount: bigint
      readonly gasUsed: bigint
    }
  | {
      readonly kind: 'failure'
      readonly at: number
      readonly code: ErrorCode
      readonly message: string
      readonly channels: number
    }

/**
 * The settlement history the dashboard shows: what each run of this process claimed (with the
 * gas per channel and the transaction hash), settled or failed, from the settler's reports. In
 * memory and bounded: the oldest entries go first. The settlement journal keeps only what is in
 * flight, so the history starts with the process.
 */
export class SettlementHistory {
  private readonly entries: SettlementEvent[] = []

  constructor(
    readonly limit: number = DEFAULT_HISTORY_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds what a run did. */
  record(report: SettlementReport): void {
    const at = this.now()
    for (const c of report.claims) {
      this.push({
        kind: 'claim',
        at,
        hash: c.hash,
        method: c.method,
        amount: c.amount,
        gasUsed: c.gasUsed,
        claimed: c.claimed,
      })
    }
    if (report.settled) {
      const { hash, amount, gasUsed } = report.settled
      this.push({ kind: 'settle', at, hash, amount, gasUsed })
    }
    for (const f of report.failures) {
      this.push({ kind: 'failure', at, code: f.code, message: f.message, channels: f.channels })
    }
  }

  /** The entries, newest first. */
  newestFirst(): SettlementEvent[] {
    return [...this.entries].reverse()
  }

  private push(event: SettlementEvent): void {
    this.entries.push(event)
    if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit)
  }
}
