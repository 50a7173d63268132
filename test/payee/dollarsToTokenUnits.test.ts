import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { dollarsToTokenUnits } from '../../src/payee/index.js'
import { parseDollars } from '../../src/protocol/parsePrice.js'

describe('dollarsToTokenUnits', () => {
  it('converts dollars at a Chainlink rate, rounding up in the operator favour', () => {
    const eth = { answer: 300_000_000_000n, decimals: 8 } // $3 000 a token
    // $0.001 / $3 000 = 3.333…e-7 ETH = 333 333 333 333.3… wei: charged 333 333 333 334.
    expect(dollarsToTokenUnits({ numerator: 1n, denominator: 1000n }, 18, eth)).toBe(
      333_333_333_334n,
    )
    // Exact results are not rounded: $3 is 0.001 ETH.
    expect(dollarsToTokenUnits({ numerator: 3n, denominator: 1n }, 18, eth)).toBe(10n ** 15n)
    // A dollar stablecoin at exactly $1 converts one to one.
    const peg = { answer: 100_000_000n, decimals: 8 }
    expect(dollarsToTokenUnits({ numerator: 1n, denominator: 1000n }, 6, peg)).toBe(1000n)
    // A token worth $2 with 6 decimals: $0.001 is 500 units; worth $0.5, 2000 units.
    expect(
      dollarsToTokenUnits({ numerator: 1n, denominator: 1000n }, 6, { answer: 2n, decimals: 0 }),
    ).toBe(500n)
    expect(
      dollarsToTokenUnits({ numerator: 1n, denominator: 1000n }, 6, {
        answer: 50_000_000n,
        decimals: 8,
      }),
    ).toBe(2000n)
    // A price far below one unit still charges one unit, never zero.
    expect(dollarsToTokenUnits({ numerator: 1n, denominator: 10n ** 12n }, 6, peg)).toBe(1n)
  })

  it('is never below the exact value and less than one unit above it', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 30n }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 36 }),
        fc.bigInt({ min: 1n, max: 10n ** 40n }),
        fc.integer({ min: 0, max: 18 }),
        (numerator, fractionDigits, tokenDecimals, answer, feedDecimals) => {
          const denominator = 10n ** BigInt(fractionDigits)
          const units = dollarsToTokenUnits({ numerator, denominator }, tokenDecimals, {
            answer,
            decimals: feedDecimals,
          })
          // exact = numerator × 10^tokenDecimals × 10^feedDecimals / (denominator × answer);
          // compare units × (denominator × answer) with the exact numerator, without division.
          const top = numerator * 10n ** BigInt(tokenDecimals + feedDecimals)
          const bottom = denominator * answer
          expect(units * bottom >= top).toBe(true) // units >= exact
          expect((units - 1n) * bottom < top).toBe(true) // units - 1 < exact
        },
      ),
      { numRuns: 5000 },
    )
  })

  it('refuses a rate that is not positive', () => {
    const dollars = { numerator: 1n, denominator: 1000n }
    expect(() => dollarsToTokenUnits(dollars, 6, { answer: 0n, decimals: 8 })).toThrow(RangeError)
    expect(() => dollarsToTokenUnits(dollars, 6, { answer: -1n, decimals: 8 })).toThrow(RangeError)
  })
})

describe('parseDollars', () => {
  it('reads a dollar price as an exact rational and leaves token units alone', () => {
    expect(parseDollars('$0.001')).toEqual({ numerator: 1n, denominator: 1000n })
    expect(parseDollars('$12.50')).toEqual({ numerator: 1250n, denominator: 100n })
    expect(parseDollars('$3')).toEqual({ numerator: 3n, denominator: 1n })
    expect(parseDollars('1000')).toBeUndefined()
    expect(parseDollars(1000n)).toBeUndefined()
    expect(parseDollars('0.001')).toBeUndefined()
    expect(parseDollars('$-1')).toBeUndefined()
  })
})
