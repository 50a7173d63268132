/**
 * Agents pay through MCP, end to end on the run's anvil: an MCP client of the SDK drives
 * `tollgate mcp` (a child process, over stdio) against a tollgate server with a paid HTTP route
 * and a paid MCP tool (MCP over Streamable HTTP, `paidTools` on the same payee). Paid calls
 * succeed within the limits; a call over a limit is refused, names the limit and signs nothing;
 * the day's spend survives a restart. The payer SDK pays the MCP tool through `_meta`, and an
 * unpaid call gets the 402 tool result.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { Account, Hex, LocalAccount } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { TestUSDC } from '../../src/chain/contracts.generated.js'
import {
  decodeSettleResponseObject,
  MCP_META,
  type PaymentRequired,
} from '../../src/protocol/index.js'
import { paidTools } from '../../src/transports/mcp/index.js'
import {
  PRICE,
  payerOn,
  startServer,
  type TestServer,
  tempDir,
  WITHDRAW_DELAY,
} from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts')
const dev = useDevChain()
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]

type ToolResult = Awaited<ReturnType<Client['callTool']>>

/** A paid MCP server over Streamable HTTP (stateless): `forecast` at PRICE, `ping` free. */
interface McpHttp {
  url: string
  /** `tools/call` requests received, and runs of the paid tool. */
  toolCalls: number
  forecasts: number
  stop(): Promise<void>
}

async function startMcpHttp(server: TestServer): Promise<McpHttp> {
  const h = dev.harness
  const paid = paidTools({
    payee: server.payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
    escrowWriter: h.escrowWriter(receiver),
  })
  const state = { toolCalls: 0, forecasts: 0 }
  const listener = createServer(async (request, response) => {
    if (request.method !== 'POST') {
      response.writeHead(405).end()
      return
    }
    const body = JSON.parse(await read(request)) as { method?: string }
    if (body.method === 'tools/call') state.toolCalls += 1
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    paid.registerTool(
      mcp,
      'forecast',
      { price: PRICE, description: 'A forecast', inputSchema: { city: z.string() } },
      async ({ city }) => {
        state.forecasts += 1
        return { content: [{ type: 'text', text: `Sunny in ${city}` }] }
      },
    )
    mcp.registerTool('ping', {}, async () => ({ content: [{ type: 'text', text: 'pong' }] }))
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
    response.once('close', () => {
      void transport.close()
      void mcp.close()
    })
    await mcp.connect(transport)
    await transport.handleRequest(request, response, body)
  })
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  const address = listener.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return Object.assign(state, {
    url: `http://127.0.0.1:${address.port}/mcp`,
    stop: () => close(listener),
  })
}

function read(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    request.on('data', (chunk: Buffer) => {
      text += chunk.toString()
    })
    request.once('end', () => resolve(text))
    request.once('error', reject)
  })
}

function close(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

/** A fresh payer key with `usdc` test USDC minted to its address. */
async function fundedKey(usdc: bigint): Promise<Hex> {
  const key = generatePrivateKey()
  const minter = dev.accounts[0] as Account
  const hash = await dev.harness.wallet(minter).writeContract({
    address: dev.harness.usdc,
    abi: TestUSDC.abi,
    functionName: 'mint',
    args: [privateKeyToAccount(key).address, usdc],
    chain: dev.chain,
    account: minter,
  })
  await dev.harness.publicClient.waitForTransactionReceipt({ hash })
  return key
}

/** `tollgate mcp` as an agent's MCP client starts it: a child process over stdio. */
interface Agent {
  client: Client
  transport: StdioClientTransport
  stderr(): string
  call(name: string, args?: Record<string, unknown>): Promise<ToolResult>
}

async function startAgent(key: Hex, dataDir: string, limits: string[]): Promise<Agent> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', 'tsx', MAIN, 'mcp', '--rpc', dev.rpcUrl, '--data-dir', dataDir, ...limits],
    env: { ...(process.env as Record<string, string>), TOLLGATE_PAYER_KEY: key },
    stderr: 'pipe',
  })
  let stderr = ''
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(transport)
  return {
    client,
    transport,
    stderr: () => stderr,
    call: (name, args = {}) => client.callTool({ name, arguments: args }),
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the tools' structured results are read as JSON.
const structured = (result: ToolResult) => result.structuredContent as Record<string, any>

let server: TestServer
let mcpHttp: McpHttp
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await startServer(dev, receiver, authorizer)
  mcpHttp = await startMcpHttp(server)
})

