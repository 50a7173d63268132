import type { FastifyRequest } from 'fastify'
import { describe, expect, it } from 'vitest'
import { LOCAL_LIMITER_KEYS, localLimiter } from '../../../src/transports/http/rateLimits.js'

const from = (ip: string) => ({ ip }) as FastifyRequest
const ip = (request: FastifyRequest) => request.ip

describe('the local limiter', () => {
  it('counts up to max per key and window; a peek refuses once nothing is left', () => {
    const limit = localLimiter({ max: 2, timeWindowMs: 60_000 }, ip)
    const a = from('10.0.0.1')
    expect(limit(a, { count: false })).toEqual({ ok: true })
    expect(limit(a)).toEqual({ ok: true })
    expect(limit(a)).toEqual({ ok: true })
    expect(limit(a, { count: false })).toEqual({ ok: false, retryAfter: 60 })
    expect(limit(a).ok).toBe(false)
    expect(limit(from('10.0.0.2'))).toEqual({ ok: true })
  })

  it(`keeps at most ${LOCAL_LIMITER_KEYS} keys: the oldest window goes first`, () => {
    const limit = localLimiter({ max: 1, timeWindowMs: 60_000 }, ip)
    for (let i = 0; i < LOCAL_LIMITER_KEYS; i++) expect(limit(from(`k${i}`)).ok).toBe(true)
    expect(limit(from('k1')).ok).toBe(false)
    // One more key evicts k0, the oldest: it starts a fresh window.
    expect(limit(from('new')).ok).toBe(true)
    expect(limit(from('k0')).ok).toBe(true)
    expect(limit(from('k2')).ok).toBe(false)
  })
})
