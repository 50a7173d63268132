import type { FastifyRequest } from 'fastify'
import { CLOSE_CODES } from './constants.js'
import type { PauseReason, SubscribeFrame } from './frames.js'
import { LiveBuffer } from './liveBuffer.js'
import type { FeedEmitter, ResolvedFeedRoute } from './resolveOptions.js'
import type { Session, SessionMode } from './session.js'

/**
 * Delivers a feed route's messages on one connection, one billed `data` frame each.
 *
 * The loop sends the next message only when (1) the session's credit covers one more message,
 * else it pauses with reason `credit` until a voucher tops it up, and (2) the socket's send queue
 * (`ws.bufferedAmount`) is below the high-water mark, else it pauses with reason `backpressure`
 * until the queue has drained to half of it. Each message is charged in the ledger before its
 * frame is sent.
 *
 * A pull source (async iterable) is not read while paused: delivery resumes with the next message,
 * nothing is lost. A live source (emitter) keeps pushing: the connection keeps the latest
 * `liveBuffer` messages and drops older ones, uncharged, which shows as a gap in `seq`.
 */
export class FeedPump implements SessionMode {
  private subscribed = false
  private stopped = false
  private paused: PauseReason | undefined
  private waiter: (() => void) | undefined
  private woken = false
  private iterator: AsyncIterator<unknown> | undefined
  private live: LiveBuffer | undefined
  private unsubscribe: (() => void) | undefined
  private pulled = 0
  private readonly abort = new AbortController()
  private readonly charged: string

  constructor(
    private readonly session: Session,
    private readonly route: ResolvedFeedRoute,
    private readonly httpRequest: FastifyRequest,
  ) {
    this.charged = route.price.toString()
  }

  subscribe(frame: SubscribeFrame): void {
    if (this.subscribed) {
      this.session.refuse('tollgate_ws_bad_frame', 'Already subscribed.')
      return
    }
    this.subscribed = true
    const { source } = this.route
    try {
      if (typeof source === 'function') {
        const iterable = source({
          params: frame.params,
          request: this.httpRequest,
          signal: this.abort.signal,
        })
        this.iterator = iterable[Symbol.asyncIterator]()
      } else {
        this.listen(source)
      }
    } catch (err) {
      this.failed(err)
      return
    }
    void this.run()
  }

  wake(): void {
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter) waiter()
    else this.woken = true
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.live?.clear()
    const iterator = this.iterator
    this.iterator = undefined
    // A generator suspended in `next()` finishes that first; sources should watch the signal.
    iterator?.return?.().catch(() => {})
    this.wake()
  }

  async idle(): Promise<void> {}

  private listen(emitter: FeedEmitter): void {
    const live = new LiveBuffer(this.route.liveBuffer)
    const { event } = this.route
    const listener = (body: unknown) => {
      live.push(body)
      this.wake()
    }
    emitter.on(event, listener)
    this.live = live
    this.unsubscribe = () => emitter.off(event, listener)
  }

  private async run(): Promise<void> {
    const { session, route } = this
    const high = session.options.highWaterBytes
    while (!this.stopped) {
      if (!session.billable || session.available() < route.price) {
        this.pause('credit')
        await this.sleep()
        continue
      }
      const queued = session.socket.bufferedAmount
      if (queued >= high || (this.paused === 'backpressure' && queued > high / 2)) {
        this.pause('backpressure')
        await this.sleep()
        continue
      }
      if (this.paused) {
        this.paused = undefined
        session.send({ type: 'resumed' })
      }
      const next = this.live ? this.live.shift() : await this.pull()
      if (next === undefined) {
        await this.sleep()
        continue
      }
      if (next === 'done') {
        if (!this.stopped) void session.end(CLOSE_CODES.normal, 'feed ended')
        return
      }
      // Only this loop charges a feed session, so the credit checked above still holds, unless the
      // session stopped while the source was read: then the message is neither sent nor charged.
      if (this.stopped) return
      let text: string
      try {
        text = JSON.stringify({
          type: 'data',
          seq: next.seq,
          body: next.body,
          charged: this.charged,
        })
      } catch (err) {
        session.log.error({ err, seq: next.seq }, 'tollgate-ws: a feed message is not JSON')
        session.refuse(
          'tollgate_internal',
          `Feed message ${next.seq} could not be serialized; it was skipped, not charged.`,
        )
        continue
      }
      session.chargeAndSend(route.price, text)
    }
  }

  /** The next message of a pull source; `done` when it finished or failed. */
  private async pull(): Promise<{ seq: number; body: unknown } | 'done'> {
    const iterator = this.iterator
    if (!iterator) return 'done'
    try {
      const result = await iterator.next()
      return result.done ? 'done' : { seq: ++this.pulled, body: result.value }
    } catch (err) {
      if (!this.stopped) this.failed(err)
      return 'done'
    }
  }

  private pause(reason: PauseReason): void {
    if (this.paused === reason || !this.subscribed) return
    this.paused = reason
    this.session.send({ type: 'paused', reason })
  }

  /** Waits for {@link wake}; a wake that came while the loop was busy is not lost. */
  private sleep(): Promise<void> {
    if (this.stopped || this.woken) {
      this.woken = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      this.waiter = resolve
    })
  }

  private failed(err: unknown): void {
    this.session.log.error({ err }, 'tollgate-ws: the feed source failed')
    this.stop()
    this.session.refuse('tollgate_internal', 'The feed failed.')
    this.session.close(CLOSE_CODES.internal, 'feed failed')
  }
}
