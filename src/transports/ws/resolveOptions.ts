import type { FastifyRequest } from 'fastify'
import type { Address, Hex } from 'viem'
import { TollgateError } from '../../errors/index.js'
import type { VoucherRule } from '../../ledger/index.js'
import type { TollgateMetrics } from '../../metrics/index.js'
import { DEFAULT_PERSIST_EVERY_MESSAGES, type PaidRoute } from '../../payee/index.js'
import { type BatchRequirements, buildRequirements, MAX_UINT128 } from '../../protocol/index.js'
import type { Price } from '../../protocol/parsePrice.js'
import { resolveOracle, type TollgateOracle } from '../http/resolveOptions.js'
import { type FollowedPrice, followPrice } from '../oraclePrice.js'
import { type PaymentTerms, type ResolvedTerms, resolveTerms } from '../terms.js'
import {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HIGH_WATER_BYTES,
  DEFAULT_LIVE_BUFFER,
  DEFAULT_MAX_BAD_FRAMES,
  DEFAULT_MAX_BAD_FRAMES_PER_IP,
  DEFAULT_MAX_CONNECTIONS_PER_IP,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PAY_TIMEOUT_MS,
} from './constants.js'
import type { RequestId } from './frames.js'

/** Messages one voucher should cover when a route names no `creditWindow`. */
export const DEFAULT_CREDIT_WINDOW = 100

/** Options of the `tollgateWs` Fastify plugin: the payment terms, and the WebSocket's own. */
export interface TollgateWsOptions extends PaymentTerms {
  /** Largest client frame handled; larger ones get an error frame. @default DEFAULT_MAX_FRAME_BYTES */
  maxFrameBytes?: number
  /**
   * `ws` `maxPayload`, used when this plugin registers `@fastify/websocket` itself (register that
   * plugin yourself and you set it there): larger frames close the connection with 1009.
   * @default DEFAULT_MAX_PAYLOAD_BYTES
   */
  maxPayload?: number
  /** `ws.bufferedAmount` past which a connection stops sending (feeds) or reading (requests). @default DEFAULT_HIGH_WATER_BYTES */
  highWaterBytes?: number
  /** Bad frames and refused payments before a connection is closed with 1008. @default DEFAULT_MAX_BAD_FRAMES */
  maxBadFrames?: number
  /**
   * Connections one client address may hold (behind a reverse proxy, set Fastify's `trustProxy`).
   * @default DEFAULT_MAX_CONNECTIONS_PER_IP
   */
  maxConnectionsPerIp?: number
  /** Bad frames one client address may send per minute over all its connections. @default DEFAULT_MAX_BAD_FRAMES_PER_IP */
  maxBadFramesPerIp?: number
  /** Milliseconds a connection may stay without an accepted voucher; 0 turns it off. @default DEFAULT_PAY_TIMEOUT_MS */
  payTimeoutMs?: number
  /** Milliseconds between pings; an unanswered ping terminates the connection; 0 turns it off. @default DEFAULT_HEARTBEAT_MS */
  heartbeatMs?: number
  /**
   * Where billed messages, revenue, refusals and open sessions are counted; `false` counts
   * nothing (refusals are still logged). `createTollgate`'s `tg.ws` passes its own.
   * @default false
   */
  metrics?: TollgateMetrics | false
  /**
   * Prices in dollars through a feed of the token, as the HTTP plugin's `oracle`: a dollar price
   * follows the feed's rate (or, with `convert: false`, is refused while the feed is). A session
   * is priced when it opens; when a new round moves its route's price, or the round in force is
   * no longer usable, the session is ended (close code 1013) and a new one is priced afresh.
   */
  oracle?: TollgateOracle
}

