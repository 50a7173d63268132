import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAddress, parseBytes32, parseHexBytes, parseUint } from '../../src/protocol/parse.js'

// The grammar of each field, as patterns: the table-driven parsers must agree with them exactly.
const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const BYTES32 = /^0x[0-9a-fA-F]{64}$/
const HEX = /^0x(?:[0-9a-fA-F]{2})*$/

/** Near-hex strings: the prefix right or wrong, digits of either case, a stray character sometimes. */
const nearHex = (minDigits: number, maxDigits: number) =>
  fc
    .tuple(
      fc.constantFrom('0x', '0X', 'x0', '0', ''),
      fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), {
        minLength: minDigits,
        maxLength: maxDigits,
      }),
      fc.option(
        fc.tuple(fc.nat(), fc.constantFrom('g', 'G', ' ', '\n', 'é', '٣', '\u0000', 'x', '0x')),
      ),
    )
    .map(([prefix, digits, stray]) => {
      if (stray) digits.splice(stray[0] % (digits.length + 1), 0, stray[1])
      return prefix + digits.join('')
    })

const DECIMAL = /^(?:0|[1-9][0-9]*)$/

const expected = (pattern: RegExp, value: string) =>
  pattern.test(value) ? value.toLowerCase() : undefined

describe('hex field parsers', () => {
  it('parseAddress accepts exactly 0x and 40 hex digits, lowercased', () => {
    fc.assert(
      fc.property(nearHex(38, 42), (value) => {
        expect(parseAddress(value)).toBe(expected(ADDRESS, value))
      }),
      { numRuns: 2000 },
    )
  })

  it('parseBytes32 accepts exactly 0x and 64 hex digits, lowercased', () => {
    fc.assert(
      fc.property(nearHex(62, 66), (value) => {
        expect(parseBytes32(value)).toBe(expected(BYTES32, value))
      }),
      { numRuns: 2000 },
    )
  })

  it('parseHexBytes accepts whole bytes of hex within its length bounds, lowercased', () => {
    fc.assert(
      fc.property(nearHex(0, 12), fc.nat(4), fc.nat(4), (value, min, span) => {
        const bytes = (value.length - 2) / 2
        const within = bytes >= min && bytes <= min + span
        expect(parseHexBytes(value, min, min + span)).toBe(
          within ? expected(HEX, value) : undefined,
        )
      }),
      { numRuns: 2000 },
    )
  })

  it('returns a lowercase value as it came, and refuses what is not a string', () => {
    const lower = `0x${'ab'.repeat(20)}`
    expect(parseAddress(lower)).toBe(lower)
    expect(parseAddress(`0x${'AB'.repeat(20)}`)).toBe(lower)
    for (const value of [undefined, null, 42, 42n, [lower], { lower }]) {
      expect(parseAddress(value)).toBeUndefined()
      expect(parseBytes32(value)).toBeUndefined()
      expect(parseHexBytes(value, 0, 100)).toBeUndefined()
    }
  })
})

describe('parseUint', () => {
  const nearDecimal = fc
    .tuple(
      fc.array(fc.constantFrom(...'0123456789'), { minLength: 0, maxLength: 80 }),
      fc.option(fc.tuple(fc.nat(), fc.constantFrom('-', '+', '.', 'e', ' ', 'a', '٣', '\u0000'))),
    )
    .map(([digits, stray]) => {
      if (stray) digits.splice(stray[0] % (digits.length + 1), 0, stray[1])
      return digits.join('')
    })

  it('accepts exactly canonical decimals of at most 78 digits up to its bound', () => {
    const bounds = [0n, 1n, 10n ** 15n, (1n << 53n) + 1n, (1n << 128n) - 1n, (1n << 256n) - 1n]
    fc.assert(
      fc.property(nearDecimal, fc.constantFrom(...bounds), (value, max) => {
        const canonical = value.length <= 78 && DECIMAL.test(value)
        const want = canonical && BigInt(value) <= max ? BigInt(value) : undefined
        expect(parseUint(value, max)).toBe(want)
      }),
      { numRuns: 3000 },
    )
    expect(parseUint('999999999999999', 10n ** 15n)).toBe(999999999999999n)
    expect(parseUint('1000000000000000', 10n ** 15n)).toBe(10n ** 15n)
    expect(parseUint('1000000000000001', 10n ** 15n)).toBeUndefined()
    expect(parseUint('00', 10n)).toBeUndefined()
    expect(parseUint('', 10n)).toBeUndefined()
    expect(parseUint(5, 10n)).toBeUndefined()
  })
})
