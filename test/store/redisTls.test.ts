/**
 * The Redis store's connection options from a `tollgate serve` config, against a real
 * redis-server that serves TLS only (a certificate of a throwaway CA made with openssl): the CA
 * file and server name of `"store": { "tls": ... }` are what lets it connect; and a durability
 * through replica `WAIT` is refused at start with a clear config error.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/server/config.js'
import { RedisStore } from '../../src/store/index.js'
import { type RedisServer, startRedis } from '../helpers/redisServer.js'

let dir: string
let redis: RedisServer

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-tls-'))
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  const key = ['-newkey', 'rsa:2048', '-nodes', '-days', '1']
  openssl('req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test CA')
  openssl('req', ...key, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=redis.test')
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:redis.test\n')
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'server.crt',
  )
  redis = await startRedis({
    tls: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') },
  })
})

afterAll(async () => {
  await redis?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** The Redis options of a serve config whose `store` is `store`. */
function storeOf(store: Record<string, unknown>) {
  const config = parseConfig(
    {
      network: 'local',
      store: { url: redis.url, ...store },
      routes: [{ path: '/api/*', price: '$0.001', upstream: 'http://127.0.0.1:9' }],
    },
    dir,
  )
  if (!config.redis) throw new Error('no Redis store in the config')
  return config.redis
}

describe('the Redis store over TLS', () => {
  it('connects with the CA file and server name of the config, and not without them', async () => {
    const store = await RedisStore.open(
      storeOf({ tls: { ca: 'ca.crt', servername: 'redis.test' } }),
    )
    try {
      expect(await store.getMeta('nothing')).toBeUndefined()
    } finally {
      await store.close()
    }
    // The system's CAs do not know the throwaway one.
    await expect(RedisStore.open(storeOf({}))).rejects.toMatchObject({
      code: 'tollgate_store_failed',
    })
    // Nor is another name accepted for the certificate's.
    await expect(
      RedisStore.open(storeOf({ tls: { ca: 'ca.crt', servername: 'other.test' } })),
    ).rejects.toMatchObject({ code: 'tollgate_store_failed' })
  })

  it('refuses a CA file it cannot read, at config time', () => {
    expect(() => storeOf({ tls: { ca: 'missing.crt' } })).toThrow(
      expect.objectContaining({ code: 'tollgate_invalid_config' }),
    )
  })

  it('refuses durability through replica WAIT, which is not built', async () => {
    await expect(
      RedisStore.open(storeOf({ waitReplicas: 1, waitTimeoutMs: 100, tls: { ca: 'ca.crt' } })),
    ).rejects.toMatchObject({ code: 'tollgate_invalid_config', message: /appendfsync always/ })
  })
})
