import { Buffer } from 'node:buffer'
import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import {
  encodeHeader,
  HEADERS,
  type PaymentRequirements,
  paymentPayload,
} from '../../../src/protocol/index.js'
import type { Payment } from '../../../src/transports/http/index.js'
import { otherKey, sign } from '../../ledger/fixtures.js'
import {
  acceptedFor,
  deferred,
  expectError,
  makeApp,
  NETWORK,
  openChannel,
  PRICE,
  receiptOf,
  requiredOf,
  type TestApp,
  voucherHeader,
} from './fixtures.js'

const BS = 'invalid_batch_settlement_evm_'
const apps: FastifyInstance[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()))
})

/** Seen by the handlers: what `request.payment` held. */
let seen: Payment | null = null
let gate: { promise: Promise<void>; resolve: () => void } | undefined

async function setup(options = {}): Promise<TestApp & { accepted: PaymentRequirements }> {
  const t = await makeApp((app) => {
    app.get('/free', async (request) => ({ payment: request.payment }))
    app.get(
      '/paid',
      { config: { price: '$0.001', description: 'a joke', mimeType: 'application/json' } },
      async (request) => {
        seen = request.payment
        if (gate) await gate.promise
        return { joke: 'paid' }
      },
    )
    app.get<{ Querystring: { charge?: string; swallow?: string } }>(
      '/metered',
      { config: { price: PRICE } },
      async (request, reply) => {
        const { charge, swallow } = request.query
        if (charge !== undefined) {
          try {
            reply.charge(charge.endsWith('n') ? BigInt(charge.slice(0, -1)) : charge)
          } catch (err) {
            if (swallow === undefined) throw err
          }
        }
        return { tokens: 3 }
      },
    )
    app.get('/stream', { config: { price: PRICE } }, async (_request, reply) => {
      reply.charge(300n)
      reply.type('text/plain')
      return Readable.from(['a', 'b', 'c'])
    })
    app.get<{ Querystring: { status?: string } }>(
      '/fails',
      { config: { price: PRICE } },
      async (request, reply) => {
        if (request.query.status) return reply.code(Number(request.query.status)).send({ no: 1 })
        throw new Error('handler failed')
      },
    )
    app.get('/hijacked', { config: { price: PRICE } }, async (_request, reply) => {
      reply.hijack()
      reply.raw.end('raw')
    })
    app.get('/charge-free', async (_request, reply) => {
      reply.charge(1n)
      return 'x'
    })
  }, options)
  apps.push(t.app)
  seen = null
  gate = undefined
  return { ...t, accepted: await acceptedFor(t.app, '/paid') }
}

describe('unpaid requests', () => {
  it('get a 402 with PAYMENT-REQUIRED, and the same JSON in the body', async () => {
    const { app } = await setup()
    const response = await app.inject({ url: '/paid?q=1' })
    expect(response.statusCode).toBe(402)
    expect(response.headers['content-type']).toMatch(/^application\/json/)
    const required = requiredOf(response)
    expect(response.json()).toEqual(required)
    expect(required).toEqual({
      x402Version: 2,
      resource: {
        url: 'http://localhost:80/paid?q=1',
        description: 'a joke',
        mimeType: 'application/json',
      },
      accepts: [expect.objectContaining({ scheme: 'batch-settlement', amount: '1000' })],
    })
    expect(required.error).toBeUndefined()
  })

  it('get byte-for-byte the same requirements every time', async () => {
    const { app } = await setup()
    const [a, b] = await Promise.all([app.inject({ url: '/paid' }), app.inject({ url: '/paid' })])
    expect(a.headers['payment-required']).toBe(b.headers['payment-required'])
  })

  it('free routes are untouched', async () => {
    const { app } = await setup()
    const response = await app.inject({ url: '/free' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ payment: null })
    expect(response.headers['payment-required']).toBeUndefined()
  })

  it('reply.charge() on a free route is a 500 tollgate_internal', async () => {
    const { app } = await setup()
    const response = await app.inject({ url: '/charge-free' })
    expect(response.statusCode).toBe(500)
    expect(response.json().code).toBe('tollgate_internal')
  })
})

