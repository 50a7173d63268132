import { bytesToHex, type Hex, hexToBytes } from 'viem'
import { TollgateError } from '../errors/index.js'

/** Bytes per row of a `BatchClaimed` event's `claims`: channelId (32) | newTotalClaimed (16). */
export const BATCH_CLAIMED_ROW_BYTES = 48

/** One channel claimed by a `claimPacked` call. */
export interface BatchClaimedRow {
  readonly channelId: Hex
  /** The channel's cumulative `totalClaimed` after the call (absolute). */
  readonly totalClaimed: bigint
}

/**
 * Decodes the `claims` bytes of the escrow's tollgate-only `BatchClaimed` event (layout
 * documented on `BatchSettlement.claimPacked`): big-endian rows of channelId (32 bytes) and
 * newTotalClaimed (16 bytes), no padding.
 *
 * @param claims - the event's `claims` argument
 * @returns the rows, in the order the contract claimed them
 * @throws TollgateError `tollgate_internal` when the length is not a multiple of 48 (not our escrow)
 *
 * @example
 * for (const { channelId, totalClaimed } of decodeBatchClaimed(log.args.claims)) ...
 */
export function decodeBatchClaimed(claims: Hex): BatchClaimedRow[] {
  const bytes = hexToBytes(claims)
  if (bytes.length % BATCH_CLAIMED_ROW_BYTES !== 0) {
    throw new TollgateError(
      'tollgate_internal',
      `BatchClaimed claims of ${bytes.length} bytes are not ${BATCH_CLAIMED_ROW_BYTES}-byte rows`,
    )
  }
  const rows: BatchClaimedRow[] = []
  for (let at = 0; at < bytes.length; at += BATCH_CLAIMED_ROW_BYTES) {
    let totalClaimed = 0n
    for (let i = at + 32; i < at + BATCH_CLAIMED_ROW_BYTES; i++) {
      totalClaimed = (totalClaimed << 8n) | BigInt(bytes[i] ?? 0)
    }
    rows.push({ channelId: bytesToHex(bytes.subarray(at, at + 32)), totalClaimed })
  }
  return rows
}
