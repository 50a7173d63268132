/**
 * The frames of the tollgate WebSocket protocol, version 1 (PROTOCOL.md beside this file). Every
 * frame is one JSON object in one text frame, with a `type`. x402 objects (`PaymentPayload`,
 * `PaymentRequired`, `SettleResponse`) travel inside them unchanged; amounts outside those objects
 * are decimal strings in the token's smallest unit, as in x402.
 */
import type { ErrorCode } from '../../errors/index.js'
import type { PaymentRequired, SettleResponse } from '../../protocol/index.js'

/** A client's request id, echoed in the `response` or `error` frame: a string or an integer. */
export type RequestId = string | number

/** Opens the session's credit (first voucher) or tops it up (later vouchers). */
export type PayFrame = {
  type: 'pay'
  /** An x402 v2 `PaymentPayload` of the batch-settlement scheme, payload type `voucher`. */
  payment: unknown
}

/** Starts a feed route's delivery; `params` are passed to the feed's source. At most once. */
export type SubscribeFrame = { type: 'subscribe'; params?: unknown }

/** A billed request to a request route. */
export type RequestFrame = { type: 'request'; id: RequestId; body?: unknown }

/** Ends the session: the server commits, answers with a final `receipt` and closes with 1000. */
export type EndFrame = { type: 'end' }

/** Any client → server frame. */
export type ClientFrame = PayFrame | SubscribeFrame | RequestFrame | EndFrame

/** Sent on connect: what one message costs (`accepts[].amount`) and the credit window (`extra.creditWindow`). */
export type PaymentRequiredFrame = { type: 'payment-required'; paymentRequired: PaymentRequired }

/** A voucher was accepted (`final`: the session ended; no voucher, the last statement). */
export type ReceiptFrame = {
  type: 'receipt'
  /** `voucherReceipt`: `extra.chargedAmount` is what was charged since the previous receipt. */
  paymentResponse: SettleResponse
  /** Credit left under the held voucher: `signedMaxClaimable - chargedCumulativeAmount`. */
  creditRemaining: string
  final?: true
}

/** Credit fell to the low-water mark: pay a new voucher before it runs out. */
export type VoucherNeededFrame = {
  type: 'voucher-needed'
  paymentRequired: PaymentRequired
  creditRemaining: string
}

/** One billed feed message: `charged` was committed before it was sent. */
export type DataFrame = { type: 'data'; seq: number; body: unknown; charged: string }

/** The answer to a `request`: `charged` (at most the route's price) was committed before it was sent. */
export type ResponseFrame = { type: 'response'; id: RequestId; body: unknown; charged: string }

/** Why a feed stopped sending: no credit for the next message, or the client reads too slowly. */
export type PauseReason = 'credit' | 'backpressure'

export type PausedFrame = { type: 'paused'; reason: PauseReason }

export type ResumedFrame = { type: 'resumed' }

/** A refusal or failure; `id` names the request it answers, `paymentRequired` how to pay. */
export type ErrorFrame = {
  type: 'error'
  code: ErrorCode
  message: string
  id?: RequestId
  paymentRequired?: PaymentRequired
}

/** Any server → client frame. */
export type ServerFrame =
  | PaymentRequiredFrame
  | ReceiptFrame
  | VoucherNeededFrame
  | DataFrame
  | ResponseFrame
  | PausedFrame
  | ResumedFrame
  | ErrorFrame
