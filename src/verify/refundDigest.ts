import type { Hex } from 'viem'
import type { DomainSeparator } from './domainSeparator.js'
import { malformed, typedDataDigest } from './eip712.js'
import { writeHex, writeUintWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { TYPEHASH_BYTES } from './typehashes.js'

/** A 128-byte `Refund` struct encoding buffer with its typehash in place. */
export function newRefundBuffer(): Uint8Array {
  const buf = new Uint8Array(128)
  buf.set(TYPEHASH_BYTES.Refund, 0)
  return buf
}

/** Writes channelId (bytes32), nonce (uint256) and amount (uint128). False when malformed. */
export function writeRefund(
  buf: Uint8Array,
  channelId: unknown,
  nonce: unknown,
  amount: unknown,
): boolean {
  return (
    writeHex(channelId, 32, buf, 32) &&
    writeUintWord(nonce, 32, buf, 64) &&
    writeUintWord(amount, 16, buf, 96)
  )
}

const REFUND_BUF = /* @__PURE__ */ newRefundBuffer()

/**
 * The EIP-712 digest a receiver authorizer signs for `refundWithSignature`:
 * `Refund(bytes32 channelId,uint256 nonce,uint128 amount)` under the escrow domain.
 *
 * @param domain - From {@link domainSeparator} or {@link domainSeparatorBytes}.
 * @param channelId - 32-byte hex.
 * @param nonce - The channel's current `refundNonce`, a uint256.
 * @param amount - Refund amount in token units, a uint128.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_internal` when an argument is malformed or out of range.
 * @example
 * const digest = refundDigest(sep, channelId, 0n, 1_000n)
 */
export function refundDigest(
  domain: DomainSeparator,
  channelId: Hex,
  nonce: bigint,
  amount: bigint,
): Uint8Array {
  if (!writeRefund(REFUND_BUF, channelId, nonce, amount)) throw malformed('refund')
  return typedDataDigest(domain, keccak256(REFUND_BUF))
}
