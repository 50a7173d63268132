import { hostname } from 'node:os'
import { createSendLock, type SendLock } from '../chain/sendLock.js'
import { type Rejection, reject } from '../errors/index.js'

/** The meta key of the settlement lease. */
export const LEASE_KEY = 'settlement.lease'

/**
 * How long a lease lasts unless renewed: 10 minutes, longer than one claim batch can take with
 * the default replacements (5 waits of up to 60 s); the settler renews it before each batch.
 */
export const DEFAULT_LEASE_MS = 600_000

/** Where the lease lives: the channel store's metadata. */
export interface LeaseMeta {
  getMeta(key: string): Promise<string | undefined>
  putMeta(key: string, value: string): Promise<void>
  deleteMeta(key: string): Promise<void>
  /**
   * An atomic compare-and-set, for a store shared by several processes (Redis): the lease is
   * then taken, renewed and released by it, so that two settlers never both hold it. Absent on
   * a store one process holds (LevelDB), where a lock in the process is enough.
   */
  compareAndSetMeta?(
    key: string,
    expected: string | undefined,
    next: string | undefined,
  ): Promise<boolean>
}

/** Tries of a compare-and-set that another settler keeps changing under us. */
const MAX_LEASE_TRIES = 5

/** A held lease: only its holder settles until it expires or is released. */
export interface Lease {
  readonly holder: string
  /** Unix milliseconds. */
  readonly expiresAt: number
  /** Extends the lease by its duration from now; false if another holder took it meanwhile. */
  renew(): Promise<boolean>
  /** Gives the lease up (if still held). */
  release(): Promise<void>
}

/** Serializes the read-then-write of leases per store within a process. */
const locks = new WeakMap<LeaseMeta, SendLock>()

function locked<T>(meta: LeaseMeta, run: () => Promise<T>): Promise<T> {
  let lock = locks.get(meta)
  if (!lock) {
    lock = createSendLock()
    locks.set(meta, lock)
  }
  return lock.run(run)
}

/**
 * Takes the settlement lease (`{ holder, expiresAt }` under {@link LEASE_KEY}) when it is free,
 * expired, already this holder's, or held by a process of this host that no longer runs (a
 * settler killed mid-run; holders named `<hostname>:<pid>`, see {@link defaultHolder}). Read and
 * write are serialized within the process; across processes the store itself is single-process
 * (LevelDB lock), so one lease record suffices.
 *
 * @returns the lease, or `tollgate_settlement_busy` naming the holder and its expiry.
 */
export async function acquireLease(
  meta: LeaseMeta,
  holder: string,
  options: { durationMs?: number; now?: () => number } = {},
): Promise<Lease | Rejection> {
  const durationMs = options.durationMs ?? DEFAULT_LEASE_MS
  const now = options.now ?? Date.now
  const take = () =>
    locked(meta, async () => {
      for (let tries = 1; ; tries++) {
        const stored = await meta.getMeta(LEASE_KEY)
        const current = parse(stored)
        if (current && current.holder !== holder && current.expiresAt > now() && !isDead(current))
          return current
        const mine = { holder, expiresAt: now() + durationMs }
        const value = JSON.stringify(mine)
        if (!meta.compareAndSetMeta) {
          await meta.putMeta(LEASE_KEY, value)
          return mine
        }
        if (await meta.compareAndSetMeta(LEASE_KEY, stored, value)) return mine
        // Another settler changed the lease between the read and the set: read it again.
        if (tries >= MAX_LEASE_TRIES) {
          return parse(await meta.getMeta(LEASE_KEY)) ?? { holder: '(contended)', expiresAt: now() }
        }
      }
    })
  const got = await take()
  if (got.holder !== holder) {
    return reject(
      'tollgate_settlement_busy',
      `held by ${got.holder} until ${new Date(got.expiresAt).toISOString()}`,
    )
  }
  let expiresAt = got.expiresAt
  return {
    holder,
    get expiresAt() {
      return expiresAt
    },
    async renew() {
      const renewed = await take()
      if (renewed.holder !== holder) return false
      expiresAt = renewed.expiresAt
      return true
    },
    release() {
      return locked(meta, async () => {
        const stored = await meta.getMeta(LEASE_KEY)
        if (parse(stored)?.holder !== holder) return
        if (meta.compareAndSetMeta) await meta.compareAndSetMeta(LEASE_KEY, stored, undefined)
        else await meta.deleteMeta(LEASE_KEY)
      })
    },
  }
}

/** This process's holder name: `<hostname>:<pid>`. */
export function defaultHolder(): string {
  return `${hostname()}:${process.pid}`
}

/** Whether the holder names a process of this host that is gone. */
function isDead(lease: { holder: string }): boolean {
  const at = lease.holder.lastIndexOf(':')
  const pid = Number(lease.holder.slice(at + 1))
  if (lease.holder.slice(0, at) !== hostname() || !Number.isSafeInteger(pid) || pid <= 0)
    return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

function parse(value: string | undefined): { holder: string; expiresAt: number } | undefined {
  if (value === undefined) return undefined
  try {
    const parsed = JSON.parse(value) as { holder?: unknown; expiresAt?: unknown }
    if (typeof parsed.holder === 'string' && typeof parsed.expiresAt === 'number')
      return { holder: parsed.holder, expiresAt: parsed.expiresAt }
  } catch {
    // An unreadable lease is treated as free: it can only be a torn write of an older version.
  }
  return undefined
}
