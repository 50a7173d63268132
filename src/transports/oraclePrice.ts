import { accept, type Rejection, type Result, TollgateError } from '../errors/index.js'
import { dollarsToTokenUnits, type TokenRate } from '../payee/index.js'
import { type Price, parseDollars, parsePrice } from '../protocol/parsePrice.js'
import type { TollgateOracle } from './http/resolveOptions.js'

/** Longest dollar price taken under a converting oracle (its digits make one bigint). */
export const MAX_DOLLAR_PRICE_LENGTH = 80

/**
 * A price as the WebSocket and MCP transports charge it, in force now: fixed, or, for a dollar
 * price under an oracle, at the feed's latest usable round.
 */
export interface FollowedPrice<T> {
  /** Whether the price follows the feed: a dollar price under an oracle. */
  readonly followsFeed: boolean
  /**
   * What `build` made of the price in token units at the rate in force (no RPC: the feed is read
   * on its own interval), or the feed's refusal (`tollgate_price_stale`,
   * `tollgate_price_below_peg`) while its round is unusable. Rebuilt only when a new round
   * changes the price in token units.
   */
  now(): Result<T>
}

/**
 * Prices a WebSocket route or an MCP tool through an oracle as the HTTP plugin prices a route
 * (`priceRoute`): token units are taken as they are; a dollar price under a converting oracle
 * converts at the feed's rate with `dollarsToTokenUnits` (rounded up, by less than one unit, in the
 * operator's favour), and under a guarding one converts one to one but is refused while the feed
 * is.
 *
 * @param price The configured price.
 * @param decimals The token's decimals.
 * @param oracle The resolved oracle, if any.
 * @param field What the price is, for error messages.
 * @param build What the transport makes of a price in token units (its requirements), given the
 *   rate it was converted at (none for a price that is not converted); it throws `TollgateError`
 *   for a price it cannot take, which refuses payment at that rate.
 * @throws TollgateError `tollgate_invalid_config` for a malformed price, or one `build` refuses at
 *   the rate in force at registration.
 * @example
 * const priced = followPrice('$0.001', 18, { feed, convert: true }, 'price of tool quote', (units) => ({ units }))
 * const now = priced.now() // { ok: true, value: { units: 333333333334n } } at $3 000 a token
 */
export function followPrice<T>(
  price: Price,
  decimals: number | undefined,
  oracle: Readonly<Required<TollgateOracle>> | undefined,
  field: string,
  build: (units: bigint, rate: TokenRate | undefined) => T,
): FollowedPrice<T> {
  const dollars = oracle ? parseDollars(price) : undefined
  if (!oracle || !dollars) {
    const fixed = accept(build(parsePrice(price, decimals, field), undefined))
    return Object.freeze({ followsFeed: false, now: () => fixed })
  }
  const { feed } = oracle
  if (!oracle.convert) {
    const fixed = accept(build(parsePrice(price, decimals, field), undefined))
    return Object.freeze({
      followsFeed: true,
      now: (): Result<T> => {
        const rate = feed.current()
        return rate.ok ? fixed : rate
      },
    })
  }
  if ((price as string).length > MAX_DOLLAR_PRICE_LENGTH) {
    throw new TollgateError('tollgate_invalid_config', `${field} is too long.`)
  }
  if (dollars.numerator === 0n)
    throw new TollgateError('tollgate_invalid_config', `${field} is zero.`)
  const tokenDecimals = decimals ?? 0
  /** The last rate converted, its price in token units and what was built of it. */
  let last: { answer: bigint; decimals: number; units: bigint; built: Result<T> } | undefined
  const now = (): Result<T> => {
    const rate = feed.current()
    if (!rate.ok) return rate
    if (last?.answer === rate.value.answer && last.decimals === rate.value.decimals) {
      return last.built
    }
    const units = dollarsToTokenUnits(dollars, tokenDecimals, rate.value)
    let built = last?.units === units ? last.built : undefined
    if (built === undefined) {
      try {
        built = accept(build(units, rate.value))
      } catch (err) {
        built = refusal(err)
      }
    }
    last = { answer: rate.value.answer, decimals: rate.value.decimals, units, built }
    return built
  }
  // At registration a price the rate cannot express fails fast.
  const first = now()
  if (!first.ok && first.code === 'tollgate_invalid_config') {
    throw new TollgateError('tollgate_invalid_config', first.message)
  }
  return Object.freeze({ followsFeed: true, now })
}

/** A price that cannot be built at the current rate: refused with the build's code. */
function refusal(err: unknown): Rejection {
  return err instanceof TollgateError
    ? { ok: false, code: err.code, message: err.message }
    : { ok: false, code: 'tollgate_internal', message: String(err) }
}
