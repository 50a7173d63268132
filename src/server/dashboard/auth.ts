import { timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { describe } from '../../errors/index.js'

/** The environment variable the admin listener's bearer token is read from. */
export const ADMIN_TOKEN_ENV = 'TOLLGATE_ADMIN_TOKEN'

/** Shortest bearer token accepted, in characters. */
export const MIN_TOKEN_LENGTH = 16

/**
 * An `onRequest` hook refusing, with 401 `tollgate_unauthorized`, a request without
 * `Authorization: Bearer <token>` (compared in constant time).
 */
export function bearerCheck(token: string) {
  const expected = Buffer.from(`Bearer ${token}`)
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer')
      .send({ error: 'tollgate_unauthorized', message: describe('tollgate_unauthorized') })
  }
}
