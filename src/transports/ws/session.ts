import type { FastifyBaseLogger } from 'fastify'
import type { Address, Hex } from 'viem'
import type { WebSocket } from 'ws'
import { describe, type ErrorCode } from '../../errors/index.js'
import type { ChannelRecord, Hold } from '../../ledger/index.js'
import { RefusalLog, type RouteMeter } from '../../metrics/index.js'
import { screenPayment, type VoucherCarrying } from '../../payee/index.js'
import {
  decodePaymentPayload,
  type PaymentRequired,
  paymentRequired,
  type ResourceInfo,
  voucherReceipt,
} from '../../protocol/index.js'
import { correctiveFor } from '../terms.js'
import { CLOSE_CODES, LEDGER_FLUSH_MS, MAX_PENDING_PAYMENTS } from './constants.js'
import type { ErrorFrame, RequestFrame, RequestId, ServerFrame, SubscribeFrame } from './frames.js'
import { parseClientFrame } from './parseClientFrame.js'
import type { ResolvedRoute, ResolvedWsOptions } from './resolveOptions.js'

/** A WebSocket takes vouchers only: a session's channel is deposited on chain beforehand. */
const WS_PAYLOADS = Object.freeze({ deposit: false, refund: false })

/** What a route adds to a session: a feed pump or a request runner. */
export interface SessionMode {
  /** Handles `subscribe`; absent: the frame is refused as a bad frame. */
  subscribe?(frame: SubscribeFrame): void
  /** Handles `request`; absent: the frame is refused as a bad frame. */
  request?(frame: RequestFrame): void
  /** Credit or room in the socket's send queue may have grown. */
  wake(): void
  /** The session stops: produce and charge nothing more, free what was taken. Idempotent. */
  stop(): void
  /** Resolves when work already charged or about to be (requests in flight) has finished. */
  idle(): Promise<void>
}

/** Where a session is: open; ending (an `end` frame: finishing work in flight); closed. */
type State = 'open' | 'ending' | 'closed'

/** Error codes that are part of normal flow and do not count against a connection. */
const NO_STRIKE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'invalid_batch_settlement_evm_cumulative_amount_mismatch',
  'invalid_batch_settlement_evm_channel_state_read_failed',
  'tollgate_withdrawal_pending',
  'tollgate_exposure_cap',
  'tollgate_store_failed',
  'tollgate_ws_no_credit',
  'tollgate_ws_too_many_requests',
  'tollgate_internal',
])

const OPEN = 1

/**
 * One billed WebSocket connection: its frames, its payments and the hold on its channel.
 *
 * Invariants (DESIGN.md, money invariants 1, 2 and 7):
 * - The channel is held from the first accepted voucher until the session closes, then released
 *   exactly once (which stores the final charged total); a connection that never paid holds
 *   nothing.
 * - A billed frame is sent only when the held voucher and the session's durable cover (see
 *   {@link Payee.coveredTo}) cover its price: a request's after {@link chargeAndSend} committed
 *   it in the ledger; a feed message's once {@link sendBilled} counted it against an allowance
 *   computed from the ledger, and the ledger is charged for the messages counted ({@link flush})
 *   at the latest when the allowance runs out, before a voucher is decided or a receipt made,
 *   when the hold is released, and within {@link LEDGER_FLUSH_MS} otherwise. Nothing is charged
 *   or counted once the session is no longer open to sending (closing, closed).
 * - Vouchers of one connection are decided one at a time, in the order they came.
 */
export class Session {
  private state: State = 'open'
  private hold: Hold | undefined
  private mode: SessionMode | undefined
  /** Credit set aside for requests in flight (their price), not yet charged. */
  private reserved = 0n
  /** `chargedCumulativeAmount` at the last receipt: the next receipt's `chargedAmount` starts here. */
  private receiptCharged = 0n
  private lowWaterSent = false
  /** Feed messages sent at the route's price and not charged in the ledger yet. */
  private unflushed = 0
  /**
   * Feed messages that may still be sent at the route's price before the ledger is charged:
   * within the credit, the durable cover, the low-water mark and the point where the next
   * reserve is written (see {@link refreshAllowance}).
   */
  private allowance = 0
  private strikes = 0
  private pendingPayments = 0
  private payments: Promise<void> = Promise.resolve()
  private payTimer: NodeJS.Timeout | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private readonly onFlushed = (): void => this.mode?.wake()

