import { type Result, TollgateError } from '../errors/index.js'
import {
  type DecodedSettleResponse,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  paymentPayload,
  requirementsEqual,
} from '../protocol/index.js'
import type { PayerChannel } from './journal.js'
import type { PayerCore } from './payerCore.js'

/** Rounds of one paid call: pay, then at most this many more after a corrective or changed 402. */
const MAX_ROUNDS = 4

/** What one paid attempt brought back, as its transport (HTTP, MCP) reads it. */
export type Attempt<T> =
  /** A success with a receipt (decoded, or why it could not be). */
  | {
      readonly kind: 'receipt'
      readonly receipt: Result<DecodedSettleResponse>
      readonly answer: T
    }
  /** A 402: the server's `PaymentRequired`; `discard` frees the answer when the call is retried. */
  | {
      readonly kind: 'required'
      readonly required: PaymentRequired
      readonly answer: T
      discard?(): Promise<void>
    }
  /** Anything else: the answer goes back to the caller as it is. */
  | { readonly kind: 'other'; readonly answer: T }

/** How {@link payRequirements} reaches the server. */
export interface PaidCall<T> {
  /** Sends the call with `payment`. */
  attempt(payment: PaymentPayload): Promise<Attempt<T>>
  /** Runs under the channel's lock before the first attempt. */
  onChannel?(channelId: `0x${string}`): Promise<void>
  /** The server sent other requirements, which the payer now pays: for the caller's cache. */
  remember?(requirements: PaymentRequirements): void
  /** The voucher's ceiling for the channel as it stands (a tick window's); default charged + price. */
  ceiling?(channel: PayerChannel, requirements: PaymentRequirements): bigint
}

/**
 * Pays `first` for one call of any transport: under the channel's lock, prepares the payment
 * (spend limits, deposit, journal, then the signature), sends it, and checks the receipt; after
 * a 402 that paying again can fix (a corrective 402, a balance the server has not seen, a deposit
 * payload not taken, changed requirements) it adopts what the server said and pays again, at most
 * {@link MAX_ROUNDS} times. Any other answer goes back to the caller as sent.
 *
 * @throws TollgateError as {@link PayerCore.prepare}, `tollgate_receipt_mismatch` (the channel is
 *   then blocked), or `tollgate_internal` when the server keeps changing its identity.
 */
export async function payRequirements<T>(
  core: PayerCore,
  first: PaymentRequirements,
  origin: string,
  call: PaidCall<T>,
): Promise<T> {
  let requirements = first
  for (let switches = 0; ; switches++) {
    const channel = await core.channelFor(requirements, origin)
    const id = channel.channelId
    const next = await core.withChannel(
      id,
      async (): Promise<{ answer: T } | PaymentRequirements> => {
        await call.onChannel?.(id)
        let directDeposit = false
        for (let round = 1; ; round++) {
          const prepared = await core.prepare(id, requirements, origin, {
            ...(directDeposit ? { method: 'direct' as const } : {}),
            ...(call.ceiling ? { ceiling: call.ceiling(core.current(id), requirements) } : {}),
          })
          const sent = await call.attempt(
            paymentPayload({ accepted: requirements, payload: prepared.payload }),
          )
          if (sent.kind === 'receipt') {
            if (!sent.receipt.ok) await core.block(id, sent.receipt)
            else await core.settle(prepared.pending, sent.receipt.value)
            return { answer: sent.answer }
          }
          if (sent.kind === 'other' || round === MAX_ROUNDS) return { answer: sent.answer }
          const { required } = sent
          const error = required.error
          const offered = core.select(required)
          const retry =
            error === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' ||
            error === 'invalid_batch_settlement_evm_cumulative_exceeds_balance' ||
            error === 'invalid_batch_settlement_evm_channel_not_found' ||
            (error === 'invalid_batch_settlement_evm_payload_type' &&
              prepared.payload.type === 'deposit' &&
              !directDeposit) ||
            (offered !== undefined && !requirementsEqual(offered, requirements))
          // Refused for a reason paying again will not fix: the caller gets the 402 as sent.
          if (!retry) return { answer: sent.answer }
          await sent.discard?.()
          if (error === 'invalid_batch_settlement_evm_cumulative_amount_mismatch') {
            await core.adoptCorrective(id, required)
            continue
          }
          if (
            error === 'invalid_batch_settlement_evm_cumulative_exceeds_balance' ||
            error === 'invalid_batch_settlement_evm_channel_not_found'
          ) {
            await core.refreshBalance(id)
            continue
          }
          if (error === 'invalid_batch_settlement_evm_payload_type') {
            directDeposit = true
            continue
          }
          if (!offered) return { answer: sent.answer }
          call.remember?.(offered)
          requirements = offered
          // Requirements of another server identity belong to another channel and its lock.
          if (core.channelIdOf(offered) !== id) return offered
        }
      },
    )
    if ('answer' in next) return next.answer
    if (switches >= 1) {
      throw new TollgateError('tollgate_internal', `${origin} keeps changing its requirements.`)
    }
    requirements = next
  }
}
