import type { FastifyRequest } from 'fastify'
import type { Address, Hex } from 'viem'
import { TollgateError } from '../../errors/index.js'
import type { VoucherRule } from '../../ledger/index.js'
import type { Payee } from '../../payee/payee.js'
import {
  type BatchRequirements,
  buildRequirements,
  MAX_UINT128,
  type Network,
} from '../../protocol/index.js'
import { parsePrice } from '../http/parsePrice.js'
import {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HIGH_WATER_BYTES,
  DEFAULT_LIVE_BUFFER,
  DEFAULT_MAX_BAD_FRAMES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PAY_TIMEOUT_MS,
} from './constants.js'
import type { RequestId } from './frames.js'

/** `maxTimeoutSeconds` advertised when none is configured (advice only: vouchers carry no expiry). */
export const DEFAULT_WS_MAX_TIMEOUT_SECONDS = 60

/** Messages one voucher should cover when a route names no `creditWindow`. */
export const DEFAULT_CREDIT_WINDOW = 100

/** The token paid in: its address and EIP-712 domain (the HTTP plugin's asset object fits). */
export interface WsAsset {
  address: Address
  name: string
  version: string
  /** The token's decimals: needed to price routes in dollars (`'$0.0001'`), as the HTTP plugin does. */
  decimals?: number
}

/** Options of the `tollgateWs` Fastify plugin. */
export interface TollgateWsOptions {
  /** An opened payee (`openPayee`); the caller owns it and closes it. */
  payee: Payee
  /** CAIP-2 network of the escrow, `eip155:<chainId>`. */
  network: Network
  asset: WsAsset
  /** The channels' receiver. */
  payTo: Address
  receiverAuthorizer: Address
  /** Seconds; channels must carry exactly this. */
  withdrawDelay: number
  /** @default DEFAULT_WS_MAX_TIMEOUT_SECONDS */
  maxTimeoutSeconds?: number
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
  /** Milliseconds a connection may stay without an accepted voucher; 0 turns it off. @default DEFAULT_PAY_TIMEOUT_MS */
  payTimeoutMs?: number
  /** Milliseconds between pings; an unanswered ping terminates the connection; 0 turns it off. @default DEFAULT_HEARTBEAT_MS */
  heartbeatMs?: number
}

/** Plugin options after validation, with defaults applied. */
export interface ResolvedWsOptions {
  readonly payee: Payee
  readonly network: Network
  readonly asset: Readonly<WsAsset>
  readonly payTo: Address
  readonly receiverAuthorizer: Address
  readonly withdrawDelay: number
  readonly maxTimeoutSeconds: number
  readonly maxFrameBytes: number
  readonly maxPayload: number
  readonly highWaterBytes: number
  readonly maxBadFrames: number
  readonly payTimeoutMs: number
  readonly heartbeatMs: number
}

/** A price in token units (smallest unit): a bigint or a decimal string. `1000n` is $0.001 of USDC. */
export type WsPrice = bigint | string

