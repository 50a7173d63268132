import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Address, Hex } from 'viem'
import { type ErrorCode, TollgateError } from '../../errors/index.js'
import type { Hold, VoucherRule } from '../../ledger/index.js'
import {
  checkTick,
  consumeTick,
  openTickWindow,
  type TickWindow,
  tickWindowUsed,
} from '../../ledger/tickWindow.js'
import type { RouteMeter } from '../../metrics/index.js'
import { type Payee, screenPayment, type VoucherCarrying } from '../../payee/index.js'
import {
  decodePaymentHeader,
  encodeHeader,
  HEADERS,
  MAX_UINT128,
  type Network,
  voucherReceipt,
  ZERO_ADDRESS,
} from '../../protocol/index.js'
import { parseUint } from '../../protocol/parse.js'
import {
  encodeTickReceipt,
  parseTickHeader,
  parseTickWindowHeader,
  TICK_HEADERS,
  type TickWindowHeader,
  tickCommitmentDigest,
  tickDomainSeparator,
} from '../../protocol/tickWire.js'
import {
  channelId,
  createVoucherVerifier,
  loadBackend,
  type VoucherVerifier,
} from '../../verify/index.js'
import { DEFAULT_TICK_IDLE_MS, DEFAULT_TICK_PERSIST_EVERY } from './constants.js'
import { endOnClose, type Unsent } from './endOnClose.js'
import type { Payment } from './paidRequest.js'
import type { PricedRoute, RoutePrice } from './priceRoute.js'
import type { createLimiters } from './rateLimits.js'
import {
  errorPayload,
  type NoteRefusal,
  sendCorrective,
  sendError,
  sendRefused,
  sendUnpriced,
} from './replies.js'
import type { ResolvedOptions } from './resolveOptions.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Whether the route takes ticks from tollgate's own payer (PROTOCOL.md beside this file): one
     * voucher for a window of calls and a hash chain, each later call one keccak. `true`:
     * `DEFAULT_TICK_WINDOW` calls a window; a number: that many. Stock x402 clients pay as usual.
     */
    ticks?: boolean | number
  }
}

/** A window open on a channel: its chain state, the credit hold on the channel, who pays. */
interface OpenWindow {
  state: TickWindow
  readonly hold: Hold
  readonly payer: Address
  /** What a handler sees of each tick of the window (`request.payment`): the same for all. */
  readonly tickPayment: Payment
  /** A call of the window is being served: the next one is refused (`channel_busy`). */
  busy: boolean
  ended: boolean
  usedAt: number
}

/**
 * The open tick windows of one plugin, by channel. A window holds its channel in the payee (a
 * `credit` hold, as a WebSocket session does) from its opening voucher until it ends: used up,
 * idle for `idleMs`, a withdrawal, a price change, a new voucher on the channel, or `close()`.
 * Ending releases the hold: the charged total is what the ticks charged, written behind.
 */
export class TickWindows {
  private readonly windows = new Map<Hex, OpenWindow>()
  private sweeper: NodeJS.Timeout | undefined
  private checks: { separator: Uint8Array; verifier: VoucherVerifier } | undefined

