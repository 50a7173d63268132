/** What {@link IpGuard} allows one client address. */
export interface IpLimits {
  /** Open connections at once. */
  readonly maxConnections: number
  /** Bad frames and refused payments over all its connections per window. */
  readonly maxBadFrames: number
  readonly badFrameWindowMs: number
}

/** Addresses tracked at most; past it, the oldest bad-frame windows are forgotten first. */
const MAX_TRACKED = 100_000

/**
 * Per-address limits of a WebSocket plugin: how many connections an address holds, and how many
 * bad frames it sends over all of them. An address over its bad-frame budget gets no new
 * connection until its window ends, so reconnecting does not reset the count a connection keeps.
 */
export class IpGuard {
  private readonly open = new Map<string, number>()
  private readonly bad = new Map<string, { start: number; count: number }>()

  constructor(
    private readonly limits: IpLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a new connection of `ip`; false (nothing counted) when it may not have one. */
  connect(ip: string): boolean {
    const open = this.open.get(ip) ?? 0
    if (open >= this.limits.maxConnections || this.overBudget(ip)) return false
    this.open.set(ip, open + 1)
    return true
  }

  disconnect(ip: string): void {
    const open = (this.open.get(ip) ?? 1) - 1
    if (open <= 0) this.open.delete(ip)
    else this.open.set(ip, open)
  }

  /** Counts a bad frame of `ip`; true when it is now over its budget. */
  strike(ip: string): boolean {
    const now = this.now()
    let window = this.bad.get(ip)
    if (!window || now - window.start >= this.limits.badFrameWindowMs) {
      if (window) this.bad.delete(ip)
      else if (this.bad.size >= MAX_TRACKED) {
        const oldest = this.bad.keys().next().value
        if (oldest !== undefined) this.bad.delete(oldest)
      }
      window = { start: now, count: 0 }
      this.bad.set(ip, window)
    }
    window.count++
    return window.count > this.limits.maxBadFrames
  }

  private overBudget(ip: string): boolean {
    const window = this.bad.get(ip)
    if (!window) return false
    if (this.now() - window.start >= this.limits.badFrameWindowMs) {
      this.bad.delete(ip)
      return false
    }
    return window.count > this.limits.maxBadFrames
  }
}
