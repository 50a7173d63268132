import type { ErrorCode } from '../errors/index.js'

/** Minutes kept by default: one day of per-minute buckets (a few hundred kilobytes at most). */
export const DEFAULT_RING_MINUTES = 1440

const MINUTE_MS = 60_000

/** One minute of traffic: what was charged, how many charges, and refusals by code. */
export interface MinuteBucket {
  /** Unix milliseconds of the minute's start. */
  readonly start: number
  /** Token units charged during the minute. */
  readonly charged: bigint
  /** Paid requests and billed messages. */
  readonly charges: number
  /** Refusals by error code. */
  readonly refusals: ReadonlyMap<ErrorCode, number>
}

interface Slot {
  minute: number
  charged: bigint
  charges: number
  refusals: Map<ErrorCode, number>
}

/**
 * Per-minute buckets of revenue and refusals over the last `minutes` minutes, in a fixed array:
 * memory is bounded whatever the traffic (one slot per minute; the refusal codes are those of
 * the error table). A slot is reused when its minute comes round again.
 */
export class MinuteRing {
  private readonly slots: Slot[]

  constructor(
    readonly minutes: number = DEFAULT_RING_MINUTES,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isSafeInteger(minutes) || minutes < 1) {
      throw new RangeError(`minutes must be a positive integer, got ${minutes}`)
    }
    this.slots = Array.from({ length: minutes }, () => ({
      minute: -1,
      charged: 0n,
      charges: 0,
      refusals: new Map(),
    }))
  }

  /** Counts one charge of `amount` token units in the current minute. */
  charge(amount: bigint): void {
    const slot = this.current()
    slot.charged += amount
    slot.charges++
  }

  /** Counts one refusal with `code` in the current minute. */
  refuse(code: ErrorCode): void {
    const slot = this.current()
    slot.refusals.set(code, (slot.refusals.get(code) ?? 0) + 1)
  }

  /**
   * The last `count` minutes, oldest first, the current one last; minutes without traffic are
   * empty buckets.
   */
  last(count: number): MinuteBucket[] {
    const n = Math.max(1, Math.min(this.minutes, Math.floor(count)))
    const now = Math.floor(this.now() / MINUTE_MS)
    const out: MinuteBucket[] = []
    for (let minute = now - n + 1; minute <= now; minute++) {
      const slot = this.slots[minute % this.minutes] as Slot
      out.push(
        slot.minute === minute
          ? {
              start: minute * MINUTE_MS,
              charged: slot.charged,
              charges: slot.charges,
              refusals: new Map(slot.refusals),
            }
          : { start: minute * MINUTE_MS, charged: 0n, charges: 0, refusals: new Map() },
      )
    }
    return out
  }

  /** Token units charged since `since` (Unix ms), as far back as the ring reaches. */
  chargedSince(since: number): bigint {
    const from = Math.floor(since / MINUTE_MS)
    const now = Math.floor(this.now() / MINUTE_MS)
    let total = 0n
    for (const slot of this.slots) {
      if (slot.minute >= from && slot.minute <= now && slot.minute > now - this.minutes) {
        total += slot.charged
      }
    }
    return total
  }

  private current(): Slot {
    const minute = Math.floor(this.now() / MINUTE_MS)
    const slot = this.slots[minute % this.minutes] as Slot
    if (slot.minute !== minute) {
      slot.minute = minute
      slot.charged = 0n
      slot.charges = 0
      slot.refusals.clear()
    }
    return slot
  }
}
