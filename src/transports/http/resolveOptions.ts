import type { Redis } from 'ioredis'
import type { EscrowWriter } from '../../chain/escrowWriter.js'
import type { PriceFeed } from '../../chain/priceFeed.js'
import { TollgateError } from '../../errors/index.js'
import type { TollgateMetrics } from '../../metrics/index.js'
import type { Dollars, ExactPayee } from '../../payee/index.js'
import { MAX_PAYMENT_HEADER_BYTES } from '../../protocol/index.js'
import { type PaymentTerms, type ResolvedTerms, resolveTerms } from '../terms.js'
import {
  DEFAULT_RATE_LIMIT_PER_IP,
  DEFAULT_RATE_LIMIT_PER_PAYER,
  DEFAULT_RATE_LIMIT_UNPAID_PER_IP,
  type RateLimitRule,
} from './constants.js'

const RATE_LIMIT_KEYS: ReadonlySet<string> = new Set(['perIp', 'unpaidPerIp', 'perPayer'])

import { type Price, parseDollars, parsePrice } from '../../protocol/parsePrice.js'

/**
 * Prices in dollars through a price feed of the token (`watchPriceFeed`): for a token that is
 * not a dollar, or to guard a dollar stablecoin's peg. Token-unit prices never consult it.
 */
export interface TollgateOracle {
  /** An opened feed of dollars per whole token; the caller owns it and closes it. */
  feed: PriceFeed
  /**
   * `true`: dollar prices (and a dollar `minDeposit`) are converted to token units at the feed's
   * rate, rounded up, and the requirements follow the rate. `false`: the token is a dollar
   * (prices convert one to one, as without an oracle) and the feed only guards: a stale or
   * incomplete round, or one below the feed's `minAnswer`, refuses payment.
   * @default true
   */
  convert?: boolean
}

/**
 * Rate limits of priced routes; `false` turns a limit off. On-chain actions (deposits and
 * refunds the server sends) have their own limits in the payee (`onChainLimits`).
 */
export interface TollgateRateLimit {
  /** Paid calls (with a payment header) per client IP. @default DEFAULT_RATE_LIMIT_PER_IP */
  perIp?: RateLimitRule | false
  /** Unpaid requests (402s) per client IP. @default DEFAULT_RATE_LIMIT_UNPAID_PER_IP */
  unpaidPerIp?: RateLimitRule | false
  /** Accepted vouchers per payer address. @default DEFAULT_RATE_LIMIT_PER_PAYER */
  perPayer?: RateLimitRule | false
}

/** Options of the `tollgate` Fastify plugin: the payment terms, and HTTP's own. */
export interface TollgateOptions extends PaymentTerms {
  /** Smallest deposit advertised on every priced route. @default the route's price times DEFAULT_MIN_DEPOSIT_MULTIPLIER */
  minDeposit?: Price
  /** Largest `PAYMENT-SIGNATURE` / `X-PAYMENT` header accepted. @default MAX_PAYMENT_HEADER_BYTES */
  maxPaymentHeaderBytes?: number
  /** @default { perIp: DEFAULT_RATE_LIMIT_PER_IP, perPayer: DEFAULT_RATE_LIMIT_PER_PAYER } */
  /**
   * An ioredis client: rate limits are counted in Redis, shared by every instance of a gateway
   * that runs several (createTollgate passes its Redis store's). @default counted in this process
   */
  rateLimitRedis?: Redis
  rateLimit?: TollgateRateLimit | false
  /**
   * Submits `deposit` payloads (the server pays their gas) and `refund` payloads on chain; its
   * account must be the receiver or the receiver authorizer for refunds. Without one, such
   * payloads are refused with `invalid_batch_settlement_evm_payload_type`.
   */
  escrowWriter?: EscrowWriter
  /**
   * Takes x402 `exact` payments (one EIP-3009 transfer per request, served once mined) on the
   * routes that accept them. Each is an on-chain transaction whose gas this server's account (or
   * its facilitator) pays, so routes accept `exact` only when asked: `config.exact` per route, or
   * {@link exactByDefault}.
   */
  exactPayee?: ExactPayee
  /** Whether priced routes without `config.exact` accept `exact` too. @default false */
  exactByDefault?: boolean
  /**
   * Where paid requests, revenue, refusals and payment latency are counted; `false` counts
   * nothing (refusals are still logged). `createTollgate`'s `tg.http` passes its own.
   * @default false
   */
  metrics?: TollgateMetrics | false
  /**
   * Prices dollar routes through the token's price feed. A route's 402 and payment checks use
   * the requirements in force; while the feed is stale (`tollgate_price_stale`) or below its
   * floor (`tollgate_price_below_peg`) the route refuses payment (503). Needs `asset.decimals`.
   */
  oracle?: TollgateOracle
}

