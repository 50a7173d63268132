/**
 * Oracle pricing of WebSocket feeds and MCP tools on anvil: '$0.001' priced through the dev
 * chain's mock price feed (MockAggregatorV3), paid by vouchers of a channel opened by direct
 * deposit. The feed's answer is moved on chain: the next WebSocket session and the next MCP call
 * state the new amount as soon as the feed has read the round; a session opened at the old
 * price is ended (1013); a stale round refuses with `tollgate_price_stale`.
 */

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Hex, type PrivateKeyAccount, pad, toHex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PriceFeed, watchPriceFeed } from '../../src/chain/priceFeed.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  MCP_META,
  type PaymentRequirements,
  paymentPayload,
  paymentRequiredOfResult,
} from '../../src/protocol/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { paidTools } from '../../src/transports/mcp/index.js'
import { tollgateWs } from '../../src/transports/ws/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { type ChannelConfig, randomAccount } from '../helpers/escrow.js'
import { mockFeed, nowSeconds } from '../helpers/priceFeed.js'
import { FrameClient } from '../transports/ws/fixtures.js'

const dev = useDevChain()
const h = dev.harness
const [payer, receiver, authorizer, setter] = dev.accounts.slice(5, 9) as [
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
]
const sessionKey = randomAccount()
const feed = mockFeed(dev, setter)
const WITHDRAW_DELAY = 900
const MAX_AGE_SECONDS = 60
/** The token (6 decimals) is worth $0.50: $0.001 is 2000 units. */
const HALF_DOLLAR = 50_000_000n
/** Then worth $3: $0.001 is 333.33… units, 334 rounded up. */
const THREE_DOLLARS = 300_000_000n

let app: FastifyInstance
let payee: Payee
let priceFeed: PriceFeed
let mcp: Client
let mcpServer: McpServer
let channel: { config: ChannelConfig; id: Hex }
let revert: () => Promise<void>
/** A feed's messages, pulled as credit allows. */
async function* counter() {
  for (let n = 0; ; n++) yield { n }
}

beforeAll(async () => {
  revert = await dev.snapshot()
  await feed.setAnswer(HALF_DOLLAR)
  priceFeed = await watchPriceFeed({
    client: h.publicClient,
    address: feed.address,
    maxAgeSeconds: MAX_AGE_SECONDS,
    refreshSeconds: 1,
  })
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: h.escrow,
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: h.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    store: await MemoryStore.open(),
    readChannel: channelReader(h.publicClient, h.escrow),
  })
  const terms = {
    payee,
    network: `eip155:${dev.chainId}` as const,
    asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
    oracle: { feed: priceFeed },
  }
  app = Fastify()
  await app.register(tollgateWs, { ...terms, heartbeatMs: 0 })
  app.tollgateFeed('/ticks', { price: '$0.001', creditWindow: 10, source: counter })
  app.tollgateFeed('/units', { price: '1000', creditWindow: 10, source: counter })

  mcpServer = new McpServer({ name: 'quotes', version: '1.0.0' })
  paidTools(terms).registerTool(mcpServer, 'quote', { price: '$0.001' }, async () => ({
    content: [{ type: 'text', text: 'a quote' }],
  }))
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await mcpServer.connect(serverSide)
  mcp = new Client({ name: 'test', version: '1.0.0' })
  await mcp.connect(clientSide)

  const config: ChannelConfig = {
    payer: payer.address,
    payerAuthorizer: sessionKey.address,
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: h.usdc,
    withdrawDelay: WITHDRAW_DELAY,
    salt: pad(toHex(4343), { size: 32 }),
  }
  await h.approve(payer, 1_000_000n)
  await h.depositDirect(payer, config, 1_000_000n)
  channel = { config, id: await h.channelId(config) }
})

afterAll(async () => {
  await mcp?.close()
  await mcpServer?.close()
  await app?.close()
  priceFeed?.close()
  await payee?.close()
  await revert?.()
})

/** Until the feed has read a round that `accept`s: its listeners (the repricing) have run then. */
async function feedReads(accept: (rate: ReturnType<PriceFeed['current']>) => boolean) {
  while (!accept(priceFeed.current())) await new Promise((resolve) => setTimeout(resolve, 20))
}

