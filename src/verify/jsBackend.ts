import { recoverPublicKey, verify } from '@noble/secp256k1'
import { type Secp256k1Backend, validShapes } from './backend.js'

/** noble's 'recovered' format: recovery byte first, then r ‖ s. */
function recovered(signature: Uint8Array, recid: number): Uint8Array {
  const out = new Uint8Array(65)
  out[0] = recid
  out.set(signature, 1)
  return out
}

/**
 * Pure-JS backend on @noble/secp256k1 (audited, no native code): the fallback where the
 * libsecp256k1 addon does not load. About 40x slower than native. Verification and recovery
 * need no hash configuration (`prehash: false`: the digest is the EIP-712 hash already).
 *
 * @example
 * const ok = jsBackend.verify(digest, compact, recid, publicKey)
 */
export const jsBackend: Secp256k1Backend = Object.freeze({
  name: 'js',
  recoverPublicKey(digest: Uint8Array, signature: Uint8Array, recid: number): Uint8Array | null {
    if (!validShapes(digest, signature, recid)) return null
    try {
      return recoverPublicKey(recovered(signature, recid), digest, {
        prehash: false,
        isCompressed: false,
      })
    } catch {
      return null
    }
  },
  // With format 'recovered' noble checks the recovery bit against the R it computes while
  // verifying, so this binds v at no extra cost; lowS: true rejects s > n/2.
  verify(digest: Uint8Array, signature: Uint8Array, recid: number, publicKey: Uint8Array): boolean {
    if (
      !validShapes(digest, signature, recid) ||
      !(publicKey instanceof Uint8Array) ||
      publicKey.length !== 65
    ) {
      return false
    }
    try {
      return verify(recovered(signature, recid), digest, publicKey, {
        prehash: false,
        lowS: true,
        format: 'recovered',
      })
    } catch {
      return false
    }
  },
} satisfies Secp256k1Backend)
