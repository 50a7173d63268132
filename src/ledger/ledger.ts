import type { Hex } from 'viem'
import { type Rejection, reject, TollgateError } from '../errors/index.js'
import type { ChannelConfig, SignedVoucher } from '../protocol/types.js'
import {
  type ContractSignatureCheck,
  claimableSignature,
  type VerifyVoucherForOptions,
  type VoucherVerifier,
  verifyVoucherFor,
} from '../verify/index.js'
import {
  acceptVoucher,
  applyEvent,
  charge,
  checkVoucher,
  claimCandidate,
  larger,
  putInFlight,
  settleInFlight,
  type VoucherRule,
} from './transitions.js'
import type { ChainEvent, ChannelRecord, ClaimCandidate, ServerIdentity } from './types.js'

/**
 * Unclaimed amount per channel past which new vouchers are refused until settlement claims:
 * 100 USDC (6 decimals). What a server risks on one channel if the chain became unreachable.
 */
export const DEFAULT_EXPOSURE_CAP = 100_000_000n

export interface LedgerOptions {
  /** The channel fields every voucher must carry (DESIGN.md invariant #5). */
  identity: ServerIdentity
  /** Checks EOA voucher signatures (hot path). */
  verifier: VoucherVerifier
  /** Checks EIP-1271 signatures of contract payers (`payerAuthorizer` zero); without one, only ECDSA by `payer` passes. */
  contractSignatureCheck?: ContractSignatureCheck
  /** @default DEFAULT_EXPOSURE_CAP */
  exposureCap?: bigint
  /** Called when a channel needs a claim soon: its exposure cap was hit or a withdrawal started. */
  onClaimNeeded?: (record: ChannelRecord) => void
  /** @default Date.now */
  now?: () => number
}

/** A voucher payment as the ledger needs it (from a decoded `voucher` or `deposit` payload). */
export interface VoucherPayment {
  readonly channelConfig: ChannelConfig
  readonly voucher: SignedVoucher
}

/** A channel held for one request (or one WebSocket session) after its voucher was accepted. */
export interface Hold {
  readonly channelId: Hex
  /** The channel after the voucher was accepted; persist it before serving (durable mode). */
  readonly record: ChannelRecord
  /** The voucher held before this one, restored by {@link Ledger.release} if no charge needs the new one. */
  readonly previous: Pick<ChannelRecord, 'signedMaxClaimable' | 'signature'>
}

/**
 * The result of {@link Ledger.begin}. A rejection of a voucher whose signature was checked and
 * holds (`signed`) may be acted on at some cost: `record` comes with a ceiling mismatch, for a
 * corrective 402, and a ceiling above the balance is worth a look at the chain. A rejection of
 * an unsigned voucher carries neither: the channel's state is the payer's business.
 */
export type BeginResult =
  | { readonly ok: true; readonly hold: Hold }
  | (Rejection & {
      readonly record?: ChannelRecord
      readonly unknownChannel?: true
      readonly signed?: true
    })

/** The on-chain state of a channel read on first sight, to open a ledger record from. */
export interface OnChainChannel {
  readonly balance: bigint
  readonly totalClaimed: bigint
  readonly withdrawRequestedAt: number
  readonly refundNonce: bigint
}

/**
 * The payee's ledger: one serialized state machine per channel (DESIGN.md, ledger box). Pure
 * in-memory state: persisting records (store/) and reading the chain (chain/) are the caller's.
 *
 * Flow of a paid request: `begin` (checks, signature, lock; the record now holds the voucher)
 * → persist `hold.record` → serve → `commit(hold, actualPrice)` or `release(hold)` on failure.
 */
export class Ledger {
  private readonly channels = new Map<Hex, ChannelRecord>()
  private readonly held = new Set<Hex>()
  /** The server's channel fields, addresses lowercase. */
  readonly identity: ServerIdentity
  /** The verifier and the EIP-1271 check, as {@link verifyVoucherFor} takes them (one object, reused). */
  private readonly signatureChecks: VerifyVoucherForOptions
  /** Unclaimed amount per channel past which vouchers are refused until settlement claims. */
  readonly exposureCap: bigint
  private readonly onClaimNeeded: (record: ChannelRecord) => void
  private readonly now: () => number