async function voucher(accepted: PaymentRequirements, max: bigint) {
  const signature = await h.signVoucher(sessionKey, channel.id, max)
  return paymentPayload({
    accepted,
    payload: {
      type: 'voucher',
      channelConfig: channel.config,
      voucher: { channelId: channel.id, maxClaimableAmount: max, signature },
    },
  })
}

/** A new WebSocket session on `path`, and the requirements (amount per message) it states. */
async function sessionPrice(path: string) {
  const client = await FrameClient.connect(app, path, 'tollgate.v1')
  const frame = await client.next('payment-required')
  const requirements = frame.paymentRequired.accepts[0] as PaymentRequirements
  return { client, requirements, amount: requirements.amount }
}

async function toolCall(payment?: unknown) {
  return mcp.callTool({
    name: 'quote',
    arguments: {},
    ...(payment === undefined ? {} : { _meta: { [MCP_META.payment]: payment } }),
  })
}

describe('WebSocket feeds and MCP tools priced in dollars through a feed', () => {
  it('charge the converted amount, and follow a moved price as soon as the feed read it', async () => {
    const first = await sessionPrice('/ticks')
    expect(first.amount).toBe('2000')
    expect((await sessionPrice('/units')).amount).toBe('1000')
    const required = paymentRequiredOfResult(await toolCall())
    expect(required?.accepts[0]?.amount).toBe('2000')

    // A session pays and is charged at the converted price.
    const frame = await sessionPrice('/ticks')
    frame.client.send({ type: 'pay', payment: await voucher(frame.requirements, 20_000n) })
    await frame.client.next('receipt')
    frame.client.send({ type: 'subscribe' })
    expect((await frame.client.next('data')).charged).toBe('2000')
    frame.client.send({ type: 'end' })
    expect((await frame.client.closed).code).toBe(1000)

    await feed.setAnswer(THREE_DOLLARS)
    await feedReads((rate) => rate.ok && rate.value.answer === THREE_DOLLARS)
    // The session opened at the old price is ended; the next one states the new amount.
    expect(await first.client.closed).toEqual({ code: 1013, reason: 'price changed' })
    expect((await sessionPrice('/ticks')).amount).toBe('334')
    // The tool states it on the next call, and charges it.
    const moved = paymentRequiredOfResult(await toolCall())
    expect(moved?.accepts[0]?.amount).toBe('334')
    const charged = payee.ledger.get(channel.id)?.chargedCumulativeAmount ?? 0n
    const paid = await toolCall(
      await voucher(moved?.accepts[0] as PaymentRequirements, charged + 334n),
    )
    expect(paid.isError).toBeUndefined()
    expect(paid._meta?.[MCP_META.paymentResponse]).toMatchObject({
      extra: {
        chargedAmount: '334',
        channelState: { chargedCumulativeAmount: (charged + 334n).toString() },
      },
    })
  })

  it('refuse with tollgate_price_stale while the feed is stale', async () => {
    const open = await sessionPrice('/ticks')
    await feed.setAnswer(THREE_DOLLARS, nowSeconds() - BigInt(MAX_AGE_SECONDS) - 10n)
    await feedReads((rate) => !rate.ok)
    expect(await open.client.next('error')).toMatchObject({ code: 'tollgate_price_stale' })
    expect((await open.client.closed).code).toBe(1013)

    const refused = await FrameClient.connect(app, '/ticks', 'tollgate.v1')
    expect(await refused.next('error')).toMatchObject({ code: 'tollgate_price_stale' })
    expect(await refused.closed).toEqual({ code: 1013, reason: 'price not in force' })
    // A token-unit feed does not depend on the oracle.
    expect((await sessionPrice('/units')).amount).toBe('1000')

    const result = await toolCall()
    expect(result.isError).toBe(true)
    expect(result.structuredContent).toMatchObject({ error: 'tollgate_price_stale' })
    expect(paymentRequiredOfResult(result)).toBeUndefined()

    await feed.setAnswer(THREE_DOLLARS)
    await feedReads((rate) => rate.ok)
    expect((await sessionPrice('/ticks')).amount).toBe('334')
    expect(paymentRequiredOfResult(await toolCall())?.accepts[0]?.amount).toBe('334')
  })
})
