import { setImmediate as nextLoop } from 'node:timers/promises'
import type { FastifyRequest } from 'fastify'
import { CLOSE_CODES, FEED_BURST } from './constants.js'
import type { PauseReason, SubscribeFrame } from './frames.js'
import { LiveBuffer } from './liveBuffer.js'
import type { FeedEmitter, ResolvedFeedRoute } from './resolveOptions.js'
import type { Session, SessionMode } from './session.js'

/**
 * The start of a `data` frame. Frames are built around the body's JSON, byte for byte as
 * `JSON.stringify({ type: 'data', seq, body, charged })` would (without the object).
 */
const DATA_HEAD = '{"type":"data","seq":'

/**
 * Delivers a feed route's messages on one connection, one billed `data` frame each.
 *
 * The loop sends the next message only when (1) the session's credit covers one more message,
 * else it pauses with reason `credit` until a voucher tops it up, and (2) the socket's send queue
 * (`ws.bufferedAmount`) is below the high-water mark, else it pauses with reason `backpressure`
 * until the queue has drained to half of it. Each message is charged in the ledger before its
 * frame is sent.
 *
 * After {@link FEED_BURST} messages in a row the loop yields to the event loop, so that a source
 * that never waits cannot starve the other connections.
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
  /** The end of every `data` frame of this route: `,"charged":"<price>"}`. */
  private readonly tail: string

  constructor(
    private readonly session: Session,
    private readonly route: ResolvedFeedRoute,
    private readonly httpRequest: FastifyRequest,
  ) {
    this.tail = `,"charged":"${route.price}"}`
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
    const { price } = route
    const high = session.options.highWaterBytes
    // Credit left after the last charge. Only this loop charges a feed session, so it can only
    // be below the session's credit (a voucher came since): it is looked up again before pausing.
    let credit = 0n
    let burst = 0
    while (!this.stopped) {
      if (burst >= FEED_BURST) {
        burst = 0
        await nextLoop()
        continue
      }
      if (credit < price) {
        credit = session.billable ? session.available() : 0n
        if (credit < price) {
          this.pause('credit')
          await this.sleep()
          continue
        }
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
      let seq: number
      let body: unknown
      if (this.live) {
        const message = this.live.shift()
        if (message === undefined) {
          await this.sleep()
          continue
        }
        seq = message.seq
        body = message.body
      } else {
        const iterator = this.iterator
        if (!iterator) return
        let result: IteratorResult<unknown>
        try {
          result = await iterator.next()
        } catch (err) {
          if (!this.stopped) this.failed(err)
          return
        }
        if (result.done) {
          if (!this.stopped) void session.end(CLOSE_CODES.normal, 'feed ended')
          return
        }
        seq = ++this.pulled
        body = result.value
      }
      // The session may have stopped while the source was read: then the message is neither sent
      // nor charged.
      if (this.stopped) return
      let text: string
      try {
        const json = JSON.stringify(body)
        text =
          json === undefined
            ? `${DATA_HEAD}${seq}${this.tail}`
            : `${DATA_HEAD}${seq},"body":${json}${this.tail}`
      } catch (err) {
        session.log.error({ err, seq }, 'tollgate-ws: a feed message is not JSON')
        session.refuse(
          'tollgate_internal',
          `Feed message ${seq} could not be serialized; it was skipped, not charged.`,
        )
        continue
      }
      const covering = session.covered(price)
      if (covering && (!(await covering) || this.stopped)) return
      credit = session.chargeAndSend(price, text) ?? 0n
      burst++
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