/** Plugin options after validation, with defaults applied. */
export interface ResolvedWsOptions extends ResolvedTerms {
  readonly oracle: Readonly<Required<TollgateOracle>> | undefined
  readonly maxFrameBytes: number
  readonly maxPayload: number
  readonly highWaterBytes: number
  readonly maxBadFrames: number
  readonly maxConnectionsPerIp: number
  readonly maxBadFramesPerIp: number
  readonly payTimeoutMs: number
  readonly heartbeatMs: number
}

/** Options every billed route shares. */
export interface BilledRouteOptions {
  /** Price of one message (a feed) or the most one request may cost (requests), in token units. */
  price: Price
  /** Messages one voucher should open credit for, advertised as `extra.creditWindow`. @default DEFAULT_CREDIT_WINDOW */
  creditWindow?: number
  /** Messages of credit left at which `voucher-needed` is sent, in [0, creditWindow). @default floor(creditWindow / 4) */
  lowWater?: number
  /**
   * Messages that may be delivered ahead of a durable record of the charged total: after a crash,
   * a payer is charged at most this many messages beyond what was delivered.
   * @default DEFAULT_PERSIST_EVERY_MESSAGES (64)
   */
  persistEvery?: number
  /** `resource.description` of the route's `PaymentRequired`. */
  description?: string
  /** `resource.mimeType` of the route's `PaymentRequired`. */
  mimeType?: string
}

/** What a feed's source factory is given, once per subscription. */
export interface FeedContext {
  /** `params` of the `subscribe` frame, as sent (untrusted JSON). */
  readonly params: unknown
  readonly request: FastifyRequest
  /** Aborted when the session ends: a source waiting on its upstream should stop. */
  readonly signal: AbortSignal
}

/** The part of an `EventEmitter` a live feed uses. */
export interface FeedEmitter {
  on(event: string, listener: (body: unknown) => void): unknown
  off(event: string, listener: (body: unknown) => void): unknown
}

/**
 * A feed's messages. A function is called per subscription and returns an async iterable that is
 * pulled only when a message can be sent and paid for: nothing is lost, the feed resumes where it
 * paused. An emitter is a live source: each connection keeps the latest `liveBuffer` messages it
 * could not send yet and drops older ones (never charged; a gap in `seq`).
 */
export type FeedSource = ((context: FeedContext) => AsyncIterable<unknown>) | FeedEmitter

/** Options of `app.tollgateFeed(path, options)`. */
export interface FeedRouteOptions extends BilledRouteOptions {
  source: FeedSource
  /** Event an emitter source emits messages on. @default 'data' */
  event?: string
  /** Live messages kept per connection while it cannot send. @default DEFAULT_LIVE_BUFFER */
  liveBuffer?: number
}

/** What a request handler is given beside the request body. */
export interface RequestContext {
  readonly id: RequestId
  /** The route's price: the most this request may be charged. */
  readonly price: bigint
  readonly payer: Address
  readonly channelId: Hex
  readonly request: FastifyRequest
  /** Aborted when the session ends: the answer would not be delivered, nor charged. */
  readonly signal: AbortSignal
  /**
   * Charges less than the price (dynamic pricing): token units in `[0, price]`. Anything else is a
   * programming error: it throws `tollgate_internal` and the request is not charged.
   */
  charge(amount: bigint | string): void
}

/** Answers one billed request; the value is sent as the `response` frame's `body` (JSON). */
export type RequestHandler = (body: unknown, context: RequestContext) => unknown

/** Options of `app.tollgateRequests(path, options)`. */
export interface RequestRouteOptions extends BilledRouteOptions {
  handler: RequestHandler
  /** Requests of one connection handled at once. @default DEFAULT_MAX_IN_FLIGHT */
  maxInFlight?: number
}

