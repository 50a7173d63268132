import { Buffer } from 'node:buffer'
import type { Address } from 'viem'
import type {
  BatchSettlementResponseExtra,
  ChannelState,
  Network,
  SettleResponse,
} from './types.js'
import { decimal, wireChannelState } from './wire.js'

/** Parameters of {@link voucherReceipt}. */
export type VoucherReceiptParameters = {
  network: Network
  payer: Address
  /** What this request cost, at most the requirements' `amount`. */
  chargedAmount: bigint
  /** State after the charge: `chargedCumulativeAmount` includes `chargedAmount`. */
  channelState: ChannelState
}

/**
 * Builds the `PAYMENT-RESPONSE` of a request paid by voucher. Nothing goes on chain, so
 * `transaction` and `amount` are `""`. A stock client needs `extra.chargedAmount` to advance
 * its running total; it checks `chargedCumulativeAmount == previous + chargedAmount`.
 *
 * @returns `{ success: true, payer, transaction: '', network, amount: '', extra: { chargedAmount, channelState } }`
 * @throws TollgateError `tollgate_internal` when an amount is outside its Solidity type.
 * @example
 * const receipt = voucherReceipt({ network, payer, chargedAmount: 1000n, channelState })
 */
export function voucherReceipt(parameters: VoucherReceiptParameters): SettleResponse {
  return {
    success: true,
    payer: parameters.payer,
    transaction: '',
    network: parameters.network,
    amount: '',
    extra: {
      chargedAmount: decimal(parameters.chargedAmount, 'chargedAmount'),
      channelState: wireChannelState(parameters.channelState),
    } satisfies BatchSettlementResponseExtra,
  }
}

/**
 * The `PAYMENT-RESPONSE` header value of a request paid by voucher: byte for byte
 * `encodeHeader(voucherReceipt(parameters))`, written as one string with no intermediate objects
 * (the hot path's receipt). Every value in it is hex, a decimal or a CAIP-2 network, so nothing
 * needs escaping.
 *
 * @throws TollgateError `tollgate_internal` when an amount is outside its Solidity type.
 * @example
 * reply.header(HEADERS.paymentResponse, voucherReceiptHeader({ network, payer, chargedAmount: 1000n, channelState }))
 */
export function voucherReceiptHeader(parameters: VoucherReceiptParameters): string {
  const state = wireChannelState(parameters.channelState)
  const json =
    `{"success":true,"payer":"${parameters.payer}","transaction":"","network":"${parameters.network}",` +
    `"amount":"","extra":{"chargedAmount":"${decimal(parameters.chargedAmount, 'chargedAmount')}",` +
    `"channelState":{"channelId":"${state.channelId}","balance":"${state.balance}",` +
    `"totalClaimed":"${state.totalClaimed}","withdrawRequestedAt":${state.withdrawRequestedAt},` +
    `"refundNonce":"${state.refundNonce}","chargedCumulativeAmount":"${state.chargedCumulativeAmount}"}}}`
  return Buffer.from(json, 'latin1').toString('base64')
}
