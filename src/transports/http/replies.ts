import type { FastifyReply, FastifyRequest } from 'fastify'
import { describe, type ErrorCode, type Rejection, statusOf } from '../../errors/index.js'
import type { ChannelRecord } from '../../ledger/index.js'
import {
  encodeHeader,
  HEADERS,
  type PaymentRequired,
  paymentRequired,
  type ResourceInfo,
} from '../../protocol/index.js'
import { correctiveFor } from '../terms.js'
import type { RoutePrice } from './priceRoute.js'

/**
 * The body of every error reply: a stable code and a human-readable message. Replies that carry
 * `PAYMENT-REQUIRED` send the `PaymentRequired` object itself, whose `error` is the same code,
 * plus `message`.
 */
export interface ErrorBody {
  error: ErrorCode
  message: string
}

const JSON_TYPE = 'application/json; charset=utf-8'

/** The payer and channel a refused payment named, when it named them (for the log only). */
export interface RefusedPayer {
  readonly payer?: string | undefined
  readonly channelId?: string | undefined
}

/**
 * Notes a refusal once, where every refusal goes through: counted by code and route, and
 * logged with its payer and channel (rate-limited). Bound per route by the plugin.
 */
export type NoteRefusal = (request: FastifyRequest, code: ErrorCode, who?: RefusedPayer) => void

/** `resource` of a 402: the URL requested, with the route's description and MIME type. */
export function resourceOf(request: FastifyRequest, route: RoutePrice): ResourceInfo {
  const host = request.host
  const resource: ResourceInfo = {
    url: host ? `${request.protocol}://${host}${request.url}` : request.url,
  }
  if (route.description !== undefined) resource.description = route.description
  if (route.mimeType !== undefined) resource.mimeType = route.mimeType
  return resource
}

/**
 * Sends a 402 (or the status given) with `PAYMENT-REQUIRED` and the same JSON in the body; an
 * error reply adds `message` to the body.
 */
export function sendPaymentRequired(
  reply: FastifyReply,
  status: number,
  required: PaymentRequired,
  message?: string,
): FastifyReply {
  return reply
    .code(status)
    .header(HEADERS.paymentRequired, encodeHeader(required))
    .type(JSON_TYPE)
    .send(message === undefined ? required : { ...required, message })
}

/** The 402 of a request that carried no payment. */
export function sendUnpaid(
  request: FastifyRequest,
  reply: FastifyReply,
  route: RoutePrice,
): FastifyReply {
  const required = paymentRequired({
    resource: resourceOf(request, route),
    accepts: [...route.accepts],
  })
  return sendPaymentRequired(reply, 402, required)
}

/**
 * A payment refused with `code`: status from the code table unless given, `PAYMENT-REQUIRED`
 * with `error` = the code. The refusal is noted (counted and logged) with `who` it names.
 */
export function sendRefused(
  request: FastifyRequest,
  reply: FastifyReply,
  route: RoutePrice,
  note: NoteRefusal,
  refusal: { code: ErrorCode; message: string; status?: number | undefined; who?: RefusedPayer },
): FastifyReply {
  const { code, message, status = statusOf(code) } = refusal
  note(request, code, refusal.who)
  const required = paymentRequired({
    resource: resourceOf(request, route),
    accepts: [...route.accepts],
    error: code,
  })
  return sendPaymentRequired(reply, status, required, message)
}

/**
 * The corrective 402 (`cumulative_amount_mismatch`): the server's `channelState` and, when it
 * holds one, its highest `voucherState`, so that the client can check and resync.
 */
export function sendCorrective(
  request: FastifyRequest,
  reply: FastifyReply,
  route: RoutePrice,
  note: NoteRefusal,
  record: ChannelRecord,
  message: string,
): FastifyReply {
  const code = 'invalid_batch_settlement_evm_cumulative_amount_mismatch'
  note(request, code, { payer: record.config.payer, channelId: record.channelId })
  const required = correctiveFor(resourceOf(request, route), route.requirements, record)
  return sendPaymentRequired(reply, statusOf(code), required, message)
}

/**
 * A route that has no price in force (its oracle's round is stale, incomplete or below the
 * floor): the code's status (503) and no requirements, since no amount can be stated; with
 * `Retry-After` the feed's refresh interval, when the next round may be read.
 */
export function sendUnpriced(
  reply: FastifyReply,
  refusal: Rejection,
  retryAfterSeconds: number | undefined,
): FastifyReply {
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds))
  const body: ErrorBody = { error: refusal.code, message: refusal.message }
  return reply.code(statusOf(refusal.code)).type(JSON_TYPE).send(body)
}

/** An error reply that is not about the payment itself (rate limit, internal error). */
export function sendError(reply: FastifyReply, code: ErrorCode, detail?: string): FastifyReply {
  const body: ErrorBody = {
    error: code,
    message: detail ? `${describe(code)} ${detail}` : describe(code),
  }
  return reply.code(statusOf(code)).type(JSON_TYPE).send(body)
}

/** The body of an error reply, serialized: for replacing a payload in `onSend`. */
export function errorPayload(code: ErrorCode, detail?: string): string {
  const body: ErrorBody = {
    error: code,
    message: detail ? `${describe(code)} ${detail}` : describe(code),
  }
  return JSON.stringify(body)
}
