import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv'
import { type Address, type Hex, isAddress } from 'viem'
import { type ChainPreset, PRESETS, type PresetName } from '../chain/presets.js'
import { readPrivateKey } from '../chain/privateKey.js'
import { didYouMean } from '../errors/didYouMean.js'
import { TollgateError } from '../errors/index.js'
import type { OnChainLimits } from '../payee/index.js'
import { parseDollars, parsePrice } from '../protocol/parsePrice.js'
import {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CLAIM_THRESHOLD,
  DEFAULT_MAX_PER_TX,
  DEFAULT_SAFETY_MARGIN_SECONDS,
  DEFAULT_SETTLEMENT_CONFIRMATIONS,
  DEFAULT_SWEEP_INTERVAL_MS,
} from '../settlement/index.js'
import type { RedisStoreOptions, StoreMode } from '../store/index.js'
import type { RateLimitRule } from '../transports/http/constants.js'
import type { TollgateRateLimit } from '../transports/http/resolveOptions.js'
import type { OracleOptions } from './createTollgate.js'

/** Where the server listens unless told otherwise: loopback only. */
export const DEFAULT_LISTEN = Object.freeze({ host: '127.0.0.1', port: 4020 })
/** One day: how long a payer must wait to take back an unclaimed deposit. */
export const DEFAULT_WITHDRAW_DELAY = 86_400
export const DEFAULT_DATA_DIR = '.tollgate'
/** The environment variable holding the server's key (never a command-line argument). */
export const KEY_ENV = 'TOLLGATE_PRIVATE_KEY'
/** The environment variable holding the bearer token of the exact payments' remote facilitator. */
export const FACILITATOR_TOKEN_ENV = 'TOLLGATE_FACILITATOR_TOKEN'
/** The environment variable holding the bearer token of tollgate's own facilitator listener. */
export const FACILITATOR_SECRET_ENV = 'TOLLGATE_FACILITATOR_SECRET'

/** An object of exactly these properties: any other key is refused. */
const closed = (properties: Record<string, SchemaObject>, required: string[] = []) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
})
const str = { type: 'string' }
const int = { type: 'integer' }
const bool = { type: 'boolean' }
/** A rate limit in the file: `{ max, timeWindowSeconds }`, or `false` for none. */
const limit = {
  ...closed({ max: int, timeWindowSeconds: int }, ['max', 'timeWindowSeconds']),
  type: ['boolean', 'object'],
}

/**
 * The shape of the configuration file (JSON Schema, draft-07, checked with Ajv): every key known
 * and typed at every level. Ranges, addresses, URLs and prices are checked by {@link parseConfig}.
 */
