import { TollgateError } from '../errors/index.js'
import { SCHEME } from './constants.js'
import { paymentRequired } from './paymentRequired.js'
import type {
  ChannelState,
  Network,
  PaymentRequired,
  PaymentRequirements,
  ResourceInfo,
  VoucherState,
} from './types.js'
import { wireChannelState, wireVoucherState } from './wire.js'

/** Parameters of {@link correctiveRequired}. */
export type CorrectiveRequiredParameters = {
  resource: ResourceInfo
  /** The requirements this server issues for the request. */
  accepts: PaymentRequirements[]
  /** Network of the channel: its batch-settlement entries get the channel's state. */
  network: Network
  channelState: ChannelState
  /** The highest voucher held; absent when the server holds none for the channel. */
  voucherState?: VoucherState
}

/**
 * Builds the corrective 402 sent when a voucher's `maxClaimableAmount` is not
 * `chargedCumulativeAmount + amount`: error `invalid_batch_settlement_evm_cumulative_amount_mismatch`,
 * and in the `extra` of each batch-settlement entry for the channel's network, the server's
 * `channelState` and `voucherState`. The client checks the voucher signature with its own key
 * before adopting the server's figure; without `voucherState` it resyncs from chain.
 *
 * @returns A `PaymentRequired`; `accepts` are copied, never mutated.
 * @throws TollgateError `tollgate_internal` when no entry of `accepts` is batch-settlement on `network`.
 * @example
 * const body = correctiveRequired({ resource, accepts: [requirements], network, channelState, voucherState })
 */
export function correctiveRequired(parameters: CorrectiveRequiredParameters): PaymentRequired {
  const { resource, network } = parameters
  const channelState = wireChannelState(parameters.channelState)
  const voucherState =
    parameters.voucherState === undefined ? undefined : wireVoucherState(parameters.voucherState)
  let matched = false
  const accepts = parameters.accepts.map((requirements) => {
    if (requirements.scheme !== SCHEME || requirements.network !== network) return requirements
    matched = true
    return {
      ...requirements,
      extra: {
        ...requirements.extra,
        channelState,
        ...(voucherState === undefined ? {} : { voucherState }),
      },
    }
  })
  if (!matched) {
    throw new TollgateError('tollgate_internal', `No batch-settlement requirements on ${network}.`)
  }
  return paymentRequired({
    resource,
    accepts,
    error: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
  })
}