  constructor(
    private readonly payee: Payee,
    private readonly idleMs = DEFAULT_TICK_IDLE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The domain separator of commitments (tollgate's tick domain on the payee's chain and escrow). */
  get separator(): Uint8Array {
    return this.commitmentChecks().separator
  }

  /** Checks commitment signatures, with its own cache of signer keys. */
  get verifier(): VoucherVerifier {
    return this.commitmentChecks().verifier
  }

  /** Built on the first window: a plugin with no tick route never needs them. */
  private commitmentChecks() {
    if (!this.checks) {
      const { payee } = this
      const { backend } = loadBackend(payee.backend === 'js' ? 'js' : 'auto')
      this.checks = {
        separator: tickDomainSeparator(payee.chainId, payee.escrow),
        verifier: createVoucherVerifier({ backend, domainSeparator: payee.domainSeparator }),
      }
    }
    return this.checks
  }

  get(id: Hex): OpenWindow | undefined {
    return this.windows.get(id)
  }

  /** Starts a window on a channel just held for it (its opening call is then in flight). */
  add(state: TickWindow, hold: Hold, payer: Address): OpenWindow {
    const tickPayment = paymentOf(state, payer, 'TOLLGATE-TICK')
    const open: OpenWindow = {
      state,
      hold,
      payer,
      tickPayment,
      busy: true,
      ended: false,
      usedAt: this.now(),
    }
    this.windows.set(state.channelId, open)
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(1000, this.idleMs / 2))
      this.sweeper.unref()
    }
    return open
  }

  /** Marks a window used now (the idle sweep ends windows left unused). */
  touch(open: OpenWindow): void {
    open.usedAt = this.now()
  }

  /** Ends a channel's window, if open: the hold is released and nothing more is charged. */
  end(id: Hex): void {
    const open = this.windows.get(id)
    if (!open) return
    this.windows.delete(id)
    open.ended = true
    this.payee.release(open.hold)
  }

  /**
   * A voucher on the standard path for a channel with an idle window: the window gives way once
   * the voucher's signature holds (nobody else can end a payer's window). `undefined` on the hot
   * path: no window on that channel.
   */
  yieldTo(payload: VoucherCarrying): Promise<void> | undefined {
    const id = payload.voucher.channelId
    const open = this.windows.get(id)
    if (!open || open.busy) return undefined
    return (async () => {
      if (channelId(payload.channelConfig, this.payee.domainSeparator) !== id) return
      if (await this.payee.ledger.verifySignature(payload.channelConfig, payload.voucher)) {
        if (this.windows.get(id) === open && !open.busy) this.end(id)
      }
    })()
  }

  /** Ends every window (the server stops cleanly): each charged total is exactly what was served. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper)
    this.sweeper = undefined
    for (const id of [...this.windows.keys()]) this.end(id)
  }

  private sweep(): void {
    const before = this.now() - this.idleMs
    for (const [id, open] of this.windows) if (!open.busy && open.usedAt < before) this.end(id)
  }
}

/** Where a request's tick state lives (declared up front, one object shape). */
export const kTick = Symbol('tollgate.tick')

type WithTick = { [kTick]: TickCall | TickOpening | null }

/** The tick state of a request on a tick route: an opening being decided, or a call being served. */
export function tickOf(request: FastifyRequest): TickCall | TickOpening | null {
  return (request as unknown as WithTick)[kTick]
}

/** An opening request between its checks (onRequest) and its voucher's decision (preHandler). */
interface TickOpening {
  readonly kind: 'opening'
  readonly route: RoutePrice
  readonly payload: VoucherCarrying
  readonly window: TickWindowHeader
  readonly root: Uint8Array
  /** The header the voucher came in. */
  readonly header: 'PAYMENT-SIGNATURE' | 'X-PAYMENT'
}

/**
 * One call of a window being served: the opening call (index 0, under the voucher just held)
 * or a tick. Charged once when the headers go out, or not at all; a tick not charged leaves its
 * preimage unused (the payer may present it again).
 */
class TickCall implements Unsent {
  readonly kind = 'call'
  private done = false
  private amount: bigint
  private fault: string | undefined

  constructor(
    private readonly windows: TickWindows,
    private readonly payee: Payee,
    private readonly network: Network,
    private readonly open: OpenWindow,
    readonly index: number,
    private readonly preimage: Uint8Array | undefined,
    readonly payment: Payment,
    private readonly log: FastifyBaseLogger,
  ) {
    this.amount = open.state.price
  }

  get pending(): boolean {
    return !this.done
  }

  get faulted(): string | undefined {
    return this.fault
  }

