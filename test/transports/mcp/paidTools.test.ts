/**
 * Paid MCP tools over a real MCP client and server of the SDK (linked in memory), a real Payee
 * (MemoryStore, real signature checks) and a fake chain reader: the 402 as a tool result, the
 * voucher in `_meta["x402/payment"]`, the receipt in `_meta["x402/payment-response"]`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { TollgateError } from '../../../src/errors/index.js'
import type { Payee } from '../../../src/payee/index.js'
import {
  decodeSettleResponseObject,
  MCP_META,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  paymentRequiredOfResult,
} from '../../../src/protocol/index.js'
import { type PaidToolsOptions, paidTools } from '../../../src/transports/mcp/index.js'
import { IDENTITY, otherKey } from '../../ledger/fixtures.js'
import {
  type Channel,
  fixturePayee,
  fixtureTerms,
  NETWORK,
  openChannel,
  PRICE,
  type TestApp,
  voucherPayment,
} from '../http/fixtures.js'

const BS = 'invalid_batch_settlement_evm_'

interface Rig extends Omit<TestApp, 'app'> {
  client: Client
  /** Calls of the tools' handlers so far. */
  runs: number
  /** What the `flaky` tool does on its next call. */
  flaky: 'ok' | 'error' | 'throw'
  call(name: string, args: Record<string, unknown>, payment?: PaymentPayload): Promise<CallResult>
}

type CallResult = Awaited<ReturnType<Client['callTool']>>

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
})

function terms(payee: Payee, overrides: Partial<PaidToolsOptions> = {}): PaidToolsOptions {
  return { ...fixtureTerms(payee), ...overrides }
}

/** An MCP server with `forecast` (paid, `{ city }`), `flaky` (paid, no arguments) and `free`. */
async function rig(): Promise<Rig> {
  const t = await fixturePayee()
  const server = new McpServer({ name: 'weather', version: '1.0.0' })
  const paid = paidTools(terms(t.payee))
  const state = { runs: 0, flaky: 'ok' as Rig['flaky'] }
  paid.registerTool(
    server,
    'forecast',
    { price: PRICE, description: 'A forecast', inputSchema: { city: z.string() } },
    async ({ city }) => {
      state.runs += 1
      return { content: [{ type: 'text', text: `Sunny in ${city}` }] }
    },
  )
  paid.registerTool(server, 'flaky', { price: '$0.001' }, async () => {
    state.runs += 1
    if (state.flaky === 'throw') throw new Error('upstream down')
    return state.flaky === 'error'
      ? { isError: true, content: [{ type: 'text', text: 'no data' }] }
      : { content: [{ type: 'text', text: 'ok' }] }
  })
  server.registerTool('free', {}, async () => ({ content: [{ type: 'text', text: 'free' }] }))
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(serverSide)
  const client = new Client({ name: 'test', version: '1.0.0' })
  await client.connect(clientSide)
  closers.push(async () => {
    await client.close()
    await server.close()
  })
  return Object.assign(state, t, {
    client,
    call: (name: string, args: Record<string, unknown>, payment?: PaymentPayload) =>
      client.callTool({
        name,
        arguments: args,
        ...(payment === undefined ? {} : { _meta: { [MCP_META.payment]: payment } }),
      }),
  })
}

/** The `PaymentRequired` of a 402 tool result; fails the test when the result is not one. */
function requiredOf(result: CallResult): PaymentRequired {
  expect(result.isError).toBe(true)
  const required = paymentRequiredOfResult(result)
  if (!required) throw new Error(`not a 402 result: ${JSON.stringify(result)}`)
  return required
}

function receiptOf(result: CallResult) {
  const decoded = decodeSettleResponseObject(result._meta?.[MCP_META.paymentResponse])
  if (!decoded.ok) throw new Error(decoded.message)
  return decoded.value
}

async function requirementsOf(t: Rig, name: string): Promise<PaymentRequirements> {
  const [accepted] = requiredOf(
    await t.call(name, name === 'forecast' ? { city: 'Oslo' } : {}),
  ).accepts
  if (!accepted) throw new Error('no requirements')
  return accepted
}

