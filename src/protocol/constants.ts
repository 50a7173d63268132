import type { Address } from 'viem'

/** The x402 protocol version tollgate speaks (x402 `specs/x402-specification-v2.md`). */
export const X402_VERSION = 2

/** The x402 scheme name (x402 `specs/schemes/batch-settlement/scheme_batch_settlement_evm.md`). */
export const SCHEME = 'batch-settlement'

/** The x402 `exact` scheme name (x402 `specs/schemes/exact/scheme_exact_evm.md`): one transfer per request. */
export const EXACT_SCHEME = 'exact'

/**
 * HTTP header names of the x402 HTTP transport (x402 `specs/transports-v2/http.md`).
 * `X-PAYMENT` and `X-PAYMENT-RESPONSE` are the version 1 names, still accepted carrying a v2 payload.
 */
export const HEADERS = Object.freeze({
  paymentRequired: 'PAYMENT-REQUIRED',
  paymentSignature: 'PAYMENT-SIGNATURE',
  paymentResponse: 'PAYMENT-RESPONSE',
  xPayment: 'X-PAYMENT',
  xPaymentResponse: 'X-PAYMENT-RESPONSE',
} as const)

/**
 * `_meta` keys of the x402 MCP transport (x402 `specs/transports-v2/mcp.md`, tool-result binding):
 * the `PaymentPayload` of a `tools/call` in `params._meta["x402/payment"]`, the `SettleResponse`
 * in `result._meta["x402/payment-response"]`.
 */
export const MCP_META = Object.freeze({
  payment: 'x402/payment',
  paymentResponse: 'x402/payment-response',
} as const)

/** Smallest `withdrawDelay` the escrow accepts, in seconds (15 minutes). */
export const MIN_WITHDRAW_DELAY = 900

/** Largest `withdrawDelay` the escrow accepts, in seconds (30 days). */
export const MAX_WITHDRAW_DELAY = 2_592_000

/**
 * The canonical x402 batch-settlement deployments, the same address on every chain (CREATE2).
 * Lowercase, as every address inside tollgate.
 */
export const CANONICAL_ADDRESSES = Object.freeze({
  escrow: '0x4020074e9df2ce1dee5a9c1b5c3f541d02a10003',
  erc3009Collector: '0x4020806089470a89826cb9fb1f4059150b550004',
  permit2Collector: '0x4020425faf3b746c082c2f942b4e5159887b0005',
  /** Multicall3, which the stock x402 facilitator reads channel state through. */
  multicall3: '0xca11bde05977b3631167028862be2a173976ca11',
} as const satisfies Record<string, Address>)

/** The zero address: a `payerAuthorizer` of zero means vouchers are checked against `payer` (EIP-1271). */
export const ZERO_ADDRESS: Address = '0x0000000000000000000000000000000000000000'

/** 2^128 - 1, the largest `uint128` (escrow amounts: balance, totalClaimed, maxClaimableAmount). */
export const MAX_UINT128 = (1n << 128n) - 1n

/** 2^256 - 1, the largest `uint256` (refund nonce, ERC-3009 validAfter/validBefore). */
export const MAX_UINT256 = (1n << 256n) - 1n

/** 2^40 - 1, the largest `uint40` (escrow timestamps such as `withdrawRequestedAt`). */
export const MAX_UINT40 = 2 ** 40 - 1

/**
 * Default size limit of a payment header, in characters (= bytes: HTTP header values are
 * Latin-1). Node's own default limit on all request headers together is also 16 KiB.
 */
export const MAX_PAYMENT_HEADER_BYTES = 16 * 1024

/** An ECDSA signature (r, s, v) is 65 bytes. */
export const ECDSA_SIGNATURE_BYTES = 65

/** Largest smart-wallet signature accepted (EIP-1271, or EIP-6492 wrapping a deployment). */
export const MAX_CONTRACT_SIGNATURE_BYTES = 4096