export const CONFIG_SCHEMA: SchemaObject = Object.freeze({
  ...closed(
    {
      network: {
        // A preset name, or a chain of its own (`required` and `properties` apply to objects only).
        ...closed(
          {
            name: str,
            chainId: int,
            usdc: closed({ address: str, name: str, version: str, decimals: int }, [
              'address',
              'name',
              'version',
            ]),
            escrow: str,
            erc3009Collector: str,
          },
          ['chainId', 'usdc'],
        ),
        type: ['string', 'object'],
      },
      rpcUrl: str,
      receiver: str,
      withdrawDelay: int,
      dataDir: str,
      storeMode: str,
      store: {
        ...closed(
          {
            url: str,
            keyPrefix: str,
            mode: str,
            holdTtlMs: int,
            tls: closed({ ca: str, cert: str, key: str, servername: str }, []),
            waitReplicas: int,
            waitTimeoutMs: int,
          },
          ['url'],
        ),
        type: ['string', 'object'],
      },
      confirmations: int,
      listen: closed({
        host: str,
        port: int,
        trustProxy: { type: ['boolean', 'string'] },
      }),
      rateLimit: closed({ perIp: limit, unpaidPerIp: limit, perPayer: limit }),
      onChainLimits: closed({
        perPayer: limit,
        perIp: limit,
        gasBudget: {
          ...closed({ wei: str, timeWindowSeconds: int }, ['wei', 'timeWindowSeconds']),
          type: ['boolean', 'object'],
        },
      }),
      websocket: closed({ maxConnectionsPerIp: int, maxBadFramesPerIp: int }),
      routes: {
        type: 'array',
        items: closed(
          {
            path: str,
            price: str,
            upstream: str,
            methods: { type: 'array', items: str },
            description: str,
            exact: bool,
          },
          ['path', 'price', 'upstream'],
        ),
      },
      feeds: {
        type: 'array',
        items: closed(
          { path: str, price: str, upstream: str, creditWindow: int, description: str },
          ['path', 'price', 'upstream'],
        ),
      },
      oracle: closed(
        { feed: str, maxAgeSeconds: int, refreshSeconds: int, minAnswer: str, convert: bool },
        ['feed', 'maxAgeSeconds'],
      ),
      exact: closed({
        facilitatorUrl: str,
        maxPendingTransfers: int,
        facilitator: closed({ host: str, port: int }, ['port']),
      }),
      settlement: closed({
        enabled: bool,
        checkIntervalSeconds: int,
        sweepIntervalSeconds: int,
        threshold: str,
        maxPerTx: int,
        safetyMarginSeconds: int,
        confirmations: int,
        tokenPerNative: str,
        packedClaims: bool,
        adminPort: int,
        adminHost: str,
      }),
    },
    ['routes'],
  ),
})

/** Where the admin listener binds unless `settlement.adminHost` says otherwise. */
export const DEFAULT_ADMIN_HOST = '127.0.0.1'

/** A paid HTTP route proxied to an upstream. */
export interface RouteConfig {
  /** Fastify path, e.g. `/api/*`. */
  readonly path: string
  /** `'$0.001'` (USD) or token units as a decimal string. */
  readonly price: string
  /** Base URL the request is forwarded to (path and query kept). */
  readonly upstream: string
  /** @default ['GET'] */
  readonly methods: readonly string[]
  readonly description?: string
  /** Also accept x402 `exact` (one on-chain transfer per request, gas paid by the server). @default false */
  readonly exact?: boolean
}

/** How `exact` payments are settled, from the `exact` object of the file. */
export interface ExactConfig {
  /** A remote x402 facilitator's URL (its bearer token in `TOLLGATE_FACILITATOR_TOKEN`); absent: the server's key sends the transfers. */
  readonly facilitatorUrl: string | undefined
  /** Most transfers waiting to be mined at once. @default DEFAULT_MAX_PENDING_TRANSFERS */
  readonly maxPendingTransfers: number | undefined
  /**
   * A listener serving tollgate as an x402 facilitator (`/supported`, `/verify`, `/settle`) for
   * stock x402 servers, behind the bearer token of `TOLLGATE_FACILITATOR_SECRET`; absent: none.
   */
  readonly facilitator: { readonly host: string; readonly port: number } | undefined
}

/** A billed WebSocket feed: messages of an upstream WebSocket, sold one by one. */
export interface FeedConfig {
  /** Path of the WebSocket route, e.g. `/feed/ticks`. */
  readonly path: string
  /** Price of one message: `'$0.0001'` (USD) or token units as a decimal string. */
  readonly price: string
  /** `ws://` or `wss://` URL of the upstream feed; each message it sends is one billed message. */
  readonly upstream: string
  /** Messages one voucher opens credit for. @default DEFAULT_CREDIT_WINDOW (100) */
  readonly creditWindow: number | undefined
  readonly description?: string
}

