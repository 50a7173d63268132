import { TollgateError } from '../errors/index.js'
import type { Secp256k1Backend } from './backend.js'
import { jsBackend } from './jsBackend.js'
import { loadNativeBackend } from './nativeBackend.js'

/** Which backend to use: `native` requires libsecp256k1, `js` forces @noble/secp256k1, `auto` prefers native. */
export type BackendPreference = 'auto' | 'native' | 'js'

/** The chosen backend, and why it is not the native one when `auto` fell back. */
export interface LoadedBackend {
  readonly backend: Secp256k1Backend
  /** Set only when `auto` fell back to `js`: the reason, for the caller to log. */
  readonly fallbackReason?: string
}

/**
 * Picks the ECDSA backend. Never falls back silently: `native` throws when the addon is
 * missing, `auto` returns the js backend with `fallbackReason` set (log it: verification is
 * then ~40x slower).
 *
 * @param preference - @default 'auto'
 * @param loadNative - The native loader; replaceable for tests. @default loadNativeBackend
 * @returns The backend, and `fallbackReason` when `auto` fell back.
 * @throws TollgateError `tollgate_invalid_config` for `native` without a working addon, or
 *   an unknown preference.
 * @example
 * const { backend, fallbackReason } = loadBackend('auto')
 * if (fallbackReason) log.warn(fallbackReason)
 */
export function loadBackend(
  preference: BackendPreference = 'auto',
  loadNative: () => Secp256k1Backend = loadNativeBackend,
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
