import type { Address } from 'viem'
import { accept, type ErrorCode, type Rejection, type Result, reject } from '../errors/index.js'
import {
  ECDSA_SIGNATURE_BYTES,
  MAX_CONTRACT_SIGNATURE_BYTES,
  MAX_UINT128,
  MAX_UINT256,
  MAX_WITHDRAW_DELAY,
  MIN_WITHDRAW_DELAY,
  SCHEME,
  X402_VERSION,
  ZERO_ADDRESS,
} from './constants.js'
import {
  isDecimal,
  isRecord,
  isResourceInfo,
  parseAddress,
  parseBytes32,
  parseHexBytes,
  parseNetwork,
  parseUint,
  parseUintNumber,
} from './parse.js'
import type {
  BatchPayload,
  ChannelConfig,
  DecodedPayment,
  DepositPayload,
  Erc3009Authorization,
  PaymentRequirements,
  ResourceInfo,
  SignedVoucher,
} from './types.js'

const BS = 'invalid_batch_settlement_evm_'

/**
 * Validates a JSON value as an x402 v2 `PaymentPayload` of the batch-settlement scheme and
 * decodes its `payload`. Used as is by the WebSocket transport, which receives the object
 * inside a frame; {@link decodePaymentHeader} wraps it for HTTP headers.
 *
 * Addresses and hex come out lowercase, amounts as bigints. Unknown keys are ignored. The
 * `accepted` object is checked for shape and returned as received, to be compared with the
 * requirements this server issues ({@link requirementsEqual}). Signatures are checked for
 * length only; cryptographic checks belong to `verify`.
 *
 * @param value A JSON value, as `JSON.parse` returns.
 * @returns The decoded payment, or a rejection: `invalid_payload`, `invalid_x402_version`,
 *   `invalid_payment_requirements`, or an `invalid_batch_settlement_evm_*` code (`scheme`,
 *   `payload_type`, `missing_channel`, `withdraw_delay_out_of_range`, `voucher_payload`,
 *   `deposit_payload`, `erc3009_authorization_required`, `refund_payload`, `refund_amount_invalid`).
 * @example
 * const decoded = decodePaymentPayload(frame.payment)
 * if (!decoded.ok) return sendError(decoded.code)
 */
export function decodePaymentPayload(value: unknown): Result<DecodedPayment> {
  if (!isRecord(value)) return reject('invalid_payload', 'The payment payload is not an object.')
  if (value.x402Version !== X402_VERSION) return reject('invalid_x402_version')

  const problem = checkEnvelope(value, SCHEME, `${BS}scheme`)
  if (problem !== undefined) return problem
  const resource = value.resource as ResourceInfo | undefined
  const extensions = value.extensions as Record<string, unknown> | undefined

  const decoded = decodeBatchPayload(value.payload as Record<string, unknown>)
  if (!decoded.ok) return decoded
  return accept({
    x402Version: X402_VERSION,
    accepted: value.accepted as PaymentRequirements,
    ...(resource === undefined ? {} : { resource }),
    ...(extensions === undefined ? {} : { extensions }),
    payload: decoded.value,
  })
}

/**
 * Shape of a `PaymentPayload` of `scheme` around its `payload`: `accepted` requirements of that
 * scheme, an optional `resource` and `extensions`, and an object `payload`. `undefined` when well
 * formed; the version is checked by the caller.
 */
export function checkEnvelope(
  value: Record<string, unknown>,
  scheme: string,
  schemeCode: ErrorCode,
): Rejection | undefined {
  const problem = checkRequirements(value.accepted, scheme, schemeCode)
  if (problem !== undefined) return problem
  const { resource, extensions, payload } = value
  if (resource !== undefined && !isResourceInfo(resource)) {
    return reject('invalid_payload', 'resource is not a ResourceInfo.')
  }
  if (extensions !== undefined && !isRecord(extensions)) {
    return reject('invalid_payload', 'extensions is not an object.')
  }
  if (!isRecord(payload)) return reject('invalid_payload', 'payload is not an object.')
  return undefined
}

