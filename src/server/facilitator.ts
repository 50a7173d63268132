import { timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Address } from 'viem'
import { describe, type ErrorCode, TollgateError } from '../errors/index.js'
import type { ExactPayee, ExactRoute } from '../payee/index.js'
import {
  type DecodedExactPayment,
  decodeExactPayment,
  EXACT_SCHEME,
  type ExactRequirements,
  type Network,
  SCHEME,
  type SettleResponse,
  type SupportedResponse,
  type VerifyResponse,
  X402_VERSION,
} from '../protocol/index.js'
import { isRecord, parseAddress } from '../protocol/parse.js'
import type { BatchFacilitator } from './batchFacilitator.js'

/** Options of {@link facilitatorApp}. */
export interface FacilitatorOptions {
  /** Verifies and settles the exact payments (its transfers are sent by the server's key). */
  exactPayee: ExactPayee
  /** Verifies and settles batch-settlement payloads; absent, only `exact` is served. */
  batch?: BatchFacilitator | undefined
  /** The network served, `eip155:<chainId>`. */
  network: Network
  /** The address that sends the transfers and pays their gas, listed under `signers`. */
  signer: Address
  /** Every request must carry `Authorization: Bearer <token>`: settling spends the operator's gas. */
  token: string
}

/** What a facilitator request carries: the route and payment, or the code refusing it. */
type Read =
  | { readonly refused: ErrorCode; readonly payer: Address | undefined }
  | {
      readonly route: ExactRoute
      readonly payment: DecodedExactPayment
      readonly payer: Address | undefined
    }

/** Shortest bearer token accepted: 16 characters. */
export const MIN_FACILITATOR_TOKEN_LENGTH = 16

/**
 * tollgate as an x402 facilitator, in x402 v2 shapes, for stock x402 servers (`@x402/express`
 * with a remote facilitator URL): `GET /supported`, `POST /verify` and `POST /settle` taking
 * `{ x402Version, paymentPayload, paymentRequirements }`, for the `exact` scheme (EIP-3009) on
 * its network, and for batch-settlement when given `batch` (`batchFacilitator`). For `exact`,
 * `/verify` runs every check of the exact payee (signature, value, recipient, window, nonce,
 * simulation) and reserves nothing; `/settle` runs them again, stores the nonce, sends the
 * transfer and answers once it is mined. Every request needs the bearer token. Returned without
 * listening.
 *
 * @throws TollgateError `tollgate_invalid_config` for a token shorter than {@link MIN_FACILITATOR_TOKEN_LENGTH}.
 * @example
 * const app = facilitatorApp({ exactPayee, network: 'eip155:84532', signer, token })
 * await app.listen({ host: '127.0.0.1', port: 4022 })
 */
export function facilitatorApp(options: FacilitatorOptions): FastifyInstance {
  const { exactPayee, batch, network, signer } = options
  if (typeof options.token !== 'string' || options.token.length < MIN_FACILITATOR_TOKEN_LENGTH) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `the facilitator's bearer token must be at least ${MIN_FACILITATOR_TOKEN_LENGTH} characters`,
    )
  }
  const expected = Buffer.from(`Bearer ${options.token}`)
  const app = Fastify({ logger: false })

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return reply
        .code(401)
        .send({ error: 'tollgate_unauthorized', message: describe('tollgate_unauthorized') })
    }
    return undefined
  })

  app.get(
    '/supported',
    async (): Promise<SupportedResponse> => ({
      kinds: [
        { x402Version: X402_VERSION, scheme: EXACT_SCHEME, network },
        ...(batch ? [{ x402Version: X402_VERSION, scheme: SCHEME, network }] : []),
      ],
      extensions: [],
      signers: { 'eip155:*': [signer] },
    }),
  )

  /** The request's payment and the route its requirements describe, or why not. */
  const read = (body: unknown): Read => {
    if (!isRecord(body) || !isRecord(body.paymentRequirements)) {
      return { refused: 'invalid_payload', payer: undefined }
    }
    const requirements = body.paymentRequirements
    const decoded = decodeExactPayment(body.paymentPayload)
    const payer = decoded.ok ? decoded.value.payload.authorization.from : undefined
    if (requirements.scheme !== EXACT_SCHEME) {
      return { refused: 'invalid_exact_evm_scheme', payer }
    }
    if (requirements.network !== network) {
      return { refused: 'invalid_exact_evm_network_mismatch', payer }
    }
    const extra = requirements.extra
    if (
      !isRecord(extra) ||
      typeof extra.name !== 'string' ||
      typeof extra.version !== 'string' ||
      parseAddress(requirements.asset) === undefined ||
      parseAddress(requirements.payTo) === undefined
    ) {
      return { refused: 'invalid_exact_evm_missing_eip712_domain', payer }
    }
    if (!decoded.ok) return { refused: decoded.code, payer }
    const route: ExactRoute = { network, requirements: requirements as ExactRequirements }
    return { route, payment: decoded.value, payer }
  }

  /** The batch-settlement request's payload and requirements, when batch-settlement is served. */
  const batchOf = (body: unknown) =>
    batch !== undefined &&
    isRecord(body) &&
    isRecord(body.paymentRequirements) &&
    body.paymentRequirements.scheme === SCHEME
      ? { payload: body.paymentPayload, requirements: body.paymentRequirements }
      : undefined

  app.post('/verify', async (request): Promise<VerifyResponse> => {
    const scheme = batchOf(request.body)
    if (batch && scheme) return batch.verify(scheme.payload, scheme.requirements)
    const input = read(request.body)
    const payer = input.payer === undefined ? {} : { payer: input.payer }
    if (!('route' in input)) {
      return { isValid: false, invalidReason: input.refused, ...payer }
    }
    const admitted = await exactPayee.verify(input.route, input.payment)
    if (admitted.kind === 'refused') {
      return {
        isValid: false,
        invalidReason: admitted.code,
        invalidMessage: admitted.message,
        ...payer,
      }
    }
    exactPayee.release(admitted.verified)
    return { isValid: true, ...payer }
  })

  app.post('/settle', async (request): Promise<SettleResponse> => {
    const scheme = batchOf(request.body)
    if (batch && scheme) return batch.settle(scheme.payload, scheme.requirements)
    const input = read(request.body)
    const payer = input.payer === undefined ? {} : { payer: input.payer }
    const failed = (code: ErrorCode, message: string): SettleResponse => ({
      success: false,
      errorReason: code,
      errorMessage: message,
      ...payer,
      transaction: '',
      network,
    })
    if (!('route' in input)) return failed(input.refused, describe(input.refused))
    const admitted = await exactPayee.verify(input.route, input.payment)
    if (admitted.kind === 'refused') return failed(admitted.code, admitted.message)
    const settled = await exactPayee.settle(admitted.verified)
    if (!settled.ok) return failed(settled.code, settled.message)
    return {
      success: true,
      ...payer,
      transaction: settled.value.transaction,
      network,
      amount: settled.value.amount.toString(),
    }
  })
  return app
}