describe('bad payment headers', () => {
  const json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64')

  it.each([
    ['an empty header', 400, 'invalid_payload', ''],
    ['not base64', 400, 'invalid_payload', 'not base64!'],
    [
      'base64url',
      400,
      'invalid_payload',
      json({ a: '>>>?' }).replace(/\+/g, '-').replace(/\//g, '_'),
    ],
    ['base64 of no JSON', 400, 'invalid_payload', Buffer.from('{nope').toString('base64')],
    ['a JSON array', 400, 'invalid_payload', json([1])],
    ['version 1', 400, 'invalid_x402_version', json({ x402Version: 1 })],
    ['no accepted', 400, 'invalid_payment_requirements', json({ x402Version: 2, payload: {} })],
  ])('%s → %i %s', async (_name, status, code, header) => {
    const { app } = await setup()
    const response = await app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, status, code)
  })

  it('a header over maxPaymentHeaderBytes → 431 tollgate_payment_header_too_large', async () => {
    const { app, accepted } = await setup({ maxPaymentHeaderBytes: 100 })
    const header = encodeHeader({ x402Version: 2, accepted, payload: {} })
    const response = await app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 431, 'tollgate_payment_header_too_large')
  })

  it('malformed payloads carry the protocol codes', async () => {
    const t = await setup()
    const channel = openChannel(t)
    const good = JSON.parse(
      Buffer.from(await voucherHeader(t.accepted, channel, PRICE), 'base64').toString(),
    )
    const cases: [unknown, number, string][] = [
      [{ ...good, accepted: { ...good.accepted, scheme: 'exact' } }, 400, `${BS}scheme`],
      [{ ...good, payload: { ...good.payload, type: 'tip' } }, 400, `${BS}payload_type`],
      [{ ...good, payload: { ...good.payload, channelConfig: 1 } }, 400, `${BS}missing_channel`],
      [{ ...good, payload: { ...good.payload, voucher: {} } }, 400, `${BS}voucher_payload`],
    ]
    for (const [payload, status, code] of cases) {
      const response = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': json(payload) },
      })
      expectError(response, status, code)
    }
  })

  it('another network → 402 invalid_network', async () => {
    const t = await setup()
    const accepted = { ...t.accepted, network: 'eip155:8453' as const }
    const header = await voucherHeader(accepted, openChannel(t), PRICE)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 402, 'invalid_network')
  })

  it('requirements other than the route issues → 402 invalid_payment_requirements', async () => {
    const t = await setup()
    const channel = openChannel(t)
    for (const accepted of [
      { ...t.accepted, amount: '1' },
      { ...t.accepted, payTo: t.accepted.payTo.toUpperCase().replace('0X', '0x') },
      { ...t.accepted, extra: { ...t.accepted.extra, minDeposit: '1' } },
      { ...t.accepted, extra: { ...t.accepted.extra, bonus: true } },
    ]) {
      const header = await voucherHeader(accepted, channel, PRICE)
      const response = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': header },
      })
      expectError(response, 402, 'invalid_payment_requirements')
    }
    // Requirements of another route (another price) do not pay this one.
    const metered = await acceptedFor(t.app, '/metered')
    const header = await voucherHeader({ ...metered, amount: '5' }, channel, 5n)
    const response = await t.app.inject({ url: '/metered', headers: { 'x-payment': header } })
    expectError(response, 402, 'invalid_payment_requirements')
  })

  it('deposit and refund payloads are refused when no escrowWriter is configured', async () => {
    const t = await setup()
    const channel = openChannel(t)
    const voucher = {
      channelId: channel.id,
      maxClaimableAmount: PRICE,
      signature: await sign(otherKey, channel.id, PRICE),
    }
    for (const payload of [
      {
        type: 'deposit' as const,
        channelConfig: channel.config,
        voucher,
        deposit: {
          amount: 10_000n,
          erc3009Authorization: {
            validAfter: 0n,
            validBefore: 2n ** 40n,
            salt: `0x${'01'.repeat(32)}` as const,
            signature: `0x${'11'.repeat(65)}` as const,
          },
        },
      },
      { type: 'refund' as const, channelConfig: channel.config, voucher },
    ]) {
      const header = encodeHeader(paymentPayload({ accepted: t.accepted, payload }))
      const response = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': header },
      })
      expectError(response, 400, `${BS}payload_type`)
      expect(response.json().message).toMatch(/escrowWriter/)
    }
  })
})

