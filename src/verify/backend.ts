/** Which secp256k1 implementation a backend wraps. */
export type BackendName = 'native' | 'js'

/**
 * The ECDSA operations tollgate needs, over 32-byte digests (no pre-hashing) and 64-byte
 * compact `r ‖ s` signatures with a separate recovery id (0 or 1, i.e. v - 27).
 * Implementations never throw on bad input: they return `null` or `false`.
 */
export interface Secp256k1Backend {
  readonly name: BackendName
  /**
   * SEC 1 §4.1.6 public key recovery, as the `ecrecover` precompile does it (any s in
   * [1, n) is accepted here; low-s is the caller's rule).
   * @returns The 65-byte uncompressed key `0x04 ‖ x ‖ y`, freshly allocated, or `null`.
   */
  recoverPublicKey(digest: Uint8Array, signature: Uint8Array, recid: number): Uint8Array | null
  /**
   * Whether `signature` is a valid low-s signature of `digest` by `publicKey` (65-byte
   * uncompressed) AND `recid` is its recovery id, i.e. exactly what `ecrecover` would
   * attribute to that key. A plain ECDSA verify ignores the recovery id; the escrow does
   * not, so a signature with a flipped v must fail here.
   */
  verify(digest: Uint8Array, signature: Uint8Array, recid: number, publicKey: Uint8Array): boolean
}

/** Whether the fixed-size inputs of a backend call have the right shapes. */
export function validShapes(digest: Uint8Array, signature: Uint8Array, recid: number): boolean {
  return (
    digest instanceof Uint8Array &&
    digest.length === 32 &&
    signature instanceof Uint8Array &&
    signature.length === 64 &&
    (recid === 0 || recid === 1)
  )
}