/** The standalone server's configuration, resolved and validated. */
export interface ServerConfig {
  readonly chain: ChainPreset
  readonly rpcUrl: string
  readonly receiver: Address | undefined
  readonly withdrawDelay: number
  /** Absolute path of the data folder (the voucher store lives in `<dataDir>/vouchers`). */
  readonly dataDir: string
  readonly storeMode: StoreMode
  /**
   * `"store": "redis://..."` or `{ "url", "keyPrefix", "mode", "holdTtlMs", "tls" }`: channels in
   * a Redis that several instances share instead of LevelDB in `dataDir` (mode defaults to
   * `storeMode`; `holdTtlMs`: how long a dead instance's hold keeps a channel busy; `tls`: `ca`,
   * `cert`, `key` PEM file paths and `servername`). `waitReplicas` is refused at start (replica
   * `WAIT` is not built).
   */
  readonly redis?: RedisStoreOptions | undefined
  readonly listen: {
    readonly host: string
    readonly port: number
    /**
     * Fastify's `trustProxy`: behind a reverse proxy, the client address comes from
     * `X-Forwarded-For` (true: any proxy; a string: the proxies' addresses or CIDRs, comma
     * separated), so per-IP limits count clients, not the proxy. @default false
     */
    readonly trustProxy: boolean | string
  }
  /** Rate limits of the paid routes (see the plugin's `rateLimit`). */
  readonly rateLimit: TollgateRateLimit
  /** What payers may make the server send on chain at its expense (see `OnChainLimits`). */
  readonly onChainLimits: OnChainLimits
  /** Per-address limits of the billed feeds. */
  readonly websocket: { readonly maxConnectionsPerIp?: number; readonly maxBadFramesPerIp?: number }
  readonly routes: readonly RouteConfig[]
  /** Billed WebSocket feeds. @default [] */
  readonly feeds: readonly FeedConfig[]
  /** Blocks before an escrow event is mirrored. */
  readonly confirmations: number | undefined
  readonly settlement: SettlementConfig
  readonly exact: ExactConfig
  /** The token's price feed: dollar route prices convert at its rate, or it guards a peg; absent: none. */
  readonly oracle: OracleOptions | undefined
}

/** How the server claims and settles (src/settlement), from the `settlement` object of the file. */
export interface SettlementConfig {
  /** Run the schedule inside the server. @default true */
  readonly enabled: boolean
  /** Seconds between sweeps of every channel with anything unclaimed. @default 3600 */
  readonly sweepIntervalSeconds: number
  /** Seconds between checks for claims due (threshold, exposure cap, withdrawals); below the safety margin. @default 30 */
  readonly checkIntervalSeconds: number
  /** Unclaimed token units per channel that trigger a claim between sweeps (a decimal string in the file). @default DEFAULT_CLAIM_THRESHOLD */
  readonly threshold: bigint
  /** Channels per claim transaction, 1 to 500. @default DEFAULT_MAX_PER_TX */
  readonly maxPerTx: number
  /** Seconds before a withdrawal ends by which its claim must land; below withdrawDelay. @default DEFAULT_SAFETY_MARGIN_SECONDS */
  readonly safetyMarginSeconds: number
  /** Blocks a claim must be buried under. @default DEFAULT_SETTLEMENT_CONFIRMATIONS */
  readonly confirmations: number
  /** Token units one native coin buys (decimal string), to skip claims worth less than their gas; absent: gas is not weighed. */
  readonly tokenPerNative: bigint | undefined
  /** Claim through `claimPacked`; absent: used when the escrow has it. */
  readonly packedClaims: boolean | undefined
  /**
   * Port of the admin listener (`POST /settle` for `tollgate settle` while the server runs, the
   * dashboard and its JSON API for `tollgate status`); 0 picks a free port; absent: none.
   */
  readonly adminPort: number | undefined
  /**
   * Address the admin listener binds. Anything but a loopback address requires a bearer token
   * in `TOLLGATE_ADMIN_TOKEN`. @default '127.0.0.1'
   */
  readonly adminHost: string
}

