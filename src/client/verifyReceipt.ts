import type { Hex } from 'viem'
import { accept, type Rejection, type Result, reject } from '../errors/index.js'
import type { DecodedSettleResponse, Network } from '../protocol/index.js'

/** What the payer expected when it paid: the basis a receipt is checked against. */
export interface PendingPayment {
  readonly channelId: Hex
  readonly network: Network
  /** `chargedCumulativeAmount` before this payment, as the payer knows it. */
  readonly charged: bigint
  /** The price paid for: `accepts[].amount`, the most this payment may be charged. */
  readonly amount: bigint
  /** The amount deposited with this payment (a `deposit` payload); absent for a voucher. */
  readonly deposit?: bigint
}

/** What a verified receipt establishes. */
export interface VerifiedReceipt {
  /** Charged by this payment. */
  readonly chargedAmount: bigint
  /** The channel's `chargedCumulativeAmount` after it. */
  readonly charged: bigint
  /** The channel balance when the receipt says it; absent otherwise. */
  readonly balance?: bigint
}

/**
 * Checks a `PAYMENT-RESPONSE` as x402's client rules say (x402-batch-settlement.md, "Client
 * rules"): a success on the payment's network, `chargedAmount <= amount`,
 * `channelState.chargedCumulativeAmount == charged + chargedAmount` and the channel id matches.
 * Stock servers leave fields out of some receipts: a missing `chargedAmount` is taken from the
 * cumulative figure, and when both are missing the full price is taken as charged (the voucher
 * covers it anyway).
 *
 * @returns The figures the payer adopts, or `tollgate_receipt_mismatch` with what is wrong.
 * @example
 * const verified = verifyReceipt(pending, decodedReceipt)
 * if (!verified.ok) block(channel, verified.message)
 */
export function verifyReceipt(
  pending: PendingPayment,
  receipt: DecodedSettleResponse,
): Result<VerifiedReceipt> {
  const { response, channelState } = receipt
  if (!response.success)
    return receiptMismatch(`the receipt reports no success (${response.errorReason}).`)
  if (response.network !== pending.network) {
    return receiptMismatch(`the receipt is for ${response.network}, not ${pending.network}.`)
  }
  if (
    channelState?.channelId !== undefined &&
    channelState.channelId.toLowerCase() !== pending.channelId.toLowerCase()
  ) {
    return receiptMismatch(
      `the receipt is for channel ${channelState.channelId}, not ${pending.channelId}.`,
    )
  }
  const cumulative = channelState?.chargedCumulativeAmount
  const chargedAmount =
    receipt.chargedAmount ??
    (cumulative === undefined ? pending.amount : cumulative - pending.charged)
  if (chargedAmount < 0n || chargedAmount > pending.amount) {
    return receiptMismatch(`it charged ${chargedAmount}, above the ${pending.amount} signed for.`)
  }
  const charged = pending.charged + chargedAmount
  if (cumulative !== undefined && cumulative !== charged) {
    return receiptMismatch(
      `its cumulative charge ${cumulative} is not ${pending.charged} + ${chargedAmount}.`,
    )
  }
  if (
    pending.deposit !== undefined &&
    receipt.amount !== undefined &&
    receipt.amount !== pending.deposit
  ) {
    return receiptMismatch(`it deposited ${receipt.amount}, not the ${pending.deposit} authorized.`)
  }
  return accept({
    chargedAmount,
    charged,
    ...(channelState?.balance === undefined ? {} : { balance: channelState.balance }),
  })
}

/** The refusal of what a server reported (a receipt, a corrective 402, a frame): it blocks the channel. */
export function receiptMismatch(detail: string): Rejection {
  return reject('tollgate_receipt_mismatch', detail)
}
