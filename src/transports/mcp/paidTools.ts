import type {
  McpServer,
  RegisteredTool,
  ToolCallback,
} from '@modelcontextprotocol/sdk/server/mcp.js'
import type { AnySchema, ZodRawShapeCompat } from '@modelcontextprotocol/sdk/server/zod-compat.js'
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'
import type { Address } from 'viem'
import type { EscrowReceipt, EscrowWriter } from '../../chain/escrowWriter.js'
import { accept, describe, type ErrorCode, type Result, TollgateError } from '../../errors/index.js'
import type { Hold } from '../../ledger/index.js'
import { type AcceptedPayloads, screenPayment } from '../../payee/index.js'
import {
  decodePaymentPayload,
  depositReceipt,
  MCP_META,
  type PaymentRequired,
  paymentRequired,
  paymentRequiredResult,
  type SettleResponse,
  voucherReceipt,
} from '../../protocol/index.js'
import { type Price, parseDollars, parsePrice } from '../../protocol/parsePrice.js'
import { resolveOracle, type TollgateOracle } from '../http/resolveOptions.js'
import type { FollowedPrice } from '../oraclePrice.js'
import { correctiveFor, type PaymentTerms, type ResolvedTerms, resolveTerms } from '../terms.js'
import { type PaidToolOptions, priceTool, type ToolPrice } from './priceTool.js'

/** Options of {@link paidTools}: the payment terms, as the HTTP plugin takes them. */
export interface PaidToolsOptions extends PaymentTerms {
  /** Smallest deposit advertised by every paid tool. @default the tool's price times DEFAULT_MIN_DEPOSIT_MULTIPLIER */
  minDeposit?: Price
  /**
   * Submits `deposit` payloads on chain (the server pays their gas). Without one, they are
   * refused with `invalid_batch_settlement_evm_payload_type`: payers deposit on chain themselves.
   */
  escrowWriter?: EscrowWriter
  /**
   * Prices in dollars through a feed of the token, as the HTTP plugin's `oracle`: a dollar price
   * follows the feed's rate (or, with `convert: false`, is refused while the feed is). Under a
   * converting oracle `minDeposit` is taken in token units only.
   */
  oracle?: TollgateOracle
}

/** What a tool callback receives last from the MCP SDK: the request's `_meta` and its cancellation. */
interface ToolCallExtra {
  readonly signal: AbortSignal
  readonly _meta?: Record<string, unknown>
}

/** A tool's configuration as `McpServer.registerTool` takes it, with the tool's price. */
export type PaidToolConfig<
  InputArgs extends undefined | ZodRawShapeCompat | AnySchema,
  OutputArgs extends ZodRawShapeCompat | AnySchema,
> = PaidToolOptions & {
  title?: string
  inputSchema?: InputArgs
  outputSchema?: OutputArgs
  annotations?: ToolAnnotations
  _meta?: Record<string, unknown>
}

/** Registers paid MCP tools; see {@link paidTools}. */
export interface PaidTools {
  /**
   * `server.registerTool(name, config, callback)`, with each call paid: `config` takes the tool's
   * `price` (and `description` and `mimeType` also describe the tool's 402).
   *
   * @throws TollgateError `tollgate_invalid_config` for a malformed price.
   */
  registerTool<
    OutputArgs extends ZodRawShapeCompat | AnySchema,
    InputArgs extends undefined | ZodRawShapeCompat | AnySchema = undefined,
  >(
    server: McpServer,
    name: string,
    config: PaidToolConfig<InputArgs, OutputArgs>,
    callback: ToolCallback<InputArgs>,
  ): RegisteredTool
}

/**
 * The x402 MCP transport for servers built with the MCP SDK (x402 `specs/transports-v2/mcp.md`,
 * tool-result binding), over the same payee, money rules and single signature check as the HTTP
 * plugin. A call without `_meta["x402/payment"]` gets a tool result with `isError: true` and the
 * `PaymentRequired` in `structuredContent` (and as JSON in `content[0].text`); a paid call runs
 * the tool once its voucher is durable, and carries the receipt (`SettleResponse`) in
 * `_meta["x402/payment-response"]`. The price is charged only when the tool succeeds (it returns
 * a result without `isError` and the call was not cancelled); otherwise nothing is charged and
 * the same voucher may be sent again.
 *
 * @throws TollgateError `tollgate_invalid_config` naming the option that is wrong.
 * @example
 * const paid = paidTools({ payee, network: 'eip155:84532', asset, payTo, receiverAuthorizer, withdrawDelay: 900 })
 * paid.registerTool(server, 'forecast', { price: '$0.001', inputSchema: { city: z.string() } },
 *   async ({ city }) => ({ content: [{ type: 'text', text: `Sunny in ${city}` }] }))
 */
