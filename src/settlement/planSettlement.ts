import type { Address, Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import { claimCandidate } from '../ledger/transitions.js'
import type { ChannelRecord } from '../ledger/types.js'
import type { ChannelConfig } from '../protocol/types.js'

/** Most channels claimed by one transaction: about 1.2 M gas with `claimPacked`, well under a Base block. */
export const DEFAULT_MAX_PER_TX = 100

/**
 * Seconds before a withdrawal's end by which its claim must have landed (DESIGN.md invariant 4):
 * 5 minutes, a third of the shortest withdraw delay the escrow allows.
 */
export const DEFAULT_SAFETY_MARGIN_SECONDS = 300

/** Unclaimed amount per channel that triggers a claim between sweeps: 1 USDC (6 decimals). */
export const DEFAULT_CLAIM_THRESHOLD = 1_000_000n

/** A channel is claimed once its unclaimed amount reaches this share of the exposure cap (percent). */
export const EXPOSURE_CAP_CLAIM_PERCENT = 80n

/**
 * Gas of a claim transaction as `perTx + perChannel × rows`, fitted to the measurements of
 * benchmarks/gas.ts on tollgate's escrow (`claimPacked`: 14.8 k per channel at 10, 11.9 k at
 * 100) and to the x402 reference snapshot for `claim` (40 252 for one, 19 204 per channel at 10).
 */
export const CLAIM_GAS_MODEL = Object.freeze({
  claimPacked: Object.freeze({ perTx: 32_000n, perChannel: 11_600n }),
  claim: Object.freeze({ perTx: 23_000n, perChannel: 17_300n }),
})

/** Which escrow entry point a batch goes through. */
export type ClaimMethod = 'claimPacked' | 'claim'

/** Why a channel is in the plan. */
export type ClaimReason = 'withdrawal' | 'exposure' | 'threshold' | 'sweep'

/** One channel's claim: exactly the stored voucher, up to what was charged (DESIGN.md invariant 3). */
export interface PlannedClaim {
  readonly channelId: Hex
  readonly config: ChannelConfig
  /** The stored voucher's ceiling, as signed. */
  readonly maxClaimableAmount: bigint
  /** The stored voucher's signature. */
  readonly signature: Hex
  /** The channel's new cumulative claim: what was charged, never above the ceiling. */
  readonly totalClaimed: bigint
  /** What this claim adds on top of the mirrored on-chain `totalClaimed`. */
  readonly amount: bigint
  readonly reason: ClaimReason
  /** Unix seconds by which the claim must land; only for pending withdrawals. */
  readonly deadline?: number
}

/** Claims sent in one transaction. */
export interface PlannedBatch {
  readonly method: ClaimMethod
  readonly claims: readonly PlannedClaim[]
}

/** A channel left out of the plan, and why. */
export interface SkippedClaim {
  readonly channelId: Hex
  readonly unclaimed: bigint
  readonly reason: 'gas_exceeds_value' | 'in_flight' | 'exceeds_balance'
}

export interface SettlementPlan {
  /** Claim transactions, most urgent first. */
  readonly batches: readonly PlannedBatch[]
  /** The `settle(receiver, token)` sweep to send after the claims, when there is something to move. */
  readonly settle?: { readonly receiver: Address; readonly token: Address }
  readonly skipped: readonly SkippedClaim[]
  /** Sum of what the batches claim. */
  readonly claimTotal: bigint
  /** The earliest claim deadline of a pending withdrawal among all channels, unix seconds. */
  readonly nextDeadline?: number
  /** `nextDeadline` less the safety margin: the latest chain time for the next run should this one fail. */
  readonly runBy?: number
}

export interface PlanInput {
  /** Every channel record of the ledger. */
  readonly records: Iterable<ChannelRecord>
  /** The server's receiver and token: the `settle` sweep's arguments. */
  readonly receiver: Address
  readonly token: Address
  /** Claimed and not yet settled on chain for `receiver` and `token` (`receivers(receiver, token)`). */
  readonly unsettled: bigint
  /** Channels already in a sent, unconfirmed claim (journal): left out. */
  readonly inFlight?: ReadonlySet<Hex>
  /** Whether the escrow has `claimPacked` and the sender may call it. */
  readonly packed: boolean
  /** Claim every channel with anything unclaimed (the periodic sweep), not only those due. */
  readonly sweep: boolean
  /** @default DEFAULT_CLAIM_THRESHOLD */
  readonly threshold?: bigint
  /** The ledger's exposure cap: a channel near it is claimed. */
  readonly exposureCap: bigint
  /** @default DEFAULT_MAX_PER_TX */
  readonly maxPerTx?: number
  /** Seconds before a deadline by which its claim must have landed. @default DEFAULT_SAFETY_MARGIN_SECONDS */
  readonly safetyMarginSeconds?: number
  /** Wei per gas. */
  readonly gasPrice: bigint
  /**
   * Token units one native coin (10^18 wei) buys, to weigh gas against a claim's value. Absent
   * (a development chain): gas is not weighed and every due claim is made.
   */
  readonly tokenPerNative?: bigint
}

const WEI_PER_NATIVE = 10n ** 18n
const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000'

/**
 * Decides what to claim now, from the ledger's records. Pure: no I/O.
 *
 * Picked, in this order: every channel with a pending withdrawal (earliest deadline first; the
 * claim is forced, whatever its gas); channels whose unclaimed amount reached
 * {@link EXPOSURE_CAP_CLAIM_PERCENT} of the exposure cap or the threshold; with `sweep`, every
 * other channel with anything unclaimed. A claim that is not forced is skipped when its share
 * of the gas costs more than it brings. Each claim is the stored voucher (ceiling and
 * signature as signed) claiming exactly what was charged, so it never exceeds the signed
 * ceiling nor leaves a charge unclaimed (DESIGN.md invariant 3). EOA-signed channels go through
 * `claimPacked` when `packed`, the others through the x402 `claim`; batches hold at most
 * `maxPerTx` channels. A `settle` follows whenever something is claimed or already unsettled.
 *
 * @throws TollgateError `tollgate_invalid_config` on a non-positive `maxPerTx`.
 */
export function planSettlement(input: PlanInput): SettlementPlan {
  const maxPerTx = input.maxPerTx ?? DEFAULT_MAX_PER_TX
  if (!Number.isSafeInteger(maxPerTx) || maxPerTx < 1) {
    throw new TollgateError('tollgate_invalid_config', `maxPerTx must be >= 1, got ${maxPerTx}`)
  }
  const threshold = input.threshold ?? DEFAULT_CLAIM_THRESHOLD
  const margin = input.safetyMarginSeconds ?? DEFAULT_SAFETY_MARGIN_SECONDS
  const nearCap = (input.exposureCap * EXPOSURE_CAP_CLAIM_PERCENT) / 100n
  const skipped: SkippedClaim[] = []
  const due: PlannedClaim[] = []
  let nextDeadline: number | undefined

  for (const record of input.records) {
    const candidate = claimCandidate(record)
    if (!candidate || record.signature === '0x') continue
    const { unclaimed, deadline } = candidate
    if (deadline !== undefined && (nextDeadline === undefined || deadline < nextDeadline))
      nextDeadline = deadline
    if (input.inFlight?.has(record.channelId)) {
      skipped.push({ channelId: record.channelId, unclaimed, reason: 'in_flight' })
      continue
    }
    if (record.chargedCumulativeAmount > record.balance) {
      skipped.push({ channelId: record.channelId, unclaimed, reason: 'exceeds_balance' })
      continue
    }
    const reason: ClaimReason | undefined =
      deadline !== undefined
        ? 'withdrawal'
        : unclaimed >= nearCap
          ? 'exposure'
          : unclaimed >= threshold
            ? 'threshold'
            : input.sweep
              ? 'sweep'
              : undefined
    if (reason === undefined) continue
    due.push({
      channelId: record.channelId,
      config: record.config,
      maxClaimableAmount: record.signedMaxClaimable,
      signature: record.signature,
      totalClaimed: record.chargedCumulativeAmount,
      amount: unclaimed,
      reason,
      ...(deadline === undefined ? {} : { deadline }),
    })
  }

  due.sort(byUrgency)
  const byMethod: Record<ClaimMethod, PlannedClaim[]> = { claimPacked: [], claim: [] }
  for (const claim of due) byMethod[methodOf(claim, input.packed)].push(claim)

  const batches: PlannedBatch[] = []
  let claimTotal = 0n
  for (const method of ['claimPacked', 'claim'] as const) {
    const claims = worthClaiming(byMethod[method], method, input, maxPerTx, skipped)
    // A packed claim carries one header (receiver, receiverAuthorizer, token, withdrawDelay) for
    // all its rows: each channel is claimed under its own, never the server's current one.
    for (const group of method === 'claimPacked' ? byHeader(claims) : [claims]) {
      for (let i = 0; i < group.length; i += maxPerTx) {
        batches.push({ method, claims: group.slice(i, i + maxPerTx) })
      }
    }
    for (const claim of claims) claimTotal += claim.amount
  }
  // The most urgent claim's batch goes first, whatever its method.
  batches.sort((a, b) => byUrgency(a.claims[0] as PlannedClaim, b.claims[0] as PlannedClaim))
  const settle =
    claimTotal > 0n || input.unsettled > 0n
      ? { receiver: input.receiver, token: input.token }
      : undefined
  return {
    batches,
    ...(settle ? { settle } : {}),
    skipped,
    claimTotal,
    ...(nextDeadline === undefined ? {} : { nextDeadline, runBy: nextDeadline - margin }),
  }
}

/** Drops the claims (not forced by a deadline) whose share of gas costs more than they bring. */
function worthClaiming(
  claims: readonly PlannedClaim[],
  method: ClaimMethod,
  input: PlanInput,
  maxPerTx: number,
  skipped: SkippedClaim[],
): PlannedClaim[] {
  if (input.tokenPerNative === undefined || claims.length === 0) return [...claims]
  const model = CLAIM_GAS_MODEL[method]
  const rows = BigInt(Math.min(claims.length, maxPerTx))
  const gasPerChannel = model.perChannel + (model.perTx + rows - 1n) / rows
  const cost = (gasPerChannel * input.gasPrice * input.tokenPerNative) / WEI_PER_NATIVE
  const kept: PlannedClaim[] = []
  for (const claim of claims) {
    if (claim.deadline !== undefined || claim.amount >= cost) kept.push(claim)
    else
      skipped.push({
        channelId: claim.channelId,
        unclaimed: claim.amount,
        reason: 'gas_exceeds_value',
      })
  }
  return kept
}

/** Claims grouped by the channel fields a packed claim's header carries, in their order. */
function byHeader(claims: readonly PlannedClaim[]): PlannedClaim[][] {
  const groups = new Map<string, PlannedClaim[]>()
  for (const claim of claims) {
    const { receiver, receiverAuthorizer, token, withdrawDelay } = claim.config
    const key = `${receiver}|${receiverAuthorizer}|${token}|${withdrawDelay}`.toLowerCase()
    const group = groups.get(key)
    if (group) group.push(claim)
    else groups.set(key, [claim])
  }
  return [...groups.values()]
}

function methodOf(claim: PlannedClaim, packed: boolean): ClaimMethod {
  return packed && claim.config.payerAuthorizer.toLowerCase() !== ZERO_ADDRESS
    ? 'claimPacked'
    : 'claim'
}

/** Deadlines first (earliest first), then the largest amounts. */
function byUrgency(a: PlannedClaim, b: PlannedClaim): number {
  if (a.deadline !== undefined || b.deadline !== undefined) {
    return (a.deadline ?? Number.POSITIVE_INFINITY) - (b.deadline ?? Number.POSITIVE_INFINITY)
  }
  return a.amount === b.amount ? 0 : a.amount > b.amount ? -1 : 1
}
