/**
 * Default bound of the signer cache: public keys remembered per verifier. An entry is
 * about 300 bytes (key string, 65-byte key, map slot), so the default holds ~3 MB. Only a
 * signature that recovered to its expected signer adds an entry, so hostile channels can
 * at most evict others, and an evicted signer costs one recovery on its next voucher.
 */
export const DEFAULT_SIGNER_CACHE_SIZE = 10_000

/** A least-recently-used map from lowercase signer address to its 65-byte public key. */
export class SignerCache {
  readonly #max: number
  readonly #keys = new Map<string, Uint8Array>()

  constructor(max: number) {
    this.#max = max
  }

  get size(): number {
    return this.#keys.size
  }

  get(signer: string): Uint8Array | undefined {
    const key = this.#keys.get(signer)
    if (key !== undefined) {
      this.#keys.delete(signer)
      this.#keys.set(signer, key)
    }
    return key
  }

  set(signer: string, publicKey: Uint8Array): void {
    this.#keys.delete(signer)
    this.#keys.set(signer, publicKey)
    if (this.#keys.size > this.#max) {
      const oldest = this.#keys.keys().next()
      if (!oldest.done) this.#keys.delete(oldest.value)
    }
  }
}
