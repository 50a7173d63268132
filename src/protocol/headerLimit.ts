import { TollgateError } from '../errors/index.js'
import { MAX_PAYMENT_HEADER_BYTES } from './constants.js'

/** Options of the header decoders. */
export type HeaderOptions = {
  /**
   * Largest header accepted, in bytes; larger headers are refused before any decoding.
   * @default MAX_PAYMENT_HEADER_BYTES (16 KiB)
   */
  maxBytes?: number
}

/** The size limit to apply; a limit that is not a positive integer is a misuse and throws. */
export function headerLimit(options: HeaderOptions | undefined): number {
  const maxBytes = options?.maxBytes ?? MAX_PAYMENT_HEADER_BYTES
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `maxBytes ${maxBytes} is not a positive integer.`,
    )
  }
  return maxBytes
}
