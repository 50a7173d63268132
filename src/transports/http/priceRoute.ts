import { TollgateError } from '../../errors/index.js'
import type { ExactRoute, PaidRoute } from '../../payee/index.js'
import {
  type BatchRequirements,
  buildExactRequirements,
  buildRequirements,
  type PaymentRequirements,
} from '../../protocol/index.js'
import { DEFAULT_MIN_DEPOSIT_MULTIPLIER } from './constants.js'
import { parsePrice } from './parsePrice.js'
import type { ResolvedOptions } from './resolveOptions.js'

/** What a priced route charges and advertises, built once when the route is registered. */
export interface RoutePrice {
  /** The per-request ceiling in token units. */
  readonly price: bigint
  /** The requirements this route issues, byte for byte the same on every 402. */
  readonly requirements: BatchRequirements
  readonly description: string | undefined
  readonly mimeType: string | undefined
  /** The route as the payee admits payments for it: one request at `price`. */
  readonly paid: PaidRoute
  /** The route as the exact payee takes payments for it, when it accepts `exact`. */
  readonly exact: ExactRoute | undefined
  /** `accepts` of its 402s: batch-settlement first, then exact when accepted. */
  readonly accepts: readonly PaymentRequirements[]
}

/**
 * Reads a route's `config: { price, description?, mimeType?, exact? }` and builds its
 * requirements (exact ones too when the route accepts `exact`).
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
): RoutePrice | undefined {
  if (typeof config !== 'object' || config === null) return undefined
  const { price: configured, description, mimeType, exact } = config as Record<string, unknown>
  if (configured === undefined) return undefined
  const price = parsePrice(configured, options.asset.decimals, `price of ${route}`)
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
  const minDeposit = options.minDeposit ?? price * DEFAULT_MIN_DEPOSIT_MULTIPLIER
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
  Object.freeze(requirements.extra)
  Object.freeze(requirements)
  const exactRequirements =
    (exact ?? options.exactByDefault)
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
    description: description as string | undefined,
    mimeType: mimeType as string | undefined,
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
  })
}
