/**
 * How a store acknowledges a write.
 * - `durable`: `put` resolves once the record is on disk (fsync), group-committed.
 * - `relaxed`: `put` resolves at once; the record is written within the flush interval.
 */
export type StoreMode = 'durable' | 'relaxed'

/** Stores are durable unless asked otherwise (DESIGN.md, Durability). */
export const DEFAULT_STORE_MODE: StoreMode = 'durable'

/**
 * In `relaxed` mode, the longest a record waits before it is written: 100 ms. This is the
 * loss bound: after a crash, vouchers accepted in the last interval (plus the time of one
 * write) may be lost.
 */
export const DEFAULT_FLUSH_INTERVAL_MS = 100

/** The longest flush interval accepted: 60 s. */
export const MAX_FLUSH_INTERVAL_MS = 60_000