/**
 * Reads and validates a JSON configuration file. Relative paths in it are relative to the file.
 *
 * ```json
 * {
 *   "network": "base-sepolia",
 *   "rpcUrl": "https://sepolia.base.org",
 *   "withdrawDelay": 86400,
 *   "dataDir": "./data",
 *   "listen": { "host": "127.0.0.1", "port": 4020 },
 *   "routes": [{ "path": "/api/*", "price": "$0.001", "upstream": "http://127.0.0.1:9000" }],
 *   "feeds": [{ "path": "/feed/ticks", "price": "$0.0001", "upstream": "ws://127.0.0.1:9001" }]
 * }
 * ```
 *
 * @throws TollgateError `tollgate_invalid_config` naming the field that is wrong.
 */
export function loadConfig(path: string): ServerConfig {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `cannot read ${path}: ${(err as Error).message}`,
    )
  }
  try {
    return parseConfig(raw, dirname(resolve(path)))
  } catch (err) {
    if (!(err instanceof TollgateError)) throw err
    throw new TollgateError(err.code, `${path}: ${err.details}`)
  }
}

/**
 * Validates a configuration object (see {@link loadConfig}): first its shape against
 * {@link CONFIG_SCHEMA}, so an unknown key at any level is refused with its path and the known
 * key it is closest to (`unknown key settlement.adminport (did you mean adminPort?)`), then
 * what a schema cannot say: ranges, addresses, URLs, prices in the token's decimals.
 *
 * @param raw The parsed JSON.
 * @param baseDir What relative paths in it are relative to.
 * @throws TollgateError `tollgate_invalid_config` naming the path of what is wrong.
 */
