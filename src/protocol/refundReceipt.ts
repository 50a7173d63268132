import type { Address, Hex } from 'viem'
import type {
  BatchSettlementResponseExtra,
  ChannelState,
  Network,
  SettleResponse,
} from './types.js'
import { decimal, wireChannelState } from './wire.js'

/** Parameters of {@link refundReceipt}. */
export type RefundReceiptParameters = {
  network: Network
  payer: Address
  /** Hash of the refund transaction. */
  transaction: Hex
  /** The amount refunded. */
  amount: bigint
  /** State after the refund. */
  channelState: ChannelState
}

/**
 * Builds the `PAYMENT-RESPONSE` of a refund. A refund charges nothing.
 *
 * @returns `{ success: true, payer, transaction, network, amount, extra: { channelState } }`
 * @throws TollgateError `tollgate_internal` when an amount is outside its Solidity type.
 * @example
 * const receipt = refundReceipt({ network, payer, transaction: hash, amount: 9000n, channelState })
 */
export function refundReceipt(parameters: RefundReceiptParameters): SettleResponse {
  return {
    success: true,
    payer: parameters.payer,
    transaction: parameters.transaction,
    network: parameters.network,
    amount: decimal(parameters.amount, 'amount'),
    extra: {
      channelState: wireChannelState(parameters.channelState),
    } satisfies BatchSettlementResponseExtra,
  }
}
