/**
 * The standalone gateway (`tollgate serve`) assembled from a configuration, proxying paid routes
 * to a real upstream server, paid by a stock x402 client, on a real anvil over real sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import type { PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS } from '../../src/chain/presets.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import { UPSTREAM_PROBE_CACHE_MS } from '../../src/server/upstreamProbe.js'
import { useDevChain } from '../helpers/devChain.js'

const dev = useDevChain()
const payer = (dev.accounts as PrivateKeyAccount[])[8] as PrivateKeyAccount

let upstream: FastifyInstance
let server: TollgateServer
let base: string
let dataDir: string
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  upstream = Fastify()
  upstream.get('/api/echo', async (request) => ({
    echoed: (request.query as { q?: string }).q ?? null,
  }))
  upstream.get('/api/broken', async (_request, reply) => reply.code(503).send({ error: 'down' }))
  await upstream.listen({ host: '127.0.0.1', port: 0 })
  const upstreamAddress = upstream.server.address()
  if (!upstreamAddress || typeof upstreamAddress === 'string') throw new Error('no upstream port')

  dataDir = mkdtempSync(join(tmpdir(), 'tollgate-serve-'))
  const config = parseConfig(
    {
      network: 'local',
      rpcUrl: dev.rpcUrl,
      dataDir,
      confirmations: 0,
      withdrawDelay: 3600,
      listen: { port: 0 },
      routes: [
        { path: '/api/*', price: '$0.002', upstream: `http://127.0.0.1:${upstreamAddress.port}` },
      ],
    },
    dataDir,
  )
  server = await createServer(config, dev.privateKeys[4] as `0x${string}`)
  base = await server.app.listen({ host: '127.0.0.1', port: 0 })
})

afterAll(async () => {
  await server?.close()
  await upstream?.close()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  await revert?.()
})

describe('tollgate serve', () => {
  it('has the local preset pointing at the development USDC', () => {
    expect(PRESETS.local.usdc.address.toLowerCase()).toBe(dev.contracts.usdc.toLowerCase())
  })

  it('proxies paid calls to the upstream, charges only what the upstream served, and reports health', async () => {
    const client = new x402Client()
    client.register(
      `eip155:${dev.chainId}`,
      new BatchSettlementEvmScheme(payer, { storage: new InMemoryClientChannelStorage() }),
    )
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)

    const unpaid = await fetch(`${base}/api/echo?q=1`)
    expect(unpaid.status).toBe(402)
    expect(unpaid.headers.get('payment-required')).toBeTruthy()

    for (let i = 0; i < 3; i++) {
      const response = await pay(`${base}/api/echo?q=${i}`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ echoed: String(i) })
    }
    const [record] = [...server.payee.ledger.records()]
    expect(record?.chargedCumulativeAmount).toBe(3n * 2000n)

    const broken = await pay(`${base}/api/broken`)
    expect(broken.status).toBe(503)
    expect(server.payee.ledger.get(record?.channelId ?? '0x')?.chargedCumulativeAmount).toBe(
      3n * 2000n,
    )
    expect(server.payee.ledger.isHeld(record?.channelId ?? '0x')).toBe(false)

    const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>
    expect(health).toMatchObject({
      ok: true,
      network: `eip155:${dev.chainId}`,
      channels: 1,
      signatureBackend: 'native',
    })
  })

  it('is not healthy while an HTTP upstream is down, and says why', async () => {
    const before = await fetch(`${base}/health`)
    expect(before.status).toBe(200)
    await upstream.close()
    // A probe's answer is reused for a second.
    await new Promise((resolve) => setTimeout(resolve, UPSTREAM_PROBE_CACHE_MS + 100))
    const health = await fetch(`${base}/health`)
    expect(health.status).toBe(503)
    const body = (await health.json()) as { ok: boolean; upstreams: Record<string, unknown>[] }
    expect(body.ok).toBe(false)
    expect(body.upstreams).toEqual([
      expect.objectContaining({
        path: '/api/*',
        reachable: false,
        error: expect.stringMatching(/ECONNREFUSED/),
      }),
    ])
  })
})
