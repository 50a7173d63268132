import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  onSendHookHandler,
  preHandlerHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import { accept, type ErrorCode, type Result, TollgateError } from '../../errors/index.js'
import { RefusalLog, type RouteMeter, TollgateMetrics } from '../../metrics/index.js'
import { type Admission, screenPayment } from '../../payee/index.js'
import {
  type DecodedPayment,
  decodePaymentHeader,
  decodeSchemePaymentHeader,
  encodeHeader,
  HEADERS,
  type RefundPayload,
  refundReceipt,
  type SchemePayment,
} from '../../protocol/index.js'
import type { Price } from '../../protocol/parsePrice.js'
import { endOnClose } from './endOnClose.js'
import { type ExactPayment, exactHooks, exactOf, kExact, markExact } from './exactHooks.js'
import { PaidRequest, type Payment } from './paidRequest.js'
import { type PricedRoute, priceRoute, type RoutePrice } from './priceRoute.js'
import { createLimiters } from './rateLimits.js'
import {
  errorPayload,
  type NoteRefusal,
  type RefusedPayer,
  sendCorrective,
  sendError,
  sendRefused,
  sendUnpaid,
  sendUnpriced,
} from './replies.js'
import { type ResolvedOptions, resolveOptions, type TollgateOptions } from './resolveOptions.js'
import { kTick, type TickHooks, TickWindows, tickHooks, tickOf } from './ticks.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The accepted payment of a priced route, from its `preHandler` on; `null` elsewhere. */
    payment: Payment | null
    /** The accepted exact payment of a route that takes `exact`, from its `preHandler` on; `null` elsewhere. */
    exactPayment: ExactPayment | null
  }
  interface FastifyReply {
    /**
     * Charges less than the route's price (dynamic pricing): token units as a bigint or a
     * decimal string, in `[0, price]`. Call it before sending: the charge is committed when the
     * headers go out. Anything else is a programming error: it throws `tollgate_internal`, the
     * reply becomes a 500 and nothing is charged.
     */
    charge(amount: bigint | string): FastifyReply
  }
  interface FastifyContextConfig {
    /** The route's price: `'$0.001'`, `'1000'` or `1000n` (token units). Unset: free. */
    price?: Price
    /** `resource.description` of the route's 402. */
    description?: string
    /** `resource.mimeType` of the route's 402. */
    mimeType?: string
    /**
     * Whether the route also accepts x402 `exact` payments (one on-chain transfer per request,
     * whose gas the server pays); needs the plugin's `exactPayee`. @default the plugin's `exactByDefault`
     */
    exact?: boolean
  }
}

/** A limiter's check that counts nothing (the request is counted once its voucher is held). */
const PEEK = Object.freeze({ count: false })

/** Where a request's payment state lives (declared up front, one object shape). */
const kPaid = Symbol('tollgate.paid')

type WithPaid = { [kPaid]: PaidRequest | null }

function paidOf(request: FastifyRequest): PaidRequest | null {
  return (request as unknown as WithPaid)[kPaid]
}

/**
 * The x402 batch-settlement HTTP transport for Fastify. Routes with `config.price` answer 402
 * unpaid, and serve a request paid by voucher (`PAYMENT-SIGNATURE` or `X-PAYMENT`) once the
 * voucher is durable; the charge is committed before the response headers go out, with a
 * `PAYMENT-RESPONSE` receipt, and released (nothing charged) when the handler fails.
 *
 * Register it before the priced routes: prices are read, checked and turned into requirements
 * when each route is registered.
 *
 * @example
 * await app.register(tollgate, { payee, network: 'eip155:84532', asset, payTo, receiverAuthorizer, withdrawDelay: 900 })
 * app.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: '...' }))
 */
