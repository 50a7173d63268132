import { TollgateError } from '../errors/index.js'
import { MAX_UINT128 } from './constants.js'

/** An amount of US dollars as an exact rational: `'$0.001'` is `{ numerator: 1n, denominator: 1000n }`. */
export interface Dollars {
  /** Not negative. */
  readonly numerator: bigint
  /** Positive. */
  readonly denominator: bigint
}

/**
 * A price: `'$0.001'` (US dollars, converted exactly with the token's decimals: the token is
 * taken to be a dollar stablecoin such as USDC, unless the HTTP plugin's `oracle` converts it at
 * a feed's rate), `'1000'` (token units, a canonical decimal integer) or `1000n` (token units).
 */
export type Price = string | bigint

/** `$`, an integer part without leading zero, an optional fraction. No sign, exponent or spaces. */
const USD = /^\$(0|[1-9][0-9]*)(?:\.([0-9]+))?$/
/** Token units: a canonical unsigned decimal integer. */
const UNITS = /^(?:0|[1-9][0-9]*)$/
/** A decimal with a point but no `$`: ambiguous (stock x402 reads it as dollars), refused. */
const BARE_DECIMAL = /^[0-9]*\.[0-9]*$/
/** 2^128 - 1 has 39 digits: a longer string is out of range before it is parsed. */
const MAX_DIGITS = 39

/**
 * Converts a configured price to token units, exactly: a price that is not a whole number of
 * token units, below one unit, or above `uint128` is refused rather than rounded.
 *
 * @param price `'$0.001'`, `'1000'` or `1000n`.
 * @param decimals The token's decimals (USDC: 6); without them only token units are taken.
 * @param field What the price is, for the error message. @default 'price'
 * @returns The price in token units, at least 1.
 * @throws TollgateError `tollgate_invalid_config` for a malformed, ambiguous (`'0.001'`: write
 *   `'$0.001'` or `'1000'`), too precise, zero or too large price, or dollars without decimals.
 * @example
 * parsePrice('$0.001', 6) // 1000n
 * parsePrice('1000', 6) // 1000n
 * parsePrice('$0.0000001', 6) // throws: below one token unit
 */
export function parsePrice(price: unknown, decimals: number | undefined, field = 'price'): bigint {
  const shown = typeof price === 'string' ? JSON.stringify(price) : String(price)
  const invalid = (why: string): never => {
    throw new TollgateError('tollgate_invalid_config', `${field} ${shown} ${why}`)
  }
  let units: bigint
  if (typeof price === 'bigint') {
    units = price
  } else if (typeof price !== 'string') {
    return invalid(`is a ${typeof price}: give '$0.001' (dollars), '1000' or 1000n (token units).`)
  } else if (price.length > MAX_DIGITS + (decimals ?? 0) + 2) {
    return invalid('is too long.')
  } else if (UNITS.test(price)) {
    units = BigInt(price)
  } else {
    const usd = USD.exec(price)
    if (!usd) {
      return invalid(
        BARE_DECIMAL.test(price)
          ? `is ambiguous: write '$${price}' for dollars or a whole number of token units.`
          : `is malformed: give '$0.001' (dollars), '1000' or 1000n (token units).`,
      )
    }
    if (decimals === undefined) return invalid('is in dollars: give asset.decimals to convert it.')
    const whole = usd[1] ?? '0'
    const fraction = (usd[2] ?? '').replace(/0+$/, '')
    if (fraction.length > decimals) {
      return invalid(
        whole === '0' && /^0*$/.test(fraction.slice(0, decimals))
          ? `is below one token unit (${decimals} decimals).`
          : `is not a whole number of token units (${decimals} decimals).`,
      )
    }
    const scale = 10n ** BigInt(decimals)
    units = BigInt(whole) * scale + BigInt(fraction.padEnd(decimals, '0') || '0')
  }
  if (units < 1n) return invalid('is below one token unit.')
  if (units > MAX_UINT128) return invalid('exceeds uint128.')
  return units
}

/**
 * The dollars of a price given in dollars, as an exact rational; `undefined` for any other
 * price (token units are never converted). Call it on a price {@link parsePrice} accepted.
 *
 * @example
 * parseDollars('$0.001') // { numerator: 1n, denominator: 1000n }
 * parseDollars('1000') // undefined
 */
export function parseDollars(price: unknown): Dollars | undefined {
  const usd = typeof price === 'string' ? USD.exec(price) : null
  if (!usd) return undefined
  const fraction = usd[2] ?? ''
  const denominator = 10n ** BigInt(fraction.length)
  return { numerator: BigInt(usd[1] ?? '0') * denominator + BigInt(fraction || '0'), denominator }
}
