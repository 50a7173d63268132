import type { Address, Hex } from 'viem'
import { describe, type ErrorCode } from '../errors/index.js'
import type { Network, SettleResponse } from './types.js'

/** Parameters of {@link failureResponse}. */
export type FailureResponseParameters = {
  network: Network
  payer?: Address
  /** Hash of a transaction that was sent and failed, if any. */
  transaction?: Hex
  /** Human-readable detail. @default the code's description */
  message?: string
}

/**
 * Builds the `SettleResponse` of a failed payment.
 *
 * @param code The stable error code, sent as `errorReason`.
 * @returns `{ success: false, errorReason, errorMessage, payer?, transaction, network }`
 * @example
 * const response = failureResponse(rejection.code, { network, message: rejection.message })
 */
export function failureResponse(
  code: ErrorCode,
  parameters: FailureResponseParameters,
): SettleResponse {
  const { network, payer, transaction, message } = parameters
  return {
    success: false,
    errorReason: code,
    errorMessage: message ?? describe(code),
    ...(payer === undefined ? {} : { payer }),
    transaction: transaction ?? '',
    network,
  }
}