describe('paid requests', () => {
  it('serve, commit the charge and send PAYMENT-RESPONSE; the next voucher adds the price', async () => {
    const t = await setup()
    const channel = openChannel(t)
    for (let i = 1n; i <= 3n; i++) {
      const header = await voucherHeader(t.accepted, channel, PRICE * i)
      const response = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': header },
      })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({ joke: 'paid' })
      expect(response.headers['x-payment-response']).toBeUndefined()
      const receipt = receiptOf(response)
      expect(receipt.response).toMatchObject({
        success: true,
        transaction: '',
        amount: '',
        network: NETWORK,
        payer: channel.config.payer,
      })
      expect(receipt.chargedAmount).toBe(PRICE)
      expect(receipt.channelState).toMatchObject({
        channelId: channel.id,
        chargedCumulativeAmount: PRICE * i,
        balance: 1_000_000n,
      })
    }
    expect(seen).toEqual({
      payer: channel.config.payer,
      channelId: channel.id,
      price: PRICE,
      header: 'PAYMENT-SIGNATURE',
    })
    const record = t.payee.ledger.get(channel.id)
    expect(record).toMatchObject({ chargedCumulativeAmount: 3000n, signedMaxClaimable: 3000n })
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    // The voucher was durable before the response.
    const [stored] = await t.store.loadAll()
    expect(stored?.signedMaxClaimable).toBe(3000n)
  })

  it('X-PAYMENT gets both PAYMENT-RESPONSE and X-PAYMENT-RESPONSE', async () => {
    const t = await setup()
    const header = await voucherHeader(t.accepted, openChannel(t), PRICE)
    const response = await t.app.inject({ url: '/paid', headers: { 'x-payment': header } })
    expect(response.statusCode).toBe(200)
    expect(response.headers['x-payment-response']).toBe(response.headers['payment-response'])
    expect(receiptOf(response, 'x-payment-response').chargedAmount).toBe(PRICE)
    expect(seen?.header).toBe(HEADERS.xPayment)
  })

  it('an unknown channel with no deposit → 402 channel_not_found', async () => {
    const t = await setup()
    const channel = openChannel(t)
    t.chain.delete(channel.id)
    const header = await voucherHeader(t.accepted, channel, PRICE)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 402, `${BS}channel_not_found`)
  })

  it('a voucher signed by another key → 402 voucher_signature', async () => {
    const t = await setup()
    const header = await voucherHeader(t.accepted, openChannel(t), PRICE, otherKey)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 402, `${BS}voucher_signature`)
  })

  it('a store failure → 503 tollgate_store_failed, nothing served', async () => {
    const t = await setup()
    t.store.failWrites(new Error('disk full'))
    const header = await voucherHeader(t.accepted, openChannel(t), PRICE)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 503, 'tollgate_store_failed')
    expect(seen).toBeNull()
  })
})

