import type { Address, Hex } from 'viem'
import type { ErrorCode } from '../../errors/index.js'
import type { VoucherRule } from '../../ledger/transitions.js'
import type { ChainEvent, ChannelRecord } from '../../ledger/types.js'

/** The fields of a channel record that change: everything but its id and config. */
export type ChannelState = Omit<ChannelRecord, 'channelId' | 'config'>

/** What {@link SharedLedger.hold} is asked: a voucher whose signature the caller verified. */
export interface HoldRequest {
  readonly channelId: Hex
  readonly maxClaimableAmount: bigint
  /** The voucher's signature, as the escrow takes it (27/28 `v`). */
  readonly signature: Hex
  readonly rule: VoucherRule
  /** Who holds the channel: unique per request (or session) across all instances. */
  readonly holder: string
  /** How long the hold lasts unless renewed: past it, its holder is taken to have died. */
  readonly ttlMs: number
  readonly exposureCap: bigint
  /** A credit top-up on the caller's own hold (a WebSocket session). */
  readonly extend: boolean
  /**
   * The payer's rate limit, checked and counted in the same step: a payer with `max` holds in
   * the current window of `windowMs` is refused before its voucher is judged; a hold counts one.
   */
  readonly payerLimit?: PayerLimit | undefined
}

/** A rate limit per payer that the shared store counts (one window per payer, shared by all instances). */
export interface PayerLimit {
  readonly payer: Address
  readonly max: number
  readonly windowMs: number
}

/** The answer of {@link SharedLedger.hold}. */
export type HoldOutcome =
  | {
      readonly status: 'held'
      readonly state: ChannelState
      /** The voucher held before the hold began, restored by a release no charge needs the newer one for. */
      readonly previous: Pick<ChannelRecord, 'signedMaxClaimable' | 'signature'>
    }
  | { readonly status: 'refused'; readonly code: ErrorCode; readonly state: ChannelState }
  /** The channel is not in the store: read it from chain and {@link SharedLedger.create} it. */
  | { readonly status: 'unknown' }
  /** Another holder holds the channel. */
  | { readonly status: 'busy' }
  /** An extend whose hold expired and was taken over. */
  | { readonly status: 'lost' }
  /** The payer used up its {@link HoldRequest.payerLimit}: the window ends in `retryAfterMs`. */
  | { readonly status: 'limited'; readonly retryAfterMs: number }

/**
 * The channel state machine of src/ledger/transitions.ts kept in a store that several server
 * instances share, each transition one atomic step on the channel's record (DESIGN.md, Scale).
 * Signatures are the caller's to verify, before calling. A write that resolves is durable as far
 * as the store's mode promises.
 */
export interface SharedLedger {
  /** How long a hold lasts unless renewed, when the store says (the payee's option wins). */
  readonly holdTtlMs?: number | undefined
  /**
   * Judges a voucher against the channel as the store holds it and, if accepted, stores it and
   * holds the channel for `holder` (one request or session at a time per channel). A hold found
   * expired is ended first by the crash rule: what it had in flight is charged. A request's hold
   * whose end has not landed yet is ended as committed by an exact voucher that signs on from its
   * whole in-flight amount (the payer has its receipt), so a sequential payer is never busy.
   */
  hold(request: HoldRequest): Promise<HoldOutcome>
  /**
   * Ends `holder`'s hold with the charged total raised to `charged` (at most what was in flight):
   * a commit, or with `restore` a release that puts back the voucher held before when no charge
   * needs the newer one. False when the hold is not `holder`'s any more; true when the payer's
   * next voucher ended it already, as committed at its whole in-flight amount (see
   * {@link SharedLedger.hold}).
   */
  end(channelId: Hex, holder: string, charged: bigint, restore: boolean): Promise<boolean>
  /**
   * A held session stores its charged total and reserves up to `reserve` beyond it (within its
   * ceiling); the hold is renewed for `ttlMs`. Returns the stored charged and in-flight amounts,
   * or undefined when the hold is not `holder`'s any more.
   */
  reserve(
    channelId: Hex,
    holder: string,
    charged: bigint,
    reserve: bigint,
    ttlMs: number,
  ): Promise<{ chargedCumulativeAmount: bigint; inFlightCumulativeAmount: bigint } | undefined>
  /** Stores a channel read from chain for the first time; a record already there wins. */
  create(record: ChannelRecord): Promise<void>
  /**
   * Mirrors an on-chain event (absolute values: applying it twice is harmless). Returns the
   * channel's state after it, or undefined for a channel not in the store.
   */
  apply(event: ChainEvent): Promise<ChannelState | undefined>
  /** The channel's record as the store holds it. */
  load(channelId: Hex): Promise<ChannelRecord | undefined>
  /** Of `channelIds`, those the store holds (in one round trip). */
  existing(channelIds: readonly Hex[]): Promise<Set<Hex>>
}

/** Whether a store shares its channels with other instances through a {@link SharedLedger}. */
export function isSharedLedger(store: object): store is SharedLedger {
  return (
    typeof (store as Partial<SharedLedger>).hold === 'function' &&
    typeof (store as Partial<SharedLedger>).end === 'function'
  )
}
