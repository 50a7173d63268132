import fc from 'fast-check'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { hexToBytes } from '../../src/verify/hex.js'
import {
  bytesToHex,
  claimableSignature,
  normalizeSignature,
  parseSignature,
} from '../../src/verify/index.js'
import { alice, flipV, highS, N, zeroOneV } from './fixtures.js'

const word = (v: bigint) => v.toString(16).padStart(64, '0')
const sig = (r: bigint, s: bigint, v: number) =>
  `0x${word(r)}${word(s)}${v.toString(16).padStart(2, '0')}` as Hex
const HALF_N = N / 2n

describe('parseSignature', () => {
  it('accepts the boundaries of the escrow rules and refuses just past them', () => {
    expect(parseSignature(sig(1n, 1n, 27))?.recid).toBe(0)
    expect(parseSignature(sig(N - 1n, HALF_N, 28))?.recid).toBe(1)
    expect(parseSignature(sig(1n, HALF_N + 1n, 27))).toBeNull()
    expect(parseSignature(sig(N, 1n, 27))).toBeNull()
    expect(parseSignature(sig(0n, 1n, 27))).toBeNull()
    expect(parseSignature(sig(1n, 0n, 27))).toBeNull()
    expect(parseSignature(sig(1n, 1n, 0))?.recid).toBe(0)
    expect(parseSignature(sig(1n, 1n, 1))?.recid).toBe(1)
    for (const v of [2, 26, 29, 35, 255]) expect(parseSignature(sig(1n, 1n, v))).toBeNull()
  })

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.anything()), (value) => {
        expect(() => parseSignature(value as Hex)).not.toThrow()
      }),
      { numRuns: 500 },
    )
  })
})

describe('normalizeSignature', () => {
  it('maps v 0/1 to 27/28 and lowercases; refuses the high-s twin', async () => {
    const signature = await alice.signMessage({ message: 'normalize' })
    expect(normalizeSignature(zeroOneV(signature))).toBe(signature)
    expect(normalizeSignature(signature.toUpperCase().replace('0X', '0x') as Hex)).toBe(signature)
    expect(normalizeSignature(flipV(signature))).toBe(flipV(signature))
    expect(normalizeSignature(highS(signature))).toBeNull()
  })
})

describe('claimableSignature', () => {
  it('is the normalized form of a valid signature, and what it got otherwise', async () => {
    const signature = await alice.signMessage({ message: 'claimable' })
    const forms = [
      signature,
      zeroOneV(signature),
      signature.toUpperCase().replace('0X', '0x') as Hex,
      `${signature.slice(0, 130)}1B` as Hex,
      flipV(signature),
      highS(signature),
      '0x1234' as Hex,
      `0x${'ab'.repeat(200)}` as Hex,
    ]
    for (const form of forms)
      expect(claimableSignature(form)).toBe(normalizeSignature(form) ?? form)
    expect(claimableSignature(zeroOneV(signature))).toBe(signature)
    expect(claimableSignature(highS(signature))).toBe(highS(signature))
  })

  it('agrees with normalizeSignature on arbitrary 65-byte signatures in any case and any v', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.constantFrom(0, 1, 27, 28, 29),
        fc.boolean(),
        (compact, v, upper) => {
          const hex = `${bytesToHex(compact)}${v.toString(16).padStart(2, '0')}`
          const form = (upper ? `0x${hex.slice(2).toUpperCase()}` : hex) as Hex
          expect(claimableSignature(form)).toBe(normalizeSignature(form) ?? form)
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('hex helpers', () => {
  it('round-trip any bytes and refuse non-hex', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const hex = bytesToHex(bytes)
        expect(hex).toBe(`0x${Buffer.from(bytes).toString('hex')}`)
        expect(hexToBytes(hex)).toEqual(bytes)
      }),
    )
    for (const bad of ['', '0x0', '0xgg', 'ab', '0X00', '0x 0']) expect(hexToBytes(bad)).toBeNull()
  })
})
