/**
 * Defaults and fixed names of the WebSocket transport (PROTOCOL.md beside this file). Each default
 * is a named constant so that operators can see what they get without options.
 */

/**
 * The WebSocket subprotocol of this frame protocol, version 1. A client may offer it in
 * `Sec-WebSocket-Protocol` to pin the version; a client offering none gets version 1.
 */
export const WS_SUBPROTOCOL = 'tollgate.v1'

/** Frame protocol version carried by {@link WS_SUBPROTOCOL}. */
export const WS_PROTOCOL_VERSION = 1

/**
 * Largest client text frame handled (16 KiB): a `pay` frame with an EIP-1271 signature of the
 * maximum 4 096 bytes is about 10 KiB of JSON. Larger frames get a `tollgate_ws_frame_too_large`
 * error frame.
 */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024

/**
 * `ws` `maxPayload` when this plugin registers `@fastify/websocket` (64 KiB): frames above it are
 * not even buffered; `ws` closes the connection with 1009 (message too big).
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024

/**
 * Bytes queued on a socket (`ws.bufferedAmount`) above which a feed stops sending (256 KiB). It
 * resumes once the queue falls to half of it. A request route stops reading client frames instead.
 */
export const DEFAULT_HIGH_WATER_BYTES = 256 * 1024

/** Bad frames and refused payments tolerated on one connection before it is closed with 1008. */
export const DEFAULT_MAX_BAD_FRAMES = 10

/** Connections one client address may hold open at once. */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 64

/**
 * Bad frames and refused payments one client address may send over all its connections per
 * {@link DEFAULT_BAD_FRAME_WINDOW_MS}; past it, the address gets no new connection until the
 * window ends.
 */
export const DEFAULT_MAX_BAD_FRAMES_PER_IP = 100
export const DEFAULT_BAD_FRAME_WINDOW_MS = 60_000

/**
 * How long a connection may stay open without an accepted voucher (30 s); then it is closed with
 * 1008. Unpaid connections hold no channel, but they hold a socket.
 */
export const DEFAULT_PAY_TIMEOUT_MS = 30_000

/**
 * Interval of WebSocket pings (30 s); a connection that did not answer the previous ping is
 * terminated, so a payer that vanished does not hold its channel for ever.
 */
export const DEFAULT_HEARTBEAT_MS = 30_000

/** Requests of one connection handled at once; more get `tollgate_ws_too_many_requests`. */
export const DEFAULT_MAX_IN_FLIGHT = 8

/**
 * Messages a feed sends in a row before it yields to the event loop (64). A pull source that
 * resolves at once and a client that reads as fast as it is sent never fill the send queue, so
 * without this the feed's loop would run in microtasks only: other connections, pings, incoming
 * vouchers and the sockets' write callbacks would wait for ever.
 */
export const FEED_BURST = 64

/**
 * Longest a feed session's charges wait in the session before the ledger has them (1 s). A
 * session counts its messages against an allowance and charges the ledger for them together:
 * when the allowance runs out (credit, durable cover, low-water mark, the next reserve's write,
 * every half `persistEvery` messages at the most), before a voucher is decided or a receipt
 * made, when it ends, and after this long otherwise (a slow feed). Nothing rests on it for money:
 * each message is within the voucher and the durable cover when it is counted.
 */
export const LEDGER_FLUSH_MS = 1_000

/** Live (emitter) feed messages kept per connection while it cannot send; oldest dropped first. */
export const DEFAULT_LIVE_BUFFER = 64

/** `pay` frames queued on one connection (each is decided in turn); more are refused. */
export const MAX_PENDING_PAYMENTS = 4

/** Largest request `id` string, in characters. */
export const MAX_REQUEST_ID_LENGTH = 128

/** WebSocket close codes used (RFC 6455 section 7.4.1). */
export const CLOSE_CODES = Object.freeze({
  /** `end` frame answered, or the feed's source finished. */
  normal: 1000,
  /** The server is shutting down. */
  goingAway: 1001,
  /** Too many bad frames, or no voucher within the pay timeout. */
  policy: 1008,
  /** A frame above `maxPayload` (sent by `ws` itself). */
  tooBig: 1009,
  /** The feed's source failed. */
  internal: 1011,
  /** The route's price moved with its oracle's rate, or has none in force: reconnect for the new one. */
  tryAgainLater: 1013,
})
