import type { LiveMessage } from './liveBuffer.js'
import type { FeedEmitter, ResolvedFeedRoute } from './resolveOptions.js'

/** A connection subscribed to a live feed: handed every message, in the order emitted. */
export interface LiveSubscriber {
  deliver(message: LiveMessage): void
}

/**
 * What every connection of one feed route shares: the end of its `data` frames and, for a live
 * source, one listener on the emitter that serializes each message once and hands it to every
 * subscribed connection (fan-out: no per-connection listener, no per-connection `JSON.stringify`).
 * The listener is on the emitter only while a connection is subscribed.
 */
export class FeedHub {
  /** The end of every `data` frame of the route: `,"charged":"<price>"}`. */
  readonly tail: string
  private readonly subscribers = new Set<LiveSubscriber>()
  private readonly listener = (body: unknown): void => {
    let message: LiveMessage
    try {
      message = this.rest(body)
    } catch (err) {
      message = err instanceof Error ? err : new Error(String(err))
    }
    for (const subscriber of this.subscribers) subscriber.deliver(message)
  }

  constructor(private readonly route: ResolvedFeedRoute) {
    this.tail = `,"charged":"${route.price}"}`
  }

  /**
   * The end of a `data` frame after its `seq`, byte for byte as `JSON.stringify` of the whole
   * frame would write it: `,"body":<json>` (absent when the body is `undefined`) and the tail.
   * Throws when the body cannot be serialized as JSON.
   */
  rest(body: unknown): string {
    const json = JSON.stringify(body)
    return json === undefined ? this.tail : `,"body":${json}${this.tail}`
  }

  /** Hands `subscriber` every message the route's live source emits from now on. */
  join(subscriber: LiveSubscriber): void {
    if (this.subscribers.size === 0) this.emitter().on(this.route.event, this.listener)
    this.subscribers.add(subscriber)
  }

  leave(subscriber: LiveSubscriber): void {
    if (!this.subscribers.delete(subscriber) || this.subscribers.size > 0) return
    this.emitter().off(this.route.event, this.listener)
  }

  private emitter(): FeedEmitter {
    return this.route.source as FeedEmitter
  }
}

const hubs = new WeakMap<ResolvedFeedRoute, FeedHub>()

/** The hub of a feed route, made on first use and kept as long as the route. */
export function hubOf(route: ResolvedFeedRoute): FeedHub {
  let hub = hubs.get(route)
  if (!hub) {
    hub = new FeedHub(route)
    hubs.set(route, hub)
  }
  return hub
}
