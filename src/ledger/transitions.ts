/**
 * The channel state machine as pure functions: (record, input) → new record or a rejection.
 * Each function states its precondition first. None does I/O; signature checks are the
 * caller's (see Ledger), so these stay cheap and testable in isolation.
 */
import { type Rejection, reject } from '../errors/index.js'
import type { ChainEvent, ChannelRecord, ClaimCandidate } from './types.js'

/** How a new voucher's ceiling must relate to what is charged. */
export type VoucherRule =
  /** HTTP: pays exactly one request priced `price` (x402 batch-settlement). */
  | { readonly kind: 'exact'; readonly price: bigint }
  /**
   * WebSocket: opens credit for at least `price` more (a credit window of several messages).
   * `reserve` is how much of it may be delivered ahead of a durable record (the crash bound of a
   * session: {@link ChannelRecord.inFlightCumulativeAmount}); default the whole credit.
   */
  | { readonly kind: 'credit'; readonly price: bigint; readonly reserve?: bigint }
  /**
   * A cooperative refund: a zero-charge voucher whose ceiling is exactly what was charged
   * (x402 batch-settlement `refund` payload). Allowed while a withdrawal is pending.
   */
  | { readonly kind: 'refund' }

/**
 * Checks a voucher ceiling against the channel, before its signature is checked.
 * Returns a rejection, or undefined when the ceiling is acceptable.
 */
export function checkVoucher(
  record: ChannelRecord,
  maxClaimableAmount: bigint,
  rule: VoucherRule,
  exposureCap: bigint,
): Rejection | undefined {
  if (rule.kind === 'refund') {
    if (maxClaimableAmount !== record.chargedCumulativeAmount) {
      return reject(
        'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        `a refund voucher must be the charged total ${record.chargedCumulativeAmount}, got ${maxClaimableAmount}`,
      )
    }
    if (record.balance <= record.chargedCumulativeAmount)
      return reject('invalid_batch_settlement_evm_refund_no_balance')
    return undefined
  }
  if (record.withdrawRequestedAt !== 0) {
    return reject('tollgate_withdrawal_pending', `since ${record.withdrawRequestedAt}`)
  }
  const expected = record.chargedCumulativeAmount + rule.price
  if (rule.kind === 'exact' ? maxClaimableAmount !== expected : maxClaimableAmount < expected) {
    return reject(
      'invalid_batch_settlement_evm_cumulative_amount_mismatch',
      `expected ${rule.kind === 'exact' ? '' : 'at least '}${expected}, got ${maxClaimableAmount}`,
    )
  }
  if (maxClaimableAmount > record.balance) {
    return reject(
      'invalid_batch_settlement_evm_cumulative_exceeds_balance',
      `ceiling ${maxClaimableAmount} > balance ${record.balance}`,
    )
  }
  if (maxClaimableAmount <= record.totalClaimed) {
    return reject(
      'invalid_batch_settlement_evm_cumulative_below_claimed',
      `ceiling ${maxClaimableAmount} <= claimed ${record.totalClaimed}`,
    )
  }
  if (maxClaimableAmount - record.totalClaimed > exposureCap) {
    return reject(
      'tollgate_exposure_cap',
      `unclaimed would reach ${maxClaimableAmount - record.totalClaimed}`,
    )
  }
  return undefined
}

/**
 * Keeps a verified voucher. Precondition: {@link checkVoucher} passed and the signature was
 * verified. The highest voucher is kept: a lower one (a retry after a failed request) leaves
 * the held one in place.
 */
export function acceptVoucher(
  record: ChannelRecord,
  maxClaimableAmount: bigint,
  signature: ChannelRecord['signature'],
  inFlight = 0n,
): ChannelRecord {
  const higher = maxClaimableAmount > record.signedMaxClaimable
  const ceiling = higher ? maxClaimableAmount : record.signedMaxClaimable
  // In flight: what the request or session about to be served may add, within the ceiling.
  const flight = larger(
    smaller(record.chargedCumulativeAmount + inFlight, ceiling),
    record.inFlightCumulativeAmount,
  )
  if (!higher && flight === record.inFlightCumulativeAmount) return record
  return higher
    ? { ...record, signedMaxClaimable: ceiling, signature, inFlightCumulativeAmount: flight }
    : { ...record, inFlightCumulativeAmount: flight }
}

/**
 * Charges `amount` (the actual price, at most the request's ceiling). Precondition: the
 * voucher covering it was accepted. Rejects a charge that the held voucher does not cover.
 */
