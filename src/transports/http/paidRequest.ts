import type { FastifyBaseLogger } from 'fastify'
import type { Address, Hex } from 'viem'
import type { EscrowReceipt } from '../../chain/escrowWriter.js'
import { TollgateError } from '../../errors/index.js'
import type { Hold } from '../../ledger/index.js'
import type { Payee } from '../../payee/index.js'
import {
  type DepositPayload,
  depositReceipt,
  encodeHeader,
  MAX_UINT128,
  type Network,
  type VoucherPayload,
  voucherReceiptHeader,
} from '../../protocol/index.js'
import { parseUint } from '../../protocol/parse.js'
import type { Unsent } from './endOnClose.js'
import type { RoutePrice } from './priceRoute.js'

/** What a handler sees of an accepted payment: `request.payment`. */
export interface Payment {
  /** The channel's payer. */
  readonly payer: Address
  readonly channelId: Hex
  /** The route's price: the most this request may be charged (`reply.charge()` may lower it). */
  readonly price: bigint
  /** The header the payment came in (`TOLLGATE-TICK`: a call of a tick window, ./ticks.ts). */
  readonly header: 'PAYMENT-SIGNATURE' | 'X-PAYMENT' | 'TOLLGATE-TICK'
}

/** Where a paid request is: decoded, held (voucher durable, handler may run), settled. */
type Phase = 'decoded' | 'held' | 'committed' | 'released'

/** The outcome of {@link PaidRequest.commit}. */
export type CommitResult =
  | { readonly ok: true; readonly receipt: string; readonly charged: bigint }
  | { readonly ok: false; readonly message: string }

/**
 * The life of one paid request, from its decoded header to the commit or release of its hold.
 * Invariants: the channel is held only in phase `held`; the hold is ended exactly once; nothing
 * is charged above the route's price, and nothing at all once an invalid charge was attempted.
 */
export class PaidRequest implements Unsent {
  readonly payment: Payment
  private phase: Phase = 'decoded'
  private hold: Hold | undefined
  private amount: bigint
  /** Why this request must not be charged: a programming error in the handler. */
  private fault: string | undefined

  constructor(
    private readonly payee: Payee,
    private readonly network: Network,
    readonly route: RoutePrice,
    readonly payload: VoucherPayload | DepositPayload,
    header: Payment['header'],
    private readonly log: FastifyBaseLogger,
  ) {
    this.amount = route.price
    this.payment = Object.freeze({
      payer: payload.channelConfig.payer,
      channelId: payload.voucher.channelId,
      price: route.price,
      header,
    })
  }

  /** Whether the channel is held by this request. */
  get held(): boolean {
    return this.phase === 'held'
  }

  /** The programming error that forbids charging this request, if any. */
  get faulted(): string | undefined {
    return this.fault
  }

  /** The deposit this request's payload made on chain, reported in its receipt. */
  private deposit: EscrowReceipt | undefined

  /** Records the hold the payee granted, and the deposit when the payload carried one. */
  accept(hold: Hold, deposit?: EscrowReceipt): void {
    this.hold = hold
    this.deposit = deposit
    this.phase = 'held'
  }

  /**
   * Lowers the charge (dynamic pricing). A charge that is not an amount in `[0, price]`, or that
   * comes after the commit, is a programming error: it throws, and the request will not be
   * charged at all.
   *
   * @throws TollgateError `tollgate_internal`.
   */
  charge(amount: unknown): void {
    if (this.phase !== 'held') {
      throw new TollgateError(
        'tollgate_internal',
        this.phase === 'decoded'
          ? 'reply.charge() was called before the payment was accepted.'
          : 'reply.charge() was called after the charge was committed (the headers are sent).',
      )
    }
    const parsed =
      typeof amount === 'bigint'
        ? amount
        : typeof amount === 'string'
          ? parseUint(amount, MAX_UINT128)
          : undefined
    if (parsed === undefined || parsed < 0n || parsed > this.route.price) {
      this.fault = `reply.charge(${String(amount)}) is not an amount of token units in [0, ${this.route.price}].`
      throw new TollgateError('tollgate_internal', this.fault)
    }
    this.amount = parsed
  }

  /**
   * Charges the request and ends the hold; returns the `PAYMENT-RESPONSE` header value. Refused
   * (and the hold released, nothing charged) after an invalid `charge()`.
   */
  commit(): CommitResult {
    const hold = this.end('committed')
    if (!hold) return { ok: false, message: 'the payment is not held.' }
    if (this.fault !== undefined) {
      this.payee.release(hold)
      return { ok: false, message: this.fault }
    }
    const result = this.payee.commit(hold, this.amount)
    if (!result.ok) return { ok: false, message: result.message }
    const channelState = result.record ?? result.hold.record
    const base = {
      network: this.network,
      payer: this.payment.payer,
      chargedAmount: this.amount,
      channelState,
    }
    const receipt = this.deposit
      ? encodeHeader(
          depositReceipt({
            ...base,
            transaction: this.deposit.transaction,
            amount: this.deposit.amount,
          }),
        )
      : voucherReceiptHeader(base)
    return { ok: true, receipt, charged: this.amount }
  }

  /** Ends the hold with nothing charged; a no-op when the channel is not held. */
  release(): void {
    const hold = this.end('released')
    if (hold) this.payee.release(hold)
  }

  /** {@link release}, for the response's `close`: an error is logged, never thrown. */
  endUnsent(): void {
    try {
      this.release()
    } catch (err) {
      this.log.error({ err }, 'tollgate: releasing a channel failed')
    }
  }

  private end(phase: Phase): Hold | undefined {
    if (this.phase !== 'held' || !this.hold) return undefined
    const hold = this.hold
    this.phase = phase
    this.hold = undefined
    return hold
  }
}
