/**
 * The plugin's `oracle` option over a scripted PriceFeed (the feed itself is tested on anvil in
 * test/chain/priceFeed.test.ts): what is converted, when requirements are rebuilt, and the
 * options refused at registration.
 */
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import type { FeedRate, PriceFeed } from '../../../src/chain/priceFeed.js'
import { accept, type Result, reject } from '../../../src/errors/index.js'
import { tollgate } from '../../../src/transports/http/index.js'
import { IDENTITY } from '../../ledger/fixtures.js'
import {
  ASSET,
  acceptedFor,
  expectError,
  fixturePayee,
  makeApp,
  NETWORK,
  requiredOf,
} from './fixtures.js'

/** A feed whose round a test sets; `read()` plays one successful read of the interval. */
function scriptedFeed(answer: bigint | undefined) {
  const listeners = new Set<() => void>()
  let current: Result<FeedRate> =
    answer === undefined
      ? reject('tollgate_price_stale', 'no round')
      : accept({ answer, decimals: 8, roundId: 1n, updatedAt: 0 })
  const feed: PriceFeed = {
    address: '0x0000000000000000000000000000000000000001',
    decimals: 8,
    refreshSeconds: 30,
    current: () => current,
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    close() {},
  }
  return {
    feed,
    listeners,
    read(next: Result<FeedRate> | bigint) {
      current =
        typeof next === 'bigint'
          ? accept({ answer: next, decimals: 8, roundId: 2n, updatedAt: 0 })
          : next
      for (const listener of listeners) listener()
    },
  }
}

describe('oracle pricing in the HTTP plugin', () => {
  it('converts dollar prices at the rate, and leaves token units alone', async () => {
    const script = scriptedFeed(50_000_000n) // $0.50 a token
    const t = await makeApp(
      (app) => {
        app.get('/joke', { config: { price: '$0.001' } }, async () => 'ok')
        app.get('/units', { config: { price: '1000' } }, async () => 'ok')
      },
      { oracle: { feed: script.feed } },
    )
    expect(await acceptedFor(t.app, '/joke')).toMatchObject({
      amount: '2000',
      extra: { minDeposit: '20000' },
    })
    expect((await acceptedFor(t.app, '/units')).amount).toBe('1000')

    script.read(300_000_000_000n) // $3 000 a token: $0.001 is 0.333… units, charged 1
    expect((await acceptedFor(t.app, '/joke')).amount).toBe('1')
    expect((await acceptedFor(t.app, '/units')).amount).toBe('1000')
    await t.app.close()
    expect(script.listeners.size).toBe(0) // unsubscribed on close
  })

  it('converts a dollar minDeposit at the same rate as the price', async () => {
    const script = scriptedFeed(50_000_000n)
    const t = await makeApp(
      (app) => app.get('/joke', { config: { price: '$0.001' } }, async () => 'ok'),
      { oracle: { feed: script.feed }, minDeposit: '$0.05' },
    )
    expect((await acceptedFor(t.app, '/joke')).extra?.minDeposit).toBe('100000')
    script.read(300_000_000_000n) // $0.05 / $3 000 = 16.67 units, rounded up
    expect((await acceptedFor(t.app, '/joke')).extra?.minDeposit).toBe('17')
    await t.app.close()
  })

  it('states the converted amount in the exact requirements of a route that accepts exact too', async () => {
    const script = scriptedFeed(50_000_000n)
    // The 402 is all this test reads: the exact payee is never asked to verify.
    const exactPayee = { verify: async () => ({ kind: 'refused' }) } as never
    const t = await makeApp(
      (app) => app.get('/quote', { config: { price: '$0.001', exact: true } }, async () => 'ok'),
      { oracle: { feed: script.feed }, exactPayee },
    )
    const amounts = async () => {
      const required = requiredOf(await t.app.inject({ url: '/quote' }))
      return required.accepts.map((a) => [a.scheme, a.amount])
    }
    expect(await amounts()).toEqual([
      ['batch-settlement', '2000'],
      ['exact', '2000'],
    ])
    script.read(200_000_000n)
    expect(await amounts()).toEqual([
      ['batch-settlement', '500'],
      ['exact', '500'],
    ])
    await t.app.close()
  })

  it('takes a dollar price finer than the token decimals when the rate makes it a whole unit or more', async () => {
    const script = scriptedFeed(1_000_000n) // $0.01 a token
    const t = await makeApp(
      (app) => app.get('/tiny', { config: { price: '$0.0000001' } }, async () => 'ok'),
      { oracle: { feed: script.feed } },
    )
    // $0.0000001 / $0.01 = 0.00001 token = 10 units of 6 decimals (refused without an oracle).
    expect((await acceptedFor(t.app, '/tiny')).amount).toBe('10')
    await t.app.close()
  })

  it('registers routes while the feed has no usable round, refusing them with 503 until it has', async () => {
    const script = scriptedFeed(undefined)
    const t = await makeApp(
      (app) => app.get('/joke', { config: { price: '$0.001' } }, async () => 'ok'),
      {
        oracle: { feed: script.feed },
      },
    )
    const refused = await t.app.inject({ url: '/joke' })
    expectError(refused, 503, 'tollgate_price_stale')
    expect(refused.headers['payment-required']).toBeUndefined()
    expect(refused.headers['retry-after']).toBe('30')
    script.read(100_000_000n)
    expect((await acceptedFor(t.app, '/joke')).amount).toBe('1000')
    script.read(reject('tollgate_price_below_peg', 'depegged'))
    expectError(await t.app.inject({ url: '/joke' }), 503, 'tollgate_price_below_peg')
    await t.app.close()
  })

  it('refuses, at registration, options that cannot price in dollars through a feed', async () => {
    const { payee } = await fixturePayee()
    const terms = {
      payee,
      network: NETWORK,
      asset: ASSET,
      payTo: IDENTITY.receiver,
      receiverAuthorizer: IDENTITY.receiverAuthorizer,
      withdrawDelay: IDENTITY.withdrawDelay,
      rateLimit: false as const,
    }
    const register = async (
      extra: Record<string, unknown>,
      price: string = '$0.001',
    ): Promise<unknown> => {
      const app = Fastify()
      try {
        await app.register(tollgate, { ...terms, ...extra } as never)
        app.get('/r', { config: { price } }, async () => 'ok')
        await app.ready()
        return undefined
      } catch (err) {
        return err
      } finally {
        await app.close()
      }
    }
    const { feed } = scriptedFeed(100_000_000n)
    const invalid = { code: 'tollgate_invalid_config' }
    expect(await register({ oracle: { feed: {} } })).toMatchObject(invalid)
    expect(await register({ oracle: { feed, convert: 'yes' } })).toMatchObject(invalid)
    expect(
      await register({ oracle: { feed }, asset: { ...ASSET, decimals: undefined } }),
    ).toMatchObject(invalid)
    // A floating token: the deposit floor and the price must be in the same unit.
    expect(await register({ oracle: { feed }, minDeposit: '10000' })).toMatchObject(invalid)
    expect(await register({ oracle: { feed }, minDeposit: '$0.01' }, '1000')).toMatchObject(invalid)
    expect(await register({ oracle: { feed } }, '$0')).toMatchObject(invalid)
    // A minDeposit below the price at the current rate fails fast too.
    expect(await register({ oracle: { feed }, minDeposit: '$0.0001' })).toMatchObject(invalid)
    expect(await register({ oracle: { feed }, minDeposit: '$0.01' })).toBeUndefined()
  })
})