  constructor(options: LedgerOptions) {
    const { identity } = options
    this.identity = {
      receiver: lower(identity.receiver),
      receiverAuthorizer: lower(identity.receiverAuthorizer),
      token: lower(identity.token),
      withdrawDelay: identity.withdrawDelay,
    }
    this.signatureChecks = {
      verifier: options.verifier,
      contractCheck: options.contractSignatureCheck ?? refuseContractSignatures,
    }
    this.exposureCap = options.exposureCap ?? DEFAULT_EXPOSURE_CAP
    if (this.exposureCap <= 0n)
      throw new TollgateError('tollgate_invalid_config', 'exposureCap must be positive')
    this.onClaimNeeded = options.onClaimNeeded ?? (() => {})
    this.now = options.now ?? Date.now
  }

  /** Number of channels held in memory. */
  get size(): number {
    return this.channels.size
  }

  get(channelId: Hex): ChannelRecord | undefined {
    return this.channels.get(channelId)
  }

  /** Every channel record. */
  records(): IterableIterator<ChannelRecord> {
    return this.channels.values()
  }

  /** The channels with a withdrawal pending, and its deadline (start + the channel's delay). */
  *pendingWithdrawals(): Generator<{ channelId: Hex; finalizeAfter: number }> {
    for (const record of this.channels.values()) {
      if (record.withdrawRequestedAt !== 0) {
        const finalizeAfter = record.withdrawRequestedAt + record.config.withdrawDelay
        yield { channelId: record.channelId, finalizeAfter }
      }
    }
  }

  /** Whether a request or session currently holds the channel. */
  isHeld(channelId: Hex): boolean {
    return this.held.has(channelId)
  }

  /**
   * Checks that a channel config is this server's (receiver, receiver authorizer, token,
   * withdraw delay). The chain and escrow are bound by the channel id.
   */
  checkIdentity(config: ChannelConfig): Rejection | undefined {
    const id = this.identity
    if (config.receiver !== id.receiver)
      return reject('invalid_batch_settlement_evm_receiver_mismatch')
    if (config.receiverAuthorizer !== id.receiverAuthorizer) {
      return reject('invalid_batch_settlement_evm_receiver_authorizer_mismatch')
    }
    if (config.token !== id.token) return reject('invalid_batch_settlement_evm_token_mismatch')
    if (config.withdrawDelay !== id.withdrawDelay)
      return reject('invalid_batch_settlement_evm_withdraw_delay_mismatch')
    return undefined
  }

  /**
   * Adds a channel: reloaded from the store, or read from chain on first sight (see
   * {@link recordFromChain}). An existing record is kept unless the new one holds a higher voucher.
   * Precondition: `record.channelId` is the channel id of `record.config` (the caller hashed it).
   */
  open(record: ChannelRecord): ChannelRecord {
    const current = this.channels.get(record.channelId)
    if (current && current.signedMaxClaimable >= record.signedMaxClaimable) return current
    const interned = { ...record, config: this.intern(record.config) }
    this.channels.set(record.channelId, interned)
    return interned
  }

  /**
   * Replaces a channel's record with the one a shared store holds (see src/store/redis): the
   * store decided it, so no rule is checked here. With `hold`, the channel is held by this
   * process, as after {@link begin}, until {@link commit} or {@link release}.
   */
  mirror(record: ChannelRecord, hold = false): ChannelRecord {
    const current = this.channels.get(record.channelId)
    const mirrored = current
      ? { ...record, config: current.config }
      : { ...record, config: this.intern(record.config) }
    this.channels.set(record.channelId, mirrored)
    if (hold) this.held.add(record.channelId)
    return mirrored
  }

