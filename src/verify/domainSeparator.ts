import type { Address, Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import { bytesToHex, writeAddressWord, writeHex, writeNumberWord, writeUintWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { NAME_HASH_BYTES, TYPEHASH_BYTES, VERSION_HASH_BYTES } from './typehashes.js'

/** The escrow's EIP-712 domain: name and version are fixed by the protocol. */
export interface EscrowDomain {
  /** EIP-155 chain id. */
  chainId: number | bigint
  /** The escrow contract address, lowercase or checksummed. */
  verifyingContract: Address
}

/** A domain separator as returned by {@link domainSeparator} or {@link domainSeparatorBytes}. */
export type DomainSeparator = Hex | Uint8Array

/** hashStruct(EIP712Domain): typehash ‖ keccak(name) ‖ keccak(version) ‖ chainId ‖ verifyingContract. */
const DOMAIN_BUF = /* @__PURE__ */ (() => {
  const buf = new Uint8Array(160)
  buf.set(TYPEHASH_BYTES.EIP712Domain, 0)
  buf.set(NAME_HASH_BYTES, 32)
  buf.set(VERSION_HASH_BYTES, 64)
  return buf
})()

/**
 * The EIP-712 domain separator of the escrow (`x402 Batch Settlement`, version `1`), as bytes.
 *
 * @param domain - Chain id and escrow address.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_invalid_config` when the chain id or address is malformed.
 * @example
 * const sep = domainSeparatorBytes({ chainId: 8453, verifyingContract: CANONICAL.escrow })
 */
export function domainSeparatorBytes(domain: EscrowDomain): Uint8Array {
  const { chainId, verifyingContract } = domain
  const chainOk =
    typeof chainId === 'bigint'
      ? writeUintWord(chainId, 32, DOMAIN_BUF, 96)
      : writeNumberWord(chainId, 53, DOMAIN_BUF, 96)
  if (!chainOk)
    throw new TollgateError(
      'tollgate_invalid_config',
      `chainId ${String(chainId)} is not a uint256`,
    )
  if (!writeAddressWord(verifyingContract, DOMAIN_BUF, 128)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `escrow address ${String(verifyingContract)} is not a 20-byte hex address`,
    )
  }
  return keccak256(DOMAIN_BUF)
}

/**
 * The EIP-712 domain separator of the escrow, as lowercase hex. Compute it once per
 * (chain, escrow) and pass it to {@link channelId} and the digest functions.
 *
 * @param domain - Chain id and escrow address.
 * @returns 32-byte lowercase hex.
 * @throws TollgateError `tollgate_invalid_config` when the chain id or address is malformed.
 * @example
 * const sep = domainSeparator({ chainId: 84532, verifyingContract: '0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003' })
 */
export function domainSeparator(domain: EscrowDomain): Hex {
  return bytesToHex(domainSeparatorBytes(domain))
}

/** Writes a domain separator given as hex or bytes at `offset`. False when malformed. */
export function writeDomainSeparator(domain: unknown, out: Uint8Array, offset: number): boolean {
  if (domain instanceof Uint8Array) {
    if (domain.length !== 32) return false
    out.set(domain, offset)
    return true
  }
  return writeHex(domain, 32, out, offset)
}
