import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { PRESETS } from '../../src/chain/presets.js'
import type { TollgateError } from '../../src/errors/index.js'
import {
  DEFAULT_LISTEN,
  DEFAULT_WITHDRAW_DELAY,
  loadConfig,
  loadKey,
  parseConfig,
} from '../../src/server/config.js'
import {
  DEFAULT_CLAIM_THRESHOLD,
  DEFAULT_MAX_PER_TX,
  DEFAULT_SAFETY_MARGIN_SECONDS,
} from '../../src/settlement/index.js'

const route = { path: '/api/*', price: '$0.001', upstream: 'http://127.0.0.1:9000' }
const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function code(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return `${(err as TollgateError).code}: ${(err as Error).message}`
  }
}

describe('server configuration', () => {
  it('fills in defaults, resolves a preset and paths relative to the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'))
    dirs.push(dir)
    const file = join(dir, 'tollgate.json')
    writeFileSync(
      file,
      JSON.stringify({ network: 'base-sepolia', dataDir: './data', routes: [route] }),
    )
    const config = loadConfig(file)
    expect(config.chain).toBe(PRESETS['base-sepolia'])
    expect(config.chain.usdc).toMatchObject({
      address: '0x036CbD53842c5426634e7929541eC2318f3dCF7e',
      name: 'USDC',
      version: '2',
    })
    expect(PRESETS.base.usdc).toMatchObject({ name: 'USD Coin', version: '2' })
    expect(config.rpcUrl).toBe('https://sepolia.base.org')
    expect(config.dataDir).toBe(join(dir, 'data'))
    expect(config.listen).toEqual({ ...DEFAULT_LISTEN, trustProxy: false })
    expect(config.withdrawDelay).toBe(DEFAULT_WITHDRAW_DELAY)
    expect(config.routes).toEqual([{ ...route, methods: ['GET'] }])
    expect(config.feeds).toEqual([])
  })

  it('reads billed feeds of upstream WebSockets', () => {
    const feed = { path: '/feed/ticks', price: '$0.0001', upstream: 'wss://feeds.example/ticks' }
    const config = parseConfig({ routes: [], feeds: [feed, { ...feed, creditWindow: 500 }] }, '/')
    expect(config.feeds).toEqual([
      { ...feed, creditWindow: undefined },
      { ...feed, creditWindow: 500 },
    ])
  })

  it.each([
    [{ network: 'mainnet', routes: [] }, /network "mainnet"/],
    [{ routes: 'all' }, /routes must be a list/],
    [{ routes: [{ ...route, path: 'api' }] }, /routes\[0\]\.path/],
    [{ routes: [{ ...route, upstream: 'nowhere' }] }, /routes\[0\]\.upstream/],
    [{ routes: [{ ...route, price: 3 }] }, /routes\[0\]\.price/],
    [{ routes: [], feeds: {} }, /feeds must be a list/],
    [
      { routes: [], feeds: [{ path: '/f', price: '1', upstream: 'http://x' }] },
      /feeds\[0\]\.upstream/,
    ],
    [{ routes: [], feeds: [{ path: 'f', price: '1', upstream: 'ws://x' }] }, /feeds\[0\]\.path/],
    [
      { routes: [], feeds: [{ path: '/f', price: '1', upstream: 'ws://x', creditWindow: 0 }] },
      /feeds\[0\]\.creditWindow/,
    ],
    [{ routes: [], withdrawDelay: 60 }, /withdrawDelay/],
    [{ routes: [], listen: { port: 70_000 } }, /listen\.port/],
    [{ routes: [], storeMode: 'fast' }, /storeMode/],
    [{ routes: [], rpcUrl: 'ws://x' }, /rpcUrl/],
    [{ routes: [], settlement: [] }, /settlement must be an object/],
    [{ routes: [], settlement: { threshold: 5 } }, /settlement\.threshold/],
    [{ routes: [], settlement: { threshold: '-1' } }, /settlement\.threshold/],
    [{ routes: [], settlement: { maxPerTx: 0 } }, /settlement\.maxPerTx/],
    [{ routes: [], settlement: { maxPerTx: 501 } }, /settlement\.maxPerTx/],
    [{ routes: [], settlement: { checkIntervalSeconds: 0 } }, /settlement\.checkIntervalSeconds/],
    [
      { routes: [], withdrawDelay: 900, settlement: { safetyMarginSeconds: 900 } },
      /settlement\.safetyMarginSeconds/,
    ],
    [{ routes: [], settlement: { confirmations: 0 } }, /settlement\.confirmations/],
    [
      { routes: [], settlement: { checkIntervalSeconds: 300, safetyMarginSeconds: 300 } },
      /settlement\.checkIntervalSeconds \(300\) must be below settlement\.safetyMarginSeconds/,
    ],
    [{ routes: [], settlement: { tokenPerNative: '3e9' } }, /settlement\.tokenPerNative/],
    [{ routes: [], settlement: { enabled: 'yes' } }, /settlement\.enabled/],
    [{ routes: [], settlement: { packedClaims: 1 } }, /settlement\.packedClaims/],
    [{ routes: [], settlement: { adminPort: 65536 } }, /settlement\.adminPort/],
    [
      {
        routes: [],
        network: { chainId: 10, usdc: { address: '0x12', name: 'USDC', version: '2' } },
      },
      /network\.usdc\.address/,
    ],
  ])('refuses %j with tollgate_invalid_config naming the field', (raw, message) => {
    const result = code(() => parseConfig(raw, '/tmp'))
    expect(result).toMatch(/^tollgate_invalid_config: /)
    expect(result).toMatch(message)
  })

  it.each([
    [{ routes: [], rotues: [] }, 'unknown key rotues (did you mean routes?)'],
    [
      { routes: [], settlement: { adminport: 4021 } },
      'unknown key settlement.adminport (did you mean adminPort?)',
    ],
    [
      { routes: [{ ...route, methds: ['GET'] }] },
      'unknown key routes[0].methds (did you mean methods?)',
    ],
    [
      { routes: [], feeds: [{ path: '/f', price: '1', upstream: 'ws://x', window: 5 }] },
      'unknown key feeds[0].window',
    ],
    [{ routes: [], listen: { hots: 'x' } }, 'unknown key listen.hots (did you mean host?)'],
    [
      {
        routes: [],
        network: {
          chainId: 10,
          usdc: { address: PRESETS.base.usdc.address, name: 'USDC', version: '2', decimal: 6 },
        },
      },
      'unknown key network.usdc.decimal (did you mean decimals?)',
    ],
    [{ routes: [], xyzzy: 1 }, 'unknown key xyzzy'],
    [{ routes: [], listen: { port: '4020' } }, 'listen.port must be an integer'],
    [{ routes: [{ ...route, methods: ['GET', 3] }] }, 'routes[0].methods[1] must be a string'],
    [{ routes: [], network: 5 }, 'network must be a preset name or an object'],
    [{ feeds: [] }, 'missing key routes'],
    [{ routes: [{ path: '/a', price: '1' }] }, 'missing key routes[0].upstream'],
  ])('refuses the shape of %j, naming the path', (raw, message) => {
    expect(code(() => parseConfig(raw, '/tmp'))).toBe(
      `tollgate_invalid_config: tollgate was configured wrongly. ${message}`,
    )
  })

  it('names the file and the path in the error of loadConfig', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'))
    dirs.push(dir)
    const file = join(dir, 'tollgate.json')
    writeFileSync(file, JSON.stringify({ routes: [], settlement: { adminport: 1 } }))
    expect(code(() => loadConfig(file))).toMatch(
      new RegExp(
        `^tollgate_invalid_config: .*${file}: unknown key settlement\\.adminport \\(did you mean adminPort\\?\\)$`,
      ),
    )
  })

  it('refuses a price that is not a whole number of token units, naming its path', () => {
    expect(
      code(() => parseConfig({ routes: [{ ...route, price: '$0.0000001' }] }, '/tmp')),
    ).toMatch(/routes\[0\]\.price "\$0\.0000001" is below one token unit/)
    expect(
      code(() =>
        parseConfig(
          { routes: [], feeds: [{ path: '/f', price: '0.01', upstream: 'ws://x' }] },
          '/',
        ),
      ),
    ).toMatch(/feeds\[0\]\.price "0\.01" is ambiguous/)
  })

  it('keeps the README example valid, every key of it', () => {
    const example = {
      network: 'base-sepolia',
      rpcUrl: 'https://sepolia.base.org',
      receiver: '0x1111111111111111111111111111111111111111',
      withdrawDelay: 86400,
      dataDir: './data',
      storeMode: 'relaxed',
      confirmations: 2,
      listen: { host: '127.0.0.1', port: 4020 },
      routes: [
        {
          path: '/api/*',
          price: '$0.001',
          upstream: 'http://127.0.0.1:9000',
          methods: ['GET', 'POST'],
          description: 'quotes',
        },
      ],
      feeds: [
        {
          path: '/feed/ticks',
          price: '$0.0001',
          upstream: 'ws://127.0.0.1:9001',
          creditWindow: 100,
          description: 'ticks',
        },
      ],
      settlement: { threshold: '1000000', sweepIntervalSeconds: 3600, adminPort: 4021 },
    }
    expect(parseConfig(example, '/srv').routes).toHaveLength(1)
    const custom = {
      routes: [],
      rpcUrl: 'http://127.0.0.1:8545',
      network: {
        name: 'my chain',
        chainId: 10,
        usdc: { address: PRESETS.base.usdc.address, name: 'USDC', version: '2', decimals: 6 },
        escrow: PRESETS.base.escrow,
        erc3009Collector: PRESETS.base.erc3009Collector,
      },
    }
    expect(parseConfig(custom, '/srv').chain.chainId).toBe(10)
  })

  it('fills in the settlement defaults and reads amounts as decimal strings of token units', () => {
    expect(parseConfig({ routes: [] }, '/tmp').settlement).toEqual({
      enabled: true,
      sweepIntervalSeconds: 3600,
      checkIntervalSeconds: 30,
      threshold: DEFAULT_CLAIM_THRESHOLD,
      maxPerTx: DEFAULT_MAX_PER_TX,
      safetyMarginSeconds: DEFAULT_SAFETY_MARGIN_SECONDS,
      confirmations: 1,
      tokenPerNative: undefined,
      packedClaims: undefined,
      adminPort: undefined,
      adminHost: '127.0.0.1',
    })
    const settlement = {
      enabled: false,
      sweepIntervalSeconds: 600,
      checkIntervalSeconds: 5,
      threshold: '250000',
      maxPerTx: 50,
      safetyMarginSeconds: 120,
      confirmations: 3,
      tokenPerNative: '3000000000',
      packedClaims: false,
      adminPort: 4021,
    }
    expect(parseConfig({ routes: [], settlement }, '/tmp').settlement).toEqual({
      ...settlement,
      threshold: 250_000n,
      tokenPerNative: 3_000_000_000n,
      adminHost: '127.0.0.1',
    })
  })

  it('reports an unreadable or malformed file', () => {
    expect(code(() => loadConfig('/nonexistent/tollgate.json'))).toMatch(
      /tollgate_invalid_config: .*cannot read/,
    )
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-config-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'bad.json'), '{ "routes": [')
    expect(code(() => loadConfig(join(dir, 'bad.json')))).toMatch(
      /tollgate_invalid_config: .*cannot read/,
    )
  })

  it('takes the key from the environment or a key file, never anything malformed', () => {
    const key = `0x${'ab'.repeat(32)}`
    expect(loadKey({ TOLLGATE_PRIVATE_KEY: key })).toBe(key)
    expect(loadKey({ TOLLGATE_PRIVATE_KEY: key.slice(2) })).toBe(key)
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-key-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'key'), `${key}\n`)
    expect(loadKey({ TOLLGATE_KEY_FILE: join(dir, 'key') })).toBe(key)
    expect(code(() => loadKey({}))).toMatch(/TOLLGATE_PRIVATE_KEY/)
    expect(code(() => loadKey({ TOLLGATE_PRIVATE_KEY: '0x1234' }))).toMatch(
      /TOLLGATE_PRIVATE_KEY must be a 32-byte hex private key/,
    )
  })
})