  /**
   * Decides a voucher for a request priced `rule.price` and, if accepted, holds the channel until
   * {@link commit} or {@link release}. Rejections are values; `unknownChannel` means the caller
   * must read the channel from chain, {@link open} it, and call again. The answer is a value when
   * the signature check is synchronous (an EOA voucher: the hot path), else a promise; await it.
   */
  begin(payment: VoucherPayment, rule: VoucherRule): BeginResult | Promise<BeginResult> {
    const { channelConfig: config, voucher } = payment
    const identity = this.checkIdentity(config)
    if (identity) return identity
    const id = voucher.channelId
    const record = this.channels.get(id)
    if (!record)
      return {
        ...reject('invalid_batch_settlement_evm_channel_not_found', 'not known yet'),
        unknownChannel: true,
      }
    if (!sameConfig(record.config, config))
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    if (this.held.has(id)) return reject('invalid_batch_settlement_evm_channel_busy')
    const refused = checkVoucher(record, voucher.maxClaimableAmount, rule, this.exposureCap)
    if (refused) {
      if (refused.code === 'tollgate_exposure_cap') this.onClaimNeeded(record)
      return this.refusedSigned(refused, record, voucher)
    }
    // Held while the signature is checked: a concurrent voucher on the channel is busy meanwhile.
    this.held.add(id)
    let verified: boolean | Promise<boolean>
    try {
      verified = this.verifySignature(config, voucher)
    } catch (err) {
      this.held.delete(id)
      throw err
    }
    if (typeof verified === 'boolean') return this.afterSignature(verified, record, voucher, rule)
    return verified.then(
      (ok) => this.afterSignature(ok, record, voucher, rule),
      (err: unknown) => {
        this.held.delete(id)
        throw err
      },
    )
  }

  /** {@link begin} once the signature was checked: the channel is held, and keeps the voucher if it is signed. */
  private afterSignature(
    signed: boolean,
    record: ChannelRecord,
    voucher: SignedVoucher,
    rule: VoucherRule,
  ): BeginResult {
    const id = voucher.channelId
    if (!signed) {
      this.held.delete(id)
      return reject('invalid_batch_settlement_evm_voucher_signature')
    }
    const latest = this.channels.get(id) ?? record
    // The escrow takes ECDSA `v` as 27/28 only: a 0/1 form the verifier accepted is kept as 27/28.
    const accepted = acceptVoucher(
      latest,
      voucher.maxClaimableAmount,
      claimableSignature(voucher.signature),
      inFlightOf(rule, voucher.maxClaimableAmount),
    )
    this.channels.set(id, accepted)
    const previous = { signedMaxClaimable: latest.signedMaxClaimable, signature: latest.signature }
    return { ok: true, hold: { channelId: id, record: accepted, previous } }
  }

  /**
   * Accepts a further voucher on a held channel (a WebSocket credit top-up). The hold stays.
   */
  async extend(hold: Hold, voucher: SignedVoucher, rule: VoucherRule): Promise<BeginResult> {
    this.assertHeld(hold)
    const record = this.mustGet(hold.channelId)
    if (voucher.channelId !== hold.channelId)
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    const refused = checkVoucher(record, voucher.maxClaimableAmount, rule, this.exposureCap)
    if (refused) return this.refusedSigned(refused, record, voucher)
    if (!(await this.verifySignature(record.config, voucher)))
      return reject('invalid_batch_settlement_evm_voucher_signature')
    const accepted = acceptVoucher(
      this.mustGet(hold.channelId),
      voucher.maxClaimableAmount,
      claimableSignature(voucher.signature),
      inFlightOf(rule, voucher.maxClaimableAmount),
    )
    this.channels.set(hold.channelId, accepted)
    return { ok: true, hold: { ...hold, record: accepted } }
  }

  /**
   * Undoes an {@link extend} whose voucher could not be stored: the held channel goes back to the
   * voucher and in-flight amount of `before` (what {@link get} returned before the extend). No
   * charge relies on the newer voucher yet: charges wait for it to be durable.
   */
  revertExtend(hold: Hold, before: ChannelRecord): ChannelRecord {
    this.assertHeld(hold)
    const current = this.mustGet(hold.channelId)
    const reverted = {
      ...current,
      signedMaxClaimable: before.signedMaxClaimable,
      signature: before.signature,
      inFlightCumulativeAmount: larger(
        before.inFlightCumulativeAmount,
        current.chargedCumulativeAmount,
      ),
    }
    this.channels.set(hold.channelId, reverted)
    return reverted
  }