async function tollgatePlugin(fastify: FastifyInstance, raw: TollgateOptions): Promise<void> {
  const options = resolveOptions(raw)
  const metrics = raw.metrics ?? false
  if (metrics !== false && !(metrics instanceof TollgateMetrics)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      'metrics must be false or a TollgateMetrics (new TollgateMetrics()).',
    )
  }
  const refusalLog = metrics ? metrics.refusalLog : new RefusalLog()
  const limiters = await createLimiters(
    fastify,
    sharedPayerLimit(options) ? { ...options, perPayer: undefined } : options,
    (request) => paidOf(request)?.payment.payer ?? '',
    options.rateLimitRedis,
  )

  fastify.decorateRequest('payment', null)
  fastify.decorateRequest(kPaid, null)
  fastify.decorateRequest('exactPayment', null)
  fastify.decorateRequest(kExact, null)
  fastify.decorateRequest(kTick, null)
  // Tick windows (PROTOCOL.md beside this file) of the routes with `config.ticks`.
  const windows = new TickWindows(options.payee)
  fastify.addHook('onClose', async () => windows.close())
  fastify.decorateReply('charge', function charge(this: FastifyReply, amount: bigint | string) {
    const paid = paidOf(this.request) ?? tickCall(this.request)
    if (!paid) {
      throw new TollgateError(
        'tollgate_internal',
        'reply.charge() was called on a request that is not paid (a route without a price?).',
      )
    }
    paid.charge(amount)
    return this
  })

  // Oracle routes are re-priced after each read of the feed, off the hot path.
  const refreshers: (() => void)[] = []
  if (options.oracle) {
    const unsubscribe = options.oracle.feed.subscribe(() => {
      for (const refresh of refreshers) refresh()
    })
    fastify.addHook('onClose', async () => unsubscribe())
  }

  fastify.addHook('onRoute', (route) => {
    const price = priceRoute(route.config, options, `${String(route.method)} ${route.url}`)
    if (!price) return
    if (price.refresh) refreshers.push(price.refresh)
    const meter = metrics ? metrics.route('http', route.url) : undefined
    const note: NoteRefusal = (request, code, who) => {
      meter?.refuse(code)
      refusalLog.note(request.log, {
        code,
        route: route.url,
        payer: who?.payer,
        channelId: who?.channelId,
      })
    }
    const ticks = (route.config as { ticks?: unknown } | undefined)?.ticks
    const standard = routeHooks(options, limiters, price, meter, note, windows)
    const tick =
      ticks !== undefined && ticks !== false
        ? tickHooks(options, limiters, price, meter, note, windows)
        : undefined
    const exact =
      price.acceptsExact && options.exactPayee ? exactHooks(options.exactPayee, note) : undefined
    addPaymentHooks(route, composeHooks(standard, tick, exact))
  })
}

/**
 * The three hooks of a priced route, each run once per request: a tick or a window opening goes
 * to the tick hooks, an exact payment to the exact hooks, any other to the standard ones. A hold
 * that `onSend` never ends (a hijacked reply, a client gone) is ended when the response closes
 * (./endOnClose.ts), so the route needs no `onError`, `onResponse` or `onRequestAbort` hook.
 */
function composeHooks(
  standard: StandardHooks,
  tick: TickHooks | undefined,
  exact: ReturnType<typeof exactHooks> | undefined,
): Hooks {
  const onRequest = (request: FastifyRequest, reply: FastifyReply, done: HookDone) => {
    if (tick?.claims(request)) return tick.onRequest(request, reply, done)
    goOn(standard.onRequest(request, reply), done)
  }
  const preHandler = (request: FastifyRequest, reply: FastifyReply, done: HookDone) => {
    if (tick && tickOf(request) !== null) return tick.preHandler(request, reply, done)
    if (paidOf(request) !== null) return goOn(standard.preHandler(request, reply), done)
    if (exact && exactOf(request) !== null) return goOn(exact.preHandler(request, reply), done)
    done()
  }
  const onSend = (
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: SendDone,
  ) => {
    if (tick && tickOf(request) !== null) return tick.onSend(request, reply, payload, done)
    if (paidOf(request) !== null) return standard.onSend(request, reply, payload, done)
    if (exact && exactOf(request) !== null) {
      exact.onSend(request, reply, payload).then(
        (body) => done(null, body),
        (err: Error) => done(err),
      )
      return
    }
    done(null, payload)
  }
  return { onRequest, preHandler, onSend } as unknown as Hooks
}

