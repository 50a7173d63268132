import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Address } from 'viem'
import { describe, statusOf } from '../../errors/index.js'
import type { ExactPayee, VerifiedExact } from '../../payee/index.js'
import {
  type DecodedExactPayment,
  encodeHeader,
  exactReceipt,
  HEADERS,
  paymentRequired,
} from '../../protocol/index.js'
import { endOnClose } from './endOnClose.js'
import type { RoutePrice } from './priceRoute.js'
import { type NoteRefusal, resourceOf, sendError, sendRefused } from './replies.js'

/** What a handler sees of an accepted exact payment: `request.exactPayment`. */
export interface ExactPayment {
  /** `from` of the authorization. */
  readonly payer: Address
  /** The route's price: what the transfer moves once the handler succeeded. */
  readonly price: bigint
  /** The header the payment came in. */
  readonly header: 'PAYMENT-SIGNATURE' | 'X-PAYMENT'
}

/** Where a request's exact payment lives (declared up front, one object shape). */
export const kExact = Symbol('tollgate.exact')

/** The life of one exact payment: decoded, then verified, then settled or released. */
interface ExactState {
  readonly payment: DecodedExactPayment
  readonly header: ExactPayment['header']
  /** The route's price in force when the request came in. */
  readonly route: RoutePrice
  verified: VerifiedExact | undefined
}

type WithExact = { [kExact]: ExactState | null }

/** Marks a request as paid by an exact payment (from its `onRequest` hook). */
export function markExact(
  request: FastifyRequest,
  payment: DecodedExactPayment,
  header: ExactPayment['header'],
  route: RoutePrice,
): void {
  ;(request as unknown as WithExact)[kExact] = { payment, header, route, verified: undefined }
}

/** The exact payment a request carries, if any (from its `onRequest` hook). */
export function exactOf(request: FastifyRequest): ExactState | null {
  return (request as unknown as WithExact)[kExact]
}

/**
 * The hooks of a route that accepts `exact`, as the stock x402 server runs the scheme: verify
 * before the handler (everything free first, then the simulation), settle after it succeeded
 * (status below 400) and before the response goes out: the nonce is stored, the transfer sent and
 * mined, and only then is the response sent, with `PAYMENT-RESPONSE.transaction` its hash. A
 * handler that fails, or a transfer that fails, charges nothing.
 */
export function exactHooks(payee: ExactPayee, note: NoteRefusal) {
  const preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const state = exactOf(request)
    const exactRoute = state?.route.exact
    if (!state || !exactRoute || state.verified) return undefined
    const { route } = state
    let admitted: Awaited<ReturnType<ExactPayee['verify']>>
    try {
      admitted = await payee.verify(exactRoute, state.payment)
    } catch (err) {
      request.log.error({ err }, 'tollgate: verifying an exact payment failed')
      return sendError(reply, 'tollgate_internal')
    }
    if (admitted.kind === 'refused') {
      return sendRefused(request, reply, route, note, {
        code: admitted.code,
        message: admitted.message,
        status: admitted.status,
        who: { payer: state.payment.payload.authorization.from },
      })
    }
    state.verified = admitted.verified
    // A verified payment whose reply never reaches `onSend` frees its nonce.
    endOnClose(reply, {
      endUnsent: () => {
        if (state.verified) payee.release(state.verified)
        state.verified = undefined
      },
    })
    request.exactPayment = Object.freeze({
      payer: admitted.verified.payer,
      price: admitted.verified.amount,
      header: state.header,
    })
    return undefined
  }

  const onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const state = exactOf(request)
    const verified = state?.verified
    if (!state || !verified) return payload
    state.verified = undefined
    if (reply.statusCode >= 400 || reply.raw.destroyed) {
      payee.release(verified)
      return payload
    }
    const settled = await payee.settle(verified)
    if (settled.ok) {
      const header = encodeHeader(
        exactReceipt({
          network: verified.route.network,
          payer: settled.value.payer,
          transaction: settled.value.transaction,
          amount: settled.value.amount,
        }),
      )
      reply.header(HEADERS.paymentResponse, header)
      if (state.header === HEADERS.xPayment) reply.header(HEADERS.xPaymentResponse, header)
      return payload
    }
    // Nothing was transferred: the response is not delivered.
    request.log.warn(
      { code: settled.code, detail: settled.message },
      'tollgate: exact transfer failed',
    )
    if (payload && typeof (payload as { destroy?: unknown }).destroy === 'function') {
      ;(payload as { destroy: () => void }).destroy()
    }
    const required = paymentRequired({
      resource: resourceOf(request, state.route),
      accepts: [...state.route.accepts],
      error: settled.code,
    })
    reply
      .code(statusOf(settled.code))
      .header(HEADERS.paymentRequired, encodeHeader(required))
      .type('application/json; charset=utf-8')
      .removeHeader('content-length')
    return JSON.stringify({ ...required, message: `${describe(settled.code)} ${settled.message}` })
  }

  return { preHandler, onSend }
}
