/**
 * EIP-3009 `TransferWithAuthorization` under a token's EIP-712 domain (the x402 `exact` scheme on
 * EVM): the digest, hashed with keccak.ts, and the check that its signature is `from`'s,
 * against a public key cached per payer. Pure.
 */

import type { Address } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { TransferAuthorization } from '../protocol/types.js'
import type { Secp256k1Backend } from './backend.js'
import { createVoucherVerifier, type VoucherVerifier } from './createVoucherVerifier.js'
import { malformed } from './eip712.js'
import { writeAddressWord, writeHex, writeNumberWord, writeUintWord } from './hex.js'
import { keccak256 } from './keccak.js'
import { TYPEHASH_BYTES } from './typehashes.js'

/** EIP-3009's type string of a transfer authorization. */
export const TRANSFER_WITH_AUTHORIZATION_TYPE =
  'TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)'

const encoder = new TextEncoder()
const TRANSFER_TYPEHASH = keccak256(encoder.encode(TRANSFER_WITH_AUTHORIZATION_TYPE))

/** A token's EIP-712 domain: `name`, `version`, the chain and the token address. */
export interface TokenDomain {
  name: string
  version: string
  chainId: number
  verifyingContract: Address
}

/**
 * The EIP-712 domain separator of a token (`EIP712Domain(string name,string version,uint256
 * chainId,address verifyingContract)`).
 *
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_invalid_config` for a malformed chain id or address.
 * @example
 * const separator = tokenDomainSeparator({ name: 'USDC', version: '2', chainId: 84532, verifyingContract: usdc })
 */
export function tokenDomainSeparator(domain: TokenDomain): Uint8Array {
  const buf = new Uint8Array(160)
  buf.set(TYPEHASH_BYTES.EIP712Domain, 0)
  buf.set(keccak256(encoder.encode(domain.name)), 32)
  buf.set(keccak256(encoder.encode(domain.version)), 64)
  if (
    !writeNumberWord(domain.chainId, 53, buf, 96) ||
    !writeAddressWord(domain.verifyingContract, buf, 128)
  ) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `token domain ${domain.chainId} / ${domain.verifyingContract} is malformed`,
    )
  }
  return keccak256(buf)
}

/** hashStruct encoding: typehash and six words. Scratch, never re-entered. */
const STRUCT_BUF = /* @__PURE__ */ (() => {
  const buf = new Uint8Array(224)
  buf.set(TRANSFER_TYPEHASH, 0)
  return buf
})()

/** Writes the authorization's six words; false when a field is malformed. */
function writeAuthorization(authorization: TransferAuthorization): boolean {
  const b = STRUCT_BUF
  return (
    writeAddressWord(authorization.from, b, 32) &&
    writeAddressWord(authorization.to, b, 64) &&
    writeUintWord(authorization.value, 32, b, 96) &&
    writeUintWord(authorization.validAfter, 32, b, 128) &&
    writeUintWord(authorization.validBefore, 32, b, 160) &&
    writeHex(authorization.nonce, 32, b, 192)
  )
}

/**
 * The EIP-712 digest a payer signs for `transferWithAuthorization`.
 *
 * @param separator From {@link tokenDomainSeparator}.
 * @returns 32 bytes, freshly allocated.
 * @throws TollgateError `tollgate_internal` when a field is malformed (decode payloads first).
 * @example
 * const digest = transferAuthorizationDigest(separator, authorization)
 */
export function transferAuthorizationDigest(
  separator: Uint8Array,
  authorization: TransferAuthorization,
): Uint8Array {
  if (!writeAuthorization(authorization)) throw malformed('authorization')
  const digest = new Uint8Array(66)
  digest[0] = 0x19
  digest[1] = 0x01
  digest.set(separator, 2)
  digest.set(keccak256(STRUCT_BUF), 34)
  return keccak256(digest)
}

/** Checks of EIP-3009 authorizations under one token domain, with a per-payer key cache. */
export interface AuthorizationVerifier {
  /** The backend in use. */
  readonly backend: VoucherVerifier['backend']
  /**
   * Whether `signature` (65-byte ECDSA, low-s) is `authorization.from`'s signature of it under the
   * token's domain. False on any malformed input; never throws.
   */
  verify(authorization: TransferAuthorization, signature: `0x${string}`): boolean
}

/**
 * Creates the verifier of exact-scheme authorizations for one token: the digest is hashed here
 * and checked against the payer's cached public key (recovered once per payer), as vouchers are.
 *
 * @example
 * const verifier = createAuthorizationVerifier({ backend, domain: { name: 'USDC', version: '2', chainId, verifyingContract: usdc } })
 * if (!verifier.verify(payload.authorization, payload.signature)) return reject('invalid_exact_evm_signature')
 */
export function createAuthorizationVerifier(options: {
  backend: Secp256k1Backend
  domain: TokenDomain
}): AuthorizationVerifier {
  const separator = tokenDomainSeparator(options.domain)
  const inner = createVoucherVerifier({ backend: options.backend, domainSeparator: separator })
  return {
    backend: inner.backend,
    verify(authorization, signature) {
      let digest: Uint8Array
      try {
        digest = transferAuthorizationDigest(separator, authorization)
      } catch {
        return false
      }
      return inner.verifyDigest(digest, signature, authorization.from)
    },
  }
}
