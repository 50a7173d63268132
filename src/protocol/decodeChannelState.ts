import { accept, type Result, reject } from '../errors/index.js'
import { MAX_UINT128, MAX_UINT256 } from './constants.js'
import { isRecord, type Mutable, parseBytes32, parseTimestamp, parseUint } from './parse.js'
import type { ChannelState } from './types.js'

/**
 * Parses a wire `channelState`. Every field is optional (stock servers send some alone) but a
 * present field must be well formed; unknown keys are ignored.
 */
export function parseChannelState(value: unknown): Partial<ChannelState> | undefined {
  if (!isRecord(value)) return undefined
  const state: Mutable<Partial<ChannelState>> = {}
  const { channelId, balance, totalClaimed, withdrawRequestedAt, refundNonce } = value
  const { chargedCumulativeAmount } = value
  if (channelId !== undefined) {
    state.channelId = parseBytes32(channelId)
    if (state.channelId === undefined) return undefined
  }
  if (balance !== undefined) {
    state.balance = parseUint(balance, MAX_UINT128)
    if (state.balance === undefined) return undefined
  }
  if (totalClaimed !== undefined) {
    state.totalClaimed = parseUint(totalClaimed, MAX_UINT128)
    if (state.totalClaimed === undefined) return undefined
  }
  if (withdrawRequestedAt !== undefined) {
    state.withdrawRequestedAt = parseTimestamp(withdrawRequestedAt)
    if (state.withdrawRequestedAt === undefined) return undefined
  }
  if (refundNonce !== undefined) {
    state.refundNonce = parseUint(refundNonce, MAX_UINT256)
    if (state.refundNonce === undefined) return undefined
  }
  if (chargedCumulativeAmount !== undefined) {
    state.chargedCumulativeAmount = parseUint(chargedCumulativeAmount, MAX_UINT128)
    if (state.chargedCumulativeAmount === undefined) return undefined
  }
  return state
}

/**
 * Decodes the `channelState` a server puts in the `extra` of a corrective 402
 * (`accepts[i].extra.channelState`): amounts to bigints, hex lowercase.
 *
 * @param value The `channelState` JSON value.
 * @returns The fields present, or `tollgate_invalid_payment_required` when one is malformed.
 * @example
 * const state = decodeChannelState(requirements.extra?.channelState)
 */
export function decodeChannelState(value: unknown): Result<Partial<ChannelState>> {
  const state = parseChannelState(value)
  return state === undefined
    ? reject('tollgate_invalid_payment_required', 'channelState is malformed.')
    : accept(state)
}
