import { type Result, reject, TollgateError } from '../errors/index.js'
import { type Price, parsePrice } from '../protocol/index.js'

/**
 * Spend limits of a payer, each `'$0.50'` (dollars of a 6-decimal stablecoin such as USDC),
 * `'500000'` or `500000n` (token units). Unset: no limit of that kind.
 */
export interface SpendLimits {
  /** The most one request may cost: the price (`accepts[].amount`) it is asked to sign for. */
  perRequest?: Price
  /** The most spent on one origin (scheme://host:port), over the payer's whole life. */
  perOrigin?: Price
  /** The most spent over any rolling 24 hours. */
  perDay?: Price
  /** The most spent over any rolling 7 days. */
  perWeek?: Price
  /**
   * The only origins paid (`https://api.example.com`, `mcp://weather`); any other is refused
   * before anything is signed. Unset: every origin.
   */
  allowedOrigins?: readonly string[]
  /** The most locked into a channel by one deposit: a payment that needs more is refused. */
  maxDeposit?: Price
}

/** {@link SpendLimits} in token units, origins as {@link originOf} writes them. */
export interface ResolvedLimits {
  readonly perRequest?: bigint
  readonly perOrigin?: bigint
  readonly perDay?: bigint
  readonly perWeek?: bigint
  readonly allowedOrigins?: ReadonlySet<string>
  readonly maxDeposit?: bigint
}

const DAY_MS = 24 * 60 * 60 * 1000
const WEEK_MS = 7 * DAY_MS

/** The decimals limits in dollars are converted with: USDC's. */
const LIMIT_DECIMALS = 6

/**
 * Resolves limits to token units.
 *
 * @throws TollgateError `tollgate_invalid_config` for a malformed limit.
 */
export function resolveLimits(limits: SpendLimits = {}): ResolvedLimits {
  const out: {
    -readonly [K in keyof ResolvedLimits]: ResolvedLimits[K]
  } = {}
  for (const key of ['perRequest', 'perOrigin', 'perDay', 'perWeek', 'maxDeposit'] as const) {
    const value = limits[key]
    if (value !== undefined) out[key] = parsePrice(value, LIMIT_DECIMALS, `limits.${key}`)
  }
  const { allowedOrigins } = limits
  if (allowedOrigins !== undefined) {
    if (!Array.isArray(allowedOrigins) || !allowedOrigins.every(isOrigin)) {
      throw new TollgateError(
        'tollgate_invalid_config',
        'limits.allowedOrigins must be a list of origins such as https://api.example.com.',
      )
    }
    out.allowedOrigins = new Set(allowedOrigins.map(originOf))
  }
  return out
}

/** Whether `text` is a URL with a host, whose origin {@link originOf} can write. */
export function isOrigin(text: unknown): text is string {
  return typeof text === 'string' && URL.canParse(text) && new URL(text).host !== ''
}

/**
 * The origin a payment is counted under: `scheme://host:port` of a URL (lowercase, default port
 * left out), as `URL.origin` writes it; for schemes without one (`mcp://weather`), the scheme and
 * host.
 *
 * @example
 * originOf('HTTPS://API.example.com:443/joke') // 'https://api.example.com'
 */
export function originOf(url: string | URL): string {
  const parsed = new URL(url)
  return parsed.origin === 'null' ? `${parsed.protocol}//${parsed.host}` : parsed.origin
}

/** What was spent, as the journal keeps it. */
export interface SpendRecord {
  /** Everything ever spent per origin. */
  readonly originTotals: ReadonlyMap<string, bigint>
  /** The total spent after `since` (Unix milliseconds). */
  spentSince(since: number): bigint
}

/** What a payment is about to add to the spend record. */
export interface SpendCheck {
  readonly origin: string
  /** The price asked (`accepts[].amount`). */
  readonly price: bigint
  /** How much the channel's signed ceiling grows: what will be counted as spent. */
  readonly increase: bigint
  /** Unix milliseconds. */
  readonly now: number
}

/**
 * Whether a payment stays within the limits, given what was spent: the price against
 * `perRequest`, and the ceiling's growth added to the origin's total and to the last day's and
 * week's spends. Spending is counted as the growth of signed ceilings, so the record is an upper
 * bound of what servers can claim, never less.
 *
 * @returns `ok` with nothing, or `tollgate_spend_limit` naming the limit.
 * @example
 * const verdict = checkSpend(limits, journal, { origin, price, increase, now: Date.now() })
 */
