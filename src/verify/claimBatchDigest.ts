import type { Hex } from 'viem'
import type { DomainSeparator } from './domainSeparator.js'
import { malformed, typedDataDigest } from './eip712.js'
import { writeHex, writeUintWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { TYPEHASH_BYTES } from './typehashes.js'

/** One row of a `ClaimBatch`. */
export interface ClaimEntry {
  channelId: Hex
  /** The voucher ceiling being claimed against, a uint128. */
  maxClaimableAmount: bigint
  /** The new cumulative total claimed on the channel, a uint128. */
  totalClaimed: bigint
}

const ENTRY_BUF = /* @__PURE__ */ (() => {
  const buf = new Uint8Array(128)
  buf.set(TYPEHASH_BYTES.ClaimEntry, 0)
  return buf
})()

const BATCH_BUF = /* @__PURE__ */ (() => {
  const buf = new Uint8Array(64)
  buf.set(TYPEHASH_BYTES.ClaimBatch, 0)
  return buf
})()

/**
 * The EIP-712 digest a receiver authorizer signs for `claimWithSignature`:
 * `ClaimBatch(ClaimEntry[] claims)`, where the array encodes as keccak256 of the
 * concatenated `ClaimEntry` struct hashes (EIP-712 §encodeData, arrays).
 *
 * @param domain - From {@link domainSeparator} or {@link domainSeparatorBytes}.
 * @param claims - The rows, in the order they are submitted.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_internal` when a row is malformed or out of range.
 * @example
 * const digest = claimBatchDigest(sep, [{ channelId, maxClaimableAmount: 5000n, totalClaimed: 4000n }])
 */
export function claimBatchDigest(
  domain: DomainSeparator,
  claims: readonly ClaimEntry[],
): Uint8Array {
  const hashes = new Uint8Array(32 * claims.length)
  for (let i = 0; i < claims.length; i++) {
    const claim = claims[i]
    if (
      claim === undefined ||
      !writeHex(claim.channelId, 32, ENTRY_BUF, 32) ||
      !writeUintWord(claim.maxClaimableAmount, 16, ENTRY_BUF, 64) ||
      !writeUintWord(claim.totalClaimed, 16, ENTRY_BUF, 96)
    ) {
      throw malformed(`claims[${i}]`)
    }
    hashes.set(keccak256(ENTRY_BUF), 32 * i)
  }
  BATCH_BUF.set(keccak256(hashes), 32)
  return typedDataDigest(domain, keccak256(BATCH_BUF))
}
