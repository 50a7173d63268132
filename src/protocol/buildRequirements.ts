import type { Address } from 'viem'
import { TollgateError } from '../errors/index.js'
import {
  MAX_UINT128,
  MAX_WITHDRAW_DELAY,
  MIN_WITHDRAW_DELAY,
  SCHEME,
  ZERO_ADDRESS,
} from './constants.js'
import { parseAddress, parseNetwork } from './parse.js'
import type {
  AssetTransferMethod,
  BatchRequirements,
  BatchSettlementExtra,
  Network,
} from './types.js'
import { decimal } from './wire.js'

/** Parameters of {@link buildRequirements}. */
export type BuildRequirementsParameters = {
  /** CAIP-2 network, `eip155:<chainId>`. */
  network: Network
  /** Per-request ceiling in the token's smallest unit. */
  amount: bigint
  /** Token address. */
  asset: Address
  /** Receiver address. */
  payTo: Address
  maxTimeoutSeconds: number
  receiverAuthorizer: Address
  /** Seconds, in [900, 2592000]; channels must carry exactly this. */
  withdrawDelay: number
  /** Token EIP-712 domain name. */
  name: string
  /** Token EIP-712 domain version. */
  version: string
  assetTransferMethod?: AssetTransferMethod
  /** Smallest deposit asked of a new channel (a hint stock clients follow); at least `amount`. */
  minDeposit?: bigint
}

/**
 * Builds batch-settlement payment requirements. Stock x402 servers match a payment's
 * `accepted` against the requirements they would issue, so the result is reproducible byte
 * for byte: keys come in a fixed order, addresses lowercase, amounts as decimal strings, and
 * optional fields appear only when given.
 *
 * @returns `{ scheme, network, amount, asset, payTo, maxTimeoutSeconds, extra: { receiverAuthorizer,
 *   withdrawDelay, name, version, assetTransferMethod?, minDeposit? } }`
 * @throws TollgateError `tollgate_invalid_config` for a value outside its range,
 *   `invalid_batch_settlement_evm_missing_eip712_domain` for an empty `name` or `version`.
 * @example
 * const requirements = buildRequirements({
 *   network: 'eip155:84532', amount: 1000n, asset: usdc, payTo: receiver, maxTimeoutSeconds: 60,
 *   receiverAuthorizer, withdrawDelay: 900, name: 'USDC', version: '2',
 * })
 */
export function buildRequirements(parameters: BuildRequirementsParameters): BatchRequirements {
  const { network, amount, maxTimeoutSeconds, withdrawDelay, name, version } = parameters
  const { assetTransferMethod, minDeposit } = parameters
  if (parseNetwork(network) === undefined) invalid(`network ${network} is not eip155:<chainId>.`)
  const asset = address(parameters.asset, 'asset')
  const payTo = address(parameters.payTo, 'payTo')
  const receiverAuthorizer = address(parameters.receiverAuthorizer, 'receiverAuthorizer')
  if (receiverAuthorizer === ZERO_ADDRESS) invalid('receiverAuthorizer is the zero address.')
  if (!Number.isSafeInteger(maxTimeoutSeconds) || maxTimeoutSeconds <= 0) {
    invalid(`maxTimeoutSeconds ${maxTimeoutSeconds} is not a positive integer.`)
  }
  if (
    !Number.isSafeInteger(withdrawDelay) ||
    withdrawDelay < MIN_WITHDRAW_DELAY ||
    withdrawDelay > MAX_WITHDRAW_DELAY
  ) {
    invalid(`withdrawDelay ${withdrawDelay} is not an integer in [900, 2592000].`)
  }
  if (name === '' || version === '') {
    throw new TollgateError('invalid_batch_settlement_evm_missing_eip712_domain')
  }
  if (
    assetTransferMethod !== undefined &&
    assetTransferMethod !== 'eip3009' &&
    assetTransferMethod !== 'permit2'
  ) {
    invalid(`assetTransferMethod ${String(assetTransferMethod)} is unknown.`)
  }
  if (minDeposit !== undefined && (minDeposit < amount || minDeposit <= 0n)) {
    invalid(`minDeposit ${minDeposit} is below amount ${amount} or zero.`)
  }

  const extra: BatchSettlementExtra = { receiverAuthorizer, withdrawDelay, name, version }
  if (assetTransferMethod !== undefined) extra.assetTransferMethod = assetTransferMethod
  if (minDeposit !== undefined) {
    extra.minDeposit = decimal(minDeposit, 'minDeposit', MAX_UINT128, 'tollgate_invalid_config')
  }
  return {
    scheme: SCHEME,
    network,
    amount: decimal(amount, 'amount', MAX_UINT128, 'tollgate_invalid_config'),
    asset,
    payTo,
    maxTimeoutSeconds,
    extra,
  }
}

function address(value: Address, field: string): Address {
  const parsed = parseAddress(value)
  if (parsed === undefined) invalid(`${field} ${String(value)} is not an address.`)
  return parsed
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
