import { accept, type Result, reject } from '../errors/index.js'
import {
  MAX_UINT128,
  MAX_UINT256,
  MAX_WITHDRAW_DELAY,
  MIN_WITHDRAW_DELAY,
  SCHEME,
  X402_VERSION,
} from './constants.js'
import { parseChannelState } from './decodeChannelState.js'
import { parseVoucherState } from './decodeVoucherState.js'
import { decodeHeaderJson } from './headerJson.js'
import { type HeaderOptions, headerLimit } from './headerLimit.js'
import {
  isOptionalString,
  isRecord,
  isResourceInfo,
  parseAddress,
  parseCaip2,
  parseNetwork,
  parseUint,
  parseUintNumber,
} from './parse.js'
import type { PaymentRequired } from './types.js'

/**
 * Decodes a `PAYMENT-REQUIRED` header, on the payer's side: size limit first, strict base64,
 * UTF-8 JSON, then {@link decodePaymentRequiredObject}. Never throws on any header value.
 *
 * @param header The header value.
 * @param options `maxBytes`, the size limit.
 * @returns The validated `PaymentRequired`, or `tollgate_payment_header_too_large`,
 *   `invalid_x402_version`, or `tollgate_invalid_payment_required`.
 * @throws TollgateError `tollgate_invalid_config` when `maxBytes` is not a positive integer.
 * @example
 * const required = decodePaymentRequired(response.headers.get('PAYMENT-REQUIRED') ?? undefined)
 */
export function decodePaymentRequired(
  header: string | undefined,
  options?: HeaderOptions,
): Result<PaymentRequired> {
  const json = decodeHeaderJson(header, headerLimit(options), 'tollgate_invalid_payment_required')
  return json.ok ? decodePaymentRequiredObject(json.value) : json
}

/**
 * Validates a JSON value as an x402 v2 `PaymentRequired` (a 402 body, or a WebSocket frame).
 * Entries of any scheme are checked for the generic shape; batch-settlement entries also for
 * their addresses, uint128 amount and `extra` (receiverAuthorizer, withdrawDelay in range, the
 * token's EIP-712 name and version, and any `channelState`/`voucherState` of a corrective 402).
 *
 * @param value A JSON value.
 * @returns The value as received, typed, or `invalid_x402_version` or `tollgate_invalid_payment_required`.
 * @example
 * const required = decodePaymentRequiredObject(await response.json())
 */
export function decodePaymentRequiredObject(value: unknown): Result<PaymentRequired> {
  if (!isRecord(value)) return malformed('it is not an object')
  if (value.x402Version !== X402_VERSION) return reject('invalid_x402_version')
  const { error, resource, accepts, extensions } = value
  if (!isOptionalString(error)) return malformed('error is not a string')
  if (!isResourceInfo(resource)) return malformed('resource is not a ResourceInfo')
  if (extensions !== undefined && !isRecord(extensions))
    return malformed('extensions is not an object')
  if (!Array.isArray(accepts)) return malformed('accepts is not an array')
  for (let i = 0; i < accepts.length; i++) {
    const problem = checkRequirements(accepts[i])
    if (problem !== undefined) return malformed(`accepts[${i}]: ${problem}`)
  }
  return accept(value as PaymentRequired)
}

/** What is wrong with one entry of `accepts`, or `undefined`. */
function checkRequirements(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not an object'
  const { scheme, network, amount, asset, payTo, maxTimeoutSeconds, extra } = value
  if (typeof scheme !== 'string') return 'scheme is not a string'
  if (parseCaip2(network) === undefined) return 'network is not CAIP-2'
  if (parseUint(amount, MAX_UINT256) === undefined) return 'amount is not a decimal'
  if (typeof asset !== 'string' || typeof payTo !== 'string')
    return 'asset or payTo is not a string'
  if (parseUintNumber(maxTimeoutSeconds, Number.MAX_SAFE_INTEGER) === undefined) {
    return 'maxTimeoutSeconds is not an integer'
  }
  if (extra !== undefined && !isRecord(extra)) return 'extra is not an object'
  if (scheme !== SCHEME) return undefined

  if (parseNetwork(network) === undefined) return 'network is not eip155:<chainId>'
  if (parseUint(amount, MAX_UINT128) === undefined) return 'amount is not a uint128'
  if (parseAddress(asset) === undefined || parseAddress(payTo) === undefined) {
    return 'asset or payTo is not an address'
  }
  if (!isRecord(extra)) return 'extra is missing'
  return checkBatchExtra(extra)
}

function checkBatchExtra(extra: Record<string, unknown>): string | undefined {
  const { receiverAuthorizer, withdrawDelay, name, version, assetTransferMethod } = extra
  const { minDeposit, channelState, voucherState } = extra
  if (parseAddress(receiverAuthorizer) === undefined)
    return 'extra.receiverAuthorizer is not an address'
  const delay = parseUintNumber(withdrawDelay, MAX_WITHDRAW_DELAY)
  if (delay === undefined || delay < MIN_WITHDRAW_DELAY)
    return 'extra.withdrawDelay is out of range'
  if (typeof name !== 'string' || name === '' || typeof version !== 'string' || version === '') {
    return 'extra.name or extra.version is missing'
  }
  if (
    assetTransferMethod !== undefined &&
    assetTransferMethod !== 'eip3009' &&
    assetTransferMethod !== 'permit2'
  ) {
    return 'extra.assetTransferMethod is unknown'
  }
  if (minDeposit !== undefined && parseUint(minDeposit, MAX_UINT128) === undefined) {
    return 'extra.minDeposit is not a uint128'
  }
  if (channelState !== undefined && parseChannelState(channelState) === undefined) {
    return 'extra.channelState is malformed'
  }
  if (voucherState !== undefined && parseVoucherState(voucherState) === undefined) {
    return 'extra.voucherState is malformed'
  }
  return undefined
}

function malformed(detail: string) {
  return reject('tollgate_invalid_payment_required', `${detail}.`)
}
