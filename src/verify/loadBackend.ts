import { TollgateError } from '../errors/index.js'
import type { Secp256k1Backend } from './backend.js'
import { jsBackend } from './jsBackend.js'
import { KECCAK, type Keccak } from './keccak.js'
import { loadNativeBackend } from './nativeBackend.js'

/** Which backend to use: `native` requires libsecp256k1, `js` forces @noble/secp256k1, `auto` prefers native. */
export type BackendPreference = 'auto' | 'native' | 'js'

/** The chosen backend, and why it is not the native one when `auto` fell back. */
export interface LoadedBackend {
  readonly backend: Secp256k1Backend
  /**
   * Set when `auto` fell back to `js`, or when keccak-256 fell back to @noble/hashes (see
   * keccak.ts): the reasons, for the caller to log.
   */
  readonly fallbackReason?: string
}

/**
 * Picks the ECDSA backend. Never falls back silently: `native` throws when the addon is
 * missing, `auto` returns the js backend with `fallbackReason` set (log it: verification is
 * then ~40x slower). A keccak-256 that fell back to @noble/hashes (about 7x slower hashing) is
 * reported in `fallbackReason` too, whatever the preference.
 *
 * @param preference - @default 'auto'
 * @param loadNative - The native loader; replaceable for tests. @default loadNativeBackend
 * @param keccak - The keccak-256 in use; replaceable for tests. @default KECCAK
 * @returns The backend, and `fallbackReason` when `auto` or keccak-256 fell back.
 * @throws TollgateError `tollgate_invalid_config` for `native` without a working addon, or
 *   an unknown preference.
 * @example
 * const { backend, fallbackReason } = loadBackend('auto')
 * if (fallbackReason) log.warn(fallbackReason)
 */
export function loadBackend(
  preference: BackendPreference = 'auto',
  loadNative: () => Secp256k1Backend = loadNativeBackend,
  keccak: Keccak = KECCAK,
): LoadedBackend {
  const loaded = pickBackend(preference, loadNative)
  const slowHash = keccak.fallbackReason
  if (slowHash === undefined) return loaded
  const { backend, fallbackReason } = loaded
  return {
    backend,
    fallbackReason: fallbackReason === undefined ? slowHash : `${fallbackReason}; ${slowHash}`,
  }
}

function pickBackend(
  preference: BackendPreference,
  loadNative: () => Secp256k1Backend,
): LoadedBackend {
  switch (preference) {
    case 'js':
      return { backend: jsBackend }
    case 'native':
      return { backend: loadNative() }
    case 'auto':
      try {
        return { backend: loadNative() }
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error)
        return {
          backend: jsBackend,
          fallbackReason: `using the pure-JS secp256k1 backend: ${reason}`,
        }
      }
    default:
      throw new TollgateError(
        'tollgate_invalid_config',
        `secp256k1 backend must be auto, native or js, not ${String(preference)}`,
      )
  }
}
