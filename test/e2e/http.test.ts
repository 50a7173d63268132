/**
 * The HTTP transport end to end: a real anvil with the escrow, a channel opened by direct
 * deposit, a Fastify server on a real socket, and clients paying with vouchers signed for the
 * real channel. The payee reads the channel from chain on first sight; at the end the voucher
 * the server kept is claimed on chain.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { type Account, type Hex, pad, toHex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { channelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  decodePaymentRequired,
  decodeSettleResponse,
  encodeHeader,
  type PaymentRequirements,
  paymentPayload,
} from '../../src/protocol/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { type ChannelConfig, randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
// Accounts the other chain test files do not use.
const [payer, receiver, authorizer] = dev.accounts.slice(6, 9) as [Account, Account, Account]
const sessionKey = randomAccount()
const WITHDRAW_DELAY = 900
const PRICE = 1000n // '$0.001' with USDC's 6 decimals
const DEPOSIT = 1_000_000n

let app: FastifyInstance
let payee: Payee
let store: MemoryStore
let base: string
let chainReads = 0
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  store = await MemoryStore.open()
  const read = channelReader(h.publicClient, h.escrow)
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: h.escrow,
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: h.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    store,
    readChannel: async (id) => {
      chainReads += 1
      return read(id)
    },
  })
  app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
  })
  app.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: 'paid' }))
  app.get<{ Querystring: { tokens: string } }>(
    '/complete',
    { config: { price: '$0.001' } },
    async (request, reply) => {
      const tokens = BigInt(request.query.tokens)
      reply.charge(tokens * 100n) // 100 units a token, up to 10 tokens
      return { tokens: request.query.tokens }
    },
  )
  app.get('/slow', { config: { price: '$0.001' } }, async () => {
    await new Promise((r) => setTimeout(r, 50))
    return { slow: true }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  base = `http://127.0.0.1:${address.port}`
})

afterAll(async () => {
  await app?.close()
  await payee?.close()
  await revert?.()
})

let salt = 1000
/** A channel opened by direct deposit (approve, then deposit with no collector). */
async function openChannel(amount = DEPOSIT): Promise<{ config: ChannelConfig; id: Hex }> {
  const config: ChannelConfig = {
    payer: payer.address,
    payerAuthorizer: sessionKey.address,
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: h.usdc,
    withdrawDelay: WITHDRAW_DELAY,
    salt: pad(toHex(++salt), { size: 32 }),
  }
  await h.approve(payer, amount)
  await h.depositDirect(payer, config, amount)
  return { config, id: await h.channelId(config) }
}

async function requirements(path: string): Promise<PaymentRequirements> {
  const response = await fetch(`${base}${path}`)
  expect(response.status).toBe(402)
  const required = decodePaymentRequired(response.headers.get('payment-required') ?? undefined)
  if (!required.ok) throw new Error(required.message)
  expect(await response.json()).toEqual(required.value)
  expect(required.value.resource.url).toBe(`${base}${path}`)
  const [accepted] = required.value.accepts
  if (!accepted) throw new Error('no requirements')
  return accepted
}

async function pay(
  path: string,
  accepted: PaymentRequirements,
  channel: { config: ChannelConfig; id: Hex },
  max: bigint,
) {
  const signature = await h.signVoucher(sessionKey, channel.id, max)
  const header = encodeHeader(
    paymentPayload({
      accepted,
      payload: {
        type: 'voucher',
        channelConfig: channel.config,
        voucher: { channelId: channel.id, maxClaimableAmount: max, signature },
      },
    }),
  )
  const response = await fetch(`${base}${path}`, { headers: { 'payment-signature': header } })
  const body = (await response.json()) as Record<string, unknown>
  const receiptHeader = response.headers.get('payment-response')
  const receipt = receiptHeader === null ? undefined : decodeSettleResponse(receiptHeader)
  const requiredHeader = response.headers.get('payment-required')
  const required = requiredHeader === null ? undefined : decodePaymentRequired(requiredHeader)
  return {
    status: response.status,
    body,
    receipt: receipt?.ok ? receipt.value : undefined,
    required: required?.ok ? required.value : undefined,
  }
}

