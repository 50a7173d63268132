import { TollgateError } from '../errors/index.js'
import { isRecord } from '../protocol/parse.js'
import type {
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  VerifyResponse,
} from '../protocol/types.js'

/** A remote x402 facilitator's `/verify` and `/settle`, as stock x402 servers call them. */
export interface FacilitatorClient {
  verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse>
  settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse>
}

/** Options of {@link httpFacilitator}. */
export interface HttpFacilitatorOptions {
  /** The facilitator's base URL; `/verify` and `/settle` are appended. */
  url: string
  /** Sent as `Authorization: Bearer <token>` when given. */
  token?: string | undefined
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

/**
 * A {@link FacilitatorClient} over HTTP: `POST <url>/verify` and `POST <url>/settle` with
 * `{ x402Version, paymentPayload, paymentRequirements }`, as `@x402/core`'s HTTP facilitator
 * client sends them.
 *
 * @throws TollgateError `tollgate_invalid_config` for a URL that is not http(s).
 * @example
 * const facilitator = httpFacilitator({ url: 'https://x402.org/facilitator' })
 */
export function httpFacilitator(options: HttpFacilitatorOptions): FacilitatorClient {
  if (!/^https?:\/\//.test(options.url)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `facilitator url ${options.url} is not http(s)`,
    )
  }
  const base = options.url.replace(/\/+$/, '')
  const send = options.fetch ?? globalThis.fetch
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`

  async function post(path: string, payload: PaymentPayload, requirements: PaymentRequirements) {
    const response = await send(`${base}${path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        x402Version: payload.x402Version,
        paymentPayload: payload,
        paymentRequirements: requirements,
      }),
    })
    const body: unknown = await response.json().catch(() => undefined)
    if (!isRecord(body)) {
      throw new TollgateError(
        'tollgate_chain_unavailable',
        `facilitator ${path} answered ${response.status} without a JSON object`,
      )
    }
    return body
  }

  return {
    async verify(payload, requirements) {
      const body = await post('/verify', payload, requirements)
      if (typeof body.isValid !== 'boolean') {
        throw new TollgateError('tollgate_chain_unavailable', 'facilitator /verify: no isValid')
      }
      return body as VerifyResponse
    },
    async settle(payload, requirements) {
      const body = await post('/settle', payload, requirements)
      if (typeof body.success !== 'boolean') {
        throw new TollgateError('tollgate_chain_unavailable', 'facilitator /settle: no success')
      }
      return body as SettleResponse
    },
  }
}
