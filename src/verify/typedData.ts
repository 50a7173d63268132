import type { Address } from 'viem'
import { DOMAIN_NAME, DOMAIN_VERSION } from './typehashes.js'

/**
 * The escrow's EIP-712 types as typed-data field lists, for signers that sign typed data (viem
 * `signTypedData`, wallets over JSON-RPC). They describe the same types as `TYPE_STRINGS`.
 */
export const BATCH_SETTLEMENT_TYPES = Object.freeze({
  ChannelConfig: [
    { name: 'payer', type: 'address' },
    { name: 'payerAuthorizer', type: 'address' },
    { name: 'receiver', type: 'address' },
    { name: 'receiverAuthorizer', type: 'address' },
    { name: 'token', type: 'address' },
    { name: 'withdrawDelay', type: 'uint40' },
    { name: 'salt', type: 'bytes32' },
  ],
  Voucher: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'maxClaimableAmount', type: 'uint128' },
  ],
  Refund: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'nonce', type: 'uint256' },
    { name: 'amount', type: 'uint128' },
  ],
  ClaimBatch: [{ name: 'claims', type: 'ClaimEntry[]' }],
  ClaimEntry: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'maxClaimableAmount', type: 'uint128' },
    { name: 'totalClaimed', type: 'uint128' },
  ],
} as const)

/** The fields both EIP-3009 authorizations sign (EIP-3009, `ReceiveWithAuthorization` and `TransferWithAuthorization`). */
const EIP3009_AUTHORIZATION = [
  { name: 'from', type: 'address' },
  { name: 'to', type: 'address' },
  { name: 'value', type: 'uint256' },
  { name: 'validAfter', type: 'uint256' },
  { name: 'validBefore', type: 'uint256' },
  { name: 'nonce', type: 'bytes32' },
] as const

/** EIP-3009 `ReceiveWithAuthorization`, signed by a payer for an ERC-3009 deposit (`to` = the collector). */
export const RECEIVE_WITH_AUTHORIZATION_TYPES = Object.freeze({
  ReceiveWithAuthorization: EIP3009_AUTHORIZATION,
} as const)

/** EIP-3009 `TransferWithAuthorization`, signed by a payer for an exact-scheme payment (`to` = the payee). */
export const TRANSFER_WITH_AUTHORIZATION_TYPES = Object.freeze({
  TransferWithAuthorization: EIP3009_AUTHORIZATION,
} as const)

/** The escrow's EIP-712 domain on a chain. */
export function escrowDomain(chainId: number, verifyingContract: Address) {
  return { name: DOMAIN_NAME, version: DOMAIN_VERSION, chainId, verifyingContract } as const
}
