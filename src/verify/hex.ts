/**
 * Allocation-free hex and big-endian word codecs for the hashing hot path. No regular
 * expressions: one table lookup per character. Readers return `false` on malformed input
 * and leave the caller to decide whether that is a rejection or a bug.
 */
import type { Hex } from 'viem'

const INVALID = 0xff

/** Nibble value of an ASCII code, or {@link INVALID}. */
const DECODE = /* @__PURE__ */ (() => {
  const table = new Uint8Array(256).fill(INVALID)
  for (let i = 0; i < 10; i++) table[48 + i] = i
  for (let i = 0; i < 6; i++) {
    table[65 + i] = 10 + i
    table[97 + i] = 10 + i
  }
  return table
})()

const ENCODE: readonly string[] = Array.from({ length: 256 }, (_, i) =>
  i.toString(16).padStart(2, '0'),
)

function nibble(code: number): number {
  return DECODE[code] ?? INVALID
}

/** Whether `value` starts with the `0x` prefix (lowercase x, as viem's `Hex` type has it). */
function hasPrefix(value: string): boolean {
  return value.charCodeAt(0) === 48 && value.charCodeAt(1) === 120
}

/**
 * Decodes `byteLength` bytes from the hex digits of `value` starting at character `start`
 * into `out` at `offset`. The caller checks the prefix and the length. False on a non-hex digit.
 */
export function decodeHexAt(
  value: string,
  start: number,
  byteLength: number,
  out: Uint8Array,
  offset: number,
): boolean {
  for (let i = 0, j = start; i < byteLength; i++, j += 2) {
    const hi = nibble(value.charCodeAt(j))
    const lo = nibble(value.charCodeAt(j + 1))
    if (hi === INVALID || lo === INVALID) return false
    out[offset + i] = (hi << 4) | lo
  }
  return true
}

/**
 * Decodes `0x` + exactly `2 * byteLength` hex digits (any case) into `out` at `offset`.
 * Returns false, having possibly written part of the range, when the input is malformed.
 */
export function writeHex(
  value: unknown,
  byteLength: number,
  out: Uint8Array,
  offset: number,
): boolean {
  if (typeof value !== 'string' || value.length !== 2 + 2 * byteLength || !hasPrefix(value))
    return false
  return decodeHexAt(value, 2, byteLength, out, offset)
}

/** Whether `value` is a string starting with the `0x` prefix. */
export function isPrefixed(value: unknown): value is string {
  return typeof value === 'string' && hasPrefix(value)
}

/** Whether `value` is `0x` followed by an even number of hex digits (any case). */
export function isHex(value: unknown): value is Hex {
  if (typeof value !== 'string' || (value.length & 1) !== 0 || !hasPrefix(value)) return false
  for (let j = 2; j < value.length; j++) if (nibble(value.charCodeAt(j)) === INVALID) return false
  return true
}

/**
 * Decodes a `0x` hex string of even length into a new byte array.
 *
 * @param value - `0x`-prefixed hex, any case.
 * @returns The bytes, or `null` when `value` is not well-formed hex.
 * @example
 * hexToBytes('0x00ff') // Uint8Array [0, 255]
 */
export function hexToBytes(value: string): Uint8Array | null {
  if (!isHex(value)) return null
  const out = new Uint8Array((value.length - 2) / 2)
  writeHex(value, out.length, out, 0)
  return out
}

/**
 * Encodes bytes as lowercase `0x` hex.
 *
 * @param bytes - The bytes to encode.
 * @param offset - First byte to encode. @default 0
 * @param length - Number of bytes to encode. @default the rest of `bytes`
 * @returns Lowercase `0x` hex.
 * @example
 * bytesToHex(new Uint8Array([0, 255])) // '0x00ff'
 */
export function bytesToHex(bytes: Uint8Array, offset = 0, length = bytes.length - offset): Hex {
  let out = '0x'
  for (let i = offset, end = offset + length; i < end; i++) out += ENCODE[bytes[i] ?? 0]
  return out as Hex
}

/**
 * Writes an unsigned integer of at most `maxBytes` bytes as a big-endian 32-byte ABI word.
 * Returns false for a non-bigint, a negative value or one that does not fit.
 */
export function writeUintWord(
  value: unknown,
  maxBytes: number,
  out: Uint8Array,
  offset: number,
): boolean {
  if (typeof value !== 'bigint' || value < 0n) return false
  const digits = value.toString(16)
  let i = digits.length
  if (i > 2 * maxBytes) return false
  out.fill(0, offset, offset + 32)
  let o = offset + 31
  for (; i >= 2; i -= 2)
    out[o--] = (nibble(digits.charCodeAt(i - 2)) << 4) | nibble(digits.charCodeAt(i - 1))
  if (i === 1) out[o] = nibble(digits.charCodeAt(0))
  return true
}

/**
 * Writes a non-negative safe integer below `2 ** bits` as a big-endian 32-byte ABI word.
 * Returns false for anything else.
 */
export function writeNumberWord(
  value: unknown,
  bits: number,
  out: Uint8Array,
  offset: number,
): boolean {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return false
  if (bits < 53 && value >= 2 ** bits) return false
  out.fill(0, offset, offset + 32)
  let rest = value
  for (let o = offset + 31; rest > 0; o--) {
    out[o] = rest % 256
    rest = Math.floor(rest / 256)
  }
  return true
}

/** Writes a 20-byte address as a left-padded ABI word. Returns false when malformed. */
export function writeAddressWord(value: unknown, out: Uint8Array, offset: number): boolean {
  out.fill(0, offset, offset + 12)
  return writeHex(value, 20, out, offset + 12)
}