describe('paying over HTTP with a real channel', () => {
  it('sequential paid calls add up, match the payee record, and the kept voucher claims on chain', async () => {
    const channel = await openChannel()
    const joke = await requirements('/joke')
    const complete = await requirements('/complete?tokens=0')
    expect(complete.amount).toBe(PRICE.toString())

    let charged = 0n
    let lastMax = 0n
    const calls = 12
    for (let i = 0; i < calls; i++) {
      const dynamic = i % 3 === 2
      const max = charged + PRICE
      const tokens = BigInt(i % 11)
      const result = dynamic
        ? await pay(`/complete?tokens=${tokens}`, complete, channel, max)
        : await pay('/joke', joke, channel, max)
      expect(result.status).toBe(200)
      const receipt = result.receipt
      if (!receipt) throw new Error('no PAYMENT-RESPONSE')
      expect(receipt.response).toMatchObject({ success: true, transaction: '', amount: '' })
      expect(receipt.chargedAmount).toBe(dynamic ? tokens * 100n : PRICE)
      charged += receipt.chargedAmount ?? 0n
      lastMax = max
      expect(receipt.channelState).toMatchObject({
        channelId: channel.id,
        balance: DEPOSIT,
        totalClaimed: 0n,
        chargedCumulativeAmount: charged,
      })
    }
    expect(chainReads).toBe(1)

    const record = payee.ledger.get(channel.id)
    expect(record).toMatchObject({ chargedCumulativeAmount: charged, signedMaxClaimable: lastMax })
    expect(payee.ledger.isHeld(channel.id)).toBe(false)
    await store.flush()
    const stored = (await store.loadAll()).find((r) => r.channelId === channel.id)
    expect(stored?.signedMaxClaimable).toBe(lastMax)
    expect(stored?.chargedCumulativeAmount).toBe(charged)

    // The voucher the server kept is worth what it charged, on chain (money invariant #3).
    if (!record) throw new Error('no record')
    await h.write(receiver, 'claim', [
      [
        {
          voucher: { channel: channel.config, maxClaimableAmount: record.signedMaxClaimable },
          signature: record.signature,
          totalClaimed: record.chargedCumulativeAmount,
        },
      ],
    ])
    expect(await h.channel(channel.id)).toEqual({ balance: DEPOSIT, totalClaimed: charged })
  })

  it('two clients on one channel at once are serialized: busy or corrective, never a double charge', async () => {
    const channel = await openChannel()
    const accepted = await requirements('/slow')
    const cumulatives: bigint[] = []
    const refusals: string[] = []

    async function client(): Promise<number> {
      let known = 0n
      let served = 0
      for (let attempt = 0; attempt < 20 && served < 4; attempt++) {
        const result = await pay('/slow', accepted, channel, known + PRICE)
        if (result.status === 200) {
          served += 1
          known = result.receipt?.channelState?.chargedCumulativeAmount ?? -1n
          cumulatives.push(known)
          continue
        }
        expect(result.status).toBe(402)
        const code = result.body.error
        expect([
          'invalid_batch_settlement_evm_channel_busy',
          'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        ]).toContain(code)
        refusals.push(String(code))
        if (code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch') {
          const state = result.required?.accepts[0]?.extra?.channelState as
            | { chargedCumulativeAmount: string }
            | undefined
          known = BigInt(state?.chargedCumulativeAmount ?? '0')
        } else {
          await new Promise((r) => setTimeout(r, 10 + Math.random() * 20))
        }
      }
      return served
    }

    const served = (await Promise.all([client(), client()])).reduce((a, b) => a + b, 0)
    expect(served).toBeGreaterThanOrEqual(2)
    expect(refusals.length).toBeGreaterThan(0) // the two did collide
    // Every paid response got its own cumulative figure: one price step each, no overlap.
    const sorted = [...cumulatives].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    expect(sorted).toEqual(Array.from({ length: served }, (_, i) => PRICE * BigInt(i + 1)))
    expect(payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE * BigInt(served))
    expect(payee.ledger.isHeld(channel.id)).toBe(false)
  })

  it('a voucher above the deposit is refused with cumulative_exceeds_balance', async () => {
    const channel = await openChannel(PRICE / 2n)
    const accepted = await requirements('/joke')
    const result = await pay('/joke', accepted, channel, PRICE)
    expect(result.status).toBe(402)
    expect(result.body.error).toBe('invalid_batch_settlement_evm_cumulative_exceeds_balance')
    expect(result.required?.error).toBe('invalid_batch_settlement_evm_cumulative_exceeds_balance')
  })

  // A withdrawal started on chain needs the chain watcher (src/chain/watcher*), which is not
  // part of this transport; its end-to-end test belongs with the watcher.
})