  /** `reply.charge()`: as on the standard path, an amount in `[0, price]`, else a fault. */
  charge(amount: unknown): void {
    if (this.done) {
      throw new TollgateError(
        'tollgate_internal',
        'reply.charge() was called after the charge was committed (the headers are sent).',
      )
    }
    const parsed =
      typeof amount === 'bigint'
        ? amount
        : typeof amount === 'string'
          ? parseUint(amount, MAX_UINT128)
          : undefined
    if (parsed === undefined || parsed < 0n || parsed > this.open.state.price) {
      this.fault = `reply.charge(${String(amount)}) is not an amount of token units in [0, ${this.open.state.price}].`
      throw new TollgateError('tollgate_internal', this.fault)
    }
    this.amount = parsed
  }

  /**
   * Charges the call within the window's durable cover and advances the chain. The receipt: x402's
   * `PAYMENT-RESPONSE` for the opening call (with `extra.tick`), a `TOLLGATE-TICK-RECEIPT` for a tick.
   */
  commit():
    | { ok: true; header: string; receipt: string; charged: bigint }
    | { ok: false; message: string } {
    if (this.done) return { ok: false, message: 'the tick is not pending.' }
    const { open } = this
    if (open.ended || this.fault !== undefined) {
      this.abandon()
      return { ok: false, message: this.fault ?? 'the window ended while the call was served.' }
    }
    this.done = true
    const result = this.payee.chargeHeld(open.hold, this.amount)
    if (!result.ok) {
      if (this.index === 0) this.windows.end(open.state.channelId)
      else open.busy = false
      return { ok: false, message: result.message }
    }
    if (this.preimage) open.state = consumeTick(open.state, this.index, this.preimage)
    open.busy = false
    this.windows.touch(open)
    const { ticks, channelId: id } = open.state
    if (tickWindowUsed(open.state)) this.windows.end(id)
    if (this.index > 0) {
      const receipt = encodeTickReceipt({
        channelId: id,
        index: this.index,
        chargedAmount: this.amount,
        chargedCumulativeAmount: result.record.chargedCumulativeAmount,
      })
      return { ok: true, header: TICK_HEADERS.receipt, receipt, charged: this.amount }
    }
    const receipt = voucherReceipt({
      network: this.network,
      payer: open.payer,
      chargedAmount: this.amount,
      channelState: result.record,
    })
    receipt.extra = { ...receipt.extra, tick: { index: 0, ticks } }
    return {
      ok: true,
      header: HEADERS.paymentResponse,
      receipt: encodeHeader(receipt),
      charged: this.amount,
    }
  }

  /** {@link abandon}, for the response's `close`: an error is logged, never thrown. */
  endUnsent(): void {
    try {
      this.abandon()
    } catch (err) {
      this.log.error({ err }, 'tollgate: ending a tick call failed')
    }
  }

  /** Not charged: an opening call ends its window (the voucher held before comes back); a tick stays unused. */
  abandon(): void {
    if (this.done) return
    this.done = true
    if (this.index === 0) this.windows.end(this.open.state.channelId)
    else this.open.busy = false
  }
}

