import { setImmediate as nextLoop } from 'node:timers/promises'
import type { FastifyRequest } from 'fastify'
import { CLOSE_CODES, FEED_BURST } from './constants.js'
import { type FeedHub, hubOf, type LiveSubscriber } from './feedHub.js'
import type { PauseReason, SubscribeFrame } from './frames.js'
import { LiveBuffer, type LiveMessage } from './liveBuffer.js'
import type { ResolvedFeedRoute } from './resolveOptions.js'
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
 * until the queue has drained to half of it. Each message is charged before its frame is sent:
 * counted against the session's allowance, which the ledger is charged for together
 * ({@link Session.sendBilled}).
 *
 * After {@link FEED_BURST} messages in a row the loop yields to the event loop, so that a source
 * that never waits cannot starve the other connections.
 *
 * A pull source (async iterable) is not read while paused: delivery resumes with the next message,
 * nothing is lost. A live source (emitter) keeps pushing: the connection keeps the latest
 * `liveBuffer` messages and drops older ones, uncharged, which shows as a gap in `seq`.
 *
 * A live message is serialized once for every connection of the route (its {@link FeedHub}). While
 * the loop waits for the next live message with nothing paused and nothing kept, a message is
 * charged and sent as it is emitted, within the same checks, with no turn of the loop; anything it
 * cannot send at once (credit, the send queue, a store write to wait for) is kept for the loop.
 *
 * `data` frames are sent without a flush callback: a pause for backpressure sends its `paused`
 * frame with one, and that frame leaves the queue once everything before it has, which wakes the
 * loop to look at the queue again.
 */
export class FeedPump implements SessionMode, LiveSubscriber {
  private subscribed = false
  private stopped = false
  private paused: PauseReason | undefined
  private waiter: (() => void) | undefined
  private woken = false
  /** The loop waits for a live message with nothing paused: one may be sent as it comes. */
  private ready = false
  private iterator: AsyncIterator<unknown> | undefined
  private live: LiveBuffer | undefined
  private pulled = 0
  /** Aborted when the session stops; made for a pull source only (its context's `signal`). */
  private abort: AbortController | undefined
  private readonly hub: FeedHub

  constructor(
    private readonly session: Session,
    private readonly route: ResolvedFeedRoute,
    /** The upgrade request, for a pull source's context; dropped once subscribed. */
    private httpRequest: FastifyRequest | undefined,
  ) {
    this.hub = hubOf(route)
  }

  subscribe(frame: SubscribeFrame): void {
    if (this.subscribed) {
      this.session.refuse('tollgate_ws_bad_frame', 'Already subscribed.')
      return
    }
    this.subscribed = true
    const { source } = this.route
    const request = this.httpRequest as FastifyRequest
    this.httpRequest = undefined
    try {
      if (typeof source === 'function') {
        this.abort = new AbortController()
        const iterable = source({ params: frame.params, request, signal: this.abort.signal })
        this.iterator = iterable[Symbol.asyncIterator]()
      } else {
        this.live = new LiveBuffer(this.route.liveBuffer)
        this.hub.join(this)
      }
    } catch (err) {
      this.failed(err)
      return
    }
    void this.run()
  }

  /** A live message: charged and sent at once when the loop is ready for it, else kept. */
  deliver(message: LiveMessage): void {
    const live = this.live
    if (this.stopped || !live) return
    if (this.ready && live.size === 0 && this.sendNow(live.emitted + 1, message)) {
      live.skip()
      return
    }
    live.push(message)
    this.wake()
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
    this.ready = false
    this.abort?.abort()
    if (this.live) {
      this.hub.leave(this)
      this.live.clear()
    }
    const iterator = this.iterator
    this.iterator = undefined
    // A generator suspended in `next()` finishes that first; sources should watch the signal.
    iterator?.return?.().catch(() => {})
    this.wake()
  }

  async idle(): Promise<void> {}

  /**
   * Sends message `seq` now, billed, if nothing has to wait: the session's allowance covers it
   * (credit, durable cover) and the send queue has room. True when it was sent (or, not
   * serializable, skipped and reported); false when the loop must take it.
   */
  private sendNow(seq: number, message: LiveMessage): boolean {
    const { session } = this
    if (!session.canSend() || session.socket.bufferedAmount >= session.options.highWaterBytes) {
      return false
    }
    if (typeof message !== 'string') {
      this.unserializable(seq, message)
      return true
    }
    return session.sendBilled(`${DATA_HEAD}${seq}${message}`)
  }

  private async run(): Promise<void> {
    const { session, route } = this
    const { price } = route
    const high = session.options.highWaterBytes
    let burst = 0
    while (!this.stopped) {
      if (burst >= FEED_BURST) {
        burst = 0
        await nextLoop()
        continue
      }
      if (!session.canSend()) {
        if ((session.billable ? session.available() : 0n) < price) {
          this.pause('credit')
          await this.sleep()
          continue
        }
        // Credit is there, the durable cover is not yet: wait for the store write.
        const covering = session.covered(price)
        if (covering && (!(await covering) || this.stopped)) return
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
      let seq: number
      let text: string
      if (this.live) {
        seq = this.live.headSeq
        const message = this.live.shift()
        if (message === undefined) {
          burst = 0
          this.ready = true
          await this.sleep()
          this.ready = false
          continue
        }
        if (typeof message !== 'string') {
          this.unserializable(seq, message)
          continue
        }
        text = `${DATA_HEAD}${seq}${message}`
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
        // The session may have stopped while the source was read: then the message is neither
        // sent nor charged.
        if (this.stopped) return
        try {
          text = `${DATA_HEAD}${seq}${this.hub.rest(result.value)}`
        } catch (err) {
          this.unserializable(seq, err)
          continue
        }
      }
      // Not sent (the session closed meanwhile): neither charged; the top of the loop pauses.
      if (!session.sendBilled(text)) continue
      burst++
    }
  }

  /** A message that cannot be serialized as JSON is skipped, not charged, and reported. */
  private unserializable(seq: number, err: unknown): void {
    this.session.log.error({ err, seq }, 'tollgate-ws: a feed message is not JSON')
    this.session.refuse(
      'tollgate_internal',
      `Feed message ${seq} could not be serialized; it was skipped, not charged.`,
    )
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
