import type { Address, Hex } from 'viem'
import type {
  BatchSettlementResponseExtra,
  ChannelState,
  Network,
  SettleResponse,
} from './types.js'
import { decimal, wireChannelState } from './wire.js'

/** Parameters of {@link depositReceipt}. */
export type DepositReceiptParameters = {
  network: Network
  payer: Address
  /** Hash of the deposit transaction. */
  transaction: Hex
  /** The amount deposited. */
  amount: bigint
  /** What this request cost, paid by the voucher the deposit carried. */
  chargedAmount: bigint
  /** State after the deposit and the charge. */
  channelState: ChannelState
}

/**
 * Builds the `PAYMENT-RESPONSE` of a request paid by a deposit and its voucher.
 *
 * @returns `{ success: true, payer, transaction, network, amount, extra: { chargedAmount, channelState } }`
 * @throws TollgateError `tollgate_internal` when an amount is outside its Solidity type.
 * @example
 * const receipt = depositReceipt({ network, payer, transaction: hash, amount: 10_000n, chargedAmount: 1000n, channelState })
 */
export function depositReceipt(parameters: DepositReceiptParameters): SettleResponse {
  return {
    success: true,
    payer: parameters.payer,
    transaction: parameters.transaction,
    network: parameters.network,
    amount: decimal(parameters.amount, 'amount'),
    extra: {
      chargedAmount: decimal(parameters.chargedAmount, 'chargedAmount'),
      channelState: wireChannelState(parameters.channelState),
    } satisfies BatchSettlementResponseExtra,
  }
}
