import { readFileSync } from 'node:fs'
import type { Hex } from 'viem'
import { TollgateError } from '../errors/index.js'

/** Where a command finds a private key: an environment variable, or a file another one names. */
export interface KeySource {
  /** Variable holding the key, e.g. `TOLLGATE_PRIVATE_KEY`. */
  readonly key: string
  /** Variable naming a file that holds the key, e.g. `TOLLGATE_KEY_FILE`. */
  readonly file: string
  /** Whose key it is, for the error message: "the payer's private key". */
  readonly whose: string
}

/**
 * Reads a 32-byte hex private key (with or without `0x`) from the environment or a key file;
 * never from a command-line argument, which other users can read in `ps`.
 *
 * @throws TollgateError `tollgate_invalid_config` when neither is set or the key is malformed.
 */
export function readPrivateKey(source: KeySource, env: NodeJS.ProcessEnv = process.env): Hex {
  const file = env[source.file]
  const value = env[source.key] ?? (file ? readFileSync(file, 'utf8').trim() : undefined)
  if (value === undefined) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `set ${source.key} (or ${source.file}) to ${source.whose}`,
    )
  }
  return privateKeyOf(value.startsWith('0x') ? value : `0x${value}`, source.key)
}

/**
 * `value` as a private key: `0x` and 64 hex digits. An address, an unset variable or a key
 * without its `0x` is a configuration error naming `what`, not a crash deep in a library.
 *
 * @throws TollgateError `tollgate_invalid_config`.
 */
export function privateKeyOf(value: unknown, what: string): Hex {
  if (typeof value === 'string' && /^0x[0-9a-fA-F]{64}$/.test(value)) return value as Hex
  const seen =
    typeof value !== 'string'
      ? String(value)
      : /^0x[0-9a-fA-F]{40}$/.test(value)
        ? 'an address'
        : `${value.length} characters`
  throw new TollgateError(
    'tollgate_invalid_config',
    `${what} must be a 32-byte hex private key (0x and 64 hex digits), got ${seen}${value === undefined ? ' (is the environment variable holding it set?)' : ''}`,
  )
}
