import type { Address, Hex } from 'viem'
import { MAX_UINT40 } from './constants.js'
import type { Network, ResourceInfo } from './types.js'

// Field checks of untrusted JSON values. Each returns the normalized value or `undefined`; callers
// map `undefined` to a stable error code. Patterns are compiled once, at module load.

const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const BYTES32 = /^0x[0-9a-fA-F]{64}$/
const HEX = /^0x(?:[0-9a-fA-F]{2})*$/
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

/** A 20-byte hex address in any case (the EIP-55 checksum is not checked), lowercased. */
export function parseAddress(value: unknown): Address | undefined {
  return typeof value === 'string' && ADDRESS.test(value)
    ? (value.toLowerCase() as Address)
    : undefined
}

/** A 32-byte hex value, lowercased. */
export function parseBytes32(value: unknown): Hex | undefined {
  return typeof value === 'string' && BYTES32.test(value) ? (value.toLowerCase() as Hex) : undefined
}

/** Hex bytes whose length lies in [minBytes, maxBytes], lowercased. */
export function parseHexBytes(value: unknown, minBytes: number, maxBytes: number): Hex | undefined {
  if (typeof value !== 'string') return undefined
  const bytes = (value.length - 2) / 2
  if (bytes < minBytes || bytes > maxBytes || !HEX.test(value)) return undefined
  return value.toLowerCase() as Hex
}

/** Whether a string is an unsigned decimal in canonical form. */
export function isDecimal(value: string): boolean {
  return DECIMAL.test(value)
}

/** A canonical unsigned decimal string not above `max`. */
export function parseUint(value: unknown, max: bigint): bigint | undefined {
  if (typeof value !== 'string' || value.length > MAX_UINT_DIGITS || !DECIMAL.test(value)) {
    return undefined
  }
  const n = BigInt(value)
  return n <= max ? n : undefined
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
