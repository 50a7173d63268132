/**
 * EIP-712 type strings and type hashes of the x402 `batch-settlement` escrow
 * (coinbase/x402 `specs/schemes/batch-settlement/scheme_batch_settlement_evm.md`), computed
 * once at load. The exported table is frozen hex; the byte copies used by the hashers stay
 * private to this folder.
 */

import type { Hex } from 'viem'
import { bytesToHex } from './hex.js'
import { keccak256 } from './keccak.js'

/** EIP-712 domain name of the escrow contract. */
export const DOMAIN_NAME = 'x402 Batch Settlement'
/** EIP-712 domain version of the escrow contract. */
export const DOMAIN_VERSION = '1'

/** EIP-712 encodeType strings, frozen. `ClaimBatch` carries the referenced `ClaimEntry` appended (EIP-712 §encodeType). */
export const TYPE_STRINGS = Object.freeze({
  EIP712Domain:
    'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)',
  ChannelConfig:
    'ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)',
  Voucher: 'Voucher(bytes32 channelId,uint128 maxClaimableAmount)',
  Refund: 'Refund(bytes32 channelId,uint256 nonce,uint128 amount)',
  ClaimEntry: 'ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)',
  ClaimBatch:
    'ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)',
} as const)

type TypeName = keyof typeof TYPE_STRINGS

const encoder = new TextEncoder()
const hash = (text: string): Uint8Array => keccak256(encoder.encode(text))

/** Byte forms, private to src/verify: copied into encoding buffers, never handed out. */
export const TYPEHASH_BYTES: Readonly<Record<TypeName, Uint8Array>> = Object.freeze({
  EIP712Domain: hash(TYPE_STRINGS.EIP712Domain),
  ChannelConfig: hash(TYPE_STRINGS.ChannelConfig),
  Voucher: hash(TYPE_STRINGS.Voucher),
  Refund: hash(TYPE_STRINGS.Refund),
  ClaimEntry: hash(TYPE_STRINGS.ClaimEntry),
  ClaimBatch: hash(TYPE_STRINGS.ClaimBatch),
})

/** keccak256 of the domain name and version, as EIP-712 encodes string fields. */
export const NAME_HASH_BYTES = hash(DOMAIN_NAME)
export const VERSION_HASH_BYTES = hash(DOMAIN_VERSION)

/** keccak256 of each EIP-712 type string, as lowercase hex, frozen. */
export const TYPEHASHES: Readonly<Record<TypeName, Hex>> = Object.freeze({
  EIP712Domain: bytesToHex(TYPEHASH_BYTES.EIP712Domain),
  ChannelConfig: bytesToHex(TYPEHASH_BYTES.ChannelConfig),
  Voucher: bytesToHex(TYPEHASH_BYTES.Voucher),
  Refund: bytesToHex(TYPEHASH_BYTES.Refund),
  ClaimEntry: bytesToHex(TYPEHASH_BYTES.ClaimEntry),
  ClaimBatch: bytesToHex(TYPEHASH_BYTES.ClaimBatch),
})
