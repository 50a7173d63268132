export {
  type BuildExactRequirementsParameters,
  buildExactRequirements,
} from './buildExactRequirements.js'
export { type BuildRequirementsParameters, buildRequirements } from './buildRequirements.js'
export {
  CANONICAL_ADDRESSES,
  ECDSA_SIGNATURE_BYTES,
  EXACT_SCHEME,
  HEADERS,
  MAX_CONTRACT_SIGNATURE_BYTES,
  MAX_PAYMENT_HEADER_BYTES,
  MAX_UINT40,
  MAX_UINT128,
  MAX_UINT256,
  MAX_WITHDRAW_DELAY,
  MCP_META,
  MIN_WITHDRAW_DELAY,
  SCHEME,
  X402_VERSION,
  ZERO_ADDRESS,
} from './constants.js'
export { type CorrectiveRequiredParameters, correctiveRequired } from './correctiveRequired.js'
export { decodeChannelState } from './decodeChannelState.js'
export { decodeExactPayment } from './decodeExactPayment.js'
export { decodePaymentHeader } from './decodePaymentHeader.js'
export { decodePaymentPayload } from './decodePaymentPayload.js'
export { decodePaymentRequired, decodePaymentRequiredObject } from './decodePaymentRequired.js'
export { decodeSchemePayment, decodeSchemePaymentHeader } from './decodeSchemePayment.js'
export { decodeSettleResponse, decodeSettleResponseObject } from './decodeSettleResponse.js'
export { decodeVoucherState } from './decodeVoucherState.js'
export { type DepositReceiptParameters, depositReceipt } from './depositReceipt.js'
export { encodeHeader } from './encodeHeader.js'
export { exactPaymentPayload } from './exactPaymentPayload.js'
export { type ExactReceiptParameters, exactReceipt } from './exactReceipt.js'
export { type FailureResponseParameters, failureResponse } from './failureResponse.js'
export type { HeaderOptions } from './headerLimit.js'
export { type Dollars, type Price, parseDollars, parsePrice } from './parsePrice.js'
export { type PaymentPayloadParameters, paymentPayload } from './paymentPayload.js'
export { type PaymentRequiredParameters, paymentRequired } from './paymentRequired.js'
export {
  type PaymentToolResult,
  paymentRequiredOfResult,
  paymentRequiredResult,
} from './paymentRequiredResult.js'
export { type RefundReceiptParameters, refundReceipt } from './refundReceipt.js'
export { requirementsEqual } from './requirementsEqual.js'
export { type SupportedParameters, supported } from './supported.js'
export {
  encodeTickHeader,
  encodeTickReceipt,
  encodeTickWindowHeader,
  MAX_TICKS,
  parseTickHeader,
  parseTickReceipt,
  parseTickWindowHeader,
  TICK_HEADERS,
  TICK_WINDOW_TYPES,
  type TickCommitment,
  type TickPresentation,
  type TickReceipt,
  type TickWindowHeader,
  tickCommitmentDigest,
  tickDomain,
  tickDomainSeparator,
  tickLink,
} from './tickWire.js'
export type {
  AssetTransferMethod,
  BatchPayload,
  BatchRequirements,
  BatchSettlementExtra,
  BatchSettlementResponseExtra,
  ChannelConfig,
  ChannelState,
  DecodedExactPayment,
  DecodedPayment,
  DecodedSettleResponse,
  DepositPayload,
  Erc3009Authorization,
  ExactExtra,
  ExactPayload,
  ExactRequirements,
  FacilitatorRequest,
  Network,
  PaymentPayload,
  PaymentRequired,
  PaymentRequirements,
  RefundPayload,
  ResourceInfo,
  SchemePayment,
  SettleResponse,
  SignedVoucher,
  SupportedKind,
  SupportedResponse,
  TransferAuthorization,
  VerifyResponse,
  VoucherPayload,
  VoucherState,
  WireChannelState,
  WireVoucherState,
} from './types.js'
export {
  type VoucherReceiptParameters,
  voucherReceipt,
  voucherReceiptHeader,
} from './voucherReceipt.js'
