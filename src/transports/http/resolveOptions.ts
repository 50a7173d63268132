import type { Address } from 'viem'
import type { EscrowWriter } from '../../chain/escrowWriter.js'
import { TollgateError } from '../../errors/index.js'
import type { Payee } from '../../payee/index.js'
import { buildRequirements, MAX_PAYMENT_HEADER_BYTES, type Network } from '../../protocol/index.js'
import {
  DEFAULT_MAX_TIMEOUT_SECONDS,
  DEFAULT_RATE_LIMIT_PER_IP,
  DEFAULT_RATE_LIMIT_PER_PAYER,
  type RateLimitRule,
} from './constants.js'
import { type Price, parsePrice } from './parsePrice.js'

/** The token paid in: its address and EIP-712 domain (Base Sepolia USDC: `USDC` / `2`, 6 decimals). */
export interface TollgateAsset {
  address: Address
  name: string
  version: string
  /** Used to convert `'$0.001'` prices exactly. */
  decimals: number
}

/** Rate limits of priced routes; `false` turns a limit off. */
export interface TollgateRateLimit {
  /** Every request to a priced route, per client IP. @default DEFAULT_RATE_LIMIT_PER_IP */
  perIp?: RateLimitRule | false
  /** Accepted vouchers per payer address. @default DEFAULT_RATE_LIMIT_PER_PAYER */
  perPayer?: RateLimitRule | false
}

/** Options of the `tollgate` Fastify plugin. */
export interface TollgateOptions {
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
  /** Smallest deposit advertised on every priced route. @default the route's price times DEFAULT_MIN_DEPOSIT_MULTIPLIER */
  minDeposit?: Price
  /** Largest `PAYMENT-SIGNATURE` / `X-PAYMENT` header accepted. @default MAX_PAYMENT_HEADER_BYTES */
  maxPaymentHeaderBytes?: number
  /** @default { perIp: DEFAULT_RATE_LIMIT_PER_IP, perPayer: DEFAULT_RATE_LIMIT_PER_PAYER } */
  rateLimit?: TollgateRateLimit | false
  /**
   * Submits `deposit` payloads (the server pays their gas) and `refund` payloads on chain; its
   * account must be the receiver or the receiver authorizer for refunds. Without one, such
   * payloads are refused with `invalid_batch_settlement_evm_payload_type`.
   */
  escrowWriter?: EscrowWriter
}

/** Options after validation, with defaults applied. */
export interface ResolvedOptions {
  readonly payee: Payee
  readonly network: Network
  readonly asset: Readonly<TollgateAsset>
  readonly payTo: Address
  readonly receiverAuthorizer: Address
  readonly withdrawDelay: number
  readonly maxTimeoutSeconds: number
  readonly minDeposit: bigint | undefined
  readonly maxPaymentHeaderBytes: number
  readonly perIp: RateLimitRule | undefined
  readonly perPayer: RateLimitRule | undefined
  readonly escrowWriter: EscrowWriter | undefined
}

/**
 * Validates the plugin's options at registration (fail fast, before any route is priced).
 *
 * @throws TollgateError `tollgate_invalid_config` naming the option that is wrong.
 */
export function resolveOptions(options: TollgateOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) invalid('options must be an object.')
  const { payee, network, asset, payTo, receiverAuthorizer, withdrawDelay } = options
  if (
    typeof payee !== 'object' ||
    payee === null ||
    typeof payee.decide !== 'function' ||
    typeof payee.commit !== 'function' ||
    typeof payee.release !== 'function' ||
    typeof payee.identity !== 'object'
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
  if (!Number.isSafeInteger(asset.decimals) || asset.decimals < 0 || asset.decimals > 255) {
    invalid(`asset.decimals ${String(asset.decimals)} is not an integer in [0, 255].`)
  }
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? DEFAULT_MAX_TIMEOUT_SECONDS
  const maxPaymentHeaderBytes = options.maxPaymentHeaderBytes ?? MAX_PAYMENT_HEADER_BYTES
  if (!Number.isSafeInteger(maxPaymentHeaderBytes) || maxPaymentHeaderBytes <= 0) {
    invalid(`maxPaymentHeaderBytes ${String(maxPaymentHeaderBytes)} is not a positive integer.`)
  }
  const minDeposit =
    options.minDeposit === undefined
      ? undefined
      : parsePrice(options.minDeposit, asset.decimals, 'minDeposit')

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
  if (options.escrowWriter !== undefined && typeof options.escrowWriter?.deposit !== 'function') {
    invalid('escrowWriter must be an EscrowWriter (escrowWriter()).')
  }

  const rateLimit = options.rateLimit ?? {}
  if (rateLimit !== false && (typeof rateLimit !== 'object' || rateLimit === null)) {
    invalid('rateLimit must be false or { perIp?, perPayer? }.')
  }
  const limits: TollgateRateLimit =
    rateLimit === false ? { perIp: false, perPayer: false } : rateLimit
  return {
    payee,
    network: probe.network,
    asset: Object.freeze({
      address: probe.asset as Address,
      name: asset.name,
      version: asset.version,
      decimals: asset.decimals,
    }),
    payTo: probe.payTo as Address,
    receiverAuthorizer: probe.extra.receiverAuthorizer as Address,
    withdrawDelay,
    maxTimeoutSeconds,
    minDeposit,
    maxPaymentHeaderBytes,
    perIp: rule(limits.perIp, DEFAULT_RATE_LIMIT_PER_IP, 'rateLimit.perIp'),
    perPayer: rule(limits.perPayer, DEFAULT_RATE_LIMIT_PER_PAYER, 'rateLimit.perPayer'),
    escrowWriter: options.escrowWriter,
  }
}

function rule(
  value: RateLimitRule | false | undefined,
  fallback: RateLimitRule,
  field: string,
): RateLimitRule | undefined {
  if (value === false) return undefined
  if (value === undefined) return fallback
  const { max, timeWindowMs } = value
  if (
    !Number.isSafeInteger(max) ||
    max <= 0 ||
    !Number.isSafeInteger(timeWindowMs) ||
    timeWindowMs <= 0
  ) {
    invalid(`${field} must be false or { max, timeWindowMs } with positive integers.`)
  }
  return Object.freeze({ max, timeWindowMs })
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