  /**
   * Reserves `amount` beyond the charged total on a held session (at most up to its ceiling): the
   * in-flight amount its next messages may be charged within, once the returned record is durable.
   */
  reserveInFlight(hold: Hold, amount: bigint): ChannelRecord {
    this.assertHeld(hold)
    const current = this.mustGet(hold.channelId)
    const next = putInFlight(current, amount)
    if (next !== current) this.channels.set(hold.channelId, next)
    return next
  }

  /** Charges `amount` on a held channel and keeps the hold (per-message billing). */
  chargeHeld(
    hold: Hold,
    amount: bigint,
    /** A lower bound than what is in flight, if the caller has one (what is durable of it). */
    coveredTo?: bigint,
  ): { ok: true; record: ChannelRecord } | Rejection {
    this.assertHeld(hold)
    return this.chargeWithin(hold.channelId, this.mustGet(hold.channelId), amount, false, coveredTo)
  }

  /** Charges `amount` within what is in flight (and `coveredTo`), settling it when asked. */
  private chargeWithin(
    channelId: Hex,
    current: ChannelRecord,
    amount: bigint,
    settle: boolean,
    coveredTo?: bigint,
  ): { ok: true; record: ChannelRecord } | Rejection {
    const limit =
      coveredTo !== undefined && coveredTo < current.inFlightCumulativeAmount
        ? coveredTo
        : current.inFlightCumulativeAmount
    if (current.chargedCumulativeAmount + amount > limit) {
      return reject(
        'invalid_batch_settlement_evm_charge_exceeds_signed_cumulative',
        `charge beyond the reserved ${limit}`,
      )
    }
    const next = charge(current, amount, settle)
    if ('ok' in next) return next
    if (next !== current) this.channels.set(channelId, next)
    return { ok: true, record: next }
  }

  /**
   * Charges the actual price (at most the request's ceiling; dynamic pricing) after the
   * handler succeeded, and releases the channel. On a rejection the channel is released unchanged.
   */
  commit(hold: Hold, actual: bigint): { ok: true; record: ChannelRecord } | Rejection {
    this.assertHeld(hold)
    this.held.delete(hold.channelId)
    const current = this.mustGet(hold.channelId)
    const result = this.chargeWithin(hold.channelId, current, actual, true)
    if (!result.ok) {
      const settled = settleInFlight(current)
      if (settled !== current) this.channels.set(hold.channelId, settled)
    }
    return result
  }

  /**
   * Releases a held channel with nothing more charged (the handler failed, or a WebSocket
   * session ended). As x402 requires, a failed request leaves the state unchanged: the voucher
   * held before is restored unless charges already rely on the newer one. Returns the record,
   * which the caller persists again if it changed.
   */
  release(hold: Hold): ChannelRecord {
    this.assertHeld(hold)
    this.held.delete(hold.channelId)
    const current = settleInFlight(this.mustGet(hold.channelId))
    if (
      current.signedMaxClaimable > hold.previous.signedMaxClaimable &&
      current.chargedCumulativeAmount <= hold.previous.signedMaxClaimable
    ) {
      const restored = { ...current, ...hold.previous }
      this.channels.set(hold.channelId, restored)
      return restored
    }
    this.channels.set(hold.channelId, current)
    return current
  }

  /** Mirrors an on-chain event into a known channel; unknown channels are not this server's concern. */
  apply(event: ChainEvent): ChannelRecord | undefined {
    const record = this.channels.get(event.channelId)
    if (!record) return undefined
    const next = applyEvent(record, event, this.now())
    this.channels.set(event.channelId, next)
    if (event.type === 'withdrawInitiated' || event.type === 'withdrawSeen')
      this.onClaimNeeded(next)
    return next
  }

  /**
   * Channels with charged and unclaimed money, deadlines first (a pending withdrawal's end),
   * then by unclaimed amount, largest first.
   */
  claimable(): ClaimCandidate[] {
    const out: ClaimCandidate[] = []
    for (const record of this.channels.values()) {
      const candidate = claimCandidate(record)
      if (candidate) out.push(candidate)
    }
    return out.sort((a, b) => {
      if (a.deadline !== undefined || b.deadline !== undefined) {
        return (a.deadline ?? Number.POSITIVE_INFINITY) - (b.deadline ?? Number.POSITIVE_INFINITY)
      }
      return a.unclaimed === b.unclaimed ? 0 : a.unclaimed > b.unclaimed ? -1 : 1
    })
  }

