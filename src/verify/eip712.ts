/** EIP-712 §"Specification of the eth_signTypedData": digest = keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)). */

import { TollgateError } from '../errors/index.js'
import { writeDomainSeparator } from './domainSeparator.js'
import { keccak256 } from './keccak.js'

/** Shared scratch: 0x19 0x01 ‖ domain ‖ structHash. Single-threaded and never re-entered. */
const DIGEST_BUF = /* @__PURE__ */ Uint8Array.of(0x19, 0x01, ...new Uint8Array(64))

/** Writes the domain into a 66-byte digest buffer; throws for a malformed separator (a caller bug). */
export function newDigestBuffer(domain: unknown): Uint8Array {
  const buf = new Uint8Array(66)
  buf[0] = 0x19
  buf[1] = 0x01
  if (!writeDomainSeparator(domain, buf, 2)) throw invalidDomain()
  return buf
}

/** keccak256(0x1901 ‖ domain ‖ structHash). Throws for a malformed separator. */
export function typedDataDigest(domain: unknown, structHash: Uint8Array): Uint8Array {
  if (!writeDomainSeparator(domain, DIGEST_BUF, 2)) throw invalidDomain()
  DIGEST_BUF.set(structHash, 34)
  return keccak256(DIGEST_BUF)
}

function invalidDomain(): TollgateError {
  return new TollgateError(
    'tollgate_invalid_config',
    'domainSeparator must be 32 bytes or 0x + 64 hex digits',
  )
}

/** Misuse of a hashing function (input the protocol decoder should have refused): a caller bug. */
export function malformed(what: string): TollgateError {
  return new TollgateError(
    'tollgate_internal',
    `${what} is malformed (validate payloads before hashing)`,
  )
}
