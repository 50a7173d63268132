import type { FastifyRequest } from 'fastify'
import { TollgateError } from '../../errors/index.js'
import { MAX_UINT128 } from '../../protocol/index.js'
import { parseUint } from '../../protocol/parse.js'
import type { RequestFrame } from './frames.js'
import type { RequestContext, ResolvedRequestRoute } from './resolveOptions.js'
import type { Session, SessionMode } from './session.js'

/**
 * Answers a request route's billed requests on one connection.
 *
 * A request starts only if the session's credit covers the route's price, which is set aside
 * (reserved) while the handler runs, so that requests in flight never together exceed the held
 * voucher. When the handler succeeds, the actual price (`context.charge`, at most the route's
 * price; the price itself by default) is committed in the ledger, then the `response` frame is
 * sent. A failed handler, or a session that closed meanwhile, charges nothing.
 *
 * Backpressure: when the socket's send queue passes the high-water mark after a response, the
 * connection stops reading client frames until it has drained to half of it, so a client that
 * sends requests without reading answers cannot grow the queue.
 */
export class RequestRunner implements SessionMode {
  private inFlight = 0
  private stopped = false
  private readingPaused = false
  private idleWaiters: (() => void)[] = []
  private readonly abort = new AbortController()

  constructor(
    private readonly session: Session,
    private readonly route: ResolvedRequestRoute,
    private readonly httpRequest: FastifyRequest,
  ) {}

  request(frame: RequestFrame): void {
    const { session, route } = this
    if (this.stopped) return
    if (this.inFlight >= route.maxInFlight) {
      session.refuse(
        'tollgate_ws_too_many_requests',
        `At most ${route.maxInFlight} requests are handled at once.`,
        { id: frame.id },
      )
      return
    }
    if (!session.reserve(route.price)) {
      session.refuse('tollgate_ws_no_credit', undefined, {
        id: frame.id,
        paymentRequired: session.paymentRequired('tollgate_ws_no_credit'),
      })
      return
    }
    this.inFlight++
    void this.run(frame).finally(() => {
      if (--this.inFlight === 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve()
      }
    })
  }

  wake(): void {
    const { socket, options } = this.session
    if (this.readingPaused && socket.bufferedAmount <= options.highWaterBytes / 2) {
      this.readingPaused = false
      socket.resume()
    }
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
  }

  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private async run(frame: RequestFrame): Promise<void> {
    const { session, route } = this
    let reserved = true
    const unreserve = () => {
      if (reserved) session.unreserve(route.price)
      reserved = false
    }
    try {
      let amount = route.price
      let fault: string | undefined
      const context: RequestContext = {
        id: frame.id,
        price: route.price,
        payer: session.payer ?? '0x',
        channelId: session.channelId ?? '0x',
        request: this.httpRequest,
        signal: this.abort.signal,
        charge(value: bigint | string) {
          const parsed =
            typeof value === 'bigint'
              ? value
              : typeof value === 'string'
                ? parseUint(value, MAX_UINT128)
                : undefined
          if (parsed === undefined || parsed < 0n || parsed > route.price) {
            fault = `context.charge(${String(value)}) is not an amount of token units in [0, ${route.price}].`
            throw new TollgateError('tollgate_internal', fault)
          }
          amount = parsed
        },
      }
      let body: unknown
      try {
        body = await route.handler(frame.body, context)
      } catch (err) {
        session.log.error({ err, id: frame.id }, 'tollgate-ws: a request handler failed')
        return session.refuse('tollgate_internal', 'The request failed; nothing was charged.', {
          id: frame.id,
        })
      }
      if (fault !== undefined) {
        session.log.error({ detail: fault, id: frame.id }, 'tollgate-ws: request not charged')
        return session.refuse('tollgate_internal', fault, { id: frame.id })
      }
      let text: string
      try {
        text = JSON.stringify({
          type: 'response',
          id: frame.id,
          body,
          charged: amount.toString(),
        })
      } catch (err) {
        session.log.error({ err, id: frame.id }, 'tollgate-ws: a response is not JSON')
        return session.refuse(
          'tollgate_internal',
          'The response could not be serialized; nothing was charged.',
          {
            id: frame.id,
          },
        )
      }
      const covering = session.covered(amount)
      if (covering && !(await covering)) return
      // The reservation covered the price; the actual charge (at most the price) takes its place.
      unreserve()
      if (session.chargeAndSend(amount, text) !== undefined) this.checkBackpressure()
    } finally {
      unreserve()
    }
  }

  private checkBackpressure(): void {
    const { socket, options } = this.session
    if (!this.readingPaused && socket.bufferedAmount >= options.highWaterBytes) {
      this.readingPaused = true
      socket.pause()
    }
  }
}
