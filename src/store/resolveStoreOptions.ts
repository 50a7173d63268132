import { TollgateError } from '../errors/index.js'
import {
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_STORE_MODE,
  MAX_FLUSH_INTERVAL_MS,
  type StoreMode,
} from './constants.js'
import type { StoreOptions } from './types.js'

/** Store options with every default applied. */
export interface ResolvedStoreOptions {
  readonly mode: StoreMode
  readonly flushIntervalMs: number
}

/**
 * Applies defaults and checks store options.
 *
 * @throws TollgateError `tollgate_invalid_config` on an unknown mode or a flush interval that
 * is not an integer in [1, MAX_FLUSH_INTERVAL_MS].
 */
export function resolveStoreOptions(options: StoreOptions = {}): ResolvedStoreOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TollgateError('tollgate_invalid_config', 'store options must be an object.')
  }
  const mode = options.mode ?? DEFAULT_STORE_MODE
  if (mode !== 'durable' && mode !== 'relaxed') {
    throw new TollgateError(
      'tollgate_invalid_config',
      `store mode must be "durable" or "relaxed", not ${JSON.stringify(mode)}.`,
    )
  }
  const flushIntervalMs = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS
  if (
    !Number.isInteger(flushIntervalMs) ||
    flushIntervalMs < 1 ||
    flushIntervalMs > MAX_FLUSH_INTERVAL_MS
  ) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `store flushIntervalMs must be an integer in [1, ${MAX_FLUSH_INTERVAL_MS}], not ${String(flushIntervalMs)}.`,
    )
  }
  return { mode, flushIntervalMs }
}