/** A billed route after validation. */
export interface ResolvedRoute {
  readonly path: string
  readonly price: bigint
  readonly creditWindow: number
  readonly lowWater: number
  /**
   * Credit below which `voucher-needed` is sent: `price × (lowWater + 1)`, so that it goes out
   * once `floor(credit / price) <= lowWater`.
   */
  readonly voucherNeededBelow: bigint
  /** The credit rule of every voucher: it must open credit for at least one more message. */
  readonly rule: VoucherRule
  /** The route's requirements, `extra.creditWindow` included; payments must echo them. */
  readonly requirements: BatchRequirements
  /** The route as the payee admits payments for it: credit windows, written behind every half reserve. */
  readonly paid: PaidRoute
  readonly description: string | undefined
  readonly mimeType: string | undefined
}

export interface ResolvedFeedRoute extends ResolvedRoute {
  readonly source: FeedSource
  readonly event: string
  readonly liveBuffer: number
}

export interface ResolvedRequestRoute extends ResolvedRoute {
  readonly handler: RequestHandler
  readonly maxInFlight: number
}

/**
 * Validates the plugin's options at registration (fail fast).
 *
 * @throws TollgateError `tollgate_invalid_config` naming the option that is wrong.
 */
export function resolveWsOptions(options: TollgateWsOptions): ResolvedWsOptions {
  const terms = resolveTerms(options, ['decide', 'extend', 'chargeHeld', 'release'])
  const maxFrameBytes = positive(options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes')
  const maxPayload = positive(options.maxPayload, DEFAULT_MAX_PAYLOAD_BYTES, 'maxPayload')
  if (maxPayload < maxFrameBytes) {
    invalid(`maxPayload ${maxPayload} is below maxFrameBytes ${maxFrameBytes}.`)
  }
  const payTimeoutMs = nonNegative(options.payTimeoutMs, DEFAULT_PAY_TIMEOUT_MS, 'payTimeoutMs')
  const heartbeatMs = nonNegative(options.heartbeatMs, DEFAULT_HEARTBEAT_MS, 'heartbeatMs')
  return Object.freeze({
    ...terms,
    oracle: resolveOracle(options.oracle, terms.asset.decimals),
    maxFrameBytes,
    maxPayload,
    highWaterBytes: positive(options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES, 'highWaterBytes'),
    maxBadFrames: positive(options.maxBadFrames, DEFAULT_MAX_BAD_FRAMES, 'maxBadFrames'),
    maxConnectionsPerIp: positive(
      options.maxConnectionsPerIp,
      DEFAULT_MAX_CONNECTIONS_PER_IP,
      'maxConnectionsPerIp',
    ),
    maxBadFramesPerIp: positive(
      options.maxBadFramesPerIp,
      DEFAULT_MAX_BAD_FRAMES_PER_IP,
      'maxBadFramesPerIp',
    ),
    payTimeoutMs,
    heartbeatMs,
  })
}

/**
 * Validates a feed route's options at registration.
 *
 * @throws TollgateError `tollgate_invalid_config`.
 */
export function resolveFeedRoute(
  path: string,
  options: FeedRouteOptions,
  plugin: ResolvedWsOptions,
): FollowedPrice<ResolvedFeedRoute> {
  const { source } = options
  const isEmitter =
    typeof source === 'object' &&
    source !== null &&
    typeof (source as FeedEmitter).on === 'function' &&
    typeof (source as FeedEmitter).off === 'function'
  if (typeof source !== 'function' && !isEmitter) {
    invalid(`${path}: source must be a function returning an async iterable, or an event emitter.`)
  }
  const event = options.event ?? 'data'
  if (typeof event !== 'string' || event === '')
    invalid(`${path}: event must be a non-empty string.`)
  const liveBuffer = positive(options.liveBuffer, DEFAULT_LIVE_BUFFER, `${path}: liveBuffer`)
  return resolveRoute(path, options, plugin, (route) =>
    Object.freeze({ ...route, source, event, liveBuffer }),
  )
}

/**
 * Validates a request route's options at registration.
 *
 * @throws TollgateError `tollgate_invalid_config`.
 */
export function resolveRequestRoute(
  path: string,
  options: RequestRouteOptions,
  plugin: ResolvedWsOptions,
): FollowedPrice<ResolvedRequestRoute> {
  if (typeof options?.handler !== 'function') invalid(`${path}: handler must be a function.`)
  const { handler } = options
  const maxInFlight = positive(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, `${path}: maxInFlight`)
  return resolveRoute(path, options, plugin, (route) =>
    Object.freeze({ ...route, handler, maxInFlight }),
  )
}

/**
 * Checks a route's options, then prices it ({@link followPrice}): the route at its price in
 * token units, completed by `complete`, rebuilt when an oracle's new round moves the price.
 */
function resolveRoute<R>(
  path: string,
  options: BilledRouteOptions,
  plugin: ResolvedWsOptions,
  complete: (route: ResolvedRoute) => R,
): FollowedPrice<R> {
  if (typeof path !== 'string' || !path.startsWith('/'))
    invalid(`route path ${String(path)} must start with /.`)
  if (typeof options !== 'object' || options === null)
    invalid(`${path}: options must be an object.`)
  const creditWindow = positive(
    options.creditWindow,
    DEFAULT_CREDIT_WINDOW,
    `${path}: creditWindow`,
  )
  const lowWater = options.lowWater ?? Math.floor(creditWindow / 4)
  if (!Number.isSafeInteger(lowWater) || lowWater < 0 || lowWater >= creditWindow) {
    invalid(`${path}: lowWater ${String(lowWater)} is not an integer in [0, creditWindow).`)
  }
  const persistEvery = positive(
    options.persistEvery,
    DEFAULT_PERSIST_EVERY_MESSAGES,
    `${path}: persistEvery`,
  )
  for (const field of ['description', 'mimeType'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'string') {
      invalid(`${path}: ${field} must be a string.`)
    }
  }
  const shape = { path, creditWindow, lowWater, persistEvery, options }
  return followPrice(
    options.price,
    plugin.asset.decimals,
    plugin.oracle,
    `${path}: price`,
    (price) => complete(routeAt(price, shape, plugin)),
  )
}

/** A route's requirements and credit rule at `price` token units a message. */
function routeAt(
  price: bigint,
  shape: {
    path: string
    creditWindow: number
    lowWater: number
    persistEvery: number
    options: BilledRouteOptions
  },
  plugin: ResolvedWsOptions,
): ResolvedRoute {
  const { path, creditWindow, lowWater, persistEvery, options } = shape
  const window = price * BigInt(creditWindow)
  if (window > MAX_UINT128) invalid(`${path}: price × creditWindow exceeds 2^128 - 1.`)
  const built = buildRequirements({
    network: plugin.network,
    amount: price,
    asset: plugin.asset.address,
    payTo: plugin.payTo,
    maxTimeoutSeconds: plugin.maxTimeoutSeconds,
    receiverAuthorizer: plugin.receiverAuthorizer,
    withdrawDelay: plugin.withdrawDelay,
    name: plugin.asset.name,
    version: plugin.asset.version,
    minDeposit: window,
  })
  const requirements: BatchRequirements = {
    ...built,
    extra: { ...built.extra, creditWindow } as BatchRequirements['extra'],
  }
  const rule = Object.freeze({
    kind: 'credit',
    price,
    reserve: price * BigInt(persistEvery),
  } as const)
  const frozen = deepFreeze(requirements)
  return {
    path,
    price,
    creditWindow,
    lowWater,
    voucherNeededBelow: price * BigInt(lowWater + 1),
    rule,
    requirements: frozen,
    paid: Object.freeze({ network: plugin.network, requirements: frozen, rule }),
    description: options.description,
    mimeType: options.mimeType,
  }
}

function positive(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0)
    invalid(`${field} ${String(value)} is not a positive integer.`)
  return value
}

function nonNegative(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 0)
    invalid(`${field} ${String(value)} is not an integer >= 0.`)
  return value
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) deepFreeze(inner)
  }
  return Object.freeze(value)
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
