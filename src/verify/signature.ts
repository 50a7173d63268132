/**
 * 65-byte `r ‖ s ‖ v` ECDSA signatures as the escrow checks them (OpenZeppelin
 * `ECDSA.tryRecover`): 1 <= r < n, 1 <= s <= n/2 (low-s, EIP-2), v in {27, 28}.
 * v in {0, 1} is accepted here and normalised; the escrow itself wants 27/28, so store
 * {@link normalizeSignature}'s output, not the raw bytes.
 */
import type { Hex } from 'viem'
import { bytesToHex, decodeHexAt, isPrefixed } from './hex.js'

function constant(hex: string): Uint8Array {
  const out = new Uint8Array(32)
  decodeHexAt(hex, 0, 32, out, 0)
  return out
}

/** secp256k1 group order n (SEC 2 §2.4.1), big-endian. */
const N = /* @__PURE__ */ constant(
  'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141',
)
/** floor(n / 2): the largest low s (EIP-2). */
const HALF_N = /* @__PURE__ */ constant(
  '7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0',
)

/** -1, 0, 1 as `a[offset..offset+32]` is below, equal to, above `b`. */
function compare32(a: Uint8Array, offset: number, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const x = a[offset + i] ?? 0
    const y = b[i] ?? 0
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

function isZero32(a: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 32; i++) if (a[offset + i] !== 0) return false
  return true
}

/** Whether s (bytes 32..64 of a compact signature) is at most n/2. */
export function isLowS(compact: Uint8Array): boolean {
  return compare32(compact, 32, HALF_N) <= 0
}

/** Whether a 64-byte compact signature holds 1 <= r < n and 1 <= s <= n/2. */
export function isCanonicalCompact(compact: Uint8Array): boolean {
  return (
    compact.length === 64 &&
    !isZero32(compact, 0) &&
    compare32(compact, 0, N) < 0 &&
    !isZero32(compact, 32) &&
    isLowS(compact)
  )
}

const V_BUF = /* @__PURE__ */ new Uint8Array(1)

/**
 * Decodes a 65-byte hex signature into `compact` (r ‖ s, 64 bytes) and returns the
 * recovery id 0 or 1, or -1 when the signature is malformed, out of range or high-s.
 * Never throws; allocates nothing.
 */
export function readSignature(signature: unknown, compact: Uint8Array): number {
  if (!isPrefixed(signature) || signature.length !== 132) return -1
  if (!decodeHexAt(signature, 2, 64, compact, 0) || !decodeHexAt(signature, 130, 1, V_BUF, 0))
    return -1
  const v = V_BUF[0] ?? 0xff
  const recid = v >= 27 ? v - 27 : v
  if (recid !== 0 && recid !== 1) return -1
  return isCanonicalCompact(compact) ? recid : -1
}

/** A decoded, range-checked, low-s signature. */
export interface ParsedSignature {
  /** r ‖ s, 64 bytes. */
  readonly compact: Uint8Array
  /** The recovery id: parity of R.y (v - 27). */
  readonly recid: 0 | 1
}

/**
 * Decodes a 65-byte `r ‖ s ‖ v` hex signature, checking 1 <= r < n, 1 <= s <= n/2 and v in
 * {27, 28, 0, 1}.
 *
 * @param signature - 0x + 130 hex digits.
 * @returns The compact bytes and recovery id, or `null` when invalid. Never throws.
 * @example
 * const parsed = parseSignature(voucher.signature) // { compact, recid } | null
 */
export function parseSignature(signature: Hex): ParsedSignature | null {
  const compact = new Uint8Array(64)
  const recid = readSignature(signature, compact)
  return recid < 0 ? null : { compact, recid: recid as 0 | 1 }
}

/**
 * The canonical form of a valid signature: lowercase hex with v in {27, 28}. This is the
 * form the escrow's `ECDSA.tryRecover` accepts; keep it, not the raw input, as the
 * voucher signature to claim with.
 *
 * @param signature - 0x + 130 hex digits, v in {27, 28, 0, 1}.
 * @returns The canonical signature, or `null` when it is invalid (see {@link parseSignature}).
 * @example
 * normalizeSignature('0x…00') // '0x…1b'
 */
export function normalizeSignature(signature: Hex): Hex | null {
  const recid = readSignature(signature, NORMALIZE_BUF)
  if (recid < 0) return null
  if (isCanonicalText(signature)) return signature
  return `${bytesToHex(NORMALIZE_BUF)}${recid === 0 ? '1b' : '1c'}` as Hex
}

/**
 * The form of a voucher signature to store and claim with: a valid 65-byte signature as
 * {@link normalizeSignature} gives it, anything else (an EIP-1271 wallet's signature) as it came.
 * One already in canonical form is returned as is without being decoded.
 *
 * @param signature - A signature from a payload.
 * @returns The signature to keep.
 * @example
 * claimableSignature('0x…00') // '0x…1b'
 */
export function claimableSignature(signature: Hex): Hex {
  if (signature.length === 132 && isCanonicalText(signature)) return signature
  return normalizeSignature(signature) ?? signature
}

const NORMALIZE_BUF = /* @__PURE__ */ new Uint8Array(64)

/**
 * Whether a signature {@link readSignature} accepted is already written canonically: v as `1b`
 * or `1c`, and no uppercase hex digit (A-F, char codes 65 to 70).
 */
function isCanonicalText(signature: string): boolean {
  const v = signature.charCodeAt(131)
  if (signature.charCodeAt(130) !== 49 || (v !== 98 && v !== 99)) return false
  for (let i = 2; i < 130; i++) {
    const c = signature.charCodeAt(i)
    if (c >= 65 && c <= 70) return false
  }
  return true
}