/** Options every billed route shares. */
export interface BilledRouteOptions {
  /** Price of one message (a feed) or the most one request may cost (requests), in token units. */
  price: WsPrice
  /** Messages one voucher should open credit for, advertised as `extra.creditWindow`. @default DEFAULT_CREDIT_WINDOW */
  creditWindow?: number
  /** Messages of credit left at which `voucher-needed` is sent, in [0, creditWindow). @default floor(creditWindow / 4) */
  lowWater?: number
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
  if (typeof options !== 'object' || options === null) invalid('options must be an object.')
  const { payee, network, asset, payTo, receiverAuthorizer, withdrawDelay } = options
  if (
    typeof payee !== 'object' ||
    payee === null ||
    typeof payee.decide !== 'function' ||
    typeof payee.extend !== 'function' ||
    typeof payee.chargeHeld !== 'function' ||
    typeof payee.release !== 'function'
  ) {
    invalid('payee must be an opened Payee (openPayee).')
  }
  if (typeof asset !== 'object' || asset === null)
    invalid('asset must be { address, name, version }.')
  if (typeof asset.name !== 'string' || asset.name === '')
    invalid('asset.name must be the token EIP-712 name.')
  if (
    asset.decimals !== undefined &&
    (!Number.isInteger(asset.decimals) || asset.decimals < 0 || asset.decimals > 36)
  ) {
    invalid('asset.decimals must be an integer from 0 to 36.')
  }
  if (typeof asset.version !== 'string' || asset.version === '') {
    invalid('asset.version must be the token EIP-712 version.')
  }
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? DEFAULT_WS_MAX_TIMEOUT_SECONDS
  // buildRequirements checks the network, addresses, withdrawDelay and maxTimeoutSeconds.
  const probe = buildRequirements({
    network,
    amount: 1n,
    asset: asset.address,
    payTo,
    maxTimeoutSeconds,
    receiverAuthorizer,
    withdrawDelay,
    name: asset.name,
    version: asset.version,
  })
  const maxFrameBytes = positive(options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, 'maxFrameBytes')
  const maxPayload = positive(options.maxPayload, DEFAULT_MAX_PAYLOAD_BYTES, 'maxPayload')
  if (maxPayload < maxFrameBytes) {
    invalid(`maxPayload ${maxPayload} is below maxFrameBytes ${maxFrameBytes}.`)
  }
  const payTimeoutMs = nonNegative(options.payTimeoutMs, DEFAULT_PAY_TIMEOUT_MS, 'payTimeoutMs')
  const heartbeatMs = nonNegative(options.heartbeatMs, DEFAULT_HEARTBEAT_MS, 'heartbeatMs')
  return Object.freeze({
    payee,
    network: probe.network,
    asset: Object.freeze({
      address: probe.asset as Address,
      name: asset.name,
      version: asset.version,
      ...(asset.decimals === undefined ? {} : { decimals: asset.decimals }),
    }),
    payTo: probe.payTo as Address,
    receiverAuthorizer: probe.extra.receiverAuthorizer as Address,
    withdrawDelay,
    maxTimeoutSeconds,
    maxFrameBytes,
    maxPayload,
    highWaterBytes: positive(options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES, 'highWaterBytes'),
    maxBadFrames: positive(options.maxBadFrames, DEFAULT_MAX_BAD_FRAMES, 'maxBadFrames'),
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
): ResolvedFeedRoute {
  const route = resolveRoute(path, options, plugin)
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
  return Object.freeze({
    ...route,
    source,
    event,
    liveBuffer: positive(options.liveBuffer, DEFAULT_LIVE_BUFFER, `${path}: liveBuffer`),
  })
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
): ResolvedRequestRoute {
  const route = resolveRoute(path, options, plugin)
  if (typeof options.handler !== 'function') invalid(`${path}: handler must be a function.`)
  return Object.freeze({
    ...route,
    handler: options.handler,
    maxInFlight: positive(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, `${path}: maxInFlight`),
  })
}

/**
 * A route's price: `'$0.0001'` (dollars, converted exactly with `decimals`, as the HTTP plugin
 * does), a canonical decimal string of token units or a bigint; positive, at most 2^128 - 1.
 *
 * @throws TollgateError `tollgate_invalid_config`, also for a dollar price without `decimals`.
 */
export function parseWsPrice(price: unknown, field: string, decimals?: number): bigint {
  if (typeof price === 'string' && price.startsWith('$') && decimals === undefined) {
    invalid(`${field} ${price} is in dollars: give asset.decimals to convert it.`)
  }
  return parsePrice(price, decimals ?? 0, field)
}

function resolveRoute(
  path: string,
  options: BilledRouteOptions,
  plugin: ResolvedWsOptions,
): ResolvedRoute {
  if (typeof path !== 'string' || !path.startsWith('/'))
    invalid(`route path ${String(path)} must start with /.`)
  if (typeof options !== 'object' || options === null)
    invalid(`${path}: options must be an object.`)
  const price = parseWsPrice(options.price, `${path}: price`, plugin.asset.decimals)
  const creditWindow = positive(
    options.creditWindow,
    DEFAULT_CREDIT_WINDOW,
    `${path}: creditWindow`,
  )
  const lowWater = options.lowWater ?? Math.floor(creditWindow / 4)
  if (!Number.isSafeInteger(lowWater) || lowWater < 0 || lowWater >= creditWindow) {
    invalid(`${path}: lowWater ${String(lowWater)} is not an integer in [0, creditWindow).`)
  }
  const window = price * BigInt(creditWindow)
  if (window > MAX_UINT128) invalid(`${path}: price × creditWindow exceeds 2^128 - 1.`)
  for (const field of ['description', 'mimeType'] as const) {
    if (options[field] !== undefined && typeof options[field] !== 'string') {
      invalid(`${path}: ${field} must be a string.`)
    }
  }
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
  return {
    path,
    price,
    creditWindow,
    lowWater,
    voucherNeededBelow: price * BigInt(lowWater + 1),
    rule: Object.freeze({ kind: 'credit', price }),
    requirements: deepFreeze(requirements),
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
