/**
 * Hostile payments for tests: a well-formed payment mutated at one field.
 */

/**
 * Sets `value` at `path` of a deep copy of `object`, each key an own property (so `__proto__`
 * ends up in the JSON as a key, as an attacker would send it, not on this process's prototype).
 */
export function mutate(object: unknown, path: readonly string[], value: unknown): unknown {
  const copy = structuredClone(object) as Record<string, unknown>
  let node: Record<string, unknown> = copy
  const own = (target: Record<string, unknown>, key: string, v: unknown) =>
    Object.defineProperty(target, key, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    })
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined
    if (typeof next !== 'object' || next === null) own(node, key, {})
    node = node[key] as Record<string, unknown>
  }
  own(node, path.at(-1) ?? 'x', value)
  return copy
}

/** Every field of a voucher payment worth mutating, and prototype keys. */
export const PAYMENT_FIELDS = [
  ['x402Version'],
  ['accepted', 'scheme'],
  ['accepted', 'network'],
  ['accepted', 'amount'],
  ['accepted', 'asset'],
  ['accepted', 'payTo'],
  ['accepted', 'extra', 'withdrawDelay'],
  ['payload', 'type'],
  ['payload', 'channelConfig', 'payer'],
  ['payload', 'channelConfig', 'receiver'],
  ['payload', 'channelConfig', 'withdrawDelay'],
  ['payload', 'channelConfig', 'salt'],
  ['payload', 'voucher', 'channelId'],
  ['payload', 'voucher', 'maxClaimableAmount'],
  ['payload', 'voucher', 'signature'],
  ['payload', 'deposit'],
  ['__proto__'],
  ['constructor', 'prototype'],
  ['payload', '__proto__', 'polluted'],
] as const
