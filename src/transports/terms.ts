import type { Address } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { ChannelRecord } from '../ledger/index.js'
import type { Payee } from '../payee/index.js'
import {
  type BatchRequirements,
  buildRequirements,
  correctiveRequired,
  type Network,
  type PaymentRequired,
  type ResourceInfo,
} from '../protocol/index.js'

/**
 * `maxTimeoutSeconds` advertised in the requirements when none is configured: how long a payer
 * may take between the 402 and its paid retry. batch-settlement vouchers carry no expiry, so
 * this is only advice to clients.
 */
export const DEFAULT_MAX_TIMEOUT_SECONDS = 60

/** The token paid in: its address and EIP-712 domain (Base Sepolia USDC: `USDC` / `2`, 6 decimals). */
export interface TollgateAsset {
  address: Address
  name: string
  version: string
  /** The token's decimals: needed to price in dollars (`'$0.001'`), converted exactly. */
  decimals?: number
}

/**
 * What the HTTP and the WebSocket plugins both announce in every requirement: the payee that
 * decides the vouchers, and the channels it accepts (network, token, receiver, authorizer, delay).
 */
export interface PaymentTerms {
  /** An opened payee (`openPayee`); the caller owns it and closes it. */
  payee: Payee
  /** CAIP-2 network of the escrow, `eip155:<chainId>`. */
  network: Network
  asset: TollgateAsset
  /** The channels' receiver. */
  payTo: Address
  receiverAuthorizer: Address
  /** Seconds; channels must carry exactly this. */
  withdrawDelay: number
  /** @default DEFAULT_MAX_TIMEOUT_SECONDS */
  maxTimeoutSeconds?: number
}

/** {@link PaymentTerms} after validation: addresses as the requirements carry them. */
export interface ResolvedTerms {
  readonly payee: Payee
  readonly network: Network
  readonly asset: Readonly<TollgateAsset>
  readonly payTo: Address
  readonly receiverAuthorizer: Address
  readonly withdrawDelay: number
  readonly maxTimeoutSeconds: number
}

/**
 * Validates the payment terms of a plugin at registration: `payee` must be an opened payee with
 * the methods the transport calls, and the requirements built from the terms must describe the
 * channels that payee accepts.
 *
 * @throws TollgateError `tollgate_invalid_config` naming the option that is wrong.
 */
export function resolveTerms(
  options: PaymentTerms,
  payeeMethods: readonly (keyof Payee)[],
): ResolvedTerms {
  if (typeof options !== 'object' || options === null) invalid('options must be an object.')
  const { payee, network, asset, payTo, receiverAuthorizer, withdrawDelay } = options
  if (
    typeof payee !== 'object' ||
    payee === null ||
    typeof payee.identity !== 'object' ||
    payeeMethods.some((method) => typeof payee[method] !== 'function')
  ) {
    invalid('payee must be an opened Payee (openPayee).')
  }
  if (typeof asset !== 'object' || asset === null) {
    invalid('asset must be { address, name, version, decimals }.')
  }
  if (typeof asset.name !== 'string' || asset.name === '')
    invalid('asset.name must be the token EIP-712 name.')
  if (typeof asset.version !== 'string' || asset.version === '') {
    invalid('asset.version must be the token EIP-712 version.')
  }
  if (
    asset.decimals !== undefined &&
    (!Number.isSafeInteger(asset.decimals) || asset.decimals < 0 || asset.decimals > 255)
  ) {
    invalid(`asset.decimals ${String(asset.decimals)} is not an integer in [0, 255].`)
  }
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? DEFAULT_MAX_TIMEOUT_SECONDS

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
  // The requirements the plugin issues must describe the channels the payee accepts.
  const id = payee.identity
  const mismatch = (
    [
      ['payTo', probe.payTo, id.receiver],
      ['receiverAuthorizer', probe.extra.receiverAuthorizer, id.receiverAuthorizer],
      ['asset.address', probe.asset, id.token],
      ['withdrawDelay', String(withdrawDelay), String(id.withdrawDelay)],
      ['network', probe.network, `eip155:${payee.chainId}`],
    ] as const
  ).find(([, ours, payees]) => ours.toLowerCase() !== payees.toLowerCase())
  if (mismatch) invalid(`${mismatch[0]} ${mismatch[1]} differs from the payee's ${mismatch[2]}.`)
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
  })
}

/**
 * The corrective 402 for a channel whose payer is out of step: the server's `channelState` and,
 * when it holds a voucher, its highest `voucherState`, so that the client can check and resync.
 */
export function correctiveFor(
  resource: ResourceInfo,
  requirements: BatchRequirements,
  record: ChannelRecord,
): PaymentRequired {
  return correctiveRequired({
    resource,
    accepts: [requirements],
    network: requirements.network,
    channelState: record,
    ...(record.signature === '0x'
      ? {}
      : {
          voucherState: {
            signedMaxClaimable: record.signedMaxClaimable,
            signature: record.signature,
          },
        }),
  })
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
