import { readFileSync } from 'node:fs'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import type { Payer, SpendLimits } from '../client/index.js'
import { didYouMean } from '../errors/didYouMean.js'
import { TollgateError } from '../errors/index.js'
import {
  type DecodedSettleResponse,
  decodeSettleResponse,
  decodeSettleResponseObject,
  HEADERS,
  MCP_META,
} from '../protocol/index.js'
import { parseCommandArgs, stringOf } from './args.js'
import { aborted, interruptible } from './interruptible.js'
import { openPayer, PAYER_OPTIONS } from './payer.js'

/** The usage lines of `tollgate mcp`. */
export const MCP_USAGE = `  mcp [--config FILE]       an MCP server on stdio for agents: tools fetch (a paid HTTP request),
                            call_tool (a paid tool of an MCP server over HTTP), balance, refund;
                            spend limits from FILE's "limits" (JSON) and the payer options, which
                            win; stops on SIGINT, SIGTERM or the end of stdin
`

/** What `tollgate mcp` calls itself in the MCP handshake. */
const SERVER_INFO = { name: 'tollgate', version: '0.1.0' }

/** The keys of a config file's `limits`: those of {@link SpendLimits}. */
const LIMIT_KEYS = [
  'perRequest',
  'perOrigin',
  'perDay',
  'perWeek',
  'maxDeposit',
  'allowedOrigins',
] as const satisfies readonly (keyof SpendLimits)[]

/**
 * `tollgate mcp [--config FILE]`: serves the payer to an agent over MCP on stdio until SIGINT,
 * SIGTERM or the end of stdin, then closes the journal (exit code 0). Nothing but MCP goes to
 * stdout; warnings go to stderr. The key comes from the environment, never from a tool call.
 *
 * @returns The exit code.
 */
export async function mcpCommand(argv: readonly string[]): Promise<number> {
  // --json does not apply: the tools answer in JSON.
  const { json: _json, ...payerOptions } = PAYER_OPTIONS
  const args = parseCommandArgs(argv, { ...payerOptions, config: { type: 'string' } })
  const path = stringOf(args, 'config')
  const base = path === undefined ? {} : loadLimits(path)
  return interruptible(
    async (signal) => {
      const payer = await openPayer(args, base)
      const calls = new Set<Promise<unknown>>()
      const upstreams = new Map<string, Promise<Client>>()
      try {
        const server = agentServer(payer, upstreams, calls)
        const transport = new StdioServerTransport()
        const ended = new Promise<void>((resolve) => {
          process.stdin.once('end', resolve)
          process.stdin.once('close', resolve)
        })
        await server.connect(transport)
        await Promise.race([ended, aborted(signal)])
        await Promise.allSettled(calls)
        await server.close()
      } finally {
        await Promise.allSettled(
          [...upstreams.values()].map(async (client) => (await client).close()),
        )
        await payer.close()
      }
      return 0
    },
    { signalIsStop: true },
  )
}