/** Shape of `accepted` requirements of `scheme`; `undefined` when well formed. */
function checkRequirements(
  value: unknown,
  scheme: string,
  schemeCode: ErrorCode,
): Rejection | undefined {
  if (!isRecord(value)) return reject('invalid_payment_requirements', 'accepted is not an object.')
  if (value.scheme !== scheme) return reject(schemeCode)
  if (parseNetwork(value.network) === undefined) {
    return reject('invalid_payment_requirements', 'accepted.network is not eip155:<chainId>.')
  }
  if (parseUint(value.amount, MAX_UINT128) === undefined) {
    return reject('invalid_payment_requirements', 'accepted.amount is not a uint128 decimal.')
  }
  if (parseAddress(value.asset) === undefined || parseAddress(value.payTo) === undefined) {
    return reject('invalid_payment_requirements', 'accepted.asset or payTo is not an address.')
  }
  const timeout = value.maxTimeoutSeconds
  if (parseUintNumber(timeout, Number.MAX_SAFE_INTEGER) === undefined || timeout === 0) {
    return reject('invalid_payment_requirements', 'accepted.maxTimeoutSeconds is not positive.')
  }
  if (value.extra !== undefined && !isRecord(value.extra)) {
    return reject('invalid_payment_requirements', 'accepted.extra is not an object.')
  }
  return undefined
}

function decodeBatchPayload(payload: Record<string, unknown>): Result<BatchPayload> {
  const { type } = payload
  if (type !== 'voucher' && type !== 'deposit' && type !== 'refund') {
    return reject(`${BS}payload_type`, 'payload.type is not deposit, voucher or refund.')
  }
  const channelConfig = decodeChannelConfig(payload.channelConfig)
  if (!channelConfig.ok) return channelConfig
  const voucher = decodeVoucher(payload.voucher, channelConfig.value.payerAuthorizer)
  if (voucher === undefined) return reject(`${BS}voucher_payload`)

  if (type === 'voucher') return accept({ type, channelConfig: channelConfig.value, voucher })
  if (type === 'refund') {
    const { amount } = payload
    if (amount === undefined) return accept({ type, channelConfig: channelConfig.value, voucher })
    if (typeof amount !== 'string' || !isDecimal(amount)) {
      return reject(`${BS}refund_payload`, 'amount is not a decimal string.')
    }
    const refund = parseUint(amount, MAX_UINT128)
    if (refund === undefined || refund === 0n) {
      return reject(`${BS}refund_amount_invalid`, 'amount must lie in [1, 2^128 - 1].')
    }
    return accept({ type, channelConfig: channelConfig.value, voucher, amount: refund })
  }
  const deposit = decodeDeposit(payload.deposit)
  if (!deposit.ok) return deposit
  return accept({ type, channelConfig: channelConfig.value, voucher, deposit: deposit.value })
}

/** A `channelConfig` object: addresses lowercased, `withdrawDelay` in range, or the code refusing it. */
export function decodeChannelConfig(value: unknown): Result<ChannelConfig> {
  if (!isRecord(value)) return reject(`${BS}missing_channel`)
  const payer = parseAddress(value.payer)
  const payerAuthorizer = parseAddress(value.payerAuthorizer)
  const receiver = parseAddress(value.receiver)
  const receiverAuthorizer = parseAddress(value.receiverAuthorizer)
  const token = parseAddress(value.token)
  if (
    payer === undefined ||
    payerAuthorizer === undefined ||
    receiver === undefined ||
    receiverAuthorizer === undefined ||
    token === undefined
  ) {
    return reject('invalid_payload', 'A channelConfig address is not 20-byte hex.')
  }
  const salt = parseBytes32(value.salt)
  if (salt === undefined) return reject('invalid_payload', 'channelConfig.salt is not 32-byte hex.')
  const { withdrawDelay } = value
  if (typeof withdrawDelay !== 'number' || !Number.isSafeInteger(withdrawDelay)) {
    return reject('invalid_payload', 'channelConfig.withdrawDelay is not an integer.')
  }
  if (withdrawDelay < MIN_WITHDRAW_DELAY || withdrawDelay > MAX_WITHDRAW_DELAY) {
    return reject(`${BS}withdraw_delay_out_of_range`)
  }
  return accept({
    payer,
    payerAuthorizer,
    receiver,
    receiverAuthorizer,
    token,
    withdrawDelay,
    salt,
  })
}