/** Options after validation, with defaults applied. */
export interface ResolvedOptions extends ResolvedTerms {
  /** In token units; `undefined` when not configured or when {@link minDepositDollars} is set. */
  readonly minDeposit: bigint | undefined
  /** A dollar `minDeposit` under a converting oracle: converted at the rate, with the price. */
  readonly minDepositDollars: Dollars | undefined
  readonly oracle: Readonly<Required<TollgateOracle>> | undefined
  readonly maxPaymentHeaderBytes: number
  readonly perIp: RateLimitRule | undefined
  readonly unpaidPerIp: RateLimitRule | undefined
  readonly perPayer: RateLimitRule | undefined
  readonly rateLimitRedis: Redis | undefined
  readonly escrowWriter: EscrowWriter | undefined
  readonly exactPayee: ExactPayee | undefined
  readonly exactByDefault: boolean
}

/**
 * Validates the plugin's options at registration (fail fast, before any route is priced).
 *
 * @throws TollgateError `tollgate_invalid_config` naming the option that is wrong.
 */
export function resolveOptions(options: TollgateOptions): ResolvedOptions {
  const terms = resolveTerms(options, ['decide', 'commit', 'release'])
  const maxPaymentHeaderBytes = options.maxPaymentHeaderBytes ?? MAX_PAYMENT_HEADER_BYTES
  if (!Number.isSafeInteger(maxPaymentHeaderBytes) || maxPaymentHeaderBytes <= 0) {
    invalid(`maxPaymentHeaderBytes ${String(maxPaymentHeaderBytes)} is not a positive integer.`)
  }
  const oracle = resolveOracle(options.oracle, terms.asset.decimals)
  const minDepositDollars = oracle?.convert ? parseDollars(options.minDeposit) : undefined
  if (minDepositDollars && minDepositDollars.numerator === 0n) invalid('minDeposit is zero.')
  const minDeposit =
    options.minDeposit === undefined || minDepositDollars
      ? undefined
      : parsePrice(options.minDeposit, terms.asset.decimals, 'minDeposit')
  if (options.escrowWriter !== undefined && typeof options.escrowWriter?.deposit !== 'function') {
    invalid('escrowWriter must be an EscrowWriter (escrowWriter()).')
  }

  if (options.exactPayee !== undefined && typeof options.exactPayee?.verify !== 'function') {
    invalid('exactPayee must be an ExactPayee (openExactPayee()).')
  }
  const exactByDefault = options.exactByDefault ?? false
  if (typeof exactByDefault !== 'boolean') invalid('exactByDefault must be a boolean.')
  if (exactByDefault && options.exactPayee === undefined) {
    invalid('exactByDefault needs an exactPayee.')
  }

  const rateLimit = options.rateLimit ?? {}
  if (rateLimit !== false && (typeof rateLimit !== 'object' || rateLimit === null)) {
    invalid('rateLimit must be false or { perIp?, unpaidPerIp?, perPayer? }.')
  }
  const limits: TollgateRateLimit =
    rateLimit === false ? { perIp: false, unpaidPerIp: false, perPayer: false } : rateLimit
  for (const key of Object.keys(limits)) {
    if (!RATE_LIMIT_KEYS.has(key)) {
      invalid(`rateLimit.${key} is not a rate limit (perIp, unpaidPerIp, perPayer).`)
    }
  }
  return {
    ...terms,
    minDeposit,
    minDepositDollars,
    oracle,
    maxPaymentHeaderBytes,
    perIp: rule(limits.perIp, DEFAULT_RATE_LIMIT_PER_IP, 'rateLimit.perIp'),
    unpaidPerIp: rule(
      limits.unpaidPerIp,
      DEFAULT_RATE_LIMIT_UNPAID_PER_IP,
      'rateLimit.unpaidPerIp',
    ),
    perPayer: rule(limits.perPayer, DEFAULT_RATE_LIMIT_PER_PAYER, 'rateLimit.perPayer'),
    rateLimitRedis: options.rateLimitRedis,
    escrowWriter: options.escrowWriter,
    exactPayee: options.exactPayee,
    exactByDefault,
  }
}

/**
 * Validates an `oracle` option (of the HTTP or WebSocket plugin, or of paid MCP tools).
 *
 * @throws TollgateError `tollgate_invalid_config` for a malformed oracle, or one without `decimals`.
 */
export function resolveOracle(
  oracle: TollgateOracle | undefined,
  decimals: number | undefined,
): Readonly<Required<TollgateOracle>> | undefined {
  if (oracle === undefined) return undefined
  if (typeof oracle !== 'object' || oracle === null) invalid('oracle must be { feed, convert? }.')
  const { feed, convert = true } = oracle
  if (typeof feed?.current !== 'function' || typeof feed.subscribe !== 'function') {
    invalid('oracle.feed must be an opened PriceFeed (watchPriceFeed()).')
  }
  if (typeof convert !== 'boolean') invalid('oracle.convert must be a boolean.')
  if (decimals === undefined) invalid('oracle needs asset.decimals to price in dollars.')
  return Object.freeze({ feed, convert })
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