describe('the corrective 402', () => {
  it('carries channelState and the held voucherState; paying it as echoed works', async () => {
    const t = await setup()
    const channel = openChannel(t)
    const first = await voucherHeader(t.accepted, channel, PRICE)
    expect(
      (await t.app.inject({ url: '/paid', headers: { 'payment-signature': first } })).statusCode,
    ).toBe(200)

    // A client that lost track pays 5 000 instead of 2 000.
    const wrong = await voucherHeader(t.accepted, channel, 5000n)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': wrong } })
    expectError(response, 402, `${BS}cumulative_amount_mismatch`)
    const [corrective] = requiredOf(response).accepts
    expect(corrective?.extra?.channelState).toEqual({
      channelId: channel.id,
      balance: '1000000',
      totalClaimed: '0',
      withdrawRequestedAt: 0,
      refundNonce: '0',
      chargedCumulativeAmount: '1000',
    })
    expect(corrective?.extra?.voucherState).toEqual({
      signedMaxClaimable: '1000',
      signature: await sign(
        (await import('../../ledger/fixtures.js')).sessionKey,
        channel.id,
        1000n,
      ),
    })
    expect(response.json().accepts).toEqual(requiredOf(response).accepts)

    // Stock clients pay the corrective requirements as received, extra state and all.
    const right = await voucherHeader(corrective as PaymentRequirements, channel, 2000n)
    const paid = await t.app.inject({ url: '/paid', headers: { 'payment-signature': right } })
    expect(paid.statusCode).toBe(200)
    expect(receiptOf(paid).channelState?.chargedCumulativeAmount).toBe(2000n)
  })

  it('for a channel seen for the first time it carries channelState only', async () => {
    const t = await setup()
    const header = await voucherHeader(t.accepted, openChannel(t), 5000n)
    const response = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(response, 402, `${BS}cumulative_amount_mismatch`)
    const [corrective] = requiredOf(response).accepts
    expect(corrective?.extra?.channelState).toMatchObject({ chargedCumulativeAmount: '0' })
    expect(corrective?.extra?.voucherState).toBeUndefined()
  })
})

describe('dynamic pricing', () => {
  async function paidCall(t: TestApp, max: bigint, query: string, channel = openChannel(t)) {
    const accepted = await acceptedFor(t.app, '/metered')
    const header = await voucherHeader(accepted, channel, max)
    const response = await t.app.inject({
      url: `/metered${query}`,
      headers: { 'payment-signature': header },
    })
    return { response, channel }
  }

  it('reply.charge() below the price charges that, and the next voucher follows', async () => {
    const t = await setup()
    const { response, channel } = await paidCall(t, PRICE, '?charge=250n')
    expect(response.statusCode).toBe(200)
    expect(receiptOf(response).chargedAmount).toBe(250n)
    expect(receiptOf(response).channelState?.chargedCumulativeAmount).toBe(250n)
    const next = await paidCall(t, 250n + PRICE, '?charge=100', channel)
    expect(receiptOf(next.response).chargedAmount).toBe(100n)
    const zero = await paidCall(t, 350n + PRICE, '?charge=0', channel)
    expect(receiptOf(zero.response).chargedAmount).toBe(0n)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(350n)
  })

  it.each([
    ['above the price', '?charge=1001n'],
    ['negative', '?charge=-1n'],
    ['not a decimal', '?charge=1.5'],
    ['above the price, error swallowed by the handler', '?charge=1001n&swallow=1'],
  ])(
    'a charge %s → 500 tollgate_internal, nothing charged, voucher retryable',
    async (_n, query) => {
      const t = await setup()
      const { response, channel } = await paidCall(t, PRICE, query)
      expect(response.statusCode).toBe(500)
      expect(response.json()).toMatchObject({ error: 'tollgate_internal' })
      expect(response.headers['payment-response']).toBeUndefined()
      expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(0n)
      expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
      const retry = await paidCall(t, PRICE, '', channel)
      expect(retry.response.statusCode).toBe(200)
      expect(receiptOf(retry.response).channelState?.chargedCumulativeAmount).toBe(PRICE)
    },
  )

  it('a stream is not buffered: committed at the headers with the declared charge', async () => {
    const t = await setup()
    const accepted = await acceptedFor(t.app, '/stream')
    const channel = openChannel(t)
    const header = await voucherHeader(accepted, channel, PRICE)
    const response = await t.app.inject({
      url: '/stream',
      headers: { 'payment-signature': header },
    })
    expect(response.statusCode).toBe(200)
    expect(response.body).toBe('abc')
    expect(receiptOf(response).chargedAmount).toBe(300n)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(300n)
  })
})