  constructor(
    readonly socket: WebSocket,
    readonly route: ResolvedRoute,
    readonly options: ResolvedWsOptions,
    readonly resource: ResourceInfo,
    readonly log: FastifyBaseLogger,
    private readonly onClosed: (session: Session) => void,
    /** Where charges and refusals are counted; absent with `metrics: false`. */
    private readonly meter?: RouteMeter,
    private readonly refusalLog: RefusalLog = new RefusalLog(),
    /** Counts a bad frame against the client's address; true when the address is over its budget. */
    private readonly onStrike: () => boolean = () => false,
  ) {}

  /** Attaches the route's mode, listens to the socket and sends `payment-required`. */
  start(mode: SessionMode): void {
    this.mode = mode
    const { socket } = this
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary))
    socket.on('close', () => this.closed())
    // @fastify/websocket routes socket errors to its error handler; this one only keeps the
    // session's state right (a 'close' event follows every error).
    socket.on('error', () => {})
    if (this.options.heartbeatMs > 0) {
      // A payer that vanished without closing must not hold its channel for ever.
      let alive = true
      socket.on('pong', () => {
        alive = true
      })
      this.heartbeat = setInterval(() => {
        if (!alive) return socket.terminate()
        alive = false
        socket.ping()
      }, this.options.heartbeatMs)
      this.heartbeat.unref()
    }
    if (this.options.payTimeoutMs > 0) {
      this.payTimer = setTimeout(() => {
        if (!this.hold) this.close(CLOSE_CODES.policy, 'no voucher within the pay timeout')
      }, this.options.payTimeoutMs)
      this.payTimer.unref()
    }
    this.send({ type: 'payment-required', paymentRequired: this.paymentRequired() })
  }

  /** The channel's payer, once a voucher was accepted. */
  get payer(): Address | undefined {
    return this.hold ? this.record()?.config.payer : undefined
  }

  get channelId(): Hex | undefined {
    return this.hold?.channelId
  }

  /** Whether charges may be made: a channel is held and the socket still takes frames. */
  get billable(): boolean {
    return this.hold !== undefined && this.state !== 'closed' && this.socket.readyState === OPEN
  }

  /** Whether the session takes new work: open, not ending nor closed. */
  get open(): boolean {
    return this.state === 'open' && this.socket.readyState === OPEN
  }

  /** Credit left for new work: the held ceiling minus what is charged and what is reserved. */
  available(): bigint {
    this.flush()
    const record = this.record()
    if (!record) return 0n
    return record.signedMaxClaimable - record.chargedCumulativeAmount - this.reserved
  }

  /** Sets `amount` of credit aside (a request in flight). */
  reserve(amount: bigint): boolean {
    if (!this.billable || this.available() < amount) return false
    this.reserved += amount
    return true
  }

  unreserve(amount: bigint): void {
    this.reserved -= amount
  }

  /**
   * Waits, when it must, until a charge of `amount` lies within what the store holds of the
   * session (see {@link Payee.coverFor}); `undefined` when it already does. On a store failure the
   * session is refused with `tollgate_store_failed` and closed, and the promise resolves false:
   * nothing more is served.
   */
  covered(amount: bigint): Promise<boolean> | undefined {
    this.flush()
    const hold = this.hold
    if (!hold) return undefined
    const writing = this.options.payee.coverFor(hold, amount)
    if (!writing) return undefined
    return writing.then(
      () => this.state !== 'closed',
      () => {
        this.refuse('tollgate_store_failed', 'The session could not be stored; it ends.')
        this.close(CLOSE_CODES.internal, 'store failed')
        return false
      },
    )
  }

  /**
   * Commits a charge in the ledger, then sends the billed frame (serialized beforehand) and, when
   * the credit left has fallen to the low-water mark, `voucher-needed`. Returns the credit left,
   * or undefined, charging and sending nothing, when the session is not billable or the held
   * voucher does not cover the charge.
   *
   * The charge is made in the ledger's memory, within the in-flight amount the store already
   * holds ({@link covered}); the charged total is written behind every half reserve, and when the
   * session releases the channel. After a crash a payer is charged at most one reserve
   * (`persistEvery` messages) beyond what was delivered.
   *
   * `notify`: wake the mode when the frame has left the send queue (see {@link sendText}).
   */
  chargeAndSend(amount: bigint, text: string, notify = true): bigint | undefined {
    const hold = this.hold
    if (!hold || !this.billable) return undefined
    this.flush()
    const result = this.options.payee.chargeHeld(hold, amount)
    if (!result.ok) {
      this.log.error({ code: result.code, detail: result.message }, 'tollgate-ws: charge refused')
      return undefined
    }
    this.sendText(text, notify)
    this.meter?.charge(amount)
    const { record } = result
    const left = record.signedMaxClaimable - record.chargedCumulativeAmount
    const credit = this.reserved === 0n ? left : left - this.reserved
    if (!this.lowWaterSent) this.checkLowWater(credit)
    return credit
  }

  /** Whether a feed message may be sent now at the route's price (see {@link sendBilled}). */
  canSend(): boolean {
    return this.allowance > 0 || this.refreshAllowance()
  }

  /**
   * Sends a feed's billed frame (serialized beforehand, without a flush callback) at the route's
   * price, counted against the session's allowance: no ledger call, no amount computed per
   * message. False, sending nothing, when the allowance is spent and nothing more may be sent
   * now: no credit, a store write to wait for ({@link covered}), or the session not billable.
   * When the allowance runs out with this frame, the ledger is charged at once, so that
   * `voucher-needed` follows the frame that reached the low-water mark.
   */
  sendBilled(text: string): boolean {
    if (this.allowance === 0 && !this.refreshAllowance()) return false
    if (this.socket.readyState !== OPEN) {
      this.allowance = 0
      return false
    }
    this.allowance--
    if (this.unflushed++ === 0) flushLater(this)
    this.socket.send(text)
    this.meter?.charge(this.route.price)
    if (this.allowance === 0) this.flush()
    return true
  }

  /**
   * Charges the ledger for the feed messages counted since the last flush, in one charge, and
   * sends `voucher-needed` when the credit left has reached the low-water mark.
   */
  flush(): void {
    const count = this.unflushed
    if (count === 0) return
    this.unflushed = 0
    const hold = this.hold
    if (!hold) return
    const result = this.options.payee.chargeHeld(hold, BigInt(count) * this.route.price)
    if (!result.ok) {
      // The allowance kept every message within the held voucher and the durable cover.
      this.log.error({ code: result.code, detail: result.message }, 'tollgate-ws: charge refused')
      return
    }
    if (!this.lowWaterSent) this.checkLowWater(this.creditOf(result.record))
  }

  /**
   * Computes how many feed messages may be sent before the next flush: within the credit and the
   * durable cover, up to the message that reaches the low-water mark, and up to the one that
   * brings the charge within half a reserve of the cover, where the next reserve is written
   * behind (as {@link Payee.chargeHeld} does). False when none may be sent now.
   */
  private refreshAllowance(): boolean {
    this.flush()
    const hold = this.hold
    const record = this.record()
    if (!hold || !record || !this.billable) return false
    const { price } = this.route
    const charged = record.chargedCumulativeAmount
    const credit = record.signedMaxClaimable - charged - this.reserved
    // Past the refill point the payee has the next reserve written already; a write that fails
    // stops the session when it reaches the cover (see covered).
    const { covered, refillAt } = this.options.payee.coveredTo(hold)
    let room = covered - charged
    if (credit < room) room = credit
    let messages = room / price
    if (!this.lowWaterSent) {
      const above = credit - this.route.voucherNeededBelow
      const toMark = above < 0n ? 1n : above / price + 1n
      if (toMark < messages) messages = toMark
    }
    if (refillAt !== undefined && refillAt > charged) {
      // Up to the message that reaches the refill point: its flush writes the next reserve.
      const toRefill = (refillAt - charged + price - 1n) / price
      if (toRefill < messages) messages = toRefill
    }
    this.allowance = messages > 0n ? Number(messages) : 0
    return this.allowance > 0
  }

  /** Sends a frame; false when the session is closed or the socket no longer takes frames. */
  send(frame: ServerFrame): boolean {
    return this.sendText(JSON.stringify(frame))
  }

  /**
   * Sends a serialized frame; with `notify` (the default) the mode is woken when it has been
   * written out. A feed's `data` frames go without: its `paused` frame carries the wake-up.
   */
  sendText(text: string, notify = true): boolean {
    // Once closed, only the final receipt goes out (it may wait for the store: see close).
    if (this.state === 'closed' || this.socket.readyState !== OPEN) return false
    if (notify) this.socket.send(text, this.onFlushed)
    else this.socket.send(text)
    return true
  }

  /**
   * Sends an error frame; codes outside normal flow count against the connection. Every refusal
   * is counted by code and route and logged once (rate-limited) with the payer and channel: the
   * session's, or those of the refused payload (`who`).
   */
  refuse(
    code: ErrorCode,
    message?: string,
    extra: {
      id?: RequestId
      paymentRequired?: PaymentRequired
      who?: { payer: string; channelId: string }
    } = {},
  ): void {
    this.meter?.refuse(code)
    this.refusalLog.note(this.log, {
      code,
      route: this.route.path,
      payer: extra.who?.payer ?? this.payer,
      channelId: extra.who?.channelId ?? this.channelId,
    })
    const frame: ErrorFrame = {
      type: 'error',
      code,
      message: message ?? describe(code),
      ...(extra.id === undefined ? {} : { id: extra.id }),
      ...(extra.paymentRequired === undefined ? {} : { paymentRequired: extra.paymentRequired }),
    }
    this.send(frame)
    if (NO_STRIKE.has(code)) return
    const addressOver = this.onStrike()
    if (++this.strikes >= this.options.maxBadFrames || addressOver) {
      this.close(CLOSE_CODES.policy, 'too many bad frames')
    }
  }

  /** The route's `PaymentRequired`: price per message in `accepts[].amount`, `extra.creditWindow`. */
  paymentRequired(error?: string): PaymentRequired {
    return paymentRequired({
      resource: this.resource,
      accepts: [this.route.requirements],
      ...(error === undefined ? {} : { error }),
    })
  }

  /**
   * Ends the session gracefully: no new work; work in flight and queued vouchers finish; then the
   * hold is released, a final receipt sent and the socket closed with `code`.
   */
  async end(code: number, reason: string): Promise<void> {
    if (this.state !== 'open') return
    this.state = 'ending'
    this.mode?.stop()
    await this.payments
    await this.mode?.idle()
    await this.close(code, reason)
  }

  /**
   * Closes now: stops the mode, releases the hold (the final charge is already committed: charges
   * are made before frames are sent), sends a final receipt when a voucher was held, and closes.
   * On a shared store the receipt and the close frame wait until the store acknowledged the end
   * of the hold ({@link Payee.ended}), so that the payer's next session, on whichever instance,
   * never finds the channel busy; the promise returned then resolves once they are sent.
   */
  close(code: number, reason: string): Promise<void> | undefined {
    if (this.state === 'closed') return undefined
    this.state = 'closed'
    const record = this.finish()
    const ending = record && this.options.payee.ended(record.channelId)
    if (!ending) return this.sendFinal(record, code, reason)
    return ending.then(() => this.sendFinal(record, code, reason))
  }

  /** The final receipt, when a voucher was held, then the close frame. */
  private sendFinal(record: ChannelRecord | undefined, code: number, reason: string): undefined {
    if (this.socket.readyState !== OPEN) return undefined
    if (record) {
      const frame: ServerFrame = {
        type: 'receipt',
        paymentResponse: this.receipt(record),
        creditRemaining: '0',
        final: true,
      }
      this.socket.send(JSON.stringify(frame))
    }
    this.socket.close(code, reason)
    return undefined
  }

  /** The socket closed, by either side: release whatever is still held. */
  private closed(): void {
    this.state = 'closed'
    this.finish()
    this.onClosed(this)
  }

  /** Stops the mode and releases the hold once; returns the channel as released. */
  private finish(): ChannelRecord | undefined {
    if (this.payTimer) clearTimeout(this.payTimer)
    this.payTimer = undefined
    if (this.heartbeat) clearInterval(this.heartbeat)
    this.heartbeat = undefined
    this.mode?.stop()
    this.flush()
    this.allowance = 0
    unflushedSessions.delete(this)
    const hold = this.hold
    if (!hold) return undefined
    this.hold = undefined
    try {
      return this.options.payee.release(hold)
    } catch (err) {
      this.log.error({ err }, 'tollgate-ws: releasing a channel failed')
      return undefined
    }
  }

  private onMessage(data: Parameters<typeof parseClientFrame>[0]['data'], isBinary: boolean) {
    if (this.state !== 'open') return
    const parsed = parseClientFrame({ data, isBinary }, this.options.maxFrameBytes)
    if (!parsed.ok) return this.refuse(parsed.code, parsed.message)
    const frame = parsed.value
    switch (frame.type) {
      case 'pay':
        return this.queuePayment(frame.payment)
      case 'end':
        void this.end(CLOSE_CODES.normal, 'session ended')
        return
      case 'subscribe':
        if (!this.mode?.subscribe) {
          return this.refuse('tollgate_ws_bad_frame', 'This route takes requests, not subscribe.')
        }
        return this.mode.subscribe(frame)
      case 'request':
        if (!this.mode?.request) {
          return this.refuse('tollgate_ws_bad_frame', 'This route is a feed: send subscribe.')
        }
        return this.mode.request(frame)
    }
  }

  private queuePayment(payment: unknown): void {
    if (this.pendingPayments >= MAX_PENDING_PAYMENTS) {
      this.refuse('tollgate_ws_too_many_requests', 'Too many pay frames are waiting.')
      return
    }
    this.pendingPayments++
    this.payments = this.payments
      .then(() => this.pay(payment))
      .catch((err: unknown) => {
        this.log.error({ err }, 'tollgate-ws: deciding a voucher failed')
        this.refuse('tollgate_internal')
      })
      .finally(() => {
        this.pendingPayments--
      })
  }

  /** Decides one voucher: opens the session's credit (`decide`) or tops it up (`extend`). */
  private async pay(value: unknown): Promise<void> {
    if (this.state === 'closed') return
    const { payee } = this.options
    const decoded = decodePaymentPayload(value)
    if (!decoded.ok) return this.refuse(decoded.code, decoded.message)
    const { paid } = this.route
    const screened = screenPayment(paid, decoded.value, WS_PAYLOADS)
    const named = decoded.value.payload
    const who = {
      payer: named.channelConfig.payer,
      channelId: 'voucher' in named ? named.voucher.channelId : '',
    }
    if (screened) {
      return this.refuse(screened.code, screened.message, {
        ...(screened.resend ? { paymentRequired: this.paymentRequired(screened.code) } : {}),
        who,
      })
    }
    const payload = decoded.value.payload as VoucherCarrying
    const held = this.hold
    this.flush()
    const admitted = await payee.admit(paid, payload, { held })
    if (admitted.kind === 'corrective') {
      return this.refuse(admitted.code, admitted.message, {
        paymentRequired: correctiveFor(this.resource, this.route.requirements, admitted.record),
        who,
      })
    }
    if (admitted.kind === 'refused') return this.refuse(admitted.code, admitted.message, { who })
    if ((this.state as State) === 'closed') {
      // The socket closed while the voucher was decided: a new hold is released at once.
      if (!held) payee.release(admitted.hold)
      return
    }
    if (!held) {
      this.receiptCharged = admitted.hold.record.chargedCumulativeAmount
      if (this.payTimer) clearTimeout(this.payTimer)
      this.payTimer = undefined
    }
    this.hold = admitted.hold
    this.flush()
    this.allowance = 0
    const record = this.record() ?? admitted.hold.record
    this.send({
      type: 'receipt',
      paymentResponse: this.receipt(record),
      creditRemaining: this.creditOf(record).toString(),
    })
    this.lowWaterSent = false
    this.checkLowWater()
    this.mode?.wake()
  }

  /** `voucherReceipt`: `chargedAmount` is what was charged since the previous receipt. */
  private receipt(record: ChannelRecord) {
    const chargedAmount = record.chargedCumulativeAmount - this.receiptCharged
    this.receiptCharged = record.chargedCumulativeAmount
    return voucherReceipt({
      network: this.options.network,
      payer: record.config.payer,
      chargedAmount: chargedAmount > 0n ? chargedAmount : 0n,
      channelState: record,
    })
  }

  /** Sends `voucher-needed` once per voucher when the messages left fall to the low-water mark. */
  private checkLowWater(available = this.available()): void {
    if (this.lowWaterSent || !this.hold || this.state !== 'open') return
    if (available >= this.route.voucherNeededBelow) return
    this.lowWaterSent = true
    this.send({
      type: 'voucher-needed',
      paymentRequired: this.paymentRequired(),
      creditRemaining: (available > 0n ? available : 0n).toString(),
    })
  }

  private creditOf(record: ChannelRecord): bigint {
    return record.signedMaxClaimable - record.chargedCumulativeAmount - this.reserved
  }

  private record(): ChannelRecord | undefined {
    return this.hold ? this.options.payee.ledger.get(this.hold.channelId) : undefined
  }
}

/** Sessions with feed messages counted and not charged yet, flushed together by one timer. */
const unflushedSessions = new Set<Session>()
let flushTimer: NodeJS.Timeout | undefined

/** Charges `session`'s counted messages in the ledger within {@link LEDGER_FLUSH_MS}. */
function flushLater(session: Session): void {
  unflushedSessions.add(session)
  if (flushTimer) return
  flushTimer = setTimeout(flushAll, LEDGER_FLUSH_MS)
  flushTimer.unref()
}

function flushAll(): void {
  flushTimer = undefined
  for (const session of unflushedSessions) session.flush()
  unflushedSessions.clear()
}
