import { createRequire } from 'node:module'
import { TollgateError } from '../errors/index.js'
import { type Secp256k1Backend, validShapes } from './backend.js'
import { decodeHexAt } from './hex.js'
import { isLowS } from './signature.js'

/** The slice of `secp256k1/bindings` (libsecp256k1 through N-API) used here. */
interface Libsecp256k1 {
  ecdsaRecover(
    signature: Uint8Array,
    recid: number,
    msg32: Uint8Array,
    compressed: boolean,
    output?: Uint8Array,
  ): Uint8Array
}

/** The module loaded: `secp256k1/bindings`, never `secp256k1`, whose index silently falls back to elliptic. */
export const NATIVE_MODULE = 'secp256k1/bindings'

/**
 * Known answer checked at load: private key 1 (public key G) signed keccak256("tollgate
 * secp256k1 self-test") with this signature (v = 28).
 */
const SELF_TEST = {
  digest: '4783ac5a7c8d975a47ba3856a1a18419c0d620727148efaf726bb7cb9d85d4db',
  signature:
    '64b2353c7126eec0bb3ab76dd1a2a366f5d899620da270eaecdf64edfb2e25c54517f855e7d9ae4023a738f1bef0fec88394e2780a86a07b08f31931cc35e616',
  recid: 1,
  publicKey:
    '0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8',
} as const

function bytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2)
  decodeHexAt(hex, 0, out.length, out, 0)
  return out
}

function equal65(a: Uint8Array, b: Uint8Array): boolean {
  if (b.length !== 65) return false
  for (let i = 0; i < 65; i++) if (a[i] !== b[i]) return false
  return true
}

/** Wraps a loaded libsecp256k1 binding. */
function wrap(lib: Libsecp256k1): Secp256k1Backend {
  const scratch = new Uint8Array(65)
  return Object.freeze({
    name: 'native',
    recoverPublicKey(digest: Uint8Array, signature: Uint8Array, recid: number): Uint8Array | null {
      if (!validShapes(digest, signature, recid)) return null
      try {
        return lib.ecdsaRecover(signature, recid, digest, false)
      } catch {
        return null // r or s zero or >= n, or no point with x = r
      }
    },
    // libsecp256k1's ecdsa_verify cannot check the recovery id, so this recovers into a
    // scratch buffer and compares keys: the same check as ecrecover(digest, v, r, s) == key.
    verify(
      digest: Uint8Array,
      signature: Uint8Array,
      recid: number,
      publicKey: Uint8Array,
    ): boolean {
      if (
        !validShapes(digest, signature, recid) ||
        !(publicKey instanceof Uint8Array) ||
        !isLowS(signature)
      ) {
        return false
      }
      try {
        lib.ecdsaRecover(signature, recid, digest, false, scratch)
      } catch {
        return false
      }
      return equal65(scratch, publicKey)
    },
  } satisfies Secp256k1Backend)
}

/**
 * Loads libsecp256k1 through the `secp256k1` package's N-API addon and checks it against a
 * known answer.
 *
 * @returns The native backend.
 * @throws TollgateError `tollgate_invalid_config` when the addon is missing or broken
 *   (the message says why; the cause is attached).
 * @example
 * const backend = loadNativeBackend()
 */
export function loadNativeBackend(): Secp256k1Backend {
  let lib: Libsecp256k1
  try {
    lib = createRequire(import.meta.url)(NATIVE_MODULE) as Libsecp256k1
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause)
    throw new TollgateError(
      'tollgate_invalid_config',
      `libsecp256k1 addon (${NATIVE_MODULE}) did not load: ${reason}`,
      {
        cause,
      },
    )
  }
  const backend = wrap(lib)
  const recovered = backend.recoverPublicKey(
    bytes(SELF_TEST.digest),
    bytes(SELF_TEST.signature),
    SELF_TEST.recid,
  )
  if (recovered === null || !equal65(recovered, bytes(SELF_TEST.publicKey))) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `libsecp256k1 addon (${NATIVE_MODULE}) failed its known-answer test`,
    )
  }
  return backend
}
