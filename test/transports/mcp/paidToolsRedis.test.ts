/**
 * Paid MCP tools on two instances sharing one real redis-server: an agent whose calls alternate
 * between them never finds its channel busy after a call that charged nothing. The first
 * instance reaches Redis through a relay that holds what it sends for a while, so that a release
 * written behind would land after the agent's next call.
 */
import type { Server } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { OnChainChannel } from '../../../src/ledger/index.js'
import type { Payee } from '../../../src/payee/index.js'
import {
  decodeSettleResponseObject,
  MCP_META,
  type PaymentPayload,
  type PaymentRequirements,
  paymentRequiredOfResult,
} from '../../../src/protocol/index.js'
import { RedisStore } from '../../../src/store/index.js'
import { paidTools } from '../../../src/transports/mcp/index.js'
import { type RedisServer, slowRelay, startRedis } from '../../helpers/redisServer.js'
import { fixturePayee, fixtureTerms, openChannel, PRICE, voucherPayment } from '../http/fixtures.js'

const RELAY_DELAY_MS = 40
const KEY_PREFIX = 'mcp-alt:'

let redis: RedisServer
let relay: Server | undefined
const chain = new Map<Hex, OnChainChannel>()
const payees: Payee[] = []
const clients: Client[] = []
const servers: McpServer[] = []
/** What the `flaky` tool answers next, on either instance. */
let fail = false

beforeAll(async () => {
  redis = await startRedis()
  const slow = await slowRelay(redis.port, RELAY_DELAY_MS)
  relay = slow.server
  for (const url of [slow.url, redis.url]) {
    const store = await RedisStore.open({ url, keyPrefix: KEY_PREFIX })
    const { payee } = await fixturePayee({
      store,
      readChannel: async (id) =>
        chain.get(id) ?? { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
    })
    payees.push(payee)
    const server = new McpServer({ name: 'weather', version: '1.0.0' })
    paidTools(fixtureTerms(payee)).registerTool(server, 'flaky', { price: PRICE }, async () =>
      fail
        ? { isError: true, content: [{ type: 'text', text: 'no data' }] }
        : { content: [{ type: 'text', text: 'ok' }] },
    )
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await server.connect(serverSide)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    servers.push(server)
    clients.push(client)
  }
})

afterAll(async () => {
  for (const client of clients) await client.close()
  for (const server of servers) await server.close()
  for (const payee of payees) await payee.close()
  relay?.close()
  await redis?.stop()
})

const call = (instance: number, payment?: PaymentPayload) =>
  (clients[instance] as Client).callTool({
    name: 'flaky',
    arguments: {},
    ...(payment === undefined ? {} : { _meta: { [MCP_META.payment]: payment } }),
  })

describe('an agent alternating two instances on one Redis', () => {
  it('is not refused channel_busy after a call that charged nothing, and pays once per good call', async () => {
    const channel = openChannel({ chain })
    const required = paymentRequiredOfResult(await call(0))
    const accepted = required?.accepts[0] as PaymentRequirements
    let charged = 0n
    for (let i = 0; i < 10; i++) {
      // Every other call fails on the first instance: its hold is released; the next call, with
      // the same voucher, goes to the second.
      fail = i % 2 === 0
      const instance = i % 2
      const result = await call(instance, await voucherPayment(accepted, channel, charged + PRICE))
      if (fail) {
        expect(result.isError).toBe(true)
        expect(result._meta?.[MCP_META.paymentResponse]).toBeUndefined()
        continue
      }
      expect(paymentRequiredOfResult(result)?.error).toBeUndefined()
      const receipt = decodeSettleResponseObject(result._meta?.[MCP_META.paymentResponse])
      if (!receipt.ok) throw new Error(receipt.message)
      charged += PRICE
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(charged)
    }
    expect(charged).toBe(5n * PRICE)
  })
})
