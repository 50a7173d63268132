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
) => Promise<LimitVerdict>

/** The limiters of priced routes. */
export interface Limiters {
  readonly perIp: Limiter | undefined
  readonly unpaidPerIp: Limiter | undefined
  readonly perPayer: Limiter | undefined
}

/**
 * Builds the limiters on @fastify/rate-limit (its local store), registered in a child context
 * with `global: false` so that it neither limits nor decorates the application's other routes.
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
  await fastify.register(async (child) => {
    // With a Redis client, every instance counts in the same place (@fastify/rate-limit's Redis
    // store); a Redis that fails lets requests through rather than refusing payers.
    await child.register(rateLimit, {
      global: false,
      skipOnError: true,
      ...(redis ? { redis, nameSpace: 'tollgate-rate-' } : {}),
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
