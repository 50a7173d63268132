import { type ErrorCode, TollgateError } from '../errors/index.js'

/** At most `max` actions per `timeWindowMs` milliseconds per key. */
export interface ActionLimit {
  readonly max: number
  readonly timeWindowMs: number
}

/**
 * What payers may make the server send on chain, at the server's expense (deposits it submits
 * for them, cooperative refunds), and the native coin it may spend on them. Vouchers are never
 * limited by these: past a limit, on-chain actions are refused with a code while payments go on.
 */
export interface OnChainLimits {
  /** Per payer address. @default DEFAULT_ONCHAIN_LIMITS.perPayer; `false`: none */
  readonly perPayer?: ActionLimit | false
  /** Per requester (the client IP over HTTP). @default DEFAULT_ONCHAIN_LIMITS.perRequester; `false`: none */
  readonly perRequester?: ActionLimit | false
  /** Native coin (wei) spent on them per window. @default DEFAULT_ONCHAIN_LIMITS.gasBudget; `false`: none */
  readonly gasBudget?: { readonly wei: bigint; readonly timeWindowMs: number } | false
}

/**
 * The defaults: 10 on-chain actions an hour per payer, 30 per IP, and 0.05 of the native coin
 * an hour in all (about 380 deposits on a local chain at 1 gwei, tens of thousands on Base).
 */
export const DEFAULT_ONCHAIN_LIMITS = Object.freeze({
  perPayer: Object.freeze({ max: 10, timeWindowMs: 3_600_000 }),
  perRequester: Object.freeze({ max: 30, timeWindowMs: 3_600_000 }),
  gasBudget: Object.freeze({ wei: 50_000_000_000_000_000n, timeWindowMs: 3_600_000 }),
})

/**
 * Signature checks of one contract payer (EIP-1271: `payerAuthorizer` zero) per window: each is
 * an RPC call (`isValidSignature`), so they have a limit of their own: 60 a minute.
 */
export const DEFAULT_CONTRACT_CHECKS: ActionLimit = Object.freeze({ max: 60, timeWindowMs: 60_000 })

/** Keys kept per limit at most: past it, the oldest windows are forgotten first. */
const MAX_TRACKED_KEYS = 100_000

/** The refusal of an on-chain action past a limit. */
export interface OnChainRefusal {
  readonly ok: false
  readonly code: ErrorCode
  readonly message: string
}

/**
 * Counts the on-chain actions payers ask for and the coin they cost, in fixed windows. `admit`
 * is called once the payload's signature verified and the payment could succeed, just before
 * the transaction is sent; `spent` once its receipt is in.
 */
export class OnChainGuard {
  private readonly perPayer: WindowCounter | undefined
  private readonly perRequester: WindowCounter | undefined
  private readonly budget: { wei: bigint; timeWindowMs: number } | undefined
  private windowStart = 0
  private spentWei = 0n
  /** Actions sent and not yet receipted, each counted at the largest fee seen so far. */
  private pending = 0
  private largestFee = 0n

  constructor(
    limits: OnChainLimits = {},
    private readonly now: () => number = Date.now,
  ) {
    const perPayer = limits.perPayer ?? DEFAULT_ONCHAIN_LIMITS.perPayer
    const perRequester = limits.perRequester ?? DEFAULT_ONCHAIN_LIMITS.perRequester
    const budget = limits.gasBudget ?? DEFAULT_ONCHAIN_LIMITS.gasBudget
    this.perPayer = perPayer ? new WindowCounter(checked(perPayer, 'perPayer')) : undefined
    this.perRequester = perRequester
      ? new WindowCounter(checked(perRequester, 'perRequester'))
      : undefined
    if (budget && (budget.wei <= 0n || !positive(budget.timeWindowMs))) {
      throw new TollgateError(
        'tollgate_invalid_config',
        'onChainLimits.gasBudget must be { wei > 0, timeWindowMs > 0 } or false',
      )
    }
    this.budget = budget || undefined
  }

  /** Counts an action of `payer` (from `requester`) and says whether it may be sent. */
  admit(payer: string, requester: string | undefined): OnChainRefusal | undefined {
    const now = this.now()
    if (this.budget) {
      if (now - this.windowStart >= this.budget.timeWindowMs) {
        this.windowStart = now
        this.spentWei = 0n
      }
      const committed = this.spentWei + BigInt(this.pending) * this.largestFee
      if (committed >= this.budget.wei) {
        return refuse(
          'tollgate_onchain_budget_spent',
          `the server spent its gas budget for payer transactions (${this.budget.wei} wei per ${this.budget.timeWindowMs / 1000} s); deposit on chain yourself, or retry later`,
        )
      }
    }
    if (this.perPayer && !this.perPayer.take(payer.toLowerCase(), now)) {
      return refuse('tollgate_onchain_rate_limited', `too many on-chain actions for payer ${payer}`)
    }
    if (requester !== undefined && this.perRequester && !this.perRequester.take(requester, now)) {
      return refuse('tollgate_onchain_rate_limited', 'too many on-chain actions from this address')
    }
    this.pending++
    return undefined
  }

  /** An admitted action ended: what it cost (0 when nothing was sent). */
  spent(feeWei: bigint): void {
    if (this.pending > 0) this.pending--
    this.spentWei += feeWei
    if (feeWei > this.largestFee) this.largestFee = feeWei
  }
}

/** Fixed-window counts per key, bounded in size. */
export class WindowCounter {
  private readonly windows = new Map<string, { start: number; count: number }>()

  constructor(private readonly limit: ActionLimit) {}

  take(key: string, now: number): boolean {
    let window = this.windows.get(key)
    if (!window || now - window.start >= this.limit.timeWindowMs) {
      if (window) this.windows.delete(key)
      else if (this.windows.size >= MAX_TRACKED_KEYS) this.evict(now)
      window = { start: now, count: 0 }
      this.windows.set(key, window)
    }
    if (window.count >= this.limit.max) return false
    window.count++
    return true
  }

  /** Drops expired windows, or the oldest one when none has expired (Map order is insertion order). */
  private evict(now: number): void {
    for (const [key, window] of this.windows) {
      if (now - window.start >= this.limit.timeWindowMs) this.windows.delete(key)
    }
    if (this.windows.size >= MAX_TRACKED_KEYS) {
      const oldest = this.windows.keys().next().value
      if (oldest !== undefined) this.windows.delete(oldest)
    }
  }
}

function checked(limit: ActionLimit, field: string): ActionLimit {
  if (!positive(limit.max) || !positive(limit.timeWindowMs)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `onChainLimits.${field} must be { max, timeWindowMs } with positive integers, or false`,
    )
  }
  return limit
}

function positive(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0
}

function refuse(code: ErrorCode, message: string): OnChainRefusal {
  return { ok: false, code, message }
}
