import { describe, type ErrorCode, statusOf } from './codes.js'

/**
 * The one error class tollgate throws. Thrown for bugs and misconfiguration only;
 * rejections of untrusted input are returned as {@link Rejection} values instead.
 *
 * @example
 * throw new TollgateError('tollgate_invalid_config', 'price "$0.0000001" is below one token unit')
 */
export class TollgateError extends Error {
  override readonly name = 'TollgateError'
  readonly code: ErrorCode
  readonly status: number
  readonly details: string | undefined

  constructor(code: ErrorCode, details?: string, options?: { cause?: unknown }) {
    super(details ? `${describe(code)} ${details}` : describe(code), options)
    this.code = code
    this.status = statusOf(code)
    this.details = details
  }
}

/** An expected rejection of untrusted input: a value, never thrown. */
export interface Rejection {
  readonly ok: false
  readonly code: ErrorCode
  readonly message: string
}

/** A successful result carrying a value. */
export interface Accepted<T> {
  readonly ok: true
  readonly value: T
}

/** Either a value or a rejection with a stable code. */
export type Result<T> = Accepted<T> | Rejection

/** Builds a rejection whose message is the code's description plus optional detail. */
export function reject(code: ErrorCode, detail?: string): Rejection {
  return { ok: false, code, message: detail ? `${describe(code)} ${detail}` : describe(code) }
}

/** Wraps a value as a successful result. */
export function accept<T>(value: T): Accepted<T> {
  return { ok: true, value }
}