describe('failures release the channel', () => {
  it.each([
    ['a thrown error', '', 500],
    ['a 404 reply', '?status=404', 404],
    ['a 503 reply', '?status=503', 503],
  ])('%s: nothing charged, the same voucher then pays', async (_name, query, status) => {
    const t = await setup()
    const channel = openChannel(t)
    const accepted = await acceptedFor(t.app, '/fails')
    const header = await voucherHeader(accepted, channel, PRICE)
    const failed = await t.app.inject({
      url: `/fails${query}`,
      headers: { 'payment-signature': header },
    })
    expect(failed.statusCode).toBe(status)
    expect(failed.headers['payment-response']).toBeUndefined()
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(0n)

    const retried = await t.app.inject({
      url: '/metered',
      headers: { 'payment-signature': await voucherHeader(accepted, channel, PRICE) },
    })
    expect(retried.statusCode).toBe(200)
    expect(receiptOf(retried).channelState?.chargedCumulativeAmount).toBe(PRICE)
  })

  it('a second request on a held channel → 402 channel_busy, and one charge only', async () => {
    const t = await setup()
    const channel = openChannel(t)
    const header = await voucherHeader(t.accepted, channel, PRICE)
    gate = deferred()
    const first = t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    while (!t.payee.ledger.isHeld(channel.id)) await new Promise((r) => setTimeout(r, 1))
    const second = await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })
    expectError(second, 402, `${BS}channel_busy`)
    gate.resolve()
    expect((await first).statusCode).toBe(200)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
  })
})

describe('a hijacked reply', () => {
  it('never reaches onSend: released when it closes, nothing charged, the same voucher then pays', async () => {
    const t = await setup()
    const channel = openChannel(t)
    const accepted = await acceptedFor(t.app, '/hijacked')
    const header = await voucherHeader(accepted, channel, PRICE)
    const hijacked = await t.app.inject({
      url: '/hijacked',
      headers: { 'payment-signature': header },
    })
    expect(hijacked.body).toBe('raw')
    expect(hijacked.headers['payment-response']).toBeUndefined()
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(0n)

    const paid = await t.app.inject({
      url: '/metered',
      headers: { 'payment-signature': await voucherHeader(t.accepted, channel, PRICE) },
    })
    expect(paid.statusCode).toBe(200)
    expect(receiptOf(paid).channelState?.chargedCumulativeAmount).toBe(PRICE)
  })
})

describe('a client that leaves', () => {
  it('before the response: released, nothing charged, the same voucher then pays', async () => {
    const t = await setup()
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const address = t.app.server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const channel = openChannel(t)
    const header = await voucherHeader(t.accepted, channel, PRICE)
    gate = deferred()
    const controller = new AbortController()
    const request = fetch(`http://127.0.0.1:${address.port}/paid`, {
      headers: { 'payment-signature': header },
      signal: controller.signal,
    }).catch((err: unknown) => err)
    while (!t.payee.ledger.isHeld(channel.id)) await new Promise((r) => setTimeout(r, 1))
    controller.abort()
    expect(await request).toBeInstanceOf(Error)
    while (t.payee.ledger.isHeld(channel.id)) await new Promise((r) => setTimeout(r, 1))
    gate.resolve()
    await new Promise((r) => setTimeout(r, 20))
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(0n)

    gate = undefined
    const retried = await fetch(`http://127.0.0.1:${address.port}/paid`, {
      headers: { 'payment-signature': header },
    })
    expect(retried.status).toBe(200)
    await retried.arrayBuffer()
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
  })
})