afterAll(async () => {
  await mcpHttp?.stop()
  await server?.stop()
  await revert?.()
})

describe('tollgate mcp, driven by an MCP client over stdio', () => {
  const temp = tempDir()
  let key: Hex
  let agent: Agent
  /** Within: $0.01 a request, 3 500 units a day, the two servers' origins only. */
  const limits = () => [
    '--max-per-request',
    '$0.01',
    '--max-per-day',
    '3500',
    '--allow-origin',
    server.base,
    '--allow-origin',
    new URL(mcpHttp.url).origin,
  ]
  const results: ToolResult[] = []
  const call = async (name: string, args?: Record<string, unknown>) => {
    const result = await agent.call(name, args)
    results.push(result)
    return result
  }

  beforeAll(async () => {
    key = await fundedKey(10_000_000n)
    agent = await startAgent(key, temp.dir, limits())
  })

  afterAll(async () => {
    await agent?.client.close()
    temp.remove()
  })

  it('lists its tools', async () => {
    const { tools } = await agent.client.listTools()
    expect(tools.map((t) => t.name).sort()).toEqual(['balance', 'call_tool', 'fetch', 'refund'])
  })

  it('pays a paid HTTP route and a paid MCP tool within the limits, both on the journal', async () => {
    const fetched = await call('fetch', { url: `${server.base}/joke` })
    expect(fetched.isError).toBeUndefined()
    expect(structured(fetched)).toMatchObject({ status: 200, paid: { amount: PRICE.toString() } })
    expect(JSON.parse(structured(fetched).body)).toEqual({ joke: 'paid' })
    // The first payment opened the channel with a gasless deposit, in the same call.
    expect(structured(fetched).paid.transaction).toMatch(/^0x[0-9a-f]{64}$/)
    const channelId = structured(fetched).paid.channelId as Hex

    const forecast = await call('call_tool', {
      url: mcpHttp.url,
      name: 'forecast',
      arguments: { city: 'Oslo' },
    })
    expect(forecast.isError).toBeUndefined()
    expect((forecast.content as { text: string }[])[0]?.text).toBe('Sunny in Oslo')
    expect(forecast._meta?.['tollgate/paid']).toMatchObject({
      amount: PRICE.toString(),
      channelId,
    })
    expect(mcpHttp.forecasts).toBe(1)

    // The server charged both calls on the one channel; the payer's journal says the same.
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(2n * PRICE)
    const balance = structured(await call('balance'))
    expect(balance.limits.perDay).toEqual({ limit: '3500', spent: (2n * PRICE).toString() })
    expect(balance.channels).toEqual([
      expect.objectContaining({ channelId, charged: (2n * PRICE).toString(), status: 'open' }),
    ])
  })

  it('refuses a call over a limit, names the limit and signs nothing', async () => {
    const third = await call('fetch', { url: `${server.base}/joke` })
    expect(structured(third)).toMatchObject({ status: 200, paid: { amount: PRICE.toString() } })
    const channelId = structured(third).paid.channelId as Hex
    const held = server.payee.ledger.get(channelId)
    expect(held?.signedMaxClaimable).toBe(3n * PRICE)

    const over = await call('fetch', { url: `${server.base}/joke` })
    expect(over.isError).toBe(true)
    expect(structured(over).error).toBe('tollgate_spend_limit')
    expect(structured(over).message).toMatch(/perDay is 3500 token units; .* make it 4000/)

    const elsewhere = await call('fetch', {
      url: `${server.base.replace('127.0.0.1', 'localhost')}/joke`,
    })
    expect(structured(elsewhere).error).toBe('tollgate_spend_limit')
    expect(structured(elsewhere).message).toMatch(/allowedOrigins does not list http:\/\/localhost/)

    // Nothing signed: the server holds the same voucher, the journal the same ceiling and spend.
    expect(server.payee.ledger.get(channelId)?.signedMaxClaimable).toBe(3n * PRICE)
    expect(server.payee.ledger.get(channelId)?.signature).toBe(held?.signature)
    const after = structured(await call('balance'))
    expect(after.channels).toEqual([
      expect.objectContaining({ channelId, signed: (3n * PRICE).toString() }),
    ])
    expect(after.limits.perDay.spent).toBe((3n * PRICE).toString())
  })

  it('keeps the key out of every tool result', () => {
    expect(results.length).toBeGreaterThan(0)
    const text = JSON.stringify(results).toLowerCase()
    expect(text).not.toContain(key.slice(2).toLowerCase())
  })

  it('stops on the end of stdin by itself, with exit code 0', async () => {
    // Spawned directly: nobody sends it a signal, so only the end of stdin can stop it.
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-mcp-eof-'))
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, 'mcp', '--rpc', dev.rpcUrl, '--data-dir', dataDir, ...limits()],
      { env: { ...process.env, TOLLGATE_PAYER_KEY: key }, stdio: ['pipe', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    )
    child.stdin.end()
    // A hang guard, not a timing: an agent that ignored the end of stdin would run forever.
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000)
    const exit = await exited
    clearTimeout(guard)
    rmSync(dataDir, { recursive: true, force: true })
    expect(exit).toEqual({ code: 0, signal: null })
    expect(stderr).not.toMatch(/tollgate_|Error|SIGTERM/)
  })

  it("closes with the SDK's client, and the day's spend survives the restart", async () => {
    await agent.client.close()
    expect(agent.stderr()).not.toMatch(/tollgate_|Error/)

    agent = await startAgent(key, temp.dir, limits())
    const balance = structured(await agent.call('balance'))
    expect(balance.limits.perDay.spent).toBe((3n * PRICE).toString())
    // 3 000 already spent today: 1 000 more would pass 3 500, although this process paid nothing.
    const over = await agent.call('fetch', { url: `${server.base}/joke` })
    expect(structured(over).error).toBe('tollgate_spend_limit')
    expect(structured(over).message).toMatch(/perDay is 3500 token units; .* make it 4000/)
  })

  it('stops cleanly on SIGTERM', async () => {
    const pid = agent.transport.pid
    if (pid === null) throw new Error('no child process')
    const exited = new Promise<void>((resolve) => {
      agent.transport.onclose = () => resolve()
    })
    process.kill(pid, 'SIGTERM')
    await exited
    expect(agent.stderr()).toMatch(/SIGTERM, closing/)
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/)
    // The journal was closed whole: a restart reads it and knows today's spend.
    agent = await startAgent(key, temp.dir, limits())
    expect(structured(await agent.call('balance')).limits.perDay.spent).toBe(
      (3n * PRICE).toString(),
    )
  })
})

