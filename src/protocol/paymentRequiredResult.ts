import { decodePaymentRequiredObject } from './decodePaymentRequired.js'
import type { PaymentRequired } from './types.js'

/**
 * An MCP tool result as the x402 MCP transport uses it: the fields of MCP's `CallToolResult`
 * that carry a payment (x402 `specs/transports-v2/mcp.md`, tool-result binding).
 */
export interface PaymentToolResult {
  [key: string]: unknown
  isError?: boolean
  content: { type: 'text'; text: string }[]
  structuredContent?: Record<string, unknown>
  _meta?: Record<string, unknown>
}

/**
 * The tool result of a paid MCP tool called without an acceptable payment: `isError: true`, the
 * `PaymentRequired` in `structuredContent` and the same JSON in `content[0].text`.
 *
 * @example
 * return paymentRequiredResult(paymentRequired({ resource: { url: 'mcp://tool/forecast' }, accepts: [requirements] }))
 */
export function paymentRequiredResult(required: PaymentRequired): PaymentToolResult {
  return {
    isError: true,
    structuredContent: required as unknown as Record<string, unknown>,
    content: [{ type: 'text', text: JSON.stringify(required) }],
  }
}

/**
 * The `PaymentRequired` of an MCP tool result, on the payer's side: from `structuredContent`
 * when it has `x402Version` and `accepts`, else from `content[0].text` as JSON, as x402's MCP
 * transport says clients read it. Only an `isError` result carries one.
 *
 * @param result A `tools/call` result.
 * @returns The validated `PaymentRequired`, or `undefined` when the result carries none.
 * @example
 * const required = paymentRequiredOfResult(await client.callTool({ name: 'forecast' }))
 */
export function paymentRequiredOfResult(result: unknown): PaymentRequired | undefined {
  if (typeof result !== 'object' || result === null) return undefined
  const { isError, structuredContent, content } = result as Record<string, unknown>
  if (isError !== true) return undefined
  const structured = structuredContent as Record<string, unknown> | undefined
  if (structured && 'x402Version' in structured && 'accepts' in structured) {
    const decoded = decodePaymentRequiredObject(structured)
    return decoded.ok ? decoded.value : undefined
  }
  const first = Array.isArray(content) ? (content[0] as { text?: unknown } | undefined) : undefined
  if (typeof first?.text !== 'string') return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(first.text)
  } catch {
    return undefined
  }
  const decoded = decodePaymentRequiredObject(parsed)
  return decoded.ok ? decoded.value : undefined
}