/** The hooks a tick route adds before the standard ones (see plugin.ts). */
export interface TickHooks {
  /** Whether a request is a tick or a window opening (the other hooks then take it): its headers only. */
  claims(request: FastifyRequest): boolean
  onRequest(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void
  preHandler(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void
  onSend(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (err: Error | null, payload?: unknown) => void,
  ): void
}

/**
 * The hooks of one tick route. A request with `TOLLGATE-TICK` (and no payment header) is a tick:
 * its window is found by channel in memory and its preimage checked with one keccak, before any
 * store write or RPC. A request with `PAYMENT-SIGNATURE` and `TOLLGATE-TICK-WINDOW` opens a
 * window: the commitment's signature is checked, then the voucher is decided by the payee as a
 * credit window (durable before anything is served). Any other request is left to the standard
 * hooks.
 */
export function tickHooks(
  options: ResolvedOptions,
  limiters: Awaited<ReturnType<typeof createLimiters>>,
  priced: PricedRoute,
  meter: RouteMeter | undefined,
  note: NoteRefusal,
  windows: TickWindows,
): TickHooks {
  const { payee, network, maxPaymentHeaderBytes } = options
  const onChainPayloads = options.escrowWriter
    ? { deposit: true, refund: false, why: 'a window opens with a voucher or a deposit' }
    : { deposit: false, refund: false, why: 'the server is configured without an escrowWriter' }
  const refuse = (
    request: FastifyRequest,
    reply: FastifyReply,
    route: RoutePrice,
    code: ErrorCode,
    message: string,
    who?: { payer: string; channelId?: string | undefined },
    status?: number,
  ) => sendRefused(request, reply, route, note, { code, message, status, ...(who ? { who } : {}) })

  /** Callback style: a tick within its durable cover goes on with no promise. `done` is not called once a reply is sent. */
  const onTick = (
    request: FastifyRequest,
    reply: FastifyReply,
    route: RoutePrice,
    value: string | undefined,
    done: (err?: Error) => void,
  ): unknown => {
    const parsed = parseTickHeader(value)
    if (!parsed.ok) return refuse(request, reply, route, parsed.code, parsed.message)
    const { channelId: id, index, preimage } = parsed.value
    const open = windows.get(id)
    if (!open) {
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_window_ended',
        'no window is open on this channel',
      )
    }
    if (open.busy) {
      return refuse(
        request,
        reply,
        route,
        'invalid_batch_settlement_evm_channel_busy',
        'a call of the window is being served',
        whoOf(open),
      )
    }
    if (payee.ledger.get(id)?.withdrawRequestedAt !== 0) {
      windows.end(id)
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_window_ended',
        'the payer started a withdrawal',
        whoOf(open),
      )
    }
    const refused = checkTick(open.state, id, index, preimage)
    if (refused) {
      if (refused.expected === undefined) windows.end(id)
      else reply.header(TICK_HEADERS.expected, String(refused.expected))
      return refuse(request, reply, route, refused.code, refused.message, whoOf(open))
    }
    // Only a good preimage (the payer's) ends a window on another price: nobody else can.
    if (open.state.price !== route.price) {
      windows.end(id)
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_window_ended',
        "the route's price is not the window's",
        whoOf(open),
      )
    }
    open.busy = true
    const covering = payee.coverFor(open.hold, route.price)
    if (!covering) return serveTick(request, reply, open, index, preimage, done)
    covering.then(
      () => serveTick(request, reply, open, index, preimage, done),
      () => {
        open.busy = false
        windows.end(id)
        note(request, 'tollgate_store_failed', whoOf(open))
        sendError(reply, 'tollgate_store_failed')
      },
    )
  }

  /** A tick whose charge lies within the window's durable cover goes on to the handler. */
  const serveTick = (
    request: FastifyRequest,
    reply: FastifyReply,
    open: OpenWindow,
    index: number,
    preimage: Uint8Array,
    done: (err?: Error) => void,
  ) => {
    const call = new TickCall(
      windows,
      payee,
      network,
      open,
      index,
      preimage,
      open.tickPayment,
      request.log,
    )
    ;(request as unknown as WithTick)[kTick] = call
    endOnClose(reply, call)
    request.payment = call.payment
    done()
  }

  const onOpening = async (
    request: FastifyRequest,
    reply: FastifyReply,
    route: RoutePrice,
    value: string | undefined,
    payment: string | undefined,
  ) => {
    if (limiters.perIp) {
      const verdict = await limiters.perIp(request)
      if (!verdict.ok) {
        note(request, 'tollgate_rate_limited')
        return sendError(
          reply.header('retry-after', String(verdict.retryAfter)),
          'tollgate_rate_limited',
        )
      }
    }
    const header = parseTickWindowHeader(value)
    if (!header.ok) return refuse(request, reply, route, header.code, header.message)
    const decoded = decodePaymentHeader(payment, { maxBytes: maxPaymentHeaderBytes })
    if (!decoded.ok) return refuse(request, reply, route, decoded.code, decoded.message)
    const { payload } = decoded.value
    const screened =
      payload.type === 'refund'
        ? {
            code: 'invalid_batch_settlement_evm_payload_type' as const,
            message: 'a window opens with a voucher or a deposit',
            status: undefined,
          }
        : screenPayment(route.paid, decoded.value, onChainPayloads)
    const who = {
      payer: payload.channelConfig.payer,
      channelId: 'voucher' in payload ? payload.voucher.channelId : undefined,
    }
    if (screened)
      return refuse(request, reply, route, screened.code, screened.message, who, screened.status)
    const carrying = payload as VoucherCarrying
    const ticks = route.ticks ?? 0
    if (header.value.ticks > ticks) {
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_invalid',
        `a window of this route covers at most ${ticks} calls`,
        who,
      )
    }
    const { payerAuthorizer } = carrying.channelConfig
    if (payerAuthorizer === ZERO_ADDRESS) {
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_invalid',
        'ticks need an EOA payerAuthorizer; pay by voucher',
        who,
      )
    }
    const digest = tickCommitmentDigest(windows.separator, {
      channelId: carrying.voucher.channelId,
      maxClaimableAmount: carrying.voucher.maxClaimableAmount,
      price: route.price,
      ticks: header.value.ticks,
      root: header.value.root,
    })
    if (
      !digest ||
      !windows.verifier.verifyDigest(digest, header.value.signature, payerAuthorizer)
    ) {
      return refuse(
        request,
        reply,
        route,
        'tollgate_tick_invalid',
        "the window's commitment is not signed by the channel's payerAuthorizer",
        who,
      )
    }
    const opening: TickOpening = {
      kind: 'opening',
      route,
      payload: carrying,
      window: header.value,
      root: Buffer.from(header.value.root.slice(2), 'hex'),
      header:
        request.headers['payment-signature'] === undefined
          ? HEADERS.xPayment
          : HEADERS.paymentSignature,
    }
    ;(request as unknown as WithTick)[kTick] = opening
    return undefined
  }

  const claims: TickHooks['claims'] = (request) => {
    const { headers } = request
    const tick = headers['tollgate-tick']
    const window = headers['tollgate-tick-window']
    if (tick === undefined && window === undefined) return false
    const payment = headers['payment-signature'] ?? headers['x-payment']
    return payment === undefined ? tick !== undefined : window !== undefined
  }

  /** A request {@link claims} took: a tick, or a window opening. */
  const onRequest: TickHooks['onRequest'] = (request, reply, done) => {
    const { headers } = request
    const tick = headers['tollgate-tick']
    const window = headers['tollgate-tick-window']
    const payment = headers['payment-signature'] ?? headers['x-payment']
    const now = priced.now()
    if (!now.ok) {
      note(request, now.code)
      sendUnpriced(reply, now, options.oracle?.feed.refreshSeconds)
      return
    }
    if (payment === undefined) {
      onTick(request, reply, now.value, text(tick), done)
      return
    }
    onOpening(request, reply, now.value, text(window), text(payment)).then(
      (sent) => (sent === undefined ? done() : undefined),
      done,
    )
  }

  /** The opening voucher is decided as a credit window; the opening call is then served as index 0. */
  const preHandler: TickHooks['preHandler'] = (request, reply, done) => {
    const opening = tickOf(request)
    if (opening?.kind !== 'opening') return done()
    decideOpening(request, reply, opening).then(
      (sent) => (sent === undefined ? done() : undefined),
      done,
    )
  }

  const decideOpening = async (
    request: FastifyRequest,
    reply: FastifyReply,
    opening: TickOpening,
  ) => {
    const { route, payload, window } = opening
    const id = payload.voucher.channelId
    const who = { payer: payload.channelConfig.payer, channelId: id }
    const existing = windows.get(id)
    if (existing?.busy) {
      return refuse(
        request,
        reply,
        route,
        'invalid_batch_settlement_evm_channel_busy',
        'a call of the window is being served',
        who,
      )
    }
    // The commitment is signed by the config's authorizer: once the config is this channel's, the old window gives way.
    if (existing && channelId(payload.channelConfig, payee.domainSeparator) === id) windows.end(id)
    const persistEvery = BigInt(Math.min(window.ticks, DEFAULT_TICK_PERSIST_EVERY))
    const rule: VoucherRule = {
      kind: 'credit',
      price: BigInt(window.ticks) * route.price,
      reserve: persistEvery * route.price,
    }
    let admitted: Awaited<ReturnType<Payee['admit']>>
    try {
      admitted = await payee.admit({ ...route.paid, rule }, payload, {
        writer: options.escrowWriter,
        requester: request.ip,
      })
    } catch (err) {
      request.log.error({ err }, 'tollgate: deciding a tick window failed')
      return sendError(reply, 'tollgate_internal')
    }
    if (admitted.kind === 'corrective') {
      return sendCorrective(request, reply, route, note, admitted.record, admitted.message)
    }
    if (admitted.kind === 'refused') {
      return refuse(request, reply, route, admitted.code, admitted.message, who, admitted.status)
    }
    const state = openTickWindow(id, route.price, window.ticks, opening.root)
    const open = windows.add(state, admitted.hold, payload.channelConfig.payer)
    const call = new TickCall(
      windows,
      payee,
      network,
      open,
      0,
      undefined,
      paymentOf(state, payload.channelConfig.payer, opening.header),
      request.log,
    )
    ;(request as unknown as WithTick)[kTick] = call
    if (reply.raw.destroyed) {
      call.abandon()
      return reply.hijack()
    }
    endOnClose(reply, call)
    request.payment = call.payment
    return undefined
  }

  const onSend: TickHooks['onSend'] = (request, reply, payload, done) => {
    const call = tickOf(request)
    if (call?.kind !== 'call' || !call.pending) return done(null, payload)
    if (call.faulted !== undefined) return done(null, fault(request, reply, call, payload))
    if (reply.statusCode >= 400 || reply.raw.destroyed) {
      call.abandon()
      return done(null, payload)
    }
    const result = call.commit()
    if (!result.ok) return done(null, fault(request, reply, call, payload, result.message))
    meter?.charge(result.charged)
    reply.header(result.header, result.receipt)
    if (call.payment.header === HEADERS.xPayment) {
      reply.header(HEADERS.xPaymentResponse, result.receipt)
    }
    return done(null, payload)
  }

  return { claims, onRequest, preHandler, onSend }
}

/** Who a refusal of a call of a window names, for the refusal log. */
function whoOf(open: OpenWindow) {
  return { payer: open.payer, channelId: open.state.channelId }
}

/** What a handler sees of a call of a window (`request.payment`). */
function paymentOf(state: TickWindow, payer: Address, header: Payment['header']): Payment {
  return Object.freeze({ payer, channelId: state.channelId, price: state.price, header })
}

/** A header's value when sent once (a repeated header is an array: refused as absent). */
function text(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

/** A 500 `tollgate_internal` with nothing charged (an invalid `reply.charge()`, a failed commit). */
function fault(
  request: FastifyRequest,
  reply: FastifyReply,
  call: TickCall,
  payload: unknown,
  message = call.faulted,
): string {
  call.abandon()
  request.log.error({ detail: message }, 'tollgate: tick not charged')
  if (payload && typeof (payload as { destroy?: unknown }).destroy === 'function') {
    ;(payload as { destroy: () => void }).destroy()
  }
  reply.code(500).type('application/json; charset=utf-8').removeHeader('content-length')
  return errorPayload('tollgate_internal', message)
}
