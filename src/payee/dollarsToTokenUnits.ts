import type { Dollars } from '../protocol/parsePrice.js'

export type { Dollars }

/**
 * What one whole token is worth in dollars, as a Chainlink USD feed answers it:
 * `answer / 10^decimals` (the ETH / USD feed: `answer` 300000000000, `decimals` 8, $3 000).
 */
export interface TokenRate {
  /** Positive. */
  readonly answer: bigint
  readonly decimals: number
}

/**
 * Converts dollars to token units at a rate, rounded up: the result is never below the exact
 * value `dollars × 10^tokenDecimals / (answer / 10^decimals)` and less than one unit above it,
 * so any rounding is in the operator's favour and by less than one token unit.
 *
 * @param dollars The price, exactly (see `parseDollars`).
 * @param tokenDecimals The token's decimals (WETH: 18).
 * @param rate Dollars per whole token.
 * @returns Token units, at least 1 for a positive price.
 * @throws RangeError for a rate whose answer is not positive or a denominator that is not
 *   positive (a programming error: feed answers are checked before they become rates).
 * @example
 * // $0.001 in an 18-decimal token worth $3 000: 333 333 333 334 units (exactly 333 333 333 333.3…).
 * dollarsToTokenUnits({ numerator: 1n, denominator: 1000n }, 18, { answer: 300000000000n, decimals: 8 })
 */
export function dollarsToTokenUnits(
  dollars: Dollars,
  tokenDecimals: number,
  rate: TokenRate,
): bigint {
  if (rate.answer <= 0n) throw new RangeError(`rate answer ${rate.answer} is not positive`)
  if (dollars.denominator <= 0n) {
    throw new RangeError(`denominator ${dollars.denominator} is not positive`)
  }
  const numerator = dollars.numerator * 10n ** BigInt(tokenDecimals + rate.decimals)
  const denominator = dollars.denominator * rate.answer
  const quotient = numerator / denominator
  return numerator % denominator === 0n ? quotient : quotient + 1n
}
