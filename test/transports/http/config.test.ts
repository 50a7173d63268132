import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../../src/errors/index.js'
import {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  parsePrice,
  type TollgateOptions,
  tollgate,
} from '../../../src/transports/http/index.js'
import { CHAIN_ID, IDENTITY } from '../../ledger/fixtures.js'
import { ASSET, acceptedFor, makeApp, NETWORK } from './fixtures.js'

describe('parsePrice', () => {
  it.each([
    ['$0.001', 6, 1000n],
    ['$1', 6, 1_000_000n],
    ['$1.5', 6, 1_500_000n],
    ['$0.000001', 6, 1n],
    ['$0.0010000', 6, 1000n],
    ['$12345678.123456', 6, 12_345_678_123_456n],
    ['1000', 6, 1000n],
    [1000n, 6, 1000n],
    ['$1', 0, 1n],
    ['$0.000000000000000001', 18, 1n],
  ] as const)('%s with %i decimals is %s token units', (price, decimals, units) => {
    expect(parsePrice(price, decimals)).toBe(units)
  })

  it.each([
    ['$0.0000001', /below one token unit/],
    ['$0.0000009', /below one token unit/],
    ['$1.0000005', /not a whole number of token units/],
    ['0.001', /ambiguous/],
    ['.5', /ambiguous/],
    ['$0', /below one token unit/],
    ['0', /below one token unit/],
    [0n, /below one token unit/],
    [-1n, /below one token unit/],
    ['-1', /malformed/],
    ['$-1', /malformed/],
    ['1e3', /malformed/],
    [' 1000', /malformed/],
    ['$1,000', /malformed/],
    ['01000', /malformed/],
    ['$01', /malformed/],
    ['$.5', /malformed/],
    ['$1.', /malformed/],
    ['USD 1', /malformed/],
    ['', /malformed/],
    [1000, /is a number/],
    [undefined, /is a undefined/],
    [2n ** 128n, /exceeds uint128/],
    [(2n ** 128n).toString(), /exceeds uint128/],
    [`$${'9'.repeat(60)}`, /too long/],
  ])('%s is refused: %s', (price, message) => {
    const attempt = () => parsePrice(price, 6)
    expect(attempt).toThrow(TollgateError)
    expect(attempt).toThrow(message)
    try {
      attempt()
    } catch (err) {
      expect((err as TollgateError).code).toBe('tollgate_invalid_config')
    }
  })

  it('converts with the token decimals, not a float', () => {
    expect(parsePrice('$0.1', 18)).toBe(10n ** 17n)
    expect(parsePrice('$0.3', 6)).toBe(300_000n)
    expect(() => parsePrice('$0.5', 0)).toThrow(/below one token unit/)
  })
})

function baseOptions(overrides: Record<string, unknown> = {}): TollgateOptions {
  return {
    payee: {
      decide() {},
      commit() {},
      release() {},
      identity: IDENTITY,
      chainId: CHAIN_ID,
    } as never,
    network: NETWORK,
    asset: ASSET,
    payTo: IDENTITY.receiver,
    receiverAuthorizer: IDENTITY.receiverAuthorizer,
    withdrawDelay: IDENTITY.withdrawDelay,
    ...overrides,
  } as TollgateOptions
}

