import { Buffer } from 'node:buffer'
import { accept, type ErrorCode, type Result, reject } from '../errors/index.js'

/** Strict UTF-8: a malformed byte sequence or a byte-order mark fails instead of being replaced. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * The decoded bytes of the header being read, reused from one header to the next (each is decoded
 * to text before the next starts: nothing awaits in between); grown to the largest header seen,
 * at most 3/4 of the size limit.
 */
let scratch = Buffer.allocUnsafe(4096)

/**
 * Decodes a header value holding base64 (standard alphabet, with padding) of UTF-8 JSON.
 * The size limit is checked before any decoding. Canonical base64 is checked by re-encoding:
 * both directions run natively, several times faster than a per-character scan in JS, and
 * non-alphabet characters, base64url, whitespace, missing padding and non-zero padding bits all
 * change the re-encoded text (RFC 4648 §3.5).
 */
export function decodeHeaderJson(
  header: string | undefined,
  maxBytes: number,
  malformed: ErrorCode,
): Result<unknown> {
  if (header === undefined || header.length === 0) return reject(malformed, 'The header is empty.')
  if (header.length > maxBytes) {
    return reject('tollgate_payment_header_too_large', `${header.length} > ${maxBytes} bytes.`)
  }
  const need = Math.ceil(header.length / 4) * 3
  if (scratch.length < need) scratch = Buffer.allocUnsafe(need)
  const length = scratch.write(header, 0, 'base64')
  if (scratch.toString('base64', 0, length) !== header) {
    return reject(malformed, 'The header is not base64.')
  }
  let text: string
  try {
    text = utf8.decode(scratch.subarray(0, length))
  } catch {
    return reject(malformed, 'The header is not UTF-8.')
  }
  try {
    return accept(JSON.parse(text) as unknown)
  } catch {
    return reject(malformed, 'The header is not JSON.')
  }
}