export function parseConfig(raw: unknown, baseDir: string): ServerConfig {
  checkShape(raw)
  const o = object(raw, 'the configuration')
  const network = o.network ?? 'local'
  let chain: ChainPreset
  if (typeof network === 'string') {
    if (!Object.hasOwn(PRESETS, network)) {
      invalid(
        `network "${network}" is not one of ${Object.keys(PRESETS).join(', ')} (or give an object)`,
      )
    }
    chain = PRESETS[network as PresetName]
  } else {
    const n = object(network, 'network')
    const chainId = integer(n.chainId, 'network.chainId', 1)
    const usdc = object(n.usdc, 'network.usdc')
    chain = {
      name: string(n.name ?? `eip155:${chainId}`, 'network.name'),
      chainId,
      network: `eip155:${chainId}`,
      usdc: {
        address: address(usdc.address, 'network.usdc.address'),
        name: string(usdc.name, 'network.usdc.name'),
        version: string(usdc.version, 'network.usdc.version'),
        decimals: integer(usdc.decimals ?? 6, 'network.usdc.decimals', 0),
      },
      escrow: address(n.escrow ?? PRESETS.base.escrow, 'network.escrow'),
      erc3009Collector: address(
        n.erc3009Collector ?? PRESETS.base.erc3009Collector,
        'network.erc3009Collector',
      ),
    }
  }
  const rpcUrl = string(o.rpcUrl ?? chain.publicRpcUrl, 'rpcUrl')
  if (!/^https?:\/\//.test(rpcUrl)) invalid(`rpcUrl "${rpcUrl}" must be an http(s) URL`)
  const listen = object(o.listen ?? {}, 'listen')
  const storeMode = o.storeMode ?? 'durable'
  if (storeMode !== 'durable' && storeMode !== 'relaxed')
    invalid('storeMode must be "durable" or "relaxed"')
  const redis = redisOptions(o.store, storeMode, baseDir)
  const routes = Array.isArray(o.routes) ? o.routes : invalid('routes must be a list')
  const feeds = o.feeds ?? []
  if (!Array.isArray(feeds)) invalid('feeds must be a list')
  const dataDir = string(o.dataDir ?? DEFAULT_DATA_DIR, 'dataDir')
  const oracleConfig = o.oracle === undefined ? undefined : oracle(o.oracle)
  // Under a converting oracle, route and feed prices in dollars are converted at the rate rather
  // than with the token's decimals.
  const converting = oracleConfig !== undefined && oracleConfig.convert !== false
  const withdrawDelay = integer(
    o.withdrawDelay ?? DEFAULT_WITHDRAW_DELAY,
    'withdrawDelay',
    900,
    2_592_000,
  )
  return {
    chain,
    rpcUrl,
    receiver: o.receiver === undefined ? undefined : address(o.receiver, 'receiver'),
    withdrawDelay,
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(baseDir, dataDir),
    storeMode: redis?.mode ?? storeMode,
    ...(redis ? { redis } : {}),
    listen: {
      host: string(listen.host ?? DEFAULT_LISTEN.host, 'listen.host'),
      port: integer(listen.port ?? DEFAULT_LISTEN.port, 'listen.port', 0, 65_535),
      trustProxy: (listen.trustProxy as boolean | string | undefined) ?? false,
    },
    rateLimit: rateLimits(o.rateLimit ?? {}),
    onChainLimits: onChainLimits(o.onChainLimits ?? {}),
    websocket: websocketLimits(o.websocket ?? {}),
    routes: routes.map((r, i) =>
      route(r, `routes[${i}]`, converting ? 'converted' : chain.usdc.decimals),
    ),
    feeds: feeds.map((f, i) =>
      feed(f, `feeds[${i}]`, converting ? 'converted' : chain.usdc.decimals),
    ),
    confirmations:
      o.confirmations === undefined ? undefined : integer(o.confirmations, 'confirmations', 0),
    settlement: settlement(o.settlement ?? {}, withdrawDelay),
    exact: exact(o.exact ?? {}),
    oracle: oracleConfig,
  }
}

function oracle(raw: unknown): OracleOptions {
  const r = object(raw, 'oracle')
  return {
    feed: address(r.feed, 'oracle.feed'),
    maxAgeSeconds: integer(r.maxAgeSeconds, 'oracle.maxAgeSeconds', 1),
    ...(r.refreshSeconds === undefined
      ? {}
      : { refreshSeconds: integer(r.refreshSeconds, 'oracle.refreshSeconds', 1) }),
    ...(r.minAnswer === undefined ? {} : { minAnswer: units(r.minAnswer, 'oracle.minAnswer') }),
    ...(r.convert === undefined ? {} : { convert: r.convert === true }),
  }
}

function exact(raw: unknown): ExactConfig {
  const e = object(raw, 'exact')
  const url =
    e.facilitatorUrl === undefined ? undefined : string(e.facilitatorUrl, 'exact.facilitatorUrl')
  if (url !== undefined && !/^https?:\/\//.test(url)) {
    invalid(`exact.facilitatorUrl "${url}" must be an http(s) URL`)
  }
  const listener =
    e.facilitator === undefined ? undefined : object(e.facilitator, 'exact.facilitator')
  return {
    facilitator:
      listener === undefined
        ? undefined
        : {
            host: string(listener.host ?? DEFAULT_LISTEN.host, 'exact.facilitator.host'),
            port: integer(listener.port, 'exact.facilitator.port', 0, 65_535),
          },
    facilitatorUrl: url,
    maxPendingTransfers:
      e.maxPendingTransfers === undefined
        ? undefined
        : integer(e.maxPendingTransfers, 'exact.maxPendingTransfers', 1),
  }
}

/** A `{ max, timeWindowSeconds }` of the file as a rule in milliseconds; `false` stays off. */
function limitRule(value: unknown, where: string): RateLimitRule | false | undefined {
  if (value === undefined || value === false) return value
  if (value === true) invalid(`${where} must be { max, timeWindowSeconds } or false`)
  const o = object(value, where)
  return {
    max: integer(o.max, `${where}.max`, 1),
    timeWindowMs: integer(o.timeWindowSeconds, `${where}.timeWindowSeconds`, 1) * 1000,
  }
}

function rateLimits(raw: unknown): TollgateRateLimit {
  const o = object(raw, 'rateLimit')
  const out: TollgateRateLimit = {}
  for (const key of ['perIp', 'unpaidPerIp', 'perPayer'] as const) {
    const rule = limitRule(o[key], `rateLimit.${key}`)
    if (rule !== undefined) out[key] = rule
  }
  return out
}

function onChainLimits(raw: unknown): OnChainLimits {
  const o = object(raw, 'onChainLimits')
  const perPayer = limitRule(o.perPayer, 'onChainLimits.perPayer')
  const perIp = limitRule(o.perIp, 'onChainLimits.perIp')
  let gasBudget: OnChainLimits['gasBudget']
  if (o.gasBudget === false) gasBudget = false
  else if (o.gasBudget !== undefined) {
    if (o.gasBudget === true)
      invalid('onChainLimits.gasBudget must be { wei, timeWindowSeconds } or false')
    const g = object(o.gasBudget, 'onChainLimits.gasBudget')
    gasBudget = {
      wei: units(g.wei, 'onChainLimits.gasBudget.wei'),
      timeWindowMs:
        integer(g.timeWindowSeconds, 'onChainLimits.gasBudget.timeWindowSeconds', 1) * 1000,
    }
  }
  return {
    ...(perPayer === undefined ? {} : { perPayer }),
    ...(perIp === undefined ? {} : { perRequester: perIp }),
    ...(gasBudget === undefined ? {} : { gasBudget }),
  }
}

function websocketLimits(raw: unknown): ServerConfig['websocket'] {
  const o = object(raw, 'websocket')
  return {
    ...(o.maxConnectionsPerIp === undefined
      ? {}
      : {
          maxConnectionsPerIp: integer(o.maxConnectionsPerIp, 'websocket.maxConnectionsPerIp', 1),
        }),
    ...(o.maxBadFramesPerIp === undefined
      ? {}
      : { maxBadFramesPerIp: integer(o.maxBadFramesPerIp, 'websocket.maxBadFramesPerIp', 1) }),
  }
}

function settlement(raw: unknown, withdrawDelay: number): SettlementConfig {
  const s = object(raw, 'settlement')
  const where = (field: string) => `settlement.${field}`
  if (s.enabled !== undefined && typeof s.enabled !== 'boolean')
    invalid(`${where('enabled')} must be true or false`)
  if (s.packedClaims !== undefined && typeof s.packedClaims !== 'boolean')
    invalid(`${where('packedClaims')} must be true or false`)
  const checkIntervalSeconds = integer(
    s.checkIntervalSeconds ?? DEFAULT_CHECK_INTERVAL_MS / 1000,
    where('checkIntervalSeconds'),
    1,
  )
  const safetyMarginSeconds = integer(
    s.safetyMarginSeconds ?? DEFAULT_SAFETY_MARGIN_SECONDS,
    where('safetyMarginSeconds'),
    1,
    withdrawDelay - 1,
  )
  // A failed withdrawal claim is retried at the next check, which must come within the margin.
  if (checkIntervalSeconds >= safetyMarginSeconds) {
    invalid(
      `${where('checkIntervalSeconds')} (${checkIntervalSeconds}) must be below ${where('safetyMarginSeconds')} (${safetyMarginSeconds})`,
    )
  }
  return {
    enabled: s.enabled ?? true,
    sweepIntervalSeconds: integer(
      s.sweepIntervalSeconds ?? DEFAULT_SWEEP_INTERVAL_MS / 1000,
      where('sweepIntervalSeconds'),
      1,
    ),
    checkIntervalSeconds,
    threshold:
      s.threshold === undefined ? DEFAULT_CLAIM_THRESHOLD : units(s.threshold, where('threshold')),
    maxPerTx: integer(s.maxPerTx ?? DEFAULT_MAX_PER_TX, where('maxPerTx'), 1, 500),
    safetyMarginSeconds,
    confirmations: integer(
      s.confirmations ?? DEFAULT_SETTLEMENT_CONFIRMATIONS,
      where('confirmations'),
      1,
    ),
    tokenPerNative:
      s.tokenPerNative === undefined ? undefined : units(s.tokenPerNative, where('tokenPerNative')),
    packedClaims: s.packedClaims as boolean | undefined,
    adminPort:
      s.adminPort === undefined ? undefined : integer(s.adminPort, where('adminPort'), 0, 65_535),
    adminHost: (s.adminHost as string | undefined) ?? DEFAULT_ADMIN_HOST,
  }
}

/** Token units: a decimal string of digits (bigint amounts are strings on the wire). */
function units(value: unknown, where: string): bigint {
  if (typeof value !== 'string' || !/^\d+$/.test(value))
    invalid(`${where} must be a decimal string of token units, got ${JSON.stringify(value)}`)
  return BigInt(value)
}

/**
 * The server's key, from the environment (`TOLLGATE_PRIVATE_KEY`) or a key file named by
 * `TOLLGATE_KEY_FILE`; never from a command-line argument, which other users can read in `ps`.
 */
export function loadKey(env: NodeJS.ProcessEnv = process.env): Hex {
  return readPrivateKey(
    { key: KEY_ENV, file: 'TOLLGATE_KEY_FILE', whose: 'the key of the receiver authorizer' },
    env,
  )
}

function route(raw: unknown, where: string, decimals: number | 'converted'): RouteConfig {
  const r = object(raw, where)
  const path = string(r.path, `${where}.path`)
  if (!path.startsWith('/')) invalid(`${where}.path must start with /`)
  const upstream = string(r.upstream, `${where}.upstream`)
  try {
    new URL(upstream)
  } catch {
    invalid(`${where}.upstream "${upstream}" is not a URL`)
  }
  const methods = r.methods ?? ['GET']
  if (
    !Array.isArray(methods) ||
    methods.length === 0 ||
    !methods.every((m) => typeof m === 'string')
  ) {
    invalid(`${where}.methods must be a non-empty list of HTTP methods`)
  }
  return {
    path,
    price: price(r.price, `${where}.price`, decimals),
    upstream,
    methods: methods.map((m: string) => m.toUpperCase()),
    ...(r.description === undefined
      ? {}
      : { description: string(r.description, `${where}.description`) }),
    ...(r.exact === undefined ? {} : { exact: r.exact === true }),
  }
}

function feed(raw: unknown, where: string, decimals: number | 'converted'): FeedConfig {
  const f = object(raw, where)
  const path = string(f.path, `${where}.path`)
  if (!path.startsWith('/')) invalid(`${where}.path must start with /`)
  const upstream = string(f.upstream, `${where}.upstream`)
  if (!/^wss?:\/\/[^/]/.test(upstream))
    invalid(`${where}.upstream "${upstream}" must be a ws:// or wss:// URL`)
  return {
    path,
    price: price(f.price, `${where}.price`, decimals),
    upstream,
    creditWindow:
      f.creditWindow === undefined
        ? undefined
        : integer(f.creditWindow, `${where}.creditWindow`, 1, 1_000_000),
    ...(f.description === undefined
      ? {}
      : { description: string(f.description, `${where}.description`) }),
  }
}

/**
 * A price that converts exactly to token units (the HTTP plugin would refuse it at start-up);
 * `'converted'`: a dollar price converted at an oracle's rate, any positive amount of dollars.
 * Without decimals only token units are taken.
 */
function price(value: unknown, where: string, decimals: number | 'converted' | undefined): string {
  const text = string(value, where)
  const dollars = decimals === 'converted' ? parseDollars(text) : undefined
  if (dollars) {
    if (dollars.numerator === 0n) invalid(`${where} ${JSON.stringify(text)} is zero`)
  } else {
    parsePrice(text, decimals === 'converted' ? undefined : decimals, where)
  }
  return text
}

let validateShape: ValidateFunction | undefined

/** Refuses a configuration whose shape is not {@link CONFIG_SCHEMA}'s, naming every offending path. */
function checkShape(raw: unknown): void {
  validateShape ??= new Ajv({ allErrors: true, allowUnionTypes: true, verbose: true }).compile(
    CONFIG_SCHEMA,
  )
  if (validateShape(raw)) return
  const problems = [...new Set((validateShape.errors ?? []).map(describeProblem))]
  invalid(problems.join('; '))
}

/** What JSON Schema type names mean to someone editing the file. */
const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object',
  'string,object': 'a preset name or an object',
}

