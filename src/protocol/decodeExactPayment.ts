import { accept, type Result, reject } from '../errors/index.js'
import {
  ECDSA_SIGNATURE_BYTES,
  EXACT_SCHEME,
  MAX_CONTRACT_SIGNATURE_BYTES,
  MAX_UINT256,
  X402_VERSION,
} from './constants.js'
import { checkEnvelope } from './decodePaymentPayload.js'
import { isRecord, parseAddress, parseBytes32, parseHexBytes, parseUint } from './parse.js'
import type {
  DecodedExactPayment,
  ExactPayload,
  PaymentRequirements,
  ResourceInfo,
} from './types.js'

/**
 * Validates a JSON value as an x402 v2 `PaymentPayload` of the exact scheme (EIP-3009) and
 * decodes its `payload: { signature, authorization: { from, to, value, validAfter, validBefore, nonce } }`.
 * Addresses and hex come out lowercase, amounts as bigints; the signature is checked for length
 * only (cryptographic checks belong to `verify`).
 *
 * @returns The decoded payment, or a rejection: `invalid_payload`, `invalid_x402_version`,
 *   `invalid_payment_requirements`, `invalid_exact_evm_scheme`.
 * @example
 * const decoded = decodeExactPayment(JSON.parse(json))
 */
export function decodeExactPayment(value: unknown): Result<DecodedExactPayment> {
  if (!isRecord(value)) return reject('invalid_payload', 'The payment payload is not an object.')
  if (value.x402Version !== X402_VERSION) return reject('invalid_x402_version')
  const problem = checkEnvelope(value, EXACT_SCHEME, 'invalid_exact_evm_scheme')
  if (problem !== undefined) return problem
  const payload = decodeExactPayload(value.payload as Record<string, unknown>)
  if (payload === undefined) {
    return reject('invalid_payload', 'payload is not { signature, authorization }.')
  }
  const resource = value.resource as ResourceInfo | undefined
  const extensions = value.extensions as Record<string, unknown> | undefined
  return accept({
    x402Version: X402_VERSION,
    accepted: value.accepted as PaymentRequirements,
    ...(resource === undefined ? {} : { resource }),
    ...(extensions === undefined ? {} : { extensions }),
    payload,
  })
}

/** The payer may be a smart wallet (EIP-1271): 65 to 4096 signature bytes. */
function decodeExactPayload(payload: Record<string, unknown>): ExactPayload | undefined {
  const { authorization } = payload
  const signature = parseHexBytes(
    payload.signature,
    ECDSA_SIGNATURE_BYTES,
    MAX_CONTRACT_SIGNATURE_BYTES,
  )
  if (signature === undefined || !isRecord(authorization)) return undefined
  const from = parseAddress(authorization.from)
  const to = parseAddress(authorization.to)
  const value = parseUint(authorization.value, MAX_UINT256)
  const validAfter = parseUint(authorization.validAfter, MAX_UINT256)
  const validBefore = parseUint(authorization.validBefore, MAX_UINT256)
  const nonce = parseBytes32(authorization.nonce)
  if (
    from === undefined ||
    to === undefined ||
    value === undefined ||
    validAfter === undefined ||
    validBefore === undefined ||
    nonce === undefined
  ) {
    return undefined
  }
  return { signature, authorization: { from, to, value, validAfter, validBefore, nonce } }
}