export function checkSpend(
  limits: ResolvedLimits,
  record: SpendRecord,
  check: SpendCheck,
): Result<undefined> {
  const { origin, price, increase, now } = check
  if (limits.allowedOrigins !== undefined && !limits.allowedOrigins.has(origin)) {
    return reject(
      'tollgate_spend_limit',
      `Limit allowedOrigins does not list ${origin}; nothing is paid to it.`,
    )
  }
  if (limits.perRequest !== undefined && price > limits.perRequest) {
    return over('perRequest', limits.perRequest, price)
  }
  if (increase === 0n) return { ok: true, value: undefined }
  if (limits.perOrigin !== undefined) {
    const total = (record.originTotals.get(origin) ?? 0n) + increase
    if (total > limits.perOrigin) return over(`perOrigin (${origin})`, limits.perOrigin, total)
  }
  if (limits.perDay !== undefined) {
    const day = record.spentSince(now - DAY_MS) + increase
    if (day > limits.perDay) return over('perDay', limits.perDay, day)
  }
  if (limits.perWeek !== undefined) {
    const week = record.spentSince(now - WEEK_MS) + increase
    if (week > limits.perWeek) return over('perWeek', limits.perWeek, week)
  }
  return { ok: true, value: undefined }
}

/**
 * How much more may be counted as spent on `origin` at `now` (Unix milliseconds) before a limit
 * of origin, day or week refuses: the least room any of them leaves; `undefined` when none is
 * set. What a reservation may take beyond the payment that asks for it.
 *
 * @example
 * const room = spendHeadroom(limits, journal, 'https://api.example.com', Date.now())
 */
export function spendHeadroom(
  limits: ResolvedLimits,
  record: SpendRecord,
  origin: string,
  now: number,
): bigint | undefined {
  let least: bigint | undefined
  const room = (left: bigint) => {
    if (least === undefined || left < least) least = left
  }
  if (limits.perOrigin !== undefined)
    room(limits.perOrigin - (record.originTotals.get(origin) ?? 0n))
  if (limits.perDay !== undefined) room(limits.perDay - record.spentSince(now - DAY_MS))
  if (limits.perWeek !== undefined) room(limits.perWeek - record.spentSince(now - WEEK_MS))
  if (least === undefined) return undefined
  return least > 0n ? least : 0n
}

/**
 * Whether a deposit of `amount` stays within `maxDeposit`.
 *
 * @returns `ok` with nothing, or `tollgate_spend_limit` naming `maxDeposit`.
 */
export function checkDeposit(limits: ResolvedLimits, amount: bigint): Result<undefined> {
  if (limits.maxDeposit !== undefined && amount > limits.maxDeposit) {
    return over('maxDeposit', limits.maxDeposit, amount)
  }
  return { ok: true, value: undefined }
}

/** What was spent against each limit, for display. Amounts in token units. */
export interface SpendReport {
  readonly limits: ResolvedLimits
  /** Spent over the last 24 hours and 7 days. */
  readonly day: bigint
  readonly week: bigint
  /** Everything ever spent per origin. */
  readonly origins: ReadonlyMap<string, bigint>
  /**
   * Counted against the limits beyond what was spent: the unused part of open spend
   * reservations, given back when they close.
   */
  readonly reserved: bigint
}

/**
 * What `record` shows spent against `limits` at `now` (Unix milliseconds), less the unused part
 * of open reservations per origin (`reserved`): those are dated within every current window.
 */
export function spendReport(
  limits: ResolvedLimits,
  record: SpendRecord,
  now: number,
  reserved: ReadonlyMap<string, bigint> = new Map(),
): SpendReport {
  let unused = 0n
  const origins = new Map(record.originTotals)
  for (const [origin, amount] of reserved) {
    unused += amount
    origins.set(origin, (origins.get(origin) ?? 0n) - amount)
  }
  return {
    limits,
    day: record.spentSince(now - DAY_MS) - unused,
    week: record.spentSince(now - WEEK_MS) - unused,
    origins,
    reserved: unused,
  }
}

function over(limit: string, max: bigint, would: bigint) {
  return reject(
    'tollgate_spend_limit',
    `Limit ${limit} is ${max} token units; this payment would make it ${would}.`,
  )
}