export function paidTools(options: PaidToolsOptions): PaidTools {
  const terms = resolveTerms(options, ['admit', 'commit', 'release', 'ended'])
  const oracle = resolveOracle(options.oracle, terms.asset.decimals)
  if (oracle?.convert && parseDollars(options.minDeposit) !== undefined) {
    throw new TollgateError(
      'tollgate_invalid_config',
      'minDeposit is in dollars: under a converting oracle give it in token units.',
    )
  }
  const minDeposit =
    options.minDeposit === undefined
      ? undefined
      : parsePrice(options.minDeposit, terms.asset.decimals, 'minDeposit')
  const writer = options.escrowWriter
  if (writer !== undefined && typeof writer?.deposit !== 'function') {
    throw new TollgateError(
      'tollgate_invalid_config',
      'escrowWriter must be an EscrowWriter (escrowWriter()).',
    )
  }
  const accepts: AcceptedPayloads = {
    deposit: writer !== undefined,
    refund: false,
    why:
      writer === undefined
        ? 'the server is configured without an escrowWriter'
        : 'refunds are taken on HTTP routes',
  }
  return {
    registerTool(server, name, config, callback) {
      const { price, mimeType, ...rest } = config
      const described = {
        price,
        ...(mimeType === undefined ? {} : { mimeType }),
        ...(rest.description === undefined ? {} : { description: rest.description }),
      }
      const tool = priceTool(name, described, terms, minDeposit, oracle)
      const handler = callback as unknown as Handler
      const paid = (...params: unknown[]) => call(terms, accepts, writer, tool, handler, params)
      return server.registerTool(name, rest, paid as unknown as typeof callback)
    },
  }
}

/** A tool callback as the SDK calls it: `(args, extra)`, or `(extra)` for a tool without arguments. */
type Handler = (...params: unknown[]) => CallToolResult | Promise<CallToolResult>

/** One call of a paid tool: switches on the payee's answer; no money rule lives here. */
async function call(
  terms: ResolvedTerms,
  accepts: AcceptedPayloads,
  writer: EscrowWriter | undefined,
  priced: FollowedPrice<ToolPrice>,
  handler: Handler,
  params: unknown[],
): Promise<CallToolResult> {
  const extra = params[params.length - 1] as ToolCallExtra
  const now = priced.now()
  if (!now.ok) return unpriced(now.code, now.message)
  const tool = now.value
  const payment = extra._meta?.[MCP_META.payment]
  if (payment === undefined) {
    return required(paymentRequired({ resource: tool.resource, accepts: [tool.requirements] }))
  }
  const decoded = decodePaymentPayload(payment)
  if (!decoded.ok) return refused(tool, decoded.code, decoded.message)
  const screened = screenPayment(tool.paid, decoded.value, accepts)
  if (screened) return refused(tool, screened.code, screened.message)
  const { payload } = decoded.value
  // screenPayment refused refund payloads (accepts.refund is false); this narrows the type.
  if (payload.type === 'refund') return refused(tool, 'invalid_batch_settlement_evm_payload_type')
  const admitted = await terms.payee.admit(tool.paid, payload, { writer })
  switch (admitted.kind) {
    case 'corrective':
      return required(
        correctiveFor(tool.resource, tool.requirements, admitted.record),
        admitted.message,
      )
    case 'refused':
      return refused(tool, admitted.code, admitted.message)
    case 'held':
      break
  }
  const { hold, deposit } = admitted
  let result: CallToolResult
  try {
    result = await handler(...params)
  } catch (err) {
    terms.payee.release(hold)
    await ended(terms, hold)
    throw err
  }
  if (result.isError === true || extra.signal.aborted) {
    terms.payee.release(hold)
    await ended(terms, hold)
    return result
  }
  const receipt = commit(terms, tool, hold, payload.channelConfig.payer, deposit)
  await ended(terms, hold)
  if (!receipt.ok) return refused(tool, receipt.code, receipt.message)
  return { ...result, _meta: { ...result._meta, [MCP_META.paymentResponse]: receipt.value } }
}

/**
 * On a shared store, waits until Redis acknowledged the end of a hold that the payer's next
 * voucher could not end by itself (a release, a charge below what was in flight), so that the
 * payer's next call, on whichever instance, never finds the channel busy. Never rejects.
 */
async function ended(terms: ResolvedTerms, hold: Hold): Promise<void> {
  await terms.payee.ended(hold.channelId)
}

/** Charges the price and builds the receipt; a failed commit charges nothing (the hold is ended). */
function commit(
  terms: ResolvedTerms,
  tool: ToolPrice,
  hold: Hold,
  payer: Address,
  deposit: EscrowReceipt | undefined,
): Result<SettleResponse> {
  const committed = terms.payee.commit(hold, tool.price)
  if (!committed.ok) return committed
  const base = {
    network: terms.network,
    payer,
    chargedAmount: tool.price,
    channelState: committed.record ?? committed.hold.record,
  }
  return accept(
    deposit
      ? depositReceipt({ ...base, transaction: deposit.transaction, amount: deposit.amount })
      : voucherReceipt(base),
  )
}

/**
 * A tool with no price in force (its oracle's round is stale, incomplete or below the floor): an
 * error result with the code and no `PaymentRequired`, since no amount can be stated.
 */
function unpriced(code: ErrorCode, message: string): CallToolResult {
  const body = { error: code, message }
  return {
    isError: true,
    structuredContent: body,
    content: [{ type: 'text', text: JSON.stringify(body) }],
  }
}

/** A payment refused with `code`: the tool's `PaymentRequired` with `error` = the code. */
function refused(tool: ToolPrice, code: ErrorCode, message?: string): CallToolResult {
  return required(
    paymentRequired({ resource: tool.resource, accepts: [tool.requirements], error: code }),
    message ?? describe(code),
  )
}

/**
 * The 402 as a tool result. `message`, when given, is added to the JSON text for the model to
 * read (the `PaymentRequired` itself stays as the transport defines it).
 */
function required(body: PaymentRequired, message?: string): CallToolResult {
  const result = paymentRequiredResult(body)
  if (message === undefined) return result
  return { ...result, content: [...result.content, { type: 'text', text: message }] }
}