type HookDone = (err?: Error) => void
type SendDone = (err: Error | null, payload?: unknown) => void

/** An async hook step, callback style: `done` unless it sent a reply (then the route stops). */
function goOn(step: Promise<unknown>, done: HookDone): void {
  step.then((sent) => (sent === undefined ? done() : undefined), done)
}

/** The per-payer limit a shared store counts in its hold script, without a round trip of its own. */
function sharedPayerLimit(options: ResolvedOptions): { max: number; windowMs: number } | undefined {
  return options.perPayer && options.payee.countsPayerLimits
    ? { max: options.perPayer.max, windowMs: options.perPayer.timeWindowMs }
    : undefined
}

type Hooks = {
  onRequest: onRequestHookHandler
  preHandler: preHandlerHookHandler
  onSend: onSendHookHandler
}

/** The standard (voucher, deposit, refund) path of a priced route, before {@link composeHooks}. */
type StandardHooks = ReturnType<typeof routeHooks>

/**
 * The hooks of one priced route: closures over its price and requirements, its meter (absent
 * with `metrics: false`) and the note every refusal goes through.
 */
function routeHooks(
  options: ResolvedOptions,
  limiters: Awaited<ReturnType<typeof createLimiters>>,
  priced: PricedRoute,
  meter: RouteMeter | undefined,
  note: NoteRefusal,
  windows: TickWindows,
) {
  const { payee, network } = options
  const headerLimit = { maxBytes: options.maxPaymentHeaderBytes }
  const payerLimit = sharedPayerLimit(options)
  const onChainPayloads = options.escrowWriter
    ? { deposit: true, refund: true }
    : { deposit: false, refund: false, why: 'the server is configured without an escrowWriter' }
  const limited = (
    request: FastifyRequest,
    reply: FastifyReply,
    retryAfter: number,
    who?: RefusedPayer,
  ) => {
    note(request, 'tollgate_rate_limited', who)
    return sendError(reply.header('retry-after', String(retryAfter)), 'tollgate_rate_limited')
  }
  const refuse = (
    request: FastifyRequest,
    reply: FastifyReply,
    route: RoutePrice,
    code: ErrorCode,
    message: string,
    status?: number,
    who?: RefusedPayer,
  ) => sendRefused(request, reply, route, note, { code, message, status, ...(who ? { who } : {}) })

  /** Cheap checks before the body is read: rate limit per IP, header, requirements. */
  const onRequest = async (request: FastifyRequest, reply: FastifyReply) => {
    const signature = request.headers['payment-signature']
    const xPayment = request.headers['x-payment']
    const header = signature !== undefined ? HEADERS.paymentSignature : HEADERS.xPayment
    const value = signature ?? xPayment
    const perIp = value === undefined ? limiters.unpaidPerIp : limiters.perIp
    if (perIp) {
      const verdict = await perIp(request)
      if (!verdict.ok) return limited(request, reply, verdict.retryAfter)
    }
    // The price in force for this request: its 402, its screening and its payment check.
    const now = priced.now()
    if (!now.ok) {
      note(request, now.code)
      return sendUnpriced(reply, now, options.oracle?.feed.refreshSeconds)
    }
    const route = now.value
    if (value === undefined) return sendUnpaid(request, reply, route)

    const raw = typeof value === 'string' ? value : undefined
    // Routes without exact decode batch-settlement only (another scheme is refused by name).
    const decoded = priced.acceptsExact
      ? decodeSchemePaymentHeader(raw, headerLimit)
      : asBatch(decodePaymentHeader(raw, headerLimit))
    if (!decoded.ok) return refuse(request, reply, route, decoded.code, decoded.message)
    if (decoded.value.scheme === 'exact') {
      markExact(request, decoded.value.payment, header, route)
      return undefined
    }
    const { payload } = decoded.value.payment
    const screened = screenPayment(route.paid, decoded.value.payment, onChainPayloads)
    if (screened) {
      return refuse(
        request,
        reply,
        route,
        screened.code,
        screened.message,
        screened.status,
        namedBy(payload),
      )
    }
    if (payload.type === 'refund') return refund(request, reply, route, payload)
    ;(request as unknown as WithPaid)[kPaid] = new PaidRequest(
      payee,
      network,
      route,
      payload,
      header,
      request.log,
    )
    return undefined
  }

  /**
   * A cooperative refund (x402 `refund` payload): the route's handler does not run; the reply is
   * the refund receipt.
   */
  const refund = async (
    request: FastifyRequest,
    reply: FastifyReply,
    route: RoutePrice,
    payload: RefundPayload,
  ) => {
    const writer = options.escrowWriter
    if (!writer) return sendError(reply, 'tollgate_internal')
    const outcome = await payee.refund(payload, writer, { requester: request.ip })
    if (!outcome.ok) {
      if (
        outcome.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' &&
        outcome.record
      ) {
        return sendCorrective(request, reply, route, note, outcome.record, outcome.message)
      }
      return refuse(
        request,
        reply,
        route,
        outcome.code,
        outcome.message,
        undefined,
        namedBy(payload),
      )
    }
    const { receipt, record } = outcome.value
    const header = encodeHeader(
      refundReceipt({
        network,
        payer: payload.channelConfig.payer,
        transaction: receipt.transaction,
        amount: receipt.amount,
        channelState: record,
      }),
    )
    reply.header(HEADERS.paymentResponse, header)
    if (request.headers['payment-signature'] === undefined)
      reply.header(HEADERS.xPaymentResponse, header)
    return reply
      .code(200)
      .send({ refunded: receipt.amount.toString(), transaction: receipt.transaction })
  }

  /** After validation, just before the handler: the voucher is decided and made durable. */
  const preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const paid = paidOf(request)
    if (!paid || paid.held) return undefined
    if (limiters.perPayer) {
      const verdict = await limiters.perPayer(request, PEEK)
      if (!verdict.ok) return limited(request, reply, verdict.retryAfter, paid.payment)
    }
    // The requirements the payment was screened against, even if the rate moved since.
    const route = paid.route
    // A voucher on a channel with an idle tick window ends that window first.
    const yielding = windows.yieldTo(paid.payload)
    if (yielding) await yielding
    let admitted: Admission
    const started = meter ? performance.now() : 0
    try {
      admitted = await payee.admit(route.paid, paid.payload, {
        writer: options.escrowWriter,
        requester: request.ip,
        payerLimit,
      })
    } catch (err) {
      request.log.error({ err }, 'tollgate: deciding a voucher failed')
      return sendError(reply, 'tollgate_internal')
    }
    switch (admitted.kind) {
      case 'corrective':
        return sendCorrective(request, reply, route, note, admitted.record, admitted.message)
      case 'refused':
        if (admitted.retryAfter !== undefined) {
          return limited(request, reply, admitted.retryAfter, paid.payment)
        }
        return refuse(
          request,
          reply,
          route,
          admitted.code,
          admitted.message,
          admitted.status,
          paid.payment,
        )
      case 'held':
        paid.accept(admitted.hold, admitted.deposit)
        meter?.observe((performance.now() - started) / 1000)
    }
    if (reply.raw.destroyed) {
      // The client left while the voucher was decided: serve nothing, charge nothing.
      end(request, paid)
      return reply.hijack()
    }
    // A client that leaves before the headers are sent is not charged.
    endOnClose(reply, paid)
    request.payment = paid.payment
    if (limiters.perPayer) await limiters.perPayer(request)
    return undefined
  }

  /** Headers are about to go out: commit on success (status < 400), release otherwise. */
  const onSend = (
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (err: Error | null, payload?: unknown) => void,
  ) => {
    const paid = paidOf(request)
    if (!paid) return done(null, payload)
    if (paid.faulted !== undefined) {
      return answer(paid, fault(request, reply, paid, payload), done)
    }
    if (!paid.held) return done(null, payload)
    if (reply.statusCode >= 400 || reply.raw.destroyed) {
      end(request, paid)
      return answer(paid, payload, done)
    }
    let result: ReturnType<PaidRequest['commit']>
    try {
      result = paid.commit()
    } catch (err) {
      request.log.error({ err }, 'tollgate: committing a charge failed')
      result = { ok: false, message: 'the charge could not be committed.' }
    }
    if (!result.ok) {
      return answer(paid, fault(request, reply, paid, payload, result.message), done)
    }
    meter?.charge(result.charged)
    reply.header(HEADERS.paymentResponse, result.receipt)
    if (paid.payment.header === HEADERS.xPayment) {
      reply.header(HEADERS.xPaymentResponse, result.receipt)
    }
    return answer(paid, payload, done)
  }

  /**
   * The reply goes on. On a shared store, an end the payer's next voucher cannot make by itself (a
   * release, a charge below the price) is acknowledged first, so that the payer's next request is
   * never busy, whichever instance it reaches.
   */
  const answer = (
    paid: PaidRequest,
    body: unknown,
    done: (err: Error | null, payload?: unknown) => void,
  ) => {
    const ending = payee.ended(paid.payment.channelId)
    if (ending) ending.then(() => done(null, body))
    else done(null, body)
  }

  return { onRequest, preHandler, onSend }
}