describe('server configuration: oracle', () => {
  const feedAddress = '0x2222222222222222222222222222222222222222'
  const ticks = { path: '/feed/ticks', upstream: 'ws://127.0.0.1:9001' }

  it('reads the oracle, minAnswer as a decimal string of feed units', () => {
    const oracle = {
      feed: feedAddress,
      maxAgeSeconds: 3900,
      refreshSeconds: 30,
      minAnswer: '99000000',
      convert: false,
    }
    expect(parseConfig({ routes: [route], oracle }, '/tmp').oracle).toEqual({
      feed: feedAddress,
      maxAgeSeconds: 3900,
      refreshSeconds: 30,
      minAnswer: 99_000_000n,
      convert: false,
    })
    expect(parseConfig({ routes: [route] }, '/tmp').oracle).toBeUndefined()
  })

  it('refuses unknown oracle keys and a missing staleness bound', () => {
    expect(
      code(() => parseConfig({ routes: [], oracle: { feed: feedAddress, maxAge: 60 } }, '/tmp')),
    ).toMatch(/^tollgate_invalid_config: .*oracle/)
    expect(
      code(() => parseConfig({ routes: [], oracle: { feed: 'nope', maxAgeSeconds: 60 } }, '/tmp')),
    ).toMatch(/^tollgate_invalid_config: .*oracle\.feed/)
  })

  it('under a converting oracle, takes route and feed prices finer than the token decimals', () => {
    const oracle = { feed: feedAddress, maxAgeSeconds: 60 }
    const fine = { ...route, price: '$0.0000001' }
    expect(code(() => parseConfig({ routes: [fine] }, '/tmp'))).toMatch(/below one token unit/)
    expect(parseConfig({ routes: [fine], oracle }, '/tmp').routes[0]?.price).toBe('$0.0000001')
    const fineFeed = { ...ticks, price: '$0.0000001' }
    expect(code(() => parseConfig({ routes: [], feeds: [fineFeed] }, '/tmp'))).toMatch(
      /below one token unit/,
    )
    expect(parseConfig({ routes: [], feeds: [fineFeed], oracle }, '/tmp').feeds[0]?.price).toBe(
      '$0.0000001',
    )
    expect(
      parseConfig({ routes: [], feeds: [{ ...ticks, price: '100' }], oracle }, '/tmp').feeds,
    ).toHaveLength(1)
    // A guarding oracle keeps dollars one to one, feeds included.
    const guard = { ...oracle, convert: false }
    expect(
      parseConfig({ routes: [], feeds: [{ ...ticks, price: '$0.0001' }], oracle: guard }, '/tmp')
        .feeds,
    ).toHaveLength(1)
  })
})

