import { createRequire } from 'node:module'
import type { Hex, LocalAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { privateKeyOf } from '../chain/privateKey.js'
import { TollgateError } from '../errors/index.js'
import { type BackendName, type BackendPreference, NATIVE_MODULE } from '../verify/index.js'

/** The slice of `secp256k1/bindings` (libsecp256k1 through N-API) used to sign. */
export interface Libsecp256k1Signer {
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number }
}

/**
 * Known answer checked at load, the verifier's own (src/verify/nativeBackend.ts): private key 1
 * signs keccak256("tollgate secp256k1 self-test") as RFC 6979 and low-s make it, with v = 28.
 */
const SELF_TEST = Object.freeze({
  digest: '4783ac5a7c8d975a47ba3856a1a18419c0d620727148efaf726bb7cb9d85d4db',
  signature:
    '64b2353c7126eec0bb3ab76dd1a2a366f5d899620da270eaecdf64edfb2e25c54517f855e7d9ae4023a738f1bef0fec88394e2780a86a07b08f31931cc35e616',
  recid: 1,
})

/**
 * A viem local account whose raw-digest `sign` (what a payer calls once per voucher) runs on
 * libsecp256k1, or on viem's pure JavaScript. Every other method is viem's.
 */
export type KeySigner = LocalAccount & {
  /** Which implementation signs digests. */
  readonly signingBackend: BackendName
  /** Set only when `auto` fell back to `js`: why the addon is not used, for the caller to report. */
  readonly fallbackReason?: string
}

/**
 * Loads libsecp256k1's signer and checks it against the known answer.
 *
 * @throws TollgateError `tollgate_invalid_config` when the addon is missing or broken.
 */
function loadNativeSigner(): Libsecp256k1Signer {
  let lib: Libsecp256k1Signer
  try {
    lib = createRequire(import.meta.url)(NATIVE_MODULE) as Libsecp256k1Signer
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause)
    throw new TollgateError(
      'tollgate_invalid_config',
      `libsecp256k1 addon (${NATIVE_MODULE}) did not load: ${reason}`,
      { cause },
    )
  }
  const key = new Uint8Array(32)
  key[31] = 1
  const { signature, recid } = lib.ecdsaSign(Buffer.from(SELF_TEST.digest, 'hex'), key)
  if (Buffer.from(signature).toString('hex') !== SELF_TEST.signature || recid !== SELF_TEST.recid) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `libsecp256k1 addon (${NATIVE_MODULE}) failed its signing known-answer test`,
    )
  }
  return lib
}

/**
 * A viem local account for a private key whose raw-digest `sign` runs on libsecp256k1 when the
 * addon loads (about ten times viem's speed: what a payer signing a voucher per call wants).
 * Never slower in silence: `native` throws without a working addon, `auto` falls back to viem
 * and says why in `fallbackReason` (createPayer reports it). Both sign deterministically
 * (RFC 6979) with a low s, as the escrow requires, so they give the same signature, `r ‖ s ‖ v`
 * with v in {27, 28}.
 *
 * @param privateKey 32-byte hex.
 * @param preference `native`, `js` or `auto` (native where it loads). @default 'auto'
 * @param loadNative The addon's loader; replaceable for tests. @default libsecp256k1's, checked
 *   against a known answer
 * @throws TollgateError `tollgate_invalid_config` for `native` without a working addon, or an
 *   unknown preference.
 * @example
 * const payer = await createPayer({ account, payerAuthorizer: keySigner(sessionKey), ... })
 */
export function keySigner(
  privateKey: Hex,
  preference: BackendPreference = 'auto',
  loadNative: () => Libsecp256k1Signer = loadNativeSigner,
): KeySigner {
  const account = privateKeyToAccount(privateKeyOf(privateKey, 'keySigner: the key'))
  let lib: Libsecp256k1Signer
  switch (preference) {
    case 'js':
      return { ...account, signingBackend: 'js' }
    case 'native':
      lib = loadNative()
      break
    case 'auto':
      try {
        lib = loadNative()
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error)
        return { ...account, signingBackend: 'js', fallbackReason: reason }
      }
      break
    default:
      throw new TollgateError(
        'tollgate_invalid_config',
        `secp256k1 backend must be auto, native or js, not ${String(preference)}`,
      )
  }
  const key = Buffer.from(privateKey.slice(2), 'hex')
  return {
    ...account,
    signingBackend: 'native',
    async sign({ hash }) {
      const { signature, recid } = lib.ecdsaSign(Buffer.from(hash.slice(2), 'hex'), key)
      return `0x${Buffer.from(signature).toString('hex')}${(27 + recid).toString(16)}` as Hex
    },
  }
}

/** How a payer signs its vouchers, as {@link signingOf} reports it. */
export interface VoucherSigning {
  readonly backend: BackendName
  /** Why vouchers are not signed on libsecp256k1; absent when they are. */
  readonly fallbackReason?: string
}

/**
 * How `signer` signs vouchers: a {@link keySigner} says; any other account signs in JavaScript
 * (viem does not hand its key out).
 */
export function signingOf(signer: LocalAccount): VoucherSigning {
  const { signingBackend, fallbackReason } = signer as Partial<KeySigner>
  if (signingBackend === 'native') return { backend: 'native' }
  if (signingBackend === 'js')
    return fallbackReason === undefined
      ? { backend: 'js', fallbackReason: 'keySigner was asked for the js backend' }
      : { backend: 'js', fallbackReason }
  return {
    backend: 'js',
    fallbackReason:
      'the voucher signer is not a keySigner, so viem signs in JavaScript; pass keySigner(privateKey) to sign on libsecp256k1',
  }
}
