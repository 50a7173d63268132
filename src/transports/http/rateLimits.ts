import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import type { RateLimitRule } from './constants.js'

/** The verdict of a limiter: allowed, or refused with the seconds to wait. */
export type LimitVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfter: number }

/** Counts a request under a key and says whether it is within the limit. */
export type Limiter = (
  request: FastifyRequest,
  options?: { count: boolean },
) => LimitVerdict | Promise<LimitVerdict>

/** Keys each local limiter keeps at most; past it the least recently started window goes (as @fastify/rate-limit's default LRU of 5000). */
export const LOCAL_LIMITER_KEYS = 5000

const ALLOWED: LimitVerdict = Object.freeze({ ok: true })

/** The limiters of priced routes. */
export interface Limiters {
  readonly perIp: Limiter | undefined
  readonly unpaidPerIp: Limiter | undefined
  readonly perPayer: Limiter | undefined
}

/**
 * Builds the limiters. Without Redis each is a fixed window per key counted in this process
 * ({@link localLimiter}); with a Redis client they are @fastify/rate-limit's Redis store,
 * registered in a child context with `global: false` so that it neither limits nor decorates the
 * application's other routes.
 *
 * @param payerOf The payer of a request, read once its payment header is decoded.
 */
export async function createLimiters(
  fastify: FastifyInstance,
  rules: {
    perIp: RateLimitRule | undefined
    unpaidPerIp: RateLimitRule | undefined
    perPayer: RateLimitRule | undefined
  },
  payerOf: (request: FastifyRequest) => string,
  redis?: Redis,
): Promise<Limiters> {
  let limiters: Limiters = { perIp: undefined, unpaidPerIp: undefined, perPayer: undefined }
  if (!rules.perIp && !rules.unpaidPerIp && !rules.perPayer) return limiters
  if (!redis) {
    const ip = (request: FastifyRequest) => request.ip
    return {
      perIp: rules.perIp ? localLimiter(rules.perIp, ip) : undefined,
      unpaidPerIp: rules.unpaidPerIp ? localLimiter(rules.unpaidPerIp, ip) : undefined,
      perPayer: rules.perPayer ? localLimiter(rules.perPayer, payerOf) : undefined,
    }
  }
  await fastify.register(async (child) => {
    // Every instance counts in the same place (@fastify/rate-limit's Redis store); a Redis that
    // fails lets requests through rather than refusing payers.
    await child.register(rateLimit, {
      global: false,
      skipOnError: true,
      redis,
      nameSpace: 'tollgate-rate-',
    })
    const make = (rule: RateLimitRule, keyGenerator?: (request: FastifyRequest) => string) => {
      const check = child.createRateLimit({
        max: rule.max,
        timeWindow: rule.timeWindowMs,
        ...(keyGenerator ? { keyGenerator } : {}),
      })
      const limiter: Limiter = async (request, options) => {
        const result = await check(request, { increment: options?.count ?? true })
        if (result.isAllowed) return { ok: true }
        // Counting: refused once over the limit. Peeking: refused when no request is left.
        const refused = options?.count === false ? result.remaining <= 0 : result.isExceeded
        return refused ? { ok: false, retryAfter: Math.max(1, result.ttlInSeconds) } : { ok: true }
      }
      return limiter
    }
    limiters = {
      perIp: rules.perIp ? make(rules.perIp) : undefined,
      // A key of its own, so that unpaid and paid requests of one IP are counted apart.
      unpaidPerIp: rules.unpaidPerIp
        ? make(rules.unpaidPerIp, (request) => `402:${request.ip}`)
        : undefined,
      perPayer: rules.perPayer ? make(rules.perPayer, payerOf) : undefined,
    }
  })
  return limiters
}

/**
 * A fixed window per key, counted in this process, as @fastify/rate-limit's local store counts
 * (the window starts at a key's first request; counting refuses past `max`, peeking refuses when
 * nothing is left), with nothing allocated per request for a key already seen. At most
 * {@link LOCAL_LIMITER_KEYS} keys are kept; past that the least recently started window goes.
 */
export function localLimiter(
  rule: RateLimitRule,
  keyOf: (request: FastifyRequest) => string,
): (request: FastifyRequest, options?: { count: boolean }) => LimitVerdict {
  const windows = new Map<string, { count: number; endsAt: number }>()
  return (request, options) => {
    const key = keyOf(request)
    const now = Date.now()
    let window = windows.get(key)
    if (window === undefined || window.endsAt <= now) {
      if (window === undefined) {
        if (windows.size >= LOCAL_LIMITER_KEYS) {
          for (const oldest of windows.keys()) {
            windows.delete(oldest)
            break
          }
        }
        window = { count: 0, endsAt: now + rule.timeWindowMs }
      } else {
        // A new window moves the key to the back of the eviction order.
        windows.delete(key)
        window.count = 0
        window.endsAt = now + rule.timeWindowMs
      }
      windows.set(key, window)
    }
    if (options?.count === false) {
      if (window.count < rule.max) return ALLOWED
    } else if (++window.count <= rule.max) return ALLOWED
    return { ok: false, retryAfter: Math.max(1, Math.ceil((window.endsAt - now) / 1000)) }
  }
}
