import type { Address, Hex } from 'viem'
import type { ChannelConfig } from '../protocol/types.js'

/**
 * Everything the server knows of one channel. Records are immutable: every transition returns
 * a new one. Money invariant (DESIGN.md #1): `chargedCumulativeAmount <= signedMaxClaimable`
 * always, and `signedMaxClaimable <= balance` when a voucher is accepted. Only the payer can
 * lower the balance afterwards (a finalized withdrawal, which settlement precedes with a claim of
 * everything charged); an unused part of the ceiling (a request charged below its price) above
 * the new balance is then void, while every charge stays backed: `chargedCumulativeAmount <= balance`.
 */
export interface ChannelRecord {
  readonly channelId: Hex
  readonly config: ChannelConfig
  /** What the server has charged in total (durable). */
  readonly chargedCumulativeAmount: bigint
  /** The ceiling of the highest voucher held (durable); 0 before the first voucher. */
  readonly signedMaxClaimable: bigint
  /**
   * The charged total if everything in flight on the channel was delivered: a held request's
   * price, or the part of a WebSocket session's credit reserved ahead of its messages. Equal to
   * `chargedCumulativeAmount` when nothing is held. A reload charges up to it (a process that
   * died cannot tell what it delivered), so it bounds what a crash may charge a payer beyond what
   * was delivered. Invariant: `chargedCumulativeAmount <= inFlightCumulativeAmount <= signedMaxClaimable`.
   */
  readonly inFlightCumulativeAmount: bigint
  /** The signature of that voucher; `0x` before the first. */
  readonly signature: Hex
  /** Mirror of on-chain `channels(channelId).balance`. */
  readonly balance: bigint
  /** Mirror of on-chain `channels(channelId).totalClaimed`. */
  readonly totalClaimed: bigint
  /** Unix seconds when the payer started a withdrawal; 0 when none is pending. */
  readonly withdrawRequestedAt: number
  /** Mirror of on-chain `refundNonce(channelId)`. */
  readonly refundNonce: bigint
  /** Unix milliseconds when the on-chain mirror was last read or updated from an event. */
  readonly syncedAt: number
}

/**
 * The channel fields a voucher must carry to be this server's (DESIGN.md invariant #5). The
 * chain id and escrow address are bound through the channel id (EIP-712 domain).
 */
export interface ServerIdentity {
  readonly receiver: Address
  readonly receiverAuthorizer: Address
  readonly token: Address
  readonly withdrawDelay: number
}

/**
 * The on-chain events the ledger mirrors, decoded, with absolute values (as read at the event's
 * block) so that applying one twice, as a watcher resuming after a restart may, changes nothing.
 */
export type ChainEvent =
  | { readonly type: 'deposited'; readonly channelId: Hex; readonly balance: bigint }
  | { readonly type: 'claimed'; readonly channelId: Hex; readonly totalClaimed: bigint }
  | {
      readonly type: 'refunded'
      readonly channelId: Hex
      readonly balance: bigint
      readonly refundNonce: bigint
    }
  | { readonly type: 'withdrawInitiated'; readonly channelId: Hex; readonly initiatedAt: number }
  /**
   * A withdrawal seen before its confirmations (`finalizeAfter` from its event): the channel takes
   * no new vouchers from now on. Its confirmed `withdrawInitiated` follows, or, if its block is
   * reorged out, `withdrawDropped`.
   */
  | { readonly type: 'withdrawSeen'; readonly channelId: Hex; readonly finalizeAfter: number }
  /** A withdrawal seen before confirmation whose block was reorged out. */
  | { readonly type: 'withdrawDropped'; readonly channelId: Hex; readonly finalizeAfter: number }
  | { readonly type: 'withdrawFinalized'; readonly channelId: Hex; readonly balance: bigint }

/** What settlement should claim for one channel. */
export interface ClaimCandidate {
  readonly record: ChannelRecord
  /** What a claim now would add: `chargedCumulativeAmount - totalClaimed`. */
  readonly unclaimed: bigint
  /** Unix seconds by which the claim must land (withdrawal start + delay); absent when no withdrawal is pending. */
  readonly deadline?: number
}
