import { EventEmitter } from 'node:events'
import WebSocket from 'ws'

/** Backoff between reconnections to an upstream feed: doubled from the first up to the last. */
const FIRST_RETRY_MS = 500
const LAST_RETRY_MS = 30_000

/** A live upstream WebSocket feed, re-emitted for `app.tollgateFeed` as `message` events. */
export interface UpstreamFeed {
  readonly source: EventEmitter
  readonly event: 'message'
  /** Whether the upstream connection is open now. */
  readonly connected: boolean
  /** Opens the connection (once). */
  start(): void
  /** Closes the connection and stops reconnecting. */
  close(): void
}

export interface UpstreamFeedOptions {
  /** Called when the upstream connection drops or cannot be made; it is retried with backoff. */
  onDown?: (url: string, cause: Error | undefined, retryInMs: number) => void
  /** Called when the connection is (re)opened. */
  onUp?: (url: string) => void
}

/**
 * Once started, connects to an upstream WebSocket feed and re-emits each message it sends: JSON text is parsed
 * (so it is sent on as the `data` frame's body), any other text is passed as a string and binary
 * frames as base64 strings. A dropped connection is reopened with backoff; messages sent while it
 * is down are lost, as on any live feed, and never charged.
 */
export function upstreamFeed(url: string, options: UpstreamFeedOptions = {}): UpstreamFeed {
  const source = new EventEmitter()
  source.setMaxListeners(0)
  let socket: WebSocket | undefined
  let timer: NodeJS.Timeout | undefined
  let retryMs = FIRST_RETRY_MS
  let started = false
  let closed = false
  let connected = false

  const open = () => {
    timer = undefined
    const ws = new WebSocket(url)
    socket = ws
    let failure: Error | undefined
    ws.on('open', () => {
      connected = true
      retryMs = FIRST_RETRY_MS
      options.onUp?.(url)
    })
    ws.on('message', (data, isBinary) => {
      source.emit('message', decode(data, isBinary))
    })
    ws.on('error', (err) => {
      failure = err
    })
    ws.on('close', () => {
      connected = false
      if (closed) return
      options.onDown?.(url, failure, retryMs)
      timer = setTimeout(open, retryMs)
      timer.unref()
      retryMs = Math.min(retryMs * 2, LAST_RETRY_MS)
    })
  }
  return {
    source,
    event: 'message',
    get connected() {
      return connected
    },
    start() {
      if (started || closed) return
      started = true
      open()
    },
    close() {
      closed = true
      if (timer) clearTimeout(timer)
      socket?.terminate()
    },
  }
}

function decode(data: WebSocket.RawData, isBinary: boolean): unknown {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
  if (isBinary) return bytes.toString('base64')
  const text = bytes.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
