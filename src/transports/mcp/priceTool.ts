import { TollgateError } from '../../errors/index.js'
import type { PaidRoute } from '../../payee/index.js'
import {
  type BatchRequirements,
  buildRequirements,
  type ResourceInfo,
} from '../../protocol/index.js'
import type { Price } from '../../protocol/parsePrice.js'
import { DEFAULT_MIN_DEPOSIT_MULTIPLIER } from '../http/constants.js'
import type { TollgateOracle } from '../http/resolveOptions.js'
import { type FollowedPrice, followPrice } from '../oraclePrice.js'
import type { ResolvedTerms } from '../terms.js'

/** How a paid MCP tool is priced and described in its 402. */
export interface PaidToolOptions {
  /** The price of one call: `'$0.001'`, `'1000'` or `1000n` (token units). */
  price: Price
  /** `resource.description` of the tool's 402. */
  description?: string
  /** `resource.mimeType` of the tool's 402. */
  mimeType?: string
}

/** What a paid tool charges and advertises, built when the tool is priced (and at each new rate). */
export interface ToolPrice {
  /** The price of one call in token units. */
  readonly price: bigint
  /** `mcp://tool/<name>`, with the tool's description and MIME type. */
  readonly resource: Readonly<ResourceInfo>
  /** The requirements this tool issues, byte for byte the same on every 402. */
  readonly requirements: BatchRequirements
  /** The tool as the payee admits payments for it: one call at `price`. */
  readonly paid: PaidRoute
}

/**
 * Reads a tool's price and builds its requirements, as the HTTP transport does for a route: a
 * dollar price under an oracle follows the feed's rate ({@link followPrice}), the requirements
 * rebuilt when a new round changes the price in token units.
 *
 * @param name The tool's name: its resource is `mcp://tool/<name>`.
 * @throws TollgateError `tollgate_invalid_config` for a malformed price, one below one token unit,
 *   or a `minDeposit` below it (buildRequirements).
 */
export function priceTool(
  name: string,
  options: PaidToolOptions,
  terms: ResolvedTerms,
  minDeposit: bigint | undefined,
  oracle?: Readonly<Required<TollgateOracle>>,
): FollowedPrice<ToolPrice> {
  if (typeof name !== 'string' || name === '') {
    throw new TollgateError('tollgate_invalid_config', 'A paid tool needs its name.')
  }
  const resource: ResourceInfo = { url: `mcp://tool/${name}` }
  if (options.description !== undefined) resource.description = options.description
  if (options.mimeType !== undefined) resource.mimeType = options.mimeType
  Object.freeze(resource)
  return followPrice(
    options.price,
    terms.asset.decimals,
    oracle,
    `price of tool ${name}`,
    (price) => toolAt(price, resource, terms, minDeposit),
  )
}

/** The tool's requirements at `price` token units. */
function toolAt(
  price: bigint,
  resource: Readonly<ResourceInfo>,
  terms: ResolvedTerms,
  minDeposit: bigint | undefined,
): ToolPrice {
  const requirements = buildRequirements({
    network: terms.network,
    amount: price,
    asset: terms.asset.address,
    payTo: terms.payTo,
    maxTimeoutSeconds: terms.maxTimeoutSeconds,
    receiverAuthorizer: terms.receiverAuthorizer,
    withdrawDelay: terms.withdrawDelay,
    name: terms.asset.name,
    version: terms.asset.version,
    minDeposit: minDeposit ?? price * DEFAULT_MIN_DEPOSIT_MULTIPLIER,
  })
  Object.freeze(requirements.extra)
  Object.freeze(requirements)
  return Object.freeze({
    price,
    resource,
    requirements,
    paid: Object.freeze({
      network: terms.network,
      requirements,
      rule: Object.freeze({ kind: 'exact', price } as const),
    }),
  })
}