/** A batch-settlement decoding as a {@link SchemePayment}. */
function asBatch(decoded: Result<DecodedPayment>): Result<SchemePayment> {
  return decoded.ok ? accept({ scheme: 'batch-settlement', payment: decoded.value }) : decoded
}

/** The payer and channel a payload names, for the refusal log. */
function namedBy(payload: { channelConfig: { payer: string }; voucher?: { channelId: string } }) {
  return { payer: payload.channelConfig.payer, channelId: payload.voucher?.channelId }
}

/** The tick call a request on a tick route is, if any (for `reply.charge()`). */
function tickCall(request: FastifyRequest) {
  const tick = tickOf(request)
  return tick?.kind === 'call' ? tick : null
}

/** Releases the hold if the request still has it; never throws (hooks must not). */
function end(request: FastifyRequest, paid: PaidRequest): void {
  try {
    paid.release()
  } catch (err) {
    request.log.error({ err }, 'tollgate: releasing a channel failed')
  }
}

/**
 * Turns the reply into a 500 `tollgate_internal` with nothing charged: the handler charged an
 * invalid amount (even if it caught the error), or the commit failed.
 */
function fault(
  request: FastifyRequest,
  reply: FastifyReply,
  paid: PaidRequest,
  payload: unknown,
  message = paid.faulted,
): string {
  end(request, paid)
  request.log.error({ detail: message }, 'tollgate: request not charged')
  if (payload && typeof (payload as { destroy?: unknown }).destroy === 'function') {
    ;(payload as { destroy: () => void }).destroy()
  }
  reply.code(500).type('application/json; charset=utf-8').removeHeader('content-length')
  return errorPayload('tollgate_internal', message)
}

/** Appends the payment hooks after the route's own: authentication and the like run first. */
function addPaymentHooks(route: RouteOptions, hooks: Partial<Hooks>): void {
  const target = route as unknown as Record<string, unknown>
  for (const [name, hook] of Object.entries(hooks)) {
    const existing = target[name]
    target[name] =
      existing === undefined
        ? [hook]
        : Array.isArray(existing)
          ? [...existing, hook]
          : [existing, hook]
  }
}

/**
 * The `tollgate` Fastify plugin, wrapped with fastify-plugin: `request.payment` and
 * `reply.charge()` must reach the application's routes.
 */
export const tollgate = fp(tollgatePlugin, { fastify: '5.x', name: 'tollgate' })
