import { didYouMean } from '../../errors/didYouMean.js'
import { accept, type Result, TollgateError } from '../../errors/index.js'
import { dollarsToTokenUnits, type ExactRoute, type PaidRoute } from '../../payee/index.js'
import {
  type BatchRequirements,
  buildExactRequirements,
  buildRequirements,
  type PaymentRequirements,
} from '../../protocol/index.js'
import { parseDollars, parsePrice } from '../../protocol/parsePrice.js'
import { MAX_TICKS } from '../../protocol/tickWire.js'
import { followPrice } from '../oraclePrice.js'
import { DEFAULT_MIN_DEPOSIT_MULTIPLIER, DEFAULT_TICK_WINDOW } from './constants.js'
import type { ResolvedOptions } from './resolveOptions.js'

/**
 * What a priced route charges and advertises: built once when the route is registered, and again
 * whenever an oracle's rate changes its price.
 */
export interface RoutePrice {
  /** The per-request ceiling in token units. */
  readonly price: bigint
  /** The requirements this route issues, byte for byte the same on every 402 at this price. */
  readonly requirements: BatchRequirements
  readonly description: string | undefined
  readonly mimeType: string | undefined
  /** The route as the payee admits payments for it: one request at `price`. */
  readonly paid: PaidRoute
  /** The route as the exact payee takes payments for it, when it accepts `exact`. */
  readonly exact: ExactRoute | undefined
  /** `accepts` of its 402s: batch-settlement first, then exact when accepted. */
  readonly accepts: readonly PaymentRequirements[]
  /** Calls one tick window covers (`extra.tickWindow`), when the route takes ticks (./ticks.ts). */
  readonly ticks: number | undefined
}

/**
 * A priced route as the plugin serves it: the price in force now, looked up with no RPC.
 */
export interface PricedRoute {
  /** Whether the route accepts x402 `exact` too (fixed at registration). */
  readonly acceptsExact: boolean
  /**
   * The route's price and requirements in force, or, for a route priced through an oracle whose
   * round is stale, incomplete or below its floor, the refusal.
   */
  now(): Result<RoutePrice>
  /**
   * Re-prices the route at the oracle's current rate, off the hot path (after each feed read);
   * the requirements are rebuilt only when the price in token units changed. Absent on routes
   * that do not follow a rate.
   */
  readonly refresh?: () => void
}

/**
 * Reads a route's `config: { price, description?, mimeType?, exact? }` and builds its
 * requirements (exact ones too when the route accepts `exact`). A dollar price under a converting
 * oracle follows the feed's rate; one under a guarding oracle is refused while the feed is.
 *
 * @param config The route's `config`.
 * @param route `METHOD /url`, for error messages.
 * @returns `undefined` for a route without a price (free).
 * @throws TollgateError `tollgate_invalid_config` for a malformed price or one below one token unit.
 */
export function priceRoute(
  config: unknown,
  options: ResolvedOptions,
  route: string,
): PricedRoute | undefined {
  if (typeof config !== 'object' || config === null) return undefined
  const {
    price: configured,
    description,
    mimeType,
    exact,
    ticks,
  } = config as Record<string, unknown>
  if (configured === undefined) {
    if (ticks !== undefined && ticks !== false) {
      throw new TollgateError('tollgate_invalid_config', `${route} takes ticks but has no price.`)
    }
    // A misspelt price would serve the route free.
    const misspelt = Object.keys(config).find((key) => didYouMean(key, ['price']) !== undefined)
    if (misspelt !== undefined) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `${route} has no price but a config key ${misspelt} (did you mean price?): it would be free.`,
      )
    }
    return undefined
  }
  for (const [field, value] of [
    ['description', description],
    ['mimeType', mimeType],
  ] as const) {
    if (value !== undefined && typeof value !== 'string') {
      throw new TollgateError('tollgate_invalid_config', `${field} of ${route} is not a string.`)
    }
  }
  if (exact !== undefined && typeof exact !== 'boolean') {
    throw new TollgateError('tollgate_invalid_config', `exact of ${route} is not a boolean.`)
  }
  if (exact === true && !options.exactPayee) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `${route} accepts exact, but the plugin has no exactPayee.`,
    )
  }
  const meta: RouteMeta = {
    description: description as string | undefined,
    mimeType: mimeType as string | undefined,
    exact: exact ?? options.exactByDefault,
    ticks: tickWindowOf(ticks, route),
  }
  const dollars = options.oracle ? parseDollars(configured) : undefined
  const oracle = dollars ? options.oracle : undefined
  if (!oracle || !dollars) {
    const price = parsePrice(configured, options.asset.decimals, `price of ${route}`)
    if (options.minDepositDollars) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `minDeposit is in dollars, but the price of ${route} is in token units: under an oracle give both in dollars or both in token units.`,
      )
    }
    const fixed = accept(buildRoutePrice(price, options.minDeposit, meta, options, route))
    return Object.freeze({ acceptsExact: meta.exact, now: () => fixed })
  }
  if (oracle.convert && options.minDeposit !== undefined) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `minDeposit is in token units, but the price of ${route} is in dollars: under an oracle give both in dollars or both in token units.`,
    )
  }
  const decimals = options.asset.decimals ?? 0
  const { minDepositDollars } = options
  // A dollar stablecoin under a guarding oracle: one to one, refused while the feed is. Under a
  // converting one: at the rate, a dollar minDeposit with it.
  const followed = followPrice(
    configured as string,
    options.asset.decimals,
    oracle,
    `price of ${route}`,
    (price, rate) => {
      const minDeposit =
        rate && minDepositDollars
          ? dollarsToTokenUnits(minDepositDollars, decimals, rate)
          : options.minDeposit
      return buildRoutePrice(price, minDeposit, meta, options, route)
    },
  )
  return Object.freeze({
    acceptsExact: meta.exact,
    now: () => followed.now(),
    ...(oracle.convert
      ? {
          refresh: () => {
            followed.now()
          },
        }
      : {}),
  })
}

