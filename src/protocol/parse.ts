import type { Address, Hex } from 'viem'
import { MAX_UINT40 } from './constants.js'
import type { Network, ResourceInfo } from './types.js'

// Field checks of untrusted JSON values. Each returns the normalized value or `undefined`; callers
// map `undefined` to a stable error code. Hex and decimal digits are checked by one table lookup a
// character (the hot path: a voucher header holds nine hex fields); patterns are compiled once.

/** Unsigned decimal: no sign, no leading zero, no exponent, no whitespace. */
const DECIMAL = /^(?:0|[1-9][0-9]*)$/
/** CAIP-2 for EVM chains: `eip155:` and a chain id without leading zero. */
const EIP155 = /^eip155:[1-9][0-9]{0,15}$/
/** CAIP-2 in general (`namespace:reference`), for requirements of any scheme. */
const CAIP2 = /^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/
/** Digits of 2^256 - 1: no canonical decimal longer than this fits any Solidity uint. */
const MAX_UINT_DIGITS = 78

/** `T` with its fields writable, to fill a decoded value field by field. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Per ASCII code: {@link LOWER} for 0-9 and a-f, {@link UPPER} for A-F, 0 for anything else. */
const LOWER = 1
const UPPER = 2
const HEX_DIGIT = /* @__PURE__ */ (() => {
  const table = new Uint8Array(128)
  for (let c = 48; c <= 57; c++) table[c] = LOWER
  for (let c = 97; c <= 102; c++) table[c] = LOWER
  for (let c = 65; c <= 70; c++) table[c] = UPPER
  return table
})()

/**
 * `value` as lowercase `Hex` when it is `0x` and nothing but hex digits (any case; the caller
 * checked the length), else undefined. A value already lowercase is returned as is.
 */
function lowerHex(value: string): Hex | undefined {
  if (value.charCodeAt(0) !== 48 || value.charCodeAt(1) !== 120) return undefined
  let seen = LOWER
  for (let i = 2; i < value.length; i++) {
    const kind = HEX_DIGIT[value.charCodeAt(i)] ?? 0
    if (kind === 0) return undefined
    seen |= kind
  }
  return (seen === LOWER ? value : value.toLowerCase()) as Hex
}

/** A 20-byte hex address in any case (the EIP-55 checksum is not checked), lowercased. */
export function parseAddress(value: unknown): Address | undefined {
  return typeof value === 'string' && value.length === 42
    ? (lowerHex(value) as Address | undefined)
    : undefined
}

/** A 32-byte hex value, lowercased. */
export function parseBytes32(value: unknown): Hex | undefined {
  return typeof value === 'string' && value.length === 66 ? lowerHex(value) : undefined
}

/** Hex bytes whose length lies in [minBytes, maxBytes], lowercased. */
export function parseHexBytes(value: unknown, minBytes: number, maxBytes: number): Hex | undefined {
  if (typeof value !== 'string' || (value.length & 1) !== 0) return undefined
  const bytes = (value.length - 2) / 2
  if (bytes < minBytes || bytes > maxBytes) return undefined
  return lowerHex(value)
}

/** Whether a string is an unsigned decimal in canonical form. */
export function isDecimal(value: string): boolean {
  return DECIMAL.test(value)
}

/** A canonical unsigned decimal string not above `max`. */
export function parseUint(value: unknown, max: bigint): bigint | undefined {
  if (typeof value !== 'string' || value.length > MAX_UINT_DIGITS) return undefined
  let parsed: bigint
  if (value.length <= SAFE_DIGITS) {
    const n = smallDecimal(value)
    if (n === undefined) return undefined
    parsed = BigInt(n)
  } else {
    if (!DECIMAL.test(value)) return undefined
    parsed = BigInt(value)
  }
  return parsed <= max ? parsed : undefined
}

/** Decimal digits that always fit a double exactly (10^15 < 2^53). */
const SAFE_DIGITS = 15

/** The value of a canonical decimal of at most {@link SAFE_DIGITS} digits, else undefined. */
function smallDecimal(value: string): number | undefined {
  const length = value.length
  if (length === 0 || (length > 1 && value.charCodeAt(0) === 48)) return undefined
  let n = 0
  for (let i = 0; i < length; i++) {
    const digit = value.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return undefined
    n = n * 10 + digit
  }
  return n
}

/** A non-negative safe integer not above `max`. */
export function parseUintNumber(value: unknown, max: number): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max
    ? value
    : undefined
}

/** A CAIP-2 `eip155:<chainId>` network. */
export function parseNetwork(value: unknown): Network | undefined {
  return typeof value === 'string' && EIP155.test(value) ? (value as Network) : undefined
}

/** A CAIP-2 network of any namespace. */
export function parseCaip2(value: unknown): Network | undefined {
  return typeof value === 'string' && CAIP2.test(value) ? (value as Network) : undefined
}

/** A unix timestamp in seconds as the escrow stores it (`uint40`). */
export function parseTimestamp(value: unknown): number | undefined {
  return parseUintNumber(value, MAX_UINT40)
}

/** An optional string field: absent, or a string. */
export function isOptionalString(value: unknown): boolean {
  return value === undefined || typeof value === 'string'
}

/** `ResourceInfo`: an object with a string `url` and optional string `description`/`mimeType`. */
export function isResourceInfo(value: unknown): value is ResourceInfo {
  return (
    isRecord(value) &&
    typeof value.url === 'string' &&
    isOptionalString(value.description) &&
    isOptionalString(value.mimeType)
  )
}