function describeProblem(error: ErrorObject): string {
  const at = pathOf(error.instancePath)
  const inside = (key: string) => (at === '' ? key : `${at}.${key}`)
  if (error.keyword === 'additionalProperties') {
    const key = String(error.params.additionalProperty)
    const known = Object.keys((error.parentSchema?.properties as object | undefined) ?? {})
    const close = didYouMean(key, known)
    return `unknown key ${inside(key)}${close ? ` (did you mean ${close}?)` : ''}`
  }
  if (error.keyword === 'required')
    return `missing key ${inside(String(error.params.missingProperty))}`
  if (error.keyword === 'type') {
    const type = String(error.params.type)
    return `${at === '' ? 'the configuration' : at} must be ${TYPE_WORDS[type] ?? type}`
  }
  return `${at === '' ? 'the configuration' : at} ${error.message ?? 'is invalid'}`
}

/** A JSON pointer (`/routes/0/price`) as the file's reader writes it: `routes[0].price`. */
function pathOf(pointer: string): string {
  let path = ''
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`
  }
  return path
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    invalid(`${where} must be an object`)
  return value as Record<string, unknown>
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') invalid(`${where} must be a non-empty string`)
  return value
}

function integer(
  value: unknown,
  where: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    invalid(`${where} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`)
  }
  return value as number
}

function address(value: unknown, where: string): Address {
  if (typeof value !== 'string' || !isAddress(value, { strict: false }))
    invalid(`${where} must be an address`)
  return value as Address
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}

/**
 * The Redis store of `"store"`: a URL, or an object with a URL. `tls.ca`, `tls.cert` and
 * `tls.key` are paths of PEM files (relative to `baseDir`), read here.
 */
function redisOptions(
  value: unknown,
  storeMode: StoreMode,
  baseDir: string,
): RedisStoreOptions | undefined {
  if (value === undefined) return undefined
  const given = typeof value === 'string' ? { url: value } : (value as Record<string, unknown>)
  const url = string(given.url, 'store.url')
  if (!/^rediss?:\/\//.test(url)) invalid('store.url must start with redis:// or rediss://')
  const mode = given.mode ?? storeMode
  if (mode !== 'durable' && mode !== 'relaxed') invalid('store.mode must be "durable" or "relaxed"')
  return {
    url,
    mode,
    ...(given.keyPrefix === undefined
      ? {}
      : { keyPrefix: string(given.keyPrefix, 'store.keyPrefix') }),
    ...(given.holdTtlMs === undefined ? {} : { holdTtlMs: given.holdTtlMs as number }),
    ...(given.tls === undefined
      ? {}
      : { tls: redisTls(given.tls as Record<string, string>, baseDir) }),
    ...(given.waitReplicas === undefined ? {} : { waitReplicas: given.waitReplicas as number }),
    ...(given.waitTimeoutMs === undefined ? {} : { waitTimeoutMs: given.waitTimeoutMs as number }),
  }
}

function redisTls(tls: Record<string, string>, baseDir: string): ConnectionOptions {
  const pem = (name: 'ca' | 'cert' | 'key') => {
    const path = tls[name]
    if (path === undefined) return {}
    const file = isAbsolute(path) ? path : resolve(baseDir, path)
    try {
      return { [name]: readFileSync(file, 'utf8') }
    } catch (err) {
      return invalid(
        `store.tls.${name}: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
      )
    }
  }
  return {
    ...pem('ca'),
    ...pem('cert'),
    ...pem('key'),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  }
}