/** What a route's config says besides its price. */
interface RouteMeta {
  readonly description: string | undefined
  readonly mimeType: string | undefined
  readonly exact: boolean
  readonly ticks: number | undefined
}

/** The route's requirements at `price` token units. */
function buildRoutePrice(
  price: bigint,
  configuredMinDeposit: bigint | undefined,
  meta: RouteMeta,
  options: ResolvedOptions,
  route: string,
): RoutePrice {
  const minDeposit = configuredMinDeposit ?? price * DEFAULT_MIN_DEPOSIT_MULTIPLIER
  if (minDeposit < price) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `minDeposit ${minDeposit} is below the price ${price} of ${route}.`,
    )
  }
  const requirements = buildRequirements({
    network: options.network,
    amount: price,
    asset: options.asset.address,
    payTo: options.payTo,
    maxTimeoutSeconds: options.maxTimeoutSeconds,
    receiverAuthorizer: options.receiverAuthorizer,
    withdrawDelay: options.withdrawDelay,
    name: options.asset.name,
    version: options.asset.version,
    minDeposit,
  })
  if (meta.ticks !== undefined) {
    // Opt-in (PROTOCOL.md beside this file): stock clients echo `extra` and pay as usual.
    const extra: BatchRequirements['extra'] & { tickWindow: number } = {
      ...requirements.extra,
      tickWindow: meta.ticks,
    }
    requirements.extra = extra
  }
  Object.freeze(requirements.extra)
  Object.freeze(requirements)
  const exactRequirements = meta.exact
    ? buildExactRequirements({
        network: options.network,
        amount: price,
        asset: options.asset.address,
        payTo: options.payTo,
        maxTimeoutSeconds: options.maxTimeoutSeconds,
        name: options.asset.name,
        version: options.asset.version,
      })
    : undefined
  if (exactRequirements) {
    Object.freeze(exactRequirements.extra)
    Object.freeze(exactRequirements)
  }
  return Object.freeze({
    price,
    requirements,
    description: meta.description,
    mimeType: meta.mimeType,
    paid: Object.freeze({
      network: options.network,
      requirements,
      rule: Object.freeze({ kind: 'exact', price } as const),
      minDeposit,
    }),
    exact: exactRequirements
      ? Object.freeze({ network: options.network, requirements: exactRequirements })
      : undefined,
    accepts: Object.freeze(exactRequirements ? [requirements, exactRequirements] : [requirements]),
    ticks: meta.ticks,
  })
}

/**
 * A route's `config.ticks`: `true` for {@link DEFAULT_TICK_WINDOW} calls a window, or a count.
 *
 * @throws TollgateError `tollgate_invalid_config` for anything else.
 */
function tickWindowOf(value: unknown, route: string): number | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return DEFAULT_TICK_WINDOW
  if (
    typeof value === 'number' &&
    Number.isSafeInteger(value) &&
    value >= 2 &&
    value <= MAX_TICKS
  ) {
    return value
  }
  throw new TollgateError(
    'tollgate_invalid_config',
    `ticks of ${route} must be true or an integer in [2, ${MAX_TICKS}].`,
  )
}
