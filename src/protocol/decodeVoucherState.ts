import { accept, type Result, reject } from '../errors/index.js'
import { ECDSA_SIGNATURE_BYTES, MAX_CONTRACT_SIGNATURE_BYTES, MAX_UINT128 } from './constants.js'
import { isRecord, type Mutable, parseHexBytes, parseUint } from './parse.js'
import type { VoucherState } from './types.js'

/** Parses a wire `voucherState`: both fields optional, well formed when present. */
export function parseVoucherState(value: unknown): Partial<VoucherState> | undefined {
  if (!isRecord(value)) return undefined
  const { signedMaxClaimable, signature } = value
  const state: Mutable<Partial<VoucherState>> = {}
  if (signedMaxClaimable !== undefined) {
    state.signedMaxClaimable = parseUint(signedMaxClaimable, MAX_UINT128)
    if (state.signedMaxClaimable === undefined) return undefined
  }
  if (signature !== undefined) {
    state.signature = parseHexBytes(signature, ECDSA_SIGNATURE_BYTES, MAX_CONTRACT_SIGNATURE_BYTES)
    if (state.signature === undefined) return undefined
  }
  return state
}

/**
 * Decodes the `voucherState` a server puts in the `extra` of a corrective 402: the highest
 * voucher it holds. Verify `signature` with the payer's own key before adopting the figure.
 *
 * @param value The `voucherState` JSON value.
 * @returns The fields present, or `tollgate_invalid_payment_required` when one is malformed.
 * @example
 * const voucher = decodeVoucherState(requirements.extra?.voucherState)
 */
export function decodeVoucherState(value: unknown): Result<Partial<VoucherState>> {
  const state = parseVoucherState(value)
  return state === undefined
    ? reject('tollgate_invalid_payment_required', 'voucherState is malformed.')
    : accept(state)
}
