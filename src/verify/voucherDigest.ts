import type { Hex } from 'viem'
import type { DomainSeparator } from './domainSeparator.js'
import { malformed, typedDataDigest } from './eip712.js'
import { writeHex, writeUintWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { TYPEHASH_BYTES } from './typehashes.js'

/** A 96-byte `Voucher` struct encoding buffer with its typehash in place. */
export function newVoucherBuffer(): Uint8Array {
  const buf = new Uint8Array(96)
  buf.set(TYPEHASH_BYTES.Voucher, 0)
  return buf
}

/** Writes channelId (bytes32) and maxClaimableAmount (uint128) after the typehash. False when malformed. */
export function writeVoucher(
  buf: Uint8Array,
  channelId: unknown,
  maxClaimableAmount: unknown,
): boolean {
  return writeHex(channelId, 32, buf, 32) && writeUintWord(maxClaimableAmount, 16, buf, 64)
}

const VOUCHER_BUF = /* @__PURE__ */ newVoucherBuffer()

/**
 * The EIP-712 digest a payer signs for a voucher: `Voucher(bytes32 channelId,uint128 maxClaimableAmount)`
 * under the escrow domain (what the escrow's `getVoucherDigest` returns).
 *
 * @param domain - From {@link domainSeparator} or {@link domainSeparatorBytes}.
 * @param channelId - 32-byte hex.
 * @param maxClaimableAmount - Cumulative ceiling in token units, a uint128.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_internal` when an argument is malformed or out of range.
 * @example
 * const digest = voucherDigest(sep, voucher.channelId, 5000n)
 */
export function voucherDigest(
  domain: DomainSeparator,
  channelId: Hex,
  maxClaimableAmount: bigint,
): Uint8Array {
  if (!writeVoucher(VOUCHER_BUF, channelId, maxClaimableAmount)) throw malformed('voucher')
  return typedDataDigest(domain, keccak256(VOUCHER_BUF))
}