function chargedOf(t: Rig, channel: Channel): bigint | undefined {
  return t.payee.ledger.get(channel.id)?.chargedCumulativeAmount
}

describe('an unpaid call', () => {
  it('gets the 402 as a tool result: PaymentRequired in structuredContent and as JSON text, nothing run', async () => {
    const t = await rig()
    const result = await t.call('forecast', { city: 'Oslo' })
    expect(result.isError).toBe(true)
    const structured = result.structuredContent as unknown as PaymentRequired
    expect(JSON.parse((result.content as { text: string }[])[0]?.text ?? '')).toEqual(structured)
    expect(structured.x402Version).toBe(2)
    expect(structured.error).toBeUndefined()
    expect(structured.resource).toEqual({ url: 'mcp://tool/forecast', description: 'A forecast' })
    expect(structured.accepts).toEqual([
      {
        scheme: 'batch-settlement',
        network: NETWORK,
        amount: PRICE.toString(),
        asset: IDENTITY.token,
        payTo: IDENTITY.receiver,
        maxTimeoutSeconds: 60,
        extra: {
          receiverAuthorizer: IDENTITY.receiverAuthorizer,
          withdrawDelay: IDENTITY.withdrawDelay,
          name: 'USDC',
          version: '2',
          minDeposit: (PRICE * 10n).toString(),
        },
      },
    ])
    expect(t.runs).toBe(0)
  })

  it('leaves free tools of the same server free', async () => {
    const t = await rig()
    const result = await t.call('free', {})
    expect(result.isError).toBeUndefined()
    expect(result.content).toEqual([{ type: 'text', text: 'free' }])
  })
})

describe('a paid call', () => {
  it('runs the tool and carries the receipt in _meta; the charge is committed', async () => {
    const t = await rig()
    const channel = openChannel(t)
    const accepted = await requirementsOf(t, 'forecast')
    const result = await t.call(
      'forecast',
      { city: 'Oslo' },
      await voucherPayment(accepted, channel, PRICE),
    )
    expect(result.isError).toBeUndefined()
    expect(result.content).toEqual([{ type: 'text', text: 'Sunny in Oslo' }])
    const receipt = receiptOf(result)
    expect(receipt.response.success).toBe(true)
    expect(receipt.response.network).toBe(NETWORK)
    expect(receipt.response.transaction).toBe('')
    expect(receipt.chargedAmount).toBe(PRICE)
    expect(receipt.channelState?.channelId).toBe(channel.id)
    expect(receipt.channelState?.chargedCumulativeAmount).toBe(PRICE)
    expect(chargedOf(t, channel)).toBe(PRICE)
    expect(t.runs).toBe(1)

    const second = await t.call(
      'forecast',
      { city: 'Rome' },
      await voucherPayment(accepted, channel, 2n * PRICE),
    )
    expect(receiptOf(second).channelState?.chargedCumulativeAmount).toBe(2n * PRICE)
    expect(chargedOf(t, channel)).toBe(2n * PRICE)
  })

  it('a voucher behind the server gets the corrective 402 with the channel state, as over HTTP', async () => {
    const t = await rig()
    const channel = openChannel(t)
    const accepted = await requirementsOf(t, 'forecast')
    const first = await voucherPayment(accepted, channel, PRICE)
    await t.call('forecast', { city: 'Oslo' }, first)
    const replayed = await t.call('forecast', { city: 'Oslo' }, first)
    const required = requiredOf(replayed)
    expect(required.error).toBe(`${BS}cumulative_amount_mismatch`)
    const extra = required.accepts[0]?.extra as Record<string, Record<string, unknown>>
    expect(extra.channelState).toMatchObject({
      channelId: channel.id,
      chargedCumulativeAmount: PRICE.toString(),
      balance: '1000000',
    })
    expect(extra.voucherState).toEqual({
      signedMaxClaimable: PRICE.toString(),
      signature: (first.payload as { voucher: { signature: string } }).voucher.signature,
    })
    expect(t.runs).toBe(1)
    expect(chargedOf(t, channel)).toBe(PRICE)
  })

  it.each([
    ['returns isError', 'error'],
    ['throws', 'throw'],
  ] as const)(
    'a tool that %s is charged nothing, and the same voucher pays the next call',
    async (_, mode) => {
      const t = await rig()
      const channel = openChannel(t)
      const accepted = await requirementsOf(t, 'flaky')
      const voucher = await voucherPayment(accepted, channel, PRICE)
      t.flaky = mode
      const failed = await t.call('flaky', {}, voucher)
      expect(failed.isError).toBe(true)
      expect(failed._meta?.[MCP_META.paymentResponse]).toBeUndefined()
      expect(paymentRequiredOfResult(failed)).toBeUndefined()
      expect(chargedOf(t, channel)).toBe(0n)

      t.flaky = 'ok'
      const retried = await t.call('flaky', {}, voucher)
      expect(retried.isError).toBeUndefined()
      expect(receiptOf(retried).chargedAmount).toBe(PRICE)
      expect(chargedOf(t, channel)).toBe(PRICE)
    },
  )
})

