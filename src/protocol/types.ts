import type { Address, Hex } from 'viem'

// ---------------------------------------------------------------------------------------------
// x402 v2 wire types (x402 `specs/x402-specification-v2.md`). Amounts are decimal strings here;
// object types are aliases (not interfaces) so that they stay assignable to JSON records.
// ---------------------------------------------------------------------------------------------

/** A CAIP-2 chain identifier, `eip155:<chainId>` for EVM chains. */
export type Network = `${string}:${string}`

/** The resource a payment is for. */
export type ResourceInfo = {
  url: string
  description?: string
  mimeType?: string
}

/** One way to pay for a resource, as listed in `PaymentRequired.accepts`. */
export type PaymentRequirements = {
  scheme: string
  network: Network
  /** Per-request ceiling, decimal string in the token's smallest unit. */
  amount: string
  asset: string
  payTo: string
  maxTimeoutSeconds: number
  extra?: Record<string, unknown>
}

/** The body of a 402: what the resource costs and how to pay (header `PAYMENT-REQUIRED`). */
export type PaymentRequired = {
  x402Version: number
  error?: string
  resource: ResourceInfo
  accepts: PaymentRequirements[]
  extensions?: Record<string, unknown>
}

/** A signed payment (header `PAYMENT-SIGNATURE` or `X-PAYMENT`). */
export type PaymentPayload = {
  x402Version: number
  resource?: ResourceInfo
  accepted: PaymentRequirements
  payload: Record<string, unknown>
  extensions?: Record<string, unknown>
}

/** The outcome of a payment (header `PAYMENT-RESPONSE`); `transaction` is `""` when nothing went on chain. */
export type SettleResponse = {
  success: boolean
  errorReason?: string
  errorMessage?: string
  payer?: string
  transaction: string
  network: Network
  amount?: string
  extra?: Record<string, unknown>
}

// ---------------------------------------------------------------------------------------------
// Facilitator endpoints (x402 `specs/x402-specification-v2.md`).
// ---------------------------------------------------------------------------------------------

/** Body of `POST /verify` and `POST /settle`. */
export type FacilitatorRequest = {
  x402Version: number
  paymentPayload: PaymentPayload
  paymentRequirements: PaymentRequirements
}

/** Response of `POST /verify`. */
export type VerifyResponse = {
  isValid: boolean
  invalidReason?: string
  invalidMessage?: string
  payer?: string
  extra?: Record<string, unknown>
}

/** One scheme and network a facilitator serves. */
export type SupportedKind = {
  x402Version: number
  scheme: string
  network: Network
  extra?: Record<string, unknown>
}

/** Response of `GET /supported`; `signers` maps a CAIP family (`eip155:*`) to signer addresses. */
export type SupportedResponse = {
  kinds: SupportedKind[]
  extensions: string[]
  signers: Record<string, string[]>
}

// ---------------------------------------------------------------------------------------------
// batch-settlement on the wire (x402 `specs/schemes/batch-settlement/scheme_batch_settlement_evm.md`).
// ---------------------------------------------------------------------------------------------

/** How a deposit pulls tokens from the payer. tollgate collects deposits by ERC-3009 only. */
export type AssetTransferMethod = 'eip3009' | 'permit2'

/** `channelState` in a corrective 402 and in receipts: amounts as decimal strings. */
export type WireChannelState = {
  channelId: Hex
  balance: string
  totalClaimed: string
  /** Unix seconds when the payer started a withdrawal, 0 when none. */
  withdrawRequestedAt: number
  refundNonce: string
  chargedCumulativeAmount: string
}

/** `voucherState` in a corrective 402: the highest voucher the server holds. */
export type WireVoucherState = {
  signedMaxClaimable: string
  signature: Hex
}

/** `extra` of batch-settlement requirements. */
export type BatchSettlementExtra = {
  receiverAuthorizer: string
  withdrawDelay: number
  /** EIP-712 domain name of the token (`USDC` on Base Sepolia, `USD Coin` on Base). */
  name: string
  /** EIP-712 domain version of the token. */
  version: string
  assetTransferMethod?: AssetTransferMethod
  /** Smallest deposit the server asks for, decimal string; stock clients deposit at least this. */
  minDeposit?: string
  channelState?: WireChannelState
  voucherState?: WireVoucherState
}

/** Requirements for the batch-settlement scheme. */
export type BatchRequirements = PaymentRequirements & {
  scheme: 'batch-settlement'
  extra: BatchSettlementExtra
}

/** `extra` of a batch-settlement `SettleResponse`. */
export type BatchSettlementResponseExtra = {
  chargedAmount?: string
  channelState?: WireChannelState
}

// ---------------------------------------------------------------------------------------------
// batch-settlement decoded: bigint amounts, lowercase addresses and hex.
// ---------------------------------------------------------------------------------------------

/** The on-chain identity of a channel; its EIP-712 hash under the escrow domain is the `channelId`. */
export type ChannelConfig = {
  readonly payer: Address
  /** Signer of vouchers; zero means vouchers are checked against `payer` by EIP-1271. */
  readonly payerAuthorizer: Address
  readonly receiver: Address
  readonly receiverAuthorizer: Address
  readonly token: Address
  /** Seconds, in [900, 2592000]. */
  readonly withdrawDelay: number
  readonly salt: Hex
}