describe('a paid MCP tool, paid by the payer SDK through _meta', () => {
  const temp = tempDir()
  let client: Client

  beforeAll(async () => {
    client = new Client({ name: 'sdk', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpHttp.url)))
  })

  afterAll(async () => {
    await client?.close()
    temp.remove()
  })

  it('answers an unpaid call with the 402 tool result, and runs nothing', async () => {
    const before = mcpHttp.forecasts
    const result = await client.callTool({ name: 'forecast', arguments: { city: 'Oslo' } })
    expect(result.isError).toBe(true)
    const required = result.structuredContent as unknown as PaymentRequired
    expect(JSON.parse((result.content as { text: string }[])[0]?.text ?? '')).toEqual(required)
    expect(required).toMatchObject({
      x402Version: 2,
      resource: { url: 'mcp://tool/forecast', description: 'A forecast' },
      accepts: [
        {
          scheme: 'batch-settlement',
          amount: PRICE.toString(),
          payTo: receiver.address.toLowerCase(),
        },
      ],
    })
    expect(mcpHttp.forecasts).toBe(before)
  })

  it('refuses a payment whose deposit would pass maxDeposit, before anything is signed or deposited', async () => {
    const folder = tempDir()
    const account = privateKeyToAccount(await fundedKey(10_000_000n))
    const payer = await payerOn(dev, {
      account,
      dataDir: folder.dir,
      policy: { limits: { maxDeposit: '500' } },
    })
    try {
      const before = mcpHttp.forecasts
      await expect(
        payer.callTool(
          client,
          { name: 'forecast', arguments: { city: 'Oslo' } },
          { origin: mcpHttp.url },
        ),
      ).rejects.toMatchObject({ code: 'tollgate_spend_limit', message: /maxDeposit is 500/ })
      expect(mcpHttp.forecasts).toBe(before)
      const [channel] = await payer.channels({ onChain: true })
      expect(channel?.onChain?.balance).toBe(0n)
      expect(channel?.signed).toBe(0n)
      expect(payer.spending().day).toBe(0n)
      expect(await payer.core.chain.tokenBalance(dev.harness.usdc, account.address)).toBe(
        10_000_000n,
      )
    } finally {
      await payer.close()
      folder.remove()
    }
  })

  it('is paid in one round trip per call once its requirements are known', async () => {
    const payer = await payerOn(dev, {
      account: privateKeyToAccount(await fundedKey(10_000_000n)),
      dataDir: temp.dir,
      policy: { limits: { perDay: '$1' } },
    })
    try {
      const first = await payer.callTool(
        client,
        { name: 'forecast', arguments: { city: 'Oslo' } },
        { origin: mcpHttp.url },
      )
      expect(first.content).toEqual([{ type: 'text', text: 'Sunny in Oslo' }])
      const receipt = decodeSettleResponseObject(first._meta?.[MCP_META.paymentResponse])
      if (!receipt.ok) throw new Error(receipt.message)
      // The first payment carried a gasless deposit, submitted by the MCP server.
      expect(receipt.value.response.transaction).toMatch(/^0x[0-9a-f]{64}$/)
      expect(receipt.value.chargedAmount).toBe(PRICE)
      const channelId = receipt.value.channelState?.channelId as Hex

      const calls = 20
      const toolCallsBefore = mcpHttp.toolCalls
      const paidStart = performance.now()
      for (let i = 0; i < calls; i++) {
        const result = await payer.callTool(
          client,
          { name: 'forecast', arguments: { city: 'Rome' } },
          { origin: mcpHttp.url },
        )
        expect(result.isError).toBeUndefined()
      }
      const paidMs = (performance.now() - paidStart) / calls
      expect(mcpHttp.toolCalls - toolCallsBefore).toBe(calls)
      const freeStart = performance.now()
      for (let i = 0; i < calls; i++) await client.callTool({ name: 'ping' })
      const freeMs = (performance.now() - freeStart) / calls
      console.info(
        `MCP over Streamable HTTP, ${calls} sequential calls each: paid ${paidMs.toFixed(2)} ms/call, free ${freeMs.toFixed(2)} ms/call`,
      )

      const charged = BigInt(calls + 1) * PRICE
      expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(charged)
      expect(payer.spending().day).toBe(charged)
      expect((await payer.channels())[0]?.charged).toBe(charged)
    } finally {
      await payer.close()
    }
  })
})
