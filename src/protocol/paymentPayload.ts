import { MAX_UINT256, X402_VERSION } from './constants.js'
import type {
  BatchPayload,
  ChannelConfig,
  PaymentPayload,
  PaymentRequirements,
  ResourceInfo,
  SignedVoucher,
} from './types.js'
import { decimal } from './wire.js'

/** Parameters of {@link paymentPayload}. */
export type PaymentPayloadParameters = {
  /** The requirements being paid, exactly as the server sent them. */
  accepted: PaymentRequirements
  payload: BatchPayload
  resource?: ResourceInfo
  extensions?: Record<string, unknown>
}

/**
 * Builds a `PaymentPayload` for the payer's side: the batch-settlement `payload` in wire form
 * (decimal strings, the ERC-3009 authorization under `deposit.authorization.erc3009Authorization`).
 * Send it with {@link encodeHeader} in `PAYMENT-SIGNATURE`; {@link decodePaymentPayload} inverts it.
 *
 * @returns `{ x402Version: 2, resource?, accepted, payload, extensions? }`
 * @throws TollgateError `tollgate_internal` when an amount is outside its Solidity type.
 * @example
 * const header = encodeHeader(paymentPayload({ accepted, payload: { type: 'voucher', channelConfig, voucher } }))
 */
export function paymentPayload(parameters: PaymentPayloadParameters): PaymentPayload {
  const { accepted, payload, resource, extensions } = parameters
  return {
    x402Version: X402_VERSION,
    ...(resource === undefined ? {} : { resource }),
    accepted,
    payload: wirePayload(payload),
    ...(extensions === undefined ? {} : { extensions }),
  }
}

function wirePayload(payload: BatchPayload): Record<string, unknown> {
  const channelConfig = wireChannelConfig(payload.channelConfig)
  const voucher = wireVoucher(payload.voucher)
  switch (payload.type) {
    case 'voucher':
      return { type: payload.type, channelConfig, voucher }
    case 'refund':
      return {
        type: payload.type,
        channelConfig,
        voucher,
        ...(payload.amount === undefined ? {} : { amount: decimal(payload.amount, 'amount') }),
      }
    case 'deposit': {
      const { amount, erc3009Authorization: authorization } = payload.deposit
      return {
        type: payload.type,
        channelConfig,
        voucher,
        deposit: {
          amount: decimal(amount, 'deposit.amount'),
          authorization: {
            erc3009Authorization: {
              validAfter: decimal(authorization.validAfter, 'validAfter', MAX_UINT256),
              validBefore: decimal(authorization.validBefore, 'validBefore', MAX_UINT256),
              salt: authorization.salt,
              signature: authorization.signature,
            },
          },
        },
      }
    }
  }
}

function wireChannelConfig(config: ChannelConfig): Record<string, unknown> {
  return {
    payer: config.payer,
    payerAuthorizer: config.payerAuthorizer,
    receiver: config.receiver,
    receiverAuthorizer: config.receiverAuthorizer,
    token: config.token,
    withdrawDelay: config.withdrawDelay,
    salt: config.salt,
  }
}

function wireVoucher(voucher: SignedVoucher): Record<string, unknown> {
  return {
    channelId: voucher.channelId,
    maxClaimableAmount: decimal(voucher.maxClaimableAmount, 'maxClaimableAmount'),
    signature: voucher.signature,
  }
}