describe('server configuration: limits', () => {
  it('reads rate limits, on-chain limits, WebSocket limits and trustProxy, in seconds', () => {
    const config = parseConfig(
      {
        routes: [route],
        listen: { trustProxy: '10.0.0.0/8' },
        rateLimit: { perIp: { max: 100, timeWindowSeconds: 10 }, unpaidPerIp: false },
        onChainLimits: {
          perPayer: { max: 2, timeWindowSeconds: 60 },
          perIp: false,
          gasBudget: { wei: '1000000000000000', timeWindowSeconds: 3600 },
        },
        websocket: { maxConnectionsPerIp: 8 },
      },
      '/',
    )
    expect(config.listen.trustProxy).toBe('10.0.0.0/8')
    expect(config.rateLimit).toEqual({
      perIp: { max: 100, timeWindowMs: 10_000 },
      unpaidPerIp: false,
    })
    expect(config.onChainLimits).toEqual({
      perPayer: { max: 2, timeWindowMs: 60_000 },
      perRequester: false,
      gasBudget: { wei: 1_000_000_000_000_000n, timeWindowMs: 3_600_000 },
    })
    expect(config.websocket).toEqual({ maxConnectionsPerIp: 8 })
  })

  it.each([
    [{ rateLimit: { perIP: false } }, /rateLimit.perIP/],
    [{ rateLimit: { perIp: { max: 1, timeWindowMs: 1000 } } }, /rateLimit.perIp.timeWindowMs/],
    [{ rateLimit: { perIp: true } }, /rateLimit.perIp/],
    [{ onChainLimits: { gasBudget: { wei: 5, timeWindowSeconds: 1 } } }, /gasBudget.wei/],
    [{ listen: { trustProxy: 2 } }, /listen.trustProxy/],
  ])('refuses %j, naming the key', (extra, pattern) => {
    expect(code(() => parseConfig({ routes: [route], ...extra }, '/'))).toMatch(pattern)
  })
})

describe('the Redis store', () => {
  it('takes "store" as a URL or an object, its mode defaulting to storeMode', () => {
    expect(parseConfig({ routes: [], store: 'redis://10.0.0.5:6379' }, '/').redis).toEqual({
      url: 'redis://10.0.0.5:6379',
      mode: 'durable',
    })
    const config = parseConfig(
      {
        routes: [],
        storeMode: 'relaxed',
        store: { url: 'rediss://cache:6380', keyPrefix: 'api1:' },
      },
      '/',
    )
    expect(config.redis).toEqual({
      url: 'rediss://cache:6380',
      mode: 'relaxed',
      keyPrefix: 'api1:',
    })
    expect(config.storeMode).toBe('relaxed')
  })

  it('refuses a store that is not a Redis URL', () => {
    expect(() => parseConfig({ routes: [], store: 'http://cache' }, '/')).toThrow(/redis:\/\//)
    expect(() =>
      parseConfig({ routes: [], store: { url: 'redis://x', mode: 'fast' } }, '/'),
    ).toThrow(/store.mode/)
  })
})
