/**
 * Oracle pricing end to end on anvil: a Fastify server with the tollgate plugin pricing '$0.001'
 * through the dev chain's mock price feed, a channel opened by direct deposit, and vouchers
 * signed for the real channel. The feed's answer is moved on chain and the next 402 follows it.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Hex, type PrivateKeyAccount, pad, toHex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PriceFeed, watchPriceFeed } from '../../src/chain/priceFeed.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  decodePaymentRequired,
  decodeSettleResponse,
  encodeHeader,
  type PaymentRequirements,
  paymentPayload,
} from '../../src/protocol/index.js'
import { createTollgate } from '../../src/server/createTollgate.js'
import { MemoryStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { fundedAccount, payerOn } from '../client/fixtures.js'
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
const REFRESH_SECONDS = 1
const MAX_AGE_SECONDS = 60
/** The token (6 decimals) is worth $0.50: $0.001 is 2000 units. */
const HALF_DOLLAR = 50_000_000n
/** Then worth $2: $0.001 is 500 units. */
const TWO_DOLLARS = 200_000_000n

let app: FastifyInstance
let payee: Payee
let priceFeed: PriceFeed
let base: string
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  await feed.setAnswer(HALF_DOLLAR)
  priceFeed = await watchPriceFeed({
    client: h.publicClient,
    address: feed.address,
    maxAgeSeconds: MAX_AGE_SECONDS,
    refreshSeconds: REFRESH_SECONDS,
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
  app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
    oracle: { feed: priceFeed },
    // Gasless deposits, for the payer SDK.
    escrowWriter: h.escrowWriter(receiver),
  })
  app.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: 'paid' }))
  app.get('/units', { config: { price: '1000' } }, async () => ({ units: 'paid' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  base = `http://127.0.0.1:${address.port}`
})

afterAll(async () => {
  await app?.close()
  priceFeed?.close()
  await payee?.close()
  await revert?.()
})

async function openChannel(amount: bigint): Promise<{ config: ChannelConfig; id: Hex }> {
  const config: ChannelConfig = {
    payer: payer.address,
    payerAuthorizer: sessionKey.address,
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: h.usdc,
    withdrawDelay: WITHDRAW_DELAY,
    salt: pad(toHex(4242), { size: 32 }),
  }
  await h.approve(payer, amount)
  await h.depositDirect(payer, config, amount)
  return { config, id: await h.channelId(config) }
}

/** The route's unpaid answer: status, requirements (on a 402) and the JSON body. */
async function unpaid(path: string) {
  const response = await fetch(`${base}${path}`)
  const header = response.headers.get('payment-required')
  const required = header === null ? undefined : decodePaymentRequired(header)
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Record<string, unknown>,
    accepted: required?.ok ? required.value.accepts[0] : undefined,
  }
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
  const receipt = response.headers.get('payment-response')
  const required = response.headers.get('payment-required')
  const decodedRequired = required === null ? undefined : decodePaymentRequired(required)
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    receipt: receipt === null ? undefined : decodeSettleResponse(receipt),
    required: decodedRequired?.ok ? decodedRequired.value : undefined,
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('a dollar route paid in a token priced by a feed', () => {
  it('states the converted amount, follows a moved price within one refresh, and refuses the old requirements', async () => {
    const before = await unpaid('/joke')
    expect(before.status).toBe(402)
    expect(before.accepted?.amount).toBe('2000') // $0.001 at $0.50 a token
    expect(before.accepted?.extra?.minDeposit).toBe('20000')
    // Token units are never converted.
    expect((await unpaid('/units')).accepted?.amount).toBe('1000')

    const channel = await openChannel(1_000_000n)
    const paid = await pay('/joke', before.accepted as PaymentRequirements, channel, 2000n)
    expect(paid.status).toBe(200)
    expect(paid.receipt).toMatchObject({ ok: true, value: { chargedAmount: 2000n } })

    await feed.setAnswer(TWO_DOLLARS)
    const moved = Date.now()
    let after = await unpaid('/joke')
    while (after.accepted?.amount === '2000' && Date.now() - moved < 5000) {
      await sleep(50)
      after = await unpaid('/joke')
    }
    expect(after.accepted?.amount).toBe('500')
    expect(after.accepted?.extra?.minDeposit).toBe('5000')

    // A voucher signed for the previous requirements is refused with the fresh ones.
    const stale = await pay('/joke', before.accepted as PaymentRequirements, channel, 4000n)
    expect(stale.status).toBe(402)
    expect(stale.body.error).toBe('invalid_payment_requirements')
    expect(stale.required?.accepts[0]?.amount).toBe('500')
    // Paying what the fresh 402 states is served and charged at the new rate.
    const repaid = await pay('/joke', after.accepted as PaymentRequirements, channel, 2500n)
    expect(repaid.status).toBe(200)
    expect(repaid.receipt).toMatchObject({
      ok: true,
      value: { chargedAmount: 500n, channelState: { chargedCumulativeAmount: 2500n } },
    })
  })

  it('refuses payment while the feed is stale, and serves again once it is fresh', async () => {
    await feed.setAnswer(TWO_DOLLARS, nowSeconds() - BigInt(MAX_AGE_SECONDS) - 10n)
    const refusedAt = Date.now()
    let refused = await unpaid('/joke')
    while (refused.status === 402 && Date.now() - refusedAt < 5000) {
      await sleep(50)
      refused = await unpaid('/joke')
    }
    expect(refused.status).toBe(503)
    expect(refused.body.error).toBe('tollgate_price_stale')
    expect(refused.accepted).toBeUndefined() // no amount is stated at a stale price
    expect(refused.retryAfter).toBe(String(REFRESH_SECONDS))
    // A token-unit route does not depend on the feed.
    expect((await unpaid('/units')).status).toBe(402)

    await feed.setAnswer(TWO_DOLLARS)
    const freshAt = Date.now()
    let fresh = await unpaid('/joke')
    while (fresh.status === 503 && Date.now() - freshAt < 5000) {
      await sleep(50)
      fresh = await unpaid('/joke')
    }
    expect(fresh.status).toBe(402)
    expect(fresh.accepted?.amount).toBe('500')
  })
})

describe("tollgate's payer across a rate change", () => {
  it('pays the old price, then, refused for the old requirements, the new one in the same fetch', async () => {
    await feed.setAnswer(HALF_DOLLAR)
    await waitForAmount('2000')
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-oracle-payer-'))
    const payer = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n),
      payerAuthorizer: randomAccount() as PrivateKeyAccount,
      dataDir,
      policy: { deposit: { amount: 100_000n } },
    })
    try {
      const first = await payer.fetch(`${base}/joke`)
      expect(first.status).toBe(200)
      await first.body?.cancel()

      await feed.setAnswer(TWO_DOLLARS)
      await waitForAmount('500')
      // The payer still holds the 2000-unit requirements: the server refuses them and sends the
      // fresh 402, which the payer pays within the same fetch.
      const second = await payer.fetch(`${base}/joke`)
      expect(second.status).toBe(200)
      expect(await second.json()).toEqual({ joke: 'paid' })
      const receipt = decodeSettleResponse(second.headers.get('payment-response') ?? '')
      expect(receipt).toMatchObject({
        ok: true,
        value: { chargedAmount: 500n, channelState: { chargedCumulativeAmount: 2500n } },
      })
    } finally {
      await payer.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

/** Waits (at most 5 s) until `/joke`'s 402 asks `amount`. */
async function waitForAmount(amount: string): Promise<void> {
  const started = Date.now()
  while ((await unpaid('/joke')).accepted?.amount !== amount) {
    if (Date.now() - started > 5000) throw new Error(`/joke never asked ${amount}`)
    await sleep(50)
  }
}

describe('a dollar stablecoin guarded by its feed', () => {
  it('prices one to one, and refuses payment below the peg until the feed recovers', async () => {
    await feed.setAnswer(100_000_000n) // $1.00
    const guardFeed = await watchPriceFeed({
      client: h.publicClient,
      address: feed.address,
      maxAgeSeconds: MAX_AGE_SECONDS,
      refreshSeconds: REFRESH_SECONDS,
      minAnswer: 99_000_000n, // refuse below $0.99
    })
    const guarded = Fastify()
    try {
      await guarded.register(tollgate, {
        payee,
        network: `eip155:${dev.chainId}`,
        asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
        payTo: receiver.address,
        receiverAuthorizer: authorizer.address,
        withdrawDelay: WITHDRAW_DELAY,
        oracle: { feed: guardFeed, convert: false },
      })
      guarded.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: 'paid' }))
      await guarded.ready()
      const ask = async () => {
        const response = await guarded.inject({ url: '/joke' })
        const required = decodePaymentRequired(response.headers['payment-required'] as string)
        return {
          status: response.statusCode,
          error: (response.json() as { error?: string }).error,
          amount: required.ok ? required.value.accepts[0]?.amount : undefined,
        }
      }
      // $0.9950 is above the floor: still one to one, not converted.
      await feed.setAnswer(99_500_000n)
      await sleep(REFRESH_SECONDS * 1000 + 200)
      expect(await ask()).toEqual({ status: 402, error: undefined, amount: '1000' })

      await feed.setAnswer(98_000_000n) // depegged: $0.98
      const depeggedAt = Date.now()
      let answer = await ask()
      while (answer.status === 402 && Date.now() - depeggedAt < 5000) {
        await sleep(50)
        answer = await ask()
      }
      expect(answer).toEqual({ status: 503, error: 'tollgate_price_below_peg', amount: undefined })

      await feed.setAnswer(100_000_000n)
      const recoveredAt = Date.now()
      while (answer.status === 503 && Date.now() - recoveredAt < 5000) {
        await sleep(50)
        answer = await ask()
      }
      expect(answer).toEqual({ status: 402, error: undefined, amount: '1000' })
    } finally {
      await guarded.close()
      guardFeed.close()
    }
  })
})