export function charge(
  record: ChannelRecord,
  amount: bigint,
  /** Nothing stays in flight after this charge (a request's commit). */
  settle = false,
): ChannelRecord | Rejection {
  if (amount < 0n)
    return reject(
      'invalid_batch_settlement_evm_charge_exceeds_signed_cumulative',
      'negative charge',
    )
  const charged = record.chargedCumulativeAmount + amount
  if (charged > record.signedMaxClaimable) {
    return reject(
      'invalid_batch_settlement_evm_charge_exceeds_signed_cumulative',
      `charged ${charged} > signed ${record.signedMaxClaimable}`,
    )
  }
  if (amount === 0n && (!settle || record.inFlightCumulativeAmount === charged)) return record
  // Field by field, not a spread: this runs once per billed message (a spread costs ten times more).
  return {
    channelId: record.channelId,
    config: record.config,
    chargedCumulativeAmount: charged,
    signedMaxClaimable: record.signedMaxClaimable,
    inFlightCumulativeAmount: settle ? charged : larger(record.inFlightCumulativeAmount, charged),
    signature: record.signature,
    balance: record.balance,
    totalClaimed: record.totalClaimed,
    withdrawRequestedAt: record.withdrawRequestedAt,
    refundNonce: record.refundNonce,
    syncedAt: record.syncedAt,
  }
}

/**
 * Marks `amount` beyond the charged total as in flight (a request being served, or a reserve of a
 * session's credit), capped at the signed ceiling; never lowers what is already in flight.
 */
export function putInFlight(record: ChannelRecord, amount: bigint): ChannelRecord {
  const next = smaller(record.chargedCumulativeAmount + amount, record.signedMaxClaimable)
  if (next <= record.inFlightCumulativeAmount) return record
  return { ...record, inFlightCumulativeAmount: next }
}

/** Ends what was in flight: nothing is held any more, the charged total is all there is. */
export function settleInFlight(record: ChannelRecord): ChannelRecord {
  return record.inFlightCumulativeAmount === record.chargedCumulativeAmount
    ? record
    : { ...record, inFlightCumulativeAmount: record.chargedCumulativeAmount }
}

/**
 * The crash rule, for a record reloaded from the store: what was in flight when it was written
 * may have been delivered, so it is charged. Every acknowledged charge is covered (it was charged
 * within a durable in-flight amount), and a payer pays at most one in-flight amount beyond what
 * was delivered: the price of the one request held, or one reserve of a WebSocket session.
 */
export function recoverInFlight(record: ChannelRecord): ChannelRecord {
  const { inFlightCumulativeAmount: inFlight, signedMaxClaimable: ceiling } = record
  if (inFlight <= record.chargedCumulativeAmount) return record
  const charged = smaller(inFlight, ceiling)
  return { ...record, chargedCumulativeAmount: charged, inFlightCumulativeAmount: charged }
}

/**
 * Mirrors an on-chain event. Values are absolute, so applying an event twice is harmless; a
 * mirror never moves backwards where the chain cannot (balance on deposit, totalClaimed,
 * refundNonce).
 */
export function applyEvent(
  record: ChannelRecord,
  event: ChainEvent,
  syncedAt: number,
): ChannelRecord {
  switch (event.type) {
    case 'deposited':
      return { ...record, balance: event.balance, syncedAt }
    case 'claimed':
      return {
        ...record,
        totalClaimed: larger(event.totalClaimed, record.totalClaimed),
        syncedAt,
      }
    case 'refunded':
      return {
        ...record,
        balance: event.balance,
        refundNonce: larger(event.refundNonce, record.refundNonce),
        syncedAt,
      }
    case 'withdrawInitiated':
      return { ...record, withdrawRequestedAt: event.initiatedAt, syncedAt }
    case 'withdrawSeen':
      // The escrow sets finalizeAfter = initiatedAt + withdrawDelay.
      return record.withdrawRequestedAt === 0
        ? { ...record, withdrawRequestedAt: event.finalizeAfter - record.config.withdrawDelay }
        : record
    case 'withdrawDropped':
      return record.withdrawRequestedAt === event.finalizeAfter - record.config.withdrawDelay
        ? { ...record, withdrawRequestedAt: 0, syncedAt }
        : record
    case 'withdrawFinalized':
      return { ...record, balance: event.balance, withdrawRequestedAt: 0, syncedAt }
  }
}

/** The larger of two bigints (Math.max takes numbers only). */
export function larger(a: bigint, b: bigint): bigint {
  return a > b ? a : b
}

/** The smaller of two bigints. */
function smaller(a: bigint, b: bigint): bigint {
  return a < b ? a : b
}

/**
 * What a claim of the channel now would bring, and by when it must land: `undefined` when the
 * channel has nothing charged and unclaimed.
 */
export function claimCandidate(record: ChannelRecord): ClaimCandidate | undefined {
  const unclaimed = record.chargedCumulativeAmount - record.totalClaimed
  if (unclaimed <= 0n) return undefined
  return record.withdrawRequestedAt === 0
    ? { record, unclaimed }
    : { record, unclaimed, deadline: record.withdrawRequestedAt + record.config.withdrawDelay }
}