  /**
   * Whether the voucher is signed as the escrow will check it: ECDSA by payerAuthorizer, else by
   * payer or EIP-1271. Precondition: `voucher.channelId` is the id of `config`.
   */
  verifySignature(config: ChannelConfig, voucher: SignedVoucher): boolean | Promise<boolean> {
    return verifyVoucherFor(config, voucher, this.signatureChecks)
  }

  /**
   * A refusal that the caller could act on (a corrective 402, a chain read) is answered in full
   * only for a voucher signed by the channel's signer; others get the bare code.
   */
  private async refusedSigned(
    refused: Rejection,
    record: ChannelRecord,
    voucher: SignedVoucher,
  ): Promise<BeginResult> {
    if (!ACTIONABLE.has(refused.code)) return refused
    if (!(await this.verifySignature(record.config, voucher))) return refused
    return { ...refused, record, signed: true }
  }

  /** Shares the server's own address strings across all channel configs (memory per channel). */
  private intern(config: ChannelConfig): ChannelConfig {
    const id = this.identity
    return {
      ...config,
      receiver: config.receiver === id.receiver ? id.receiver : config.receiver,
      receiverAuthorizer:
        config.receiverAuthorizer === id.receiverAuthorizer
          ? id.receiverAuthorizer
          : config.receiverAuthorizer,
      token: config.token === id.token ? id.token : config.token,
    }
  }

  private mustGet(channelId: Hex): ChannelRecord {
    const record = this.channels.get(channelId)
    if (!record)
      throw new TollgateError('tollgate_internal', `channel ${channelId} vanished while held`)
    return record
  }

  private assertHeld(hold: Hold): void {
    if (!this.held.has(hold.channelId)) {
      throw new TollgateError(
        'tollgate_internal',
        `channel ${hold.channelId} is not held (already committed or released)`,
      )
    }
  }
}

/**
 * A record for a channel seen for the first time: with no local voucher, the baseline of what is
 * charged is what was already claimed on chain (x402 batch-settlement server rules).
 */
export function recordFromChain(
  channelId: Hex,
  config: ChannelConfig,
  chain: OnChainChannel,
  syncedAt: number,
): ChannelRecord {
  return {
    channelId,
    config,
    chargedCumulativeAmount: chain.totalClaimed,
    signedMaxClaimable: chain.totalClaimed,
    inFlightCumulativeAmount: chain.totalClaimed,
    signature: '0x',
    balance: chain.balance,
    totalClaimed: chain.totalClaimed,
    withdrawRequestedAt: chain.withdrawRequestedAt,
    refundNonce: chain.refundNonce,
    syncedAt,
  }
}

/** Refusals worth answering with the channel's state or a chain read, once the voucher is signed. */
const ACTIONABLE: ReadonlySet<string> = new Set([
  'invalid_batch_settlement_evm_cumulative_amount_mismatch',
  'invalid_batch_settlement_evm_cumulative_exceeds_balance',
])

/** What an accepted voucher puts in flight: a request's price, a session's reserve, or nothing for a refund. */
function inFlightOf(rule: VoucherRule, ceiling: bigint): bigint {
  switch (rule.kind) {
    case 'exact':
      return rule.price
    case 'credit':
      return rule.reserve ?? ceiling
    case 'refund':
      return 0n
  }
}

async function refuseContractSignatures(): Promise<boolean> {
  return false
}

/** Whether two channel configs (addresses lowercase) are the same channel. */
export function sameConfig(a: ChannelConfig, b: ChannelConfig): boolean {
  return (
    a.payer === b.payer &&
    a.payerAuthorizer === b.payerAuthorizer &&
    a.receiver === b.receiver &&
    a.receiverAuthorizer === b.receiverAuthorizer &&
    a.token === b.token &&
    a.withdrawDelay === b.withdrawDelay &&
    a.salt === b.salt
  )
}

function lower<T extends string>(value: T): T {
  return value.toLowerCase() as T
}