/**
 * A voucher signed by a non-zero `payerAuthorizer` is plain ECDSA (65 bytes). With a zero
 * authorizer the payer signs, possibly a smart wallet (EIP-1271, EIP-6492): 65 to 4096 bytes.
 */
export function decodeVoucher(value: unknown, payerAuthorizer: Address): SignedVoucher | undefined {
  if (!isRecord(value)) return undefined
  const channelId = parseBytes32(value.channelId)
  const maxClaimableAmount = parseUint(value.maxClaimableAmount, MAX_UINT128)
  const maxBytes =
    payerAuthorizer === ZERO_ADDRESS ? MAX_CONTRACT_SIGNATURE_BYTES : ECDSA_SIGNATURE_BYTES
  const signature = parseHexBytes(value.signature, ECDSA_SIGNATURE_BYTES, maxBytes)
  if (channelId === undefined || maxClaimableAmount === undefined || signature === undefined) {
    return undefined
  }
  return { channelId, maxClaimableAmount, signature }
}

/** Only ERC-3009 deposits are collected; a Permit2 authorization is refused by name. */
function decodeDeposit(value: unknown): Result<DepositPayload['deposit']> {
  if (!isRecord(value)) return reject(`${BS}deposit_payload`, 'deposit is not an object.')
  const amount = parseUint(value.amount, MAX_UINT128)
  if (amount === undefined || amount === 0n) {
    return reject(`${BS}deposit_payload`, 'deposit.amount must lie in [1, 2^128 - 1].')
  }
  const { authorization } = value
  if (!isRecord(authorization)) {
    return reject(`${BS}deposit_payload`, 'deposit.authorization is not an object.')
  }
  const { erc3009Authorization, permit2Authorization } = authorization
  if (erc3009Authorization === undefined) {
    return reject(
      `${BS}erc3009_authorization_required`,
      permit2Authorization === undefined ? undefined : 'Permit2 deposits are not supported.',
    )
  }
  if (permit2Authorization !== undefined) {
    return reject(`${BS}deposit_payload`, 'deposit carries two authorizations.')
  }
  const erc3009 = decodeErc3009Authorization(erc3009Authorization)
  if (erc3009 === undefined) {
    return reject(`${BS}deposit_payload`, 'erc3009Authorization is malformed.')
  }
  return accept({ amount, erc3009Authorization: erc3009 })
}

/** The payer may be a smart wallet: USDC accepts EIP-1271 signatures for ERC-3009. */
function decodeErc3009Authorization(value: unknown): Erc3009Authorization | undefined {
  if (!isRecord(value)) return undefined
  const validAfter = parseUint(value.validAfter, MAX_UINT256)
  const validBefore = parseUint(value.validBefore, MAX_UINT256)
  const salt = parseBytes32(value.salt)
  const signature = parseHexBytes(
    value.signature,
    ECDSA_SIGNATURE_BYTES,
    MAX_CONTRACT_SIGNATURE_BYTES,
  )
  if (
    validAfter === undefined ||
    validBefore === undefined ||
    salt === undefined ||
    signature === undefined
  ) {
    return undefined
  }
  return { validAfter, validBefore, salt, signature }
}
