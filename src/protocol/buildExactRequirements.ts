import type { Address } from 'viem'
import { TollgateError } from '../errors/index.js'
import { EXACT_SCHEME, MAX_UINT256 } from './constants.js'
import { parseAddress, parseNetwork } from './parse.js'
import type { ExactRequirements, Network } from './types.js'
import { decimal } from './wire.js'

/** Parameters of {@link buildExactRequirements}. */
export type BuildExactRequirementsParameters = {
  /** CAIP-2 network, `eip155:<chainId>`. */
  network: Network
  /** The exact price of one request, in the token's smallest unit. */
  amount: bigint
  /** Token address (an EIP-3009 token). */
  asset: Address
  /** Who is paid: `to` of every authorization. */
  payTo: Address
  /** How long an authorization is asked to stay valid; stock clients sign `validBefore = now + this`. */
  maxTimeoutSeconds: number
  /** Token EIP-712 domain name. */
  name: string
  /** Token EIP-712 domain version. */
  version: string
}

/**
 * Builds exact-scheme payment requirements (EIP-3009 `transferWithAuthorization`), reproducible
 * byte for byte as {@link buildRequirements} is: fixed key order, lowercase addresses, the amount
 * as a decimal string.
 *
 * @returns `{ scheme: 'exact', network, amount, asset, payTo, maxTimeoutSeconds, extra: { assetTransferMethod: 'eip3009', name, version } }`
 * @throws TollgateError `tollgate_invalid_config` for a value outside its range,
 *   `invalid_exact_evm_missing_eip712_domain` for an empty `name` or `version`.
 * @example
 * const exact = buildExactRequirements({ network: 'eip155:84532', amount: 1000n, asset: usdc, payTo, maxTimeoutSeconds: 60, name: 'USDC', version: '2' })
 */
export function buildExactRequirements(
  parameters: BuildExactRequirementsParameters,
): ExactRequirements {
  const { network, amount, maxTimeoutSeconds, name, version } = parameters
  if (parseNetwork(network) === undefined) invalid(`network ${network} is not eip155:<chainId>.`)
  const asset = parseAddress(parameters.asset)
  const payTo = parseAddress(parameters.payTo)
  if (asset === undefined || payTo === undefined) invalid('asset or payTo is not an address.')
  if (!Number.isSafeInteger(maxTimeoutSeconds) || maxTimeoutSeconds <= 0) {
    invalid(`maxTimeoutSeconds ${maxTimeoutSeconds} is not a positive integer.`)
  }
  if (name === '' || version === '') {
    throw new TollgateError('invalid_exact_evm_missing_eip712_domain')
  }
  if (amount <= 0n) invalid(`amount ${amount} is not positive.`)
  return {
    scheme: EXACT_SCHEME,
    network,
    amount: decimal(amount, 'amount', MAX_UINT256, 'tollgate_invalid_config'),
    asset,
    payTo,
    maxTimeoutSeconds,
    extra: { assetTransferMethod: 'eip3009', name, version },
  }
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