/** A cumulative voucher: the payer lets the receiver claim up to `maxClaimableAmount` in total. */
export type SignedVoucher = {
  readonly channelId: Hex
  readonly maxClaimableAmount: bigint
  readonly signature: Hex
}

/** An ERC-3009 `receiveWithAuthorization` for a deposit; its nonce is `keccak256(abi.encode(channelId, salt))`. */
export type Erc3009Authorization = {
  readonly validAfter: bigint
  readonly validBefore: bigint
  readonly salt: Hex
  readonly signature: Hex
}

/** A payment that first deposits into the channel, then pays with the voucher it carries. */
export type DepositPayload = {
  readonly type: 'deposit'
  readonly channelConfig: ChannelConfig
  readonly voucher: SignedVoucher
  readonly deposit: {
    readonly amount: bigint
    readonly erc3009Authorization: Erc3009Authorization
  }
}

/** A payment by voucher alone. */
export type VoucherPayload = {
  readonly type: 'voucher'
  readonly channelConfig: ChannelConfig
  readonly voucher: SignedVoucher
}

/** A request for a refund of the unspent balance; the voucher charges nothing more. */
export type RefundPayload = {
  readonly type: 'refund'
  readonly channelConfig: ChannelConfig
  readonly voucher: SignedVoucher
  /** Amount to refund; absent means all that remains. */
  readonly amount?: bigint
}

/** A decoded batch-settlement `payload`. */
export type BatchPayload = DepositPayload | VoucherPayload | RefundPayload

/** A decoded payment: the typed payload plus the raw `accepted` object to compare with what was issued. */
export type DecodedPayment = {
  readonly x402Version: 2
  /** As received, validated for shape only; compare with {@link requirementsEqual}. */
  readonly accepted: PaymentRequirements
  readonly resource?: ResourceInfo
  readonly extensions?: Record<string, unknown>
  readonly payload: BatchPayload
}

/** The server's view of one channel: on-chain mirror plus what it has charged. */
export type ChannelState = {
  readonly channelId: Hex
  readonly balance: bigint
  readonly totalClaimed: bigint
  /** Unix seconds when the payer started a withdrawal, 0 when none. */
  readonly withdrawRequestedAt: number
  readonly refundNonce: bigint
  readonly chargedCumulativeAmount: bigint
}

/** The highest voucher the server holds for a channel. */
export type VoucherState = {
  readonly signedMaxClaimable: bigint
  readonly signature: Hex
}

/** A decoded `SettleResponse`, with the batch-settlement figures of `extra` as bigints. */
export type DecodedSettleResponse = {
  /** The wire object, validated. */
  readonly response: SettleResponse
  /** `amount` as a bigint: the deposited or refunded amount; absent when `""` or missing. */
  readonly amount?: bigint
  readonly chargedAmount?: bigint
  /** Stock servers send only some fields (deposit and refund receipts carry `chargedCumulativeAmount` alone). */
  readonly channelState?: Partial<ChannelState>
}

// ---------------------------------------------------------------------------------------------
// exact on EVM by EIP-3009 (x402 `specs/schemes/exact/scheme_exact_evm.md`).
// ---------------------------------------------------------------------------------------------

/** `extra` of exact requirements: the token's EIP-712 domain and how it is transferred. */
export type ExactExtra = {
  assetTransferMethod: 'eip3009'
  /** EIP-712 domain name of the token. */
  name: string
  /** EIP-712 domain version of the token. */
  version: string
}

/** Requirements for the exact scheme: `amount` is the exact price of one request. */
export type ExactRequirements = PaymentRequirements & {
  scheme: 'exact'
  extra: ExactExtra
}

/** An EIP-3009 `TransferWithAuthorization`, decoded: lowercase addresses, bigint amounts. */
export type TransferAuthorization = {
  readonly from: Address
  readonly to: Address
  readonly value: bigint
  /** Unix seconds; the transfer is valid strictly after it. */
  readonly validAfter: bigint
  /** Unix seconds; the transfer is valid strictly before it. */
  readonly validBefore: bigint
  /** 32 random bytes chosen by the payer; the token refuses a nonce used before. */
  readonly nonce: Hex
}

/** A decoded exact `payload`: the authorization and its signature under the token's domain. */
export type ExactPayload = {
  readonly signature: Hex
  readonly authorization: TransferAuthorization
}

/** A decoded exact payment, as {@link DecodedPayment} is for batch-settlement. */
export type DecodedExactPayment = {
  readonly x402Version: 2
  /** As received, validated for shape only; compare with {@link requirementsEqual}. */
  readonly accepted: PaymentRequirements
  readonly resource?: ResourceInfo
  readonly extensions?: Record<string, unknown>
  readonly payload: ExactPayload
}

/** A decoded payment of either scheme this server speaks. */
export type SchemePayment =
  | { readonly scheme: 'batch-settlement'; readonly payment: DecodedPayment }
  | { readonly scheme: 'exact'; readonly payment: DecodedExactPayment }
