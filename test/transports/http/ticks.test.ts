/**
 * The tick hooks of the HTTP plugin, in process (inject): the route option is checked at
 * registration, the requirements advertise the window, and malformed or orphan ticks and bad
 * commitments are refused with stable codes before anything is stored.
 */
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../../src/errors/index.js'
import { CANONICAL_ADDRESSES } from '../../../src/protocol/index.js'
import {
  encodeTickHeader,
  encodeTickWindowHeader,
  tickCommitmentDigest,
  tickDomainSeparator,
  tickLink,
} from '../../../src/protocol/tickWire.js'
import { tollgate } from '../../../src/transports/http/index.js'
import { bytesToHex } from '../../../src/verify/index.js'
import { CHAIN_ID, otherKey, sessionKey } from '../../ledger/fixtures.js'
import {
  acceptedFor,
  deferred,
  expectError,
  fixturePayee,
  fixtureTerms,
  makeApp,
  openChannel,
  requiredOf,
  voucherHeader,
} from './fixtures.js'

const PRICE = 100n

async function register(config: Record<string, unknown>): Promise<unknown> {
  const { payee } = await fixturePayee()
  const app = Fastify({ logger: false })
  await app.register(tollgate, { ...fixtureTerms(payee), rateLimit: false })
  try {
    app.get('/r', { config }, async () => ({ ok: true }))
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

describe('tick routes', () => {
  it.each([0, 1, 2.5, -3, 'ten', 2_000_000])('refuse ticks: %s at registration', async (ticks) => {
    const err = await register({ price: PRICE, ticks })
    expect(err).toBeInstanceOf(TollgateError)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
  })

  it('refuse ticks on a route without a price', async () => {
    const err = await register({ ticks: true })
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
  })

  it('advertise the window in extra; routes without ticks do not', async () => {
    const t = await makeApp((app) => {
      app.get('/tick', { config: { price: PRICE, ticks: true } }, async () => ({ ok: true }))
      app.get('/ten', { config: { price: PRICE, ticks: 10 } }, async () => ({ ok: true }))
      app.get('/plain', { config: { price: PRICE } }, async () => ({ ok: true }))
    })
    expect((await acceptedFor(t.app, '/tick')).extra?.tickWindow).toBe(100)
    expect((await acceptedFor(t.app, '/ten')).extra?.tickWindow).toBe(10)
    expect((await acceptedFor(t.app, '/plain')).extra?.tickWindow).toBeUndefined()
    await t.app.close()
  })

  it('refuse a malformed tick, a tick with no window, and a bad commitment, storing nothing', async () => {
    const t = await makeApp((app) => {
      app.get('/tick', { config: { price: PRICE, ticks: 10 } }, async () => ({ ok: true }))
    })
    const channel = openChannel(t)
    const malformed = await t.app.inject({ url: '/tick', headers: { 'tollgate-tick': 'nonsense' } })
    expectError(malformed, 402, 'tollgate_tick_invalid')
    const orphan = await t.app.inject({
      url: '/tick',
      headers: { 'tollgate-tick': encodeTickHeader(channel.id, 1, new Uint8Array(32)) },
    })
    expectError(orphan, 402, 'tollgate_tick_window_ended')
    expect(requiredOf(orphan).accepts[0]?.extra?.tickWindow).toBe(10)

    const accepted = await acceptedFor(t.app, '/tick')
    const ceiling = 10n * PRICE
    const root = bytesToHex(new Uint8Array(randomBytes(32)))
    const commitment = {
      channelId: channel.id,
      maxClaimableAmount: ceiling,
      price: PRICE,
      ticks: 10,
      root,
    }
    const digest = tickCommitmentDigest(
      tickDomainSeparator(CHAIN_ID, CANONICAL_ADDRESSES.escrow),
      commitment,
    )
    if (!digest) throw new Error('no digest')
    const open = async (signature: `0x${string}`, ticks = 10) =>
      t.app.inject({
        url: '/tick',
        headers: {
          'payment-signature': await voucherHeader(accepted, channel, ceiling),
          'tollgate-tick-window': encodeTickWindowHeader({ ticks, root, signature }),
        },
      })
    // Signed by another key, or for more calls than the route's window: refused, nothing stored.
    expectError(
      await open(await otherKey.sign({ hash: bytesToHex(digest) })),
      402,
      'tollgate_tick_invalid',
    )
    expectError(
      await open(await sessionKey.sign({ hash: bytesToHex(digest) }), 11),
      402,
      'tollgate_tick_invalid',
    )
    expect(t.payee.ledger.get(channel.id)).toBeUndefined()
    expect(await t.store.loadAll()).toEqual([])
    // Signed by the channel's authorizer: the window opens, the opening call is charged.
    const opened = await open(await sessionKey.sign({ hash: bytesToHex(digest) }))
    expect(opened.statusCode).toBe(200)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(true)
    // Closing the app ends the window: the hold is released, the charge stays exact.
    await t.app.close()
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
  })

  it('a hijacked tick, then a client that leaves during one: nothing charged, the window not left busy, the same preimage then pays', async () => {
    let gate: { promise: Promise<void>; resolve: () => void } | undefined
    let hijack = false
    const t = await makeApp((app) => {
      app.get('/tick', { config: { price: PRICE, ticks: 10 } }, async (_request, reply) => {
        if (hijack) {
          reply.hijack()
          reply.raw.end('raw')
          return
        }
        if (gate) await gate.promise
        return { ok: true }
      })
    })
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 })
    const channel = openChannel(t)
    const accepted = await acceptedFor(t.app, '/tick')
    const links = new Array<Uint8Array>(10)
    links[9] = new Uint8Array(randomBytes(32))
    for (let i = 9; i > 0; i--) links[i - 1] = tickLink(links[i] as Uint8Array)
    const root = bytesToHex(links[0] as Uint8Array)
    const ceiling = 10n * PRICE
    const digest = tickCommitmentDigest(tickDomainSeparator(CHAIN_ID, CANONICAL_ADDRESSES.escrow), {
      channelId: channel.id,
      maxClaimableAmount: ceiling,
      price: PRICE,
      ticks: 10,
      root,
    })
    if (!digest) throw new Error('no digest')
    const signature = await sessionKey.sign({ hash: bytesToHex(digest) })
    const opened = await fetch(`${base}/tick`, {
      headers: {
        'payment-signature': await voucherHeader(accepted, channel, ceiling),
        'tollgate-tick-window': encodeTickWindowHeader({ ticks: 10, root, signature }),
      },
    })
    expect(opened.status).toBe(200)
    await opened.arrayBuffer()
    const tick = { 'tollgate-tick': encodeTickHeader(channel.id, 1, links[1] as Uint8Array) }

    hijack = true
    const hijacked = await fetch(`${base}/tick`, { headers: tick })
    expect(await hijacked.text()).toBe('raw')
    expect(hijacked.headers.get('tollgate-tick-receipt')).toBeNull()
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)
    hijack = false

    gate = deferred()
    const controller = new AbortController()
    const left = fetch(`${base}/tick`, { headers: tick, signal: controller.signal }).catch(
      (err: unknown) => err,
    )
    await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    expect(await left).toBeInstanceOf(Error)
    await new Promise((r) => setTimeout(r, 50))
    gate.resolve()
    await new Promise((r) => setTimeout(r, 20))
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(PRICE)

    gate = undefined
    const again = await fetch(`${base}/tick`, { headers: tick })
    expect(again.status).toBe(200)
    expect(again.headers.get('tollgate-tick-receipt')).not.toBeNull()
    await again.arrayBuffer()
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(2n * PRICE)
    await t.app.close()
  })
})
