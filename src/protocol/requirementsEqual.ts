import { isRecord } from './parse.js'
import type { PaymentRequirements } from './types.js'

/**
 * `extra` keys a payer may echo back beyond those issued: the corrective 402 adds them to
 * the requirements it repeats, and stock clients pay with the requirements as received.
 */
const ECHOED_EXTRA = new Set(['channelState', 'voucherState'])

/**
 * Whether the `accepted` requirements of a payment are the ones this server issued.
 *
 * Deep equality of wire values, as the stock x402 server matches them: strings compare
 * exactly, so addresses are case-sensitive (a client echoes the bytes it got; tollgate
 * issues lowercase). Key order does not matter. The one allowance: `accepted.extra` may also
 * carry `channelState` and `voucherState`, which a corrective 402 added and a stock client
 * echoes; their content is not trusted or compared. The stock server tolerates any
 * additional `extra` key; tollgate tolerates only these two.
 *
 * The walk follows the structure of `issued`, so a hostile `accepted` cannot make it recurse
 * deeper than the requirements tollgate builds; it never throws, whatever `accepted` holds.
 *
 * @param accepted `accepted` from a decoded payment.
 * @param issued Requirements this server issues for the request, from {@link buildRequirements}.
 * @returns `true` when they match.
 * @example
 * if (!requirementsEqual(decoded.value.accepted, requirements)) return reject('invalid_payment_requirements')
 */
export function requirementsEqual(
  accepted: PaymentRequirements,
  issued: PaymentRequirements,
): boolean {
  const given: unknown = accepted
  if (!isRecord(given)) return false
  const wanted = issued as unknown as Record<string, unknown>
  for (const key in given) {
    if (Object.hasOwn(given, key) && !Object.hasOwn(wanted, key)) return false
  }
  for (const key in wanted) {
    if (!Object.hasOwn(wanted, key)) continue
    if (!Object.hasOwn(given, key)) return false
    const value = wanted[key]
    if (key === 'extra' ? !extraEqual(given[key], value) : !jsonEqual(given[key], value))
      return false
  }
  return true
}

// The walks below read own enumerable keys with `for…in` and `Object.hasOwn` (what
// `Object.keys` lists) without allocating the key arrays.

function extraEqual(accepted: unknown, issued: unknown): boolean {
  if (!isRecord(accepted) || !isRecord(issued)) return jsonEqual(accepted, issued)
  for (const key in accepted) {
    if (Object.hasOwn(accepted, key) && !Object.hasOwn(issued, key) && !ECHOED_EXTRA.has(key))
      return false
  }
  for (const key in issued) {
    if (!Object.hasOwn(issued, key) || ECHOED_EXTRA.has(key)) continue
    if (!Object.hasOwn(accepted, key) || !jsonEqual(accepted[key], issued[key])) return false
  }
  return true
}

/** Deep equality of JSON values, recursing along `issued` only. */
function jsonEqual(accepted: unknown, issued: unknown): boolean {
  if (typeof issued !== 'object' || issued === null) return accepted === issued
  if (Array.isArray(issued)) {
    if (!Array.isArray(accepted) || accepted.length !== issued.length) return false
    return issued.every((item, i) => jsonEqual(accepted[i], item))
  }
  if (!isRecord(accepted)) return false
  const wanted = issued as Record<string, unknown>
  let keys = 0
  for (const key in wanted) {
    if (!Object.hasOwn(wanted, key)) continue
    if (!Object.hasOwn(accepted, key) || !jsonEqual(accepted[key], wanted[key])) return false
    keys++
  }
  let given = 0
  for (const key in accepted) if (Object.hasOwn(accepted, key)) given++
  return given === keys
}
