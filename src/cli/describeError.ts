import { inspect } from 'node:util'
import {
  BaseError,
  HttpRequestError,
  SocketClosedError,
  TimeoutError,
  WebSocketRequestError,
} from 'viem'
import { hasRevertData, revertReason } from '../chain/revertReason.js'
import { type ErrorCode, TollgateError } from '../errors/index.js'

/** The environment variable that makes the CLI print an error's whole cause chain. */
export const DEBUG_ENV = 'TOLLGATE_DEBUG'

/**
 * What the CLI prints for a failure: one line starting with the stable code, e.g.
 * `tollgate_chain_unavailable: http://127.0.0.1:8545 could not be reached` or, for a revert,
 * the decoded custom error with its arguments. A chain failure never prints viem's screens of
 * request details; `debug` (`TOLLGATE_DEBUG=1`) appends the whole error with its causes.
 *
 * @param err What the command threw.
 * @param debug Append the full error and its causes. @default false
 * @returns The text to print after `tollgate: `, ending with a newline.
 */
export function describeError(err: unknown, debug = false): string {
  const line = oneLine(err)
  return debug ? `${line}\n${inspect(err, { depth: 8 })}\n` : `${line}\n`
}

function oneLine(err: unknown): string {
  const tollgate = find(err, (e): e is TollgateError => e instanceof TollgateError)
  const viem = find(err, (e): e is BaseError => e instanceof BaseError)
  if (viem) {
    const unreachable = viem.walk(
      (e) =>
        e instanceof HttpRequestError ||
        e instanceof WebSocketRequestError ||
        e instanceof SocketClosedError ||
        e instanceof TimeoutError,
    ) as { url?: string } | null
    if (unreachable) {
      const where = unreachable.url ? originOf(unreachable.url) : 'the chain node'
      const how =
        unreachable instanceof TimeoutError ? 'did not answer in time' : 'could not be reached'
      return `tollgate_chain_unavailable: ${where} ${how}`
    }
    const code: ErrorCode =
      tollgate?.code ??
      (hasRevertData(viem)
        ? 'invalid_batch_settlement_evm_transaction_reverted'
        : 'tollgate_internal')
    return `${code}: ${firstLine(revertReason(viem))}`
  }
  if (tollgate) return `${tollgate.code}: ${firstLine(tollgate.details ?? tollgate.message)}`
  return firstLine(err instanceof Error ? err.message : String(err))
}

/** The first error in `err`'s cause chain that passes `test`. */
function find<T>(err: unknown, test: (e: unknown) => e is T): T | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 16; depth++) {
    if (test(e)) return e
    e = e instanceof Error ? e.cause : undefined
  }
  return undefined
}

/** An RPC URL's origin: its path and credentials may hold an API key. */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return 'the chain node'
  }
}

const firstLine = (text: string): string => text.split('\n', 1)[0]?.trim() ?? ''
