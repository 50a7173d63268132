import { TollgateError } from '../errors/index.js'
import {
  decodeSettleResponseObject,
  MCP_META,
  type PaymentRequirements,
  paymentRequiredOfResult,
} from '../protocol/index.js'
import type { PayerCore } from './payerCore.js'
import { type Attempt, payRequirements } from './payRequirements.js'
import { originOf } from './spendPolicy.js'

/** A `tools/call` request's parameters, as the MCP SDK's `Client.callTool` takes them. */
export interface ToolCall {
  name: string
  arguments?: Record<string, unknown>
  _meta?: Record<string, unknown>
}

/**
 * The slice of an MCP client the payer uses: the MCP SDK's `Client` fits it. `getServerVersion`
 * names the server (`mcp://<name>` is then its origin) when no `origin` is given.
 */
export interface ToolClient<R extends object> {
  callTool(params: ToolCall): Promise<R>
  getServerVersion?(): { readonly name: string } | undefined
}

/** Options of a paid tool call. */
export interface CallToolOptions {
  /**
   * The origin the spend limits count the server's payments under (`mcp://weather`,
   * `https://mcp.example.com`). @default `mcp://<the server's name>`
   */
  origin?: string
}

/**
 * Calls MCP tools and pays those that answer with x402's 402 tool result (x402
 * `specs/transports-v2/mcp.md`, tool-result binding): the `PaymentPayload` goes in
 * `_meta["x402/payment"]`, the receipt comes back in `_meta["x402/payment-response"]` and is
 * checked as over HTTP. A tool's requirements are kept after its first 402, so later calls pay
 * in one round trip.
 */
export function toolPayer(core: PayerCore) {
  /** Requirements by `origin name`. */
  const byTool = new Map<string, PaymentRequirements>()
  return async function callTool<R extends object>(
    client: ToolClient<R>,
    params: ToolCall,
    options: CallToolOptions = {},
  ): Promise<R> {
    const origin = originOf(options.origin ?? nameOf(client))
    const key = `${origin} ${params.name}`
    let requirements = byTool.get(key)
    if (!requirements) {
      const result = await client.callTool(params)
      const required = paymentRequiredOfResult(result)
      requirements = required && core.select(required)
      if (!requirements) return result
      byTool.set(key, requirements)
    }
    return payRequirements(core, requirements, origin, {
      remember: (offered) => byTool.set(key, offered),
      async attempt(payment): Promise<Attempt<R>> {
        const result = await client.callTool({
          ...params,
          _meta: { ...params._meta, [MCP_META.payment]: payment },
        })
        const fields = result as { isError?: unknown; _meta?: Record<string, unknown> }
        const receipt = fields._meta?.[MCP_META.paymentResponse]
        if (fields.isError !== true && receipt !== undefined) {
          return { kind: 'receipt', receipt: decodeSettleResponseObject(receipt), answer: result }
        }
        const required = paymentRequiredOfResult(result)
        return required
          ? { kind: 'required', required, answer: result }
          : { kind: 'other', answer: result }
      },
    })
  }
}

function nameOf(client: ToolClient<object>): string {
  const name = client.getServerVersion?.()?.name
  if (name === undefined || name === '') {
    throw new TollgateError(
      'tollgate_invalid_config',
      'The MCP server names no server name: give callTool an origin.',
    )
  }
  return `mcp://${encodeURIComponent(name)}`
}