describe('a refused payment runs nothing and charges nothing', () => {
  it.each([
    [
      'a voucher signed by another key',
      async (a: PaymentRequirements, c: Channel) => voucherPayment(a, c, PRICE, otherKey),
      `${BS}voucher_signature`,
    ],
    [
      'requirements not as issued (a lower price)',
      async (a: PaymentRequirements, c: Channel) => voucherPayment({ ...a, amount: '1' }, c, PRICE),
      'invalid_payment_requirements',
    ],
    [
      'a ceiling above the price',
      async (a: PaymentRequirements, c: Channel) => voucherPayment(a, c, 2n * PRICE),
      `${BS}cumulative_amount_mismatch`,
    ],
    [
      'a payload that is not a PaymentPayload',
      async () => {
        const malformed: unknown = { x402Version: 2, accepted: {}, payload: {} }
        return malformed as PaymentPayload
      },
      `${BS}scheme`,
    ],
  ])('%s', async (_, pay, code) => {
    const t = await rig()
    const channel = openChannel(t)
    const accepted = await requirementsOf(t, 'forecast')
    const result = await t.call('forecast', { city: 'Oslo' }, await pay(accepted, channel))
    const required = requiredOf(result)
    expect(required.error).toBe(code)
    expect(required.accepts[0]).toMatchObject(accepted)
    expect(t.runs).toBe(0)
    expect(chargedOf(t, channel) ?? 0n).toBe(0n)
  })

  it('a deposit payload, when the server has no escrow writer', async () => {
    const t = await rig()
    const channel = openChannel(t)
    const accepted = await requirementsOf(t, 'forecast')
    const voucher = await voucherPayment(accepted, channel, PRICE)
    const deposit = {
      ...voucher,
      payload: {
        ...voucher.payload,
        type: 'deposit',
        deposit: {
          amount: '10000',
          authorization: {
            erc3009Authorization: {
              validAfter: '0',
              validBefore: '99999999999',
              salt: `0x${'11'.repeat(32)}`,
              signature: `0x${'22'.repeat(65)}`,
            },
          },
        },
      },
    } as PaymentPayload
    const required = requiredOf(await t.call('forecast', { city: 'Oslo' }, deposit))
    expect(required.error).toBe(`${BS}payload_type`)
    expect(t.runs).toBe(0)
  })
})

describe('pricing a tool', () => {
  it.each([
    ['a price below one token unit', '$0.0000001', /below one token unit/],
    ['an ambiguous price', '0.001', /ambiguous/],
  ])('refuses %s with tollgate_invalid_config', async (_, price, message) => {
    const { payee } = await fixturePayee()
    const paid = paidTools(terms(payee))
    const server = new McpServer({ name: 'x', version: '1' })
    const attempt = () => paid.registerTool(server, 'x', { price }, async () => ({ content: [] }))
    expect(attempt).toThrow(TollgateError)
    expect(attempt).toThrow(message)
  })

  it('refuses terms that differ from the payee', async () => {
    const { payee } = await fixturePayee()
    expect(() => paidTools(terms(payee, { withdrawDelay: 900 }))).toThrow(/withdrawDelay/)
  })
})