/** The limits of a config file: `{ "limits": { "perDay": "$5", "allowedOrigins": [...] } }`. */
function loadLimits(path: string): SpendLimits {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new TollgateError('tollgate_invalid_config', `${path}: ${(err as Error).message}`)
  }
  const bad = (detail: string): never => {
    throw new TollgateError('tollgate_invalid_config', `${path}: ${detail}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) bad('not an object')
  const { limits, ...other } = parsed as Record<string, unknown>
  const [stray] = Object.keys(other)
  if (stray !== undefined) bad(`unknown key "${stray}" (only "limits")`)
  if (limits === undefined) return {}
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) {
    bad('"limits" is not an object')
  }
  const out: SpendLimits = {}
  for (const [key, value] of Object.entries(limits as Record<string, unknown>)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(key)) {
      const close = didYouMean(key, LIMIT_KEYS)
      bad(`unknown limit "${key}"${close ? ` (did you mean "${close}"?)` : ''}`)
    }
    if (key === 'allowedOrigins') {
      if (!Array.isArray(value) || value.some((o) => typeof o !== 'string')) {
        bad('"allowedOrigins" is not a list of origins')
      }
      out.allowedOrigins = value as string[]
    } else if (typeof value !== 'string') {
      bad(`"${key}" is not a string such as "$0.01" or "10000"`)
    } else {
      out[key as Exclude<(typeof LIMIT_KEYS)[number], 'allowedOrigins'>] = value
    }
  }
  return out
}

/** A tool result for the agent: `structured` as structuredContent and as JSON text. */
function answer(structured: Record<string, unknown>, isError = false): CallToolResult {
  return {
    ...(isError ? { isError } : {}),
    structuredContent: structured,
    content: [{ type: 'text', text: JSON.stringify(structured) }],
  }
}

/**
 * What a tool answers when the payer would not pay or could not reach the server: the error's
 * stable code and its message (never a key: the payer holds none in its messages).
 */
function failure(err: unknown): CallToolResult {
  if (err instanceof TollgateError) return answer({ error: err.code, message: err.message }, true)
  if (err instanceof TypeError) {
    const cause = err.cause as { code?: string; message?: string } | undefined
    return answer(
      { error: 'unreachable', message: cause?.code ?? cause?.message ?? err.message },
      true,
    )
  }
  throw err
}

/** The MCP server of `tollgate mcp`: its four tools over `payer`. */
function agentServer(
  payer: Payer,
  upstreams: Map<string, Promise<Client>>,
  calls: Set<Promise<unknown>>,
): McpServer {
  const server = new McpServer(SERVER_INFO)
  /** Runs a tool call, tracked so that a stop waits for it before the journal closes. */
  const tracked = async (run: () => Promise<CallToolResult>): Promise<CallToolResult> => {
    const call = run().catch(failure)
    calls.add(call)
    try {
      return await call
    } finally {
      calls.delete(call)
    }
  }

  server.registerTool(
    'fetch',
    {
      description:
        'An HTTP request that pays x402 batch-settlement 402s within the spend limits. Returns the status, headers, body and what was paid.',
      inputSchema: {
        url: z.string().url(),
        method: z.string().optional(),
        headers: z.record(z.string()).optional(),
        body: z.string().optional(),
      },
    },
    ({ url, method, headers, body }) =>
      tracked(async () => {
        const response = await payer.fetch(url, {
          method: method ?? (body === undefined ? 'GET' : 'POST'),
          ...(headers === undefined ? {} : { headers }),
          ...(body === undefined ? {} : { body }),
        })
        const text = await response.text()
        const receipt = decodeSettleResponse(
          response.headers.get(HEADERS.paymentResponse) ?? undefined,
        )
        return answer(
          {
            status: response.status,
            headers: Object.fromEntries(response.headers),
            body: text,
            paid: receipt.ok ? paidOf(receipt.value) : null,
          },
          !response.ok,
        )
      }),
  )

  server.registerTool(
    'call_tool',
    {
      description:
        'Calls a tool of an MCP server over Streamable HTTP (its endpoint URL), paying it through x402 within the spend limits (the origin is the URL’s). Returns the tool’s result and what was paid.',
      inputSchema: {
        url: z.string().url(),
        name: z.string(),
        arguments: z.record(z.unknown()).optional(),
      },
    },
    ({ url, name, arguments: toolArgs }) =>
      tracked(async () => {
        const client = await upstream(upstreams, url)
        const result = await payer.callTool(
          client,
          { name, ...(toolArgs === undefined ? {} : { arguments: toolArgs }) },
          { origin: url },
        )
        const receipt = decodeSettleResponseObject(result._meta?.[MCP_META.paymentResponse])
        const paid = receipt.ok ? paidOf(receipt.value) : null
        const content = (result.content ?? []) as CallToolResult['content']
        return {
          ...(result.isError === true ? { isError: true } : {}),
          content: [...content, { type: 'text', text: JSON.stringify({ paid }) }],
          ...(result.structuredContent === undefined
            ? {}
            : { structuredContent: result.structuredContent as Record<string, unknown> }),
          _meta: { 'tollgate/paid': paid },
        }
      }),
  )

  server.registerTool(
    'balance',
    {
      description:
        "The payer's channels (balance, charged, signed) and its spend against each limit, in token units (USDC: 6 decimals).",
    },
    () => tracked(async () => answer(await balanceOf(payer))),
  )

  server.registerTool(
    'refund',
    {
      description:
        'Asks the server at an origin for a cooperative refund of every channel the payer holds with it: all that is left, or `amount` token units of each.',
      inputSchema: {
        origin: z.string().url(),
        amount: z.string().regex(/^\d+$/, 'a whole number of token units').optional(),
      },
    },
    ({ origin, amount }) =>
      tracked(async () => {
        const refunds = await payer.refund(
          origin,
          amount === undefined ? {} : { amount: BigInt(amount) },
        )
        return answer(
          {
            refunds: refunds.map((r) => (r.ok ? { ...r, amount: r.amount.toString() } : r)),
          },
          refunds.length === 0 || refunds.some((r) => !r.ok),
        )
      }),
  )
  return server
}

/** What a receipt says was paid: token units as strings. */
function paidOf(receipt: DecodedSettleResponse) {
  return {
    amount: (receipt.chargedAmount ?? 0n).toString(),
    channelId: receipt.channelState?.channelId ?? null,
    ...(receipt.response.transaction === ''
      ? {}
      : { deposit: (receipt.amount ?? 0n).toString(), transaction: receipt.response.transaction }),
  }
}

/** The channels and the spend against each limit, as the `balance` tool answers. */
async function balanceOf(payer: Payer): Promise<Record<string, unknown>> {
  const { limits, day, week, origins } = payer.spending()
  const units = (value: bigint | undefined) => (value === undefined ? null : value.toString())
  return {
    payer: payer.address,
    limits: {
      perRequest: { limit: units(limits.perRequest) },
      perOrigin: {
        limit: units(limits.perOrigin),
        spent: Object.fromEntries([...origins].map(([o, v]) => [o, v.toString()])),
      },
      perDay: { limit: units(limits.perDay), spent: day.toString() },
      perWeek: { limit: units(limits.perWeek), spent: week.toString() },
      maxDeposit: { limit: units(limits.maxDeposit) },
      allowedOrigins: limits.allowedOrigins === undefined ? null : [...limits.allowedOrigins],
    },
    channels: (await payer.channels()).map((c) => ({
      channelId: c.channelId,
      origins: c.origins,
      balance: c.balance.toString(),
      charged: c.charged.toString(),
      signed: c.signed.toString(),
      status: c.blocked
        ? `blocked: ${c.blocked}`
        : c.withdrawInitiatedAt > 0
          ? 'withdrawing'
          : 'open',
    })),
  }
}

/** A connected MCP client of the server at `url`, one per URL. */
function upstream(upstreams: Map<string, Promise<Client>>, url: string): Promise<Client> {
  let client = upstreams.get(url)
  if (!client) {
    const connecting = (async () => {
      const c = new Client(SERVER_INFO)
      await c.connect(new StreamableHTTPClientTransport(new URL(url)))
      return c
    })()
    connecting.catch(() => upstreams.delete(url))
    upstreams.set(url, connecting)
    client = connecting
  }
  return client
}