describe('rate limits', () => {
  it('unpaid per IP: priced routes only, 429 tollgate_rate_limited with Retry-After', async () => {
    // setup() already made one request (the 402 it reads the requirements from).
    const t = await setup({
      rateLimit: { unpaidPerIp: { max: 3, timeWindowMs: 60_000 }, perPayer: false },
    })
    // Sequential: @fastify/rate-limit's local store hands out its live counter, so requests
    // racing in one tick at the boundary all see the final count (refused early, never late).
    const counts = []
    for (let i = 0; i < 3; i++) counts.push(await t.app.inject({ url: '/paid' }))
    expect(counts.map((r) => r.statusCode)).toEqual([402, 402, 429])
    const limited = counts.find((r) => r.statusCode === 429)
    expect(limited?.json()).toMatchObject({ error: 'tollgate_rate_limited' })
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0)
    expect((await t.app.inject({ url: '/free' })).statusCode).toBe(200)
    const other = await t.app.inject({ url: '/paid', remoteAddress: '10.0.0.2' })
    expect(other.statusCode).toBe(402)
  })

  it('paid per IP: counted apart from unpaid requests, so a 402 flood leaves paid calls alone', async () => {
    const t = await setup({
      rateLimit: {
        perIp: { max: 2, timeWindowMs: 60_000 },
        unpaidPerIp: { max: 2, timeWindowMs: 60_000 },
        perPayer: false,
      },
    })
    // setup() used one unpaid request; this uses the other, then unpaid ones are refused.
    expect((await t.app.inject({ url: '/paid' })).statusCode).toBe(402)
    expect((await t.app.inject({ url: '/paid' })).statusCode).toBe(429)
    const channel = openChannel(t)
    const paid = [PRICE, 2n * PRICE, 3n * PRICE]
    const statuses = []
    for (const max of paid) {
      const header = await voucherHeader(t.accepted, channel, max)
      statuses.push(
        (await t.app.inject({ url: '/paid', headers: { 'payment-signature': header } })).statusCode,
      )
    }
    expect(statuses).toEqual([200, 200, 429])
  })

  it('refuses an unknown rate limit key, naming it', async () => {
    await expect(
      setup({ rateLimit: { perIP: { max: 1, timeWindowMs: 1 } } as never }),
    ).rejects.toThrow(/rateLimit.perIP is not a rate limit/)
  })

  it('per payer: counts accepted vouchers only, so forged ones cannot use it up', async () => {
    const t = await setup({
      rateLimit: { perIp: false, perPayer: { max: 1, timeWindowMs: 60_000 } },
    })
    const channel = openChannel(t)
    // Forged: the payer's address with someone else's signature.
    const forged = await voucherHeader(t.accepted, channel, PRICE, otherKey)
    for (let i = 0; i < 3; i++) {
      const response = await t.app.inject({
        url: '/paid',
        headers: { 'payment-signature': forged },
      })
      expectError(response, 402, `${BS}voucher_signature`)
    }
    const ok = await t.app.inject({
      url: '/paid',
      headers: { 'payment-signature': await voucherHeader(t.accepted, channel, PRICE) },
    })
    expect(ok.statusCode).toBe(200)
    const limited = await t.app.inject({
      url: '/paid',
      headers: { 'payment-signature': await voucherHeader(t.accepted, channel, 2n * PRICE) },
    })
    expectError(limited, 429, 'tollgate_rate_limited')
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
  })

  it('defaults are on and generous; rateLimit: false turns them off', async () => {
    const on = await setup({ rateLimit: undefined })
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => on.app.inject({ url: '/paid' })),
    )
    expect(responses.every((r) => r.statusCode === 402)).toBe(true)
    expect(responses[0]?.headers['x-ratelimit-limit']).toBeUndefined()
  })
})