async function registerWith(overrides: Record<string, unknown>): Promise<unknown> {
  const app = Fastify()
  try {
    await app.register(tollgate, baseOptions(overrides))
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

describe('options are checked at registration', () => {
  it.each([
    ['payee', { payee: undefined }, /payee/],
    ['payee', { payee: {} }, /payee/],
    ['network', { network: 'base' }, /network/],
    ['network', { network: 'eip155:0' }, /network/],
    ['asset', { asset: undefined }, /asset/],
    ['asset.address', { asset: { ...ASSET, address: '0x12' } }, /asset/],
    ['asset.name', { asset: { ...ASSET, name: '' } }, /asset.name/],
    ['asset.version', { asset: { ...ASSET, version: 2 } }, /asset.version/],
    ['asset.decimals', { asset: { ...ASSET, decimals: 6.5 } }, /decimals/],
    ['payTo', { payTo: 'me' }, /payTo/],
    ['receiverAuthorizer', { receiverAuthorizer: `0x${'0'.repeat(40)}` }, /receiverAuthorizer/],
    ['withdrawDelay', { withdrawDelay: 899 }, /withdrawDelay/],
    ['maxTimeoutSeconds', { maxTimeoutSeconds: 0 }, /maxTimeoutSeconds/],
    ['minDeposit', { minDeposit: '0.01' }, /minDeposit/],
    ['maxPaymentHeaderBytes', { maxPaymentHeaderBytes: -1 }, /maxPaymentHeaderBytes/],
    ['rateLimit', { rateLimit: { perIp: { max: 0, timeWindowMs: 1000 } } }, /rateLimit.perIp/],
    ['rateLimit', { rateLimit: 'on' }, /rateLimit/],
    ['payTo', { payTo: `0x${'1'.repeat(40)}` }, /payTo .* differs from the payee/],
    ['network', { network: 'eip155:8453' }, /network eip155:8453 differs from the payee/],
    ['escrowWriter', { escrowWriter: {} }, /escrowWriter/],
  ])('a bad %s fails with tollgate_invalid_config', async (_name, overrides, message) => {
    const err = await registerWith(overrides)
    expect(err).toBeInstanceOf(TollgateError)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
    expect((err as Error).message).toMatch(message)
  })

  it('accepts good options', async () => {
    expect(await registerWith({})).toBeUndefined()
  })
})

describe('route prices are checked when routes are registered', () => {
  it.each([
    ['$0.0000001', /below one token unit/],
    ['0.001', /ambiguous/],
    ['lots', /malformed/],
    [0n, /below one token unit/],
  ])('price %s fails start-up with tollgate_invalid_config', async (price, message) => {
    const err = await makeApp((app) => {
      app.get('/x', { config: { price } }, async () => 'x')
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TollgateError)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
    expect((err as Error).message).toMatch(message)
    expect((err as Error).message).toMatch('GET /x')
  })

  it.each(['prise', 'Price', 'prices'])(
    'a misspelt price (%s) fails start-up instead of serving the route free',
    async (key) => {
      const err = await makeApp((app) => {
        app.get('/x', { config: { [key]: '$0.001' } }, async () => 'x')
      }).catch((e: unknown) => e)
      expect((err as TollgateError).code).toBe('tollgate_invalid_config')
      expect((err as Error).message).toMatch(`GET /x has no price but a config key ${key}`)
    },
  )

  it("leaves other plugins' route config alone on a free route", async () => {
    const t = await makeApp((app) => {
      app.get('/x', { config: { rateLimit: { max: 5 }, url: '/x' } }, async () => 'x')
    })
    expect((await t.app.inject({ url: '/x' })).statusCode).toBe(200)
    await t.app.close()
  })

  it('a minDeposit below a route price fails start-up', async () => {
    const err = await makeApp(
      (app) => {
        app.get('/x', { config: { price: '$1' } }, async () => 'x')
      },
      { minDeposit: '$0.5' },
    ).catch((e: unknown) => e)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
  })

  it('a non-string description fails start-up', async () => {
    const err = await makeApp((app) => {
      app.get(
        '/x',
        { config: { price: '$1', description: 5 as unknown as string } },
        async () => 'x',
      )
    }).catch((e: unknown) => e)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
  })

  it('builds the requirements once: defaults, minDeposit 10x the price, lowercase addresses', async () => {
    const { app } = await makeApp((app) => {
      app.get('/usd', { config: { price: '$0.001' } }, async () => 'x')
      app.get('/units', { config: { price: '2500' } }, async () => 'x')
      app.get('/bigint', { config: { price: 7n } }, async () => 'x')
    })
    expect(await acceptedFor(app, '/usd')).toEqual({
      scheme: 'batch-settlement',
      network: NETWORK,
      amount: '1000',
      asset: ASSET.address,
      payTo: IDENTITY.receiver,
      maxTimeoutSeconds: DEFAULT_MAX_TIMEOUT_SECONDS,
      extra: {
        receiverAuthorizer: IDENTITY.receiverAuthorizer,
        withdrawDelay: IDENTITY.withdrawDelay,
        name: 'USDC',
        version: '2',
        minDeposit: '10000',
      },
    })
    expect((await acceptedFor(app, '/units')).amount).toBe('2500')
    expect((await acceptedFor(app, '/bigint')).extra?.minDeposit).toBe('70')
    await app.close()
  })

  it('a configured minDeposit and maxTimeoutSeconds are advertised as given', async () => {
    const { app } = await makeApp(
      (app) => {
        app.get('/x', { config: { price: '$0.001' } }, async () => 'x')
      },
      { minDeposit: '$5', maxTimeoutSeconds: 30 },
    )
    const accepted = await acceptedFor(app, '/x')
    expect(accepted.extra?.minDeposit).toBe('5000000')
    expect(accepted.maxTimeoutSeconds).toBe(30)
    await app.close()
  })
})
