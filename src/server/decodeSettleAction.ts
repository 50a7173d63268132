import type { Address, Hex } from 'viem'
import { accept, type ErrorCode, type Result, reject } from '../errors/index.js'
import {
  ECDSA_SIGNATURE_BYTES,
  MAX_CONTRACT_SIGNATURE_BYTES,
  MAX_UINT128,
  MAX_UINT256,
  ZERO_ADDRESS,
} from '../protocol/constants.js'
import { decodeChannelConfig, decodeVoucher } from '../protocol/decodePaymentPayload.js'
import { isRecord, parseAddress, parseHexBytes, parseUint } from '../protocol/parse.js'
import type { ChannelConfig, SignedVoucher } from '../protocol/types.js'

const BS = 'invalid_batch_settlement_evm_'

/** One row of a `claimWithSignature` call: a voucher, its signature, the new total claimed. */
export type VoucherClaim = {
  readonly channel: ChannelConfig
  readonly maxClaimableAmount: bigint
  readonly signature: Hex
  readonly totalClaimed: bigint
}

/** `payload.type: "claim"`: rows to claim, and the receiver authorizer's `ClaimBatch` signature. */
export type ClaimAction = {
  readonly type: 'claim'
  readonly claims: readonly VoucherClaim[]
  readonly claimAuthorizerSignature: Hex | undefined
}

/** `payload.type: "settle"`: move what `receiver` claimed in `token` out of the escrow. */
export type SettleAction = {
  readonly type: 'settle'
  readonly receiver: Address
  readonly token: Address
}

/**
 * `payload.type: "refund"` as a stock server enriches it for `/settle`: the payer's zero-charge
 * voucher, the amount and nonce of the refund, the claims that land first, and the receiver
 * authorizer's `Refund` and `ClaimBatch` signatures.
 */
export type RefundAction = {
  readonly type: 'refund'
  readonly channelConfig: ChannelConfig
  readonly voucher: SignedVoucher
  readonly amount: bigint
  readonly refundNonce: bigint
  readonly claims: readonly VoucherClaim[]
  readonly refundAuthorizerSignature: Hex | undefined
  readonly claimAuthorizerSignature: Hex | undefined
}

/** What a `/settle` of batch-settlement carries besides a deposit. */
export type FacilitatorSettleAction = ClaimAction | SettleAction | RefundAction

/** Most rows one claim may carry. */
export const MAX_CLAIM_ROWS = 1000

/**
 * Decodes the settle actions of batch-settlement that a stock server's channel manager (and its
 * refund path) sends a facilitator's `/settle`: `claim`, `settle` and the enriched `refund`
 * (x402 `@x402/evm` 2.27.0 `BatchSettlementFacilitatorSettlePayload`). `undefined` for a
 * `payload.type` that is none of them. Addresses come out lowercase, amounts as bigints.
 *
 * @returns The action, a rejection (`claim_payload`, `settle_payload`, `refund_payload`,
 *   `refund_amount_invalid`, `voucher_payload`, `missing_channel`, `invalid_payload`), or undefined.
 * @example
 * const action = decodeSettleAction(paymentPayload.payload)
 */
export function decodeSettleAction(payload: unknown): Result<FacilitatorSettleAction> | undefined {
  if (!isRecord(payload)) return undefined
  if (payload.type === 'claim' && 'claims' in payload) {
    const claims = decodeClaims(payload.claims, `${BS}claim_payload`)
    if (!claims.ok) return claims
    const signature = optionalSignature(payload.claimAuthorizerSignature)
    if (signature === null) return reject(`${BS}claim_payload`, 'claimAuthorizerSignature')
    return accept({ type: 'claim', claims: claims.value, claimAuthorizerSignature: signature })
  }
  if (payload.type === 'settle' && 'receiver' in payload && 'token' in payload) {
    const receiver = parseAddress(payload.receiver)
    const token = parseAddress(payload.token)
    if (receiver === undefined || token === undefined) {
      return reject(`${BS}settle_payload`, 'receiver or token is not an address.')
    }
    return accept({ type: 'settle', receiver, token })
  }
  if (
    payload.type === 'refund' &&
    'amount' in payload &&
    'refundNonce' in payload &&
    'claims' in payload
  ) {
    return decodeRefund(payload)
  }
  return undefined
}

function decodeRefund(payload: Record<string, unknown>): Result<RefundAction> {
  const channelConfig = decodeChannelConfig(payload.channelConfig)
  if (!channelConfig.ok) return channelConfig
  const voucher = decodeVoucher(payload.voucher, channelConfig.value.payerAuthorizer)
  if (voucher === undefined) return reject(`${BS}voucher_payload`)
  const amount = parseUint(payload.amount, MAX_UINT128)
  if (amount === undefined || amount === 0n) {
    return reject(`${BS}refund_amount_invalid`, 'amount must lie in [1, 2^128 - 1].')
  }
  const refundNonce = parseUint(payload.refundNonce, MAX_UINT256)
  if (refundNonce === undefined) return reject(`${BS}refund_payload`, 'refundNonce')
  const claims = decodeClaims(payload.claims, `${BS}refund_payload`)
  if (!claims.ok) return claims
  const refundAuthorizerSignature = optionalSignature(payload.refundAuthorizerSignature)
  const claimAuthorizerSignature = optionalSignature(payload.claimAuthorizerSignature)
  if (refundAuthorizerSignature === null || claimAuthorizerSignature === null) {
    return reject(`${BS}refund_payload`, 'an authorizer signature is malformed.')
  }
  return accept({
    type: 'refund',
    channelConfig: channelConfig.value,
    voucher,
    amount,
    refundNonce,
    claims: claims.value,
    refundAuthorizerSignature,
    claimAuthorizerSignature,
  })
}

function decodeClaims(value: unknown, code: ErrorCode): Result<VoucherClaim[]> {
  if (!Array.isArray(value) || value.length > MAX_CLAIM_ROWS) {
    return reject(code, `claims is not an array of at most ${MAX_CLAIM_ROWS} rows.`)
  }
  const claims: VoucherClaim[] = []
  for (const [i, row] of value.entries()) {
    if (!isRecord(row) || !isRecord(row.voucher)) return reject(code, `claims[${i}]`)
    const channel = decodeChannelConfig(row.voucher.channel)
    if (!channel.ok) return channel
    const maxClaimableAmount = parseUint(row.voucher.maxClaimableAmount, MAX_UINT128)
    const maxBytes =
      channel.value.payerAuthorizer === ZERO_ADDRESS
        ? MAX_CONTRACT_SIGNATURE_BYTES
        : ECDSA_SIGNATURE_BYTES
    const signature = parseHexBytes(row.signature, ECDSA_SIGNATURE_BYTES, maxBytes)
    const totalClaimed = parseUint(row.totalClaimed, MAX_UINT128)
    if (maxClaimableAmount === undefined || signature === undefined || totalClaimed === undefined) {
      return reject(code, `claims[${i}]`)
    }
    if (totalClaimed > maxClaimableAmount) {
      return reject(code, `claims[${i}] claims more than its voucher.`)
    }
    claims.push({ channel: channel.value, maxClaimableAmount, signature, totalClaimed })
  }
  return accept(claims)
}

/** An absent signature is `undefined`; a malformed one `null`. */
function optionalSignature(value: unknown): Hex | undefined | null {
  if (value === undefined) return undefined
  return parseHexBytes(value, ECDSA_SIGNATURE_BYTES, MAX_CONTRACT_SIGNATURE_BYTES) ?? null
}
