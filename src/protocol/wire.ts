import { type ErrorCode, TollgateError } from '../errors/index.js'
import { MAX_UINT128, MAX_UINT256 } from './constants.js'
import { parseTimestamp } from './parse.js'
import type { ChannelState, VoucherState, WireChannelState, WireVoucherState } from './types.js'

// Serialization of trusted internal values to wire form. A value outside its Solidity type is a
// bug upstream, never untrusted input: it throws rather than put a wrong figure on the wire.

/** The decimal string of an unsigned integer not above `max`. */
export function decimal(
  value: bigint,
  field: string,
  max: bigint = MAX_UINT128,
  code: ErrorCode = 'tollgate_internal',
): string {
  if (value < 0n || value > max) throw new TollgateError(code, `${field} ${value} is out of range.`)
  return value.toString()
}

/** `channelState` as x402 sends it: amounts as decimal strings, `withdrawRequestedAt` as a number. */
export function wireChannelState(state: ChannelState): WireChannelState {
  const { withdrawRequestedAt } = state
  if (parseTimestamp(withdrawRequestedAt) === undefined) {
    throw new TollgateError(
      'tollgate_internal',
      `withdrawRequestedAt ${withdrawRequestedAt} is out of range.`,
    )
  }
  return {
    channelId: state.channelId,
    balance: decimal(state.balance, 'balance'),
    totalClaimed: decimal(state.totalClaimed, 'totalClaimed'),
    withdrawRequestedAt,
    refundNonce: decimal(state.refundNonce, 'refundNonce', MAX_UINT256),
    chargedCumulativeAmount: decimal(state.chargedCumulativeAmount, 'chargedCumulativeAmount'),
  }
}

/** `voucherState` as x402 sends it. */
export function wireVoucherState(state: VoucherState): WireVoucherState {
  return {
    signedMaxClaimable: decimal(state.signedMaxClaimable, 'signedMaxClaimable'),
    signature: state.signature,
  }
}
