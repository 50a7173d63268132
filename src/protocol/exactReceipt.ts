import type { Address, Hex } from 'viem'
import { MAX_UINT256 } from './constants.js'
import type { Network, SettleResponse } from './types.js'
import { decimal } from './wire.js'

/** Parameters of {@link exactReceipt}. */
export type ExactReceiptParameters = {
  network: Network
  payer: Address
  /** The mined `transferWithAuthorization`. */
  transaction: Hex
  /** What was transferred: the price. */
  amount: bigint
}

/**
 * Builds the `PAYMENT-RESPONSE` of a request paid by an exact transfer, sent once the transfer is
 * mined: `transaction` is its hash.
 *
 * @returns `{ success: true, payer, transaction, network, amount }`
 * @example
 * reply.header(HEADERS.paymentResponse, encodeHeader(exactReceipt({ network, payer, transaction, amount: 1000n })))
 */
export function exactReceipt(parameters: ExactReceiptParameters): SettleResponse {
  return {
    success: true,
    payer: parameters.payer,
    transaction: parameters.transaction,
    network: parameters.network,
    amount: decimal(parameters.amount, 'amount', MAX_UINT256),
  }
}
