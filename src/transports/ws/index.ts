/**
 * transports/ws: the tollgate WebSocket transport, a Fastify plugin. Feed messages and client
 * requests are billed per message under x402 batch-settlement vouchers that open credit windows;
 * the frames carry x402's own JSON objects (PROTOCOL.md beside this file).
 */
export {
  CLOSE_CODES,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HIGH_WATER_BYTES,
  DEFAULT_LIVE_BUFFER,
  DEFAULT_MAX_BAD_FRAMES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PAY_TIMEOUT_MS,
  FEED_BURST,
  MAX_PENDING_PAYMENTS,
  MAX_REQUEST_ID_LENGTH,
  WS_PROTOCOL_VERSION,
  WS_SUBPROTOCOL,
} from './constants.js'
export type {
  ClientFrame,
  DataFrame,
  EndFrame,
  ErrorFrame,
  PausedFrame,
  PauseReason,
  PayFrame,
  PaymentRequiredFrame,
  ReceiptFrame,
  RequestFrame,
  RequestId,
  ResponseFrame,
  ResumedFrame,
  ServerFrame,
  SubscribeFrame,
  VoucherNeededFrame,
} from './frames.js'
export { parseClientFrame, type RawFrame } from './parseClientFrame.js'
export { tollgateWs } from './plugin.js'
export {
  type BilledRouteOptions,
  DEFAULT_CREDIT_WINDOW,
  type FeedContext,
  type FeedEmitter,
  type FeedRouteOptions,
  type FeedSource,
  type RequestContext,
  type RequestHandler,
  type RequestRouteOptions,
  type TollgateWsOptions,
} from './resolveOptions.js'