describe('createTollgate with an oracle', () => {
  it('prices tg.http routes and tg.ws feeds at the feed rate', async () => {
    await feed.setAnswer(HALF_DOLLAR)
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-oracle-tg-'))
    const tg = await createTollgate({
      network: 'local',
      rpcUrl: dev.rpcUrl,
      account: dev.privateKeys[4] as Hex,
      dataDir,
      confirmations: 0,
      withdrawDelay: WITHDRAW_DELAY,
      settlement: { enabled: false },
      oracle: { feed: feed.address, maxAgeSeconds: MAX_AGE_SECONDS, refreshSeconds: 1 },
    })
    const served = Fastify()
    try {
      await served.register(tg.http)
      served.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: 'paid' }))
      await served.ready()
      const amount = async () => {
        const response = await served.inject({ url: '/joke' })
        const required = decodePaymentRequired(response.headers['payment-required'] as string)
        return required.ok ? required.value.accepts[0]?.amount : undefined
      }
      expect(await amount()).toBe('2000')
      await feed.setAnswer(TWO_DOLLARS)
      const moved = Date.now()
      while ((await amount()) === '2000' && Date.now() - moved < 5000) await sleep(50)
      expect(await amount()).toBe('500')

      const ws = Fastify()
      await ws.register(tg.ws)
      ws.tollgateFeed('/ticks', { price: '$0.0001', source: async function* () {} })
      await ws.ready()
      const session = await FrameClient.inject(ws, '/ticks')
      // $0.0001 at $2 a token.
      expect((await session.next('payment-required')).paymentRequired.accepts[0]?.amount).toBe('50')

      // Revenue in dollars is counted at the rate of the charge: 500 units at $2 are $0.001.
      tg.serverMetrics.route('http', '/joke').charge(500n)
      const scraped = await tg.metrics.metrics()
      const dollars = scraped
        .split('\n')
        .find((line) => line.startsWith('tollgate_revenue_dollars_total{route="/joke"}'))
      expect(Number(dollars?.split(' ').pop())).toBeCloseTo(0.001, 12)
      await ws.close()

      // The dashboard shows this token's amounts in the token, not as dollars.
      const admin = Fastify()
      await admin.register(tg.dashboard, { prefix: '/admin', token: 'a-dashboard-token-for-tests' })
      const overview = await admin.inject({
        url: '/admin/api/overview',
        headers: { authorization: 'Bearer a-dashboard-token-for-tests' },
      })
      expect(overview.json().token).toMatchObject({ dollar: false, decimals: 6 })
      await admin.close()
    } finally {
      await served.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
