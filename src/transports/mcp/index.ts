/**
 * transports/mcp: the x402 v2 MCP transport for servers built with the MCP SDK. Paid tools answer
 * an unpaid call with the 402 as a tool result and take batch-settlement vouchers through `_meta`
 * (x402 `specs/transports-v2/mcp.md`, tool-result binding).
 */
export {
  type PaidToolConfig,
  type PaidTools,
  type PaidToolsOptions,
  paidTools,
} from './paidTools.js'
export type { PaidToolOptions } from './priceTool.js'
