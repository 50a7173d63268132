/**
 * The dashboard's JSON API and /metrics after real paid traffic on anvil, through the gateway
 * (`tollgate serve`'s createServer) with its admin listener: every counter moved by exactly the
 * traffic sent, the API reports the same revenue and channel, the settlement history lists the
 * claim, and the API refuses a call without the bearer token.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import type { PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import type { ChannelPage, Overview, SettlementPage } from '../../src/server/dashboard/index.js'
import { useDevChain } from '../helpers/devChain.js'

const dev = useDevChain()
const payer = (dev.accounts as PrivateKeyAccount[])[7] as PrivateKeyAccount
const TOKEN = 'a-dashboard-token-for-tests'
const PRICE = 2000n
const PAID = 4
const BAD = 3

let upstream: FastifyInstance
let server: TollgateServer
let base: string
let admin: string
let dataDir: string
let revert: () => Promise<void>

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig(
    {
      network: 'local',
      rpcUrl: dev.rpcUrl,
      dataDir,
      confirmations: 0,
      withdrawDelay: 3600,
      listen: { port: 0 },
      routes: [{ path: '/api/*', price: '$0.002', upstream: upstreamUrl() }],
      settlement: { enabled: false, adminPort: 0, ...extra },
    },
    dataDir,
  )
const upstreamUrl = () => {
  const address = upstream.server.address()
  if (!address || typeof address === 'string') throw new Error('no upstream port')
  return `http://127.0.0.1:${address.port}`
}
const api = async <T>(path: string): Promise<T> => {
  const response = await fetch(`${admin}api/${path}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  expect(response.status).toBe(200)
  return (await response.json()) as T
}
const metric = (text: string, line: RegExp) => {
  const found = text.split('\n').find((l) => line.test(l))
  return found === undefined ? undefined : Number(found.split(' ').at(-1))
}

beforeAll(async () => {
  revert = await dev.snapshot()
  upstream = Fastify()
  upstream.get('/api/echo', async () => ({ ok: true }))
  await upstream.listen({ host: '127.0.0.1', port: 0 })
  dataDir = mkdtempSync(join(tmpdir(), 'tollgate-dashboard-'))
  server = await createServer(config(), dev.privateKeys[4] as `0x${string}`, {
    adminToken: TOKEN,
  })
  base = await server.app.listen({ host: '127.0.0.1', port: 0 })
  admin = server.adminUrl as string
})

afterAll(async () => {
  await server?.close()
  await upstream?.close()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  await revert?.()
})

describe('the dashboard API and metrics after paid traffic', () => {
  it('counts exactly the paid calls, the revenue and the refusals sent', async () => {
    const client = new x402Client()
    client.register(
      `eip155:${dev.chainId}`,
      new BatchSettlementEvmScheme(payer, { storage: new InMemoryClientChannelStorage() }),
    )
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    for (let i = 0; i < PAID; i++) expect((await pay(`${base}/api/echo`)).status).toBe(200)
    const codes: string[] = []
    for (let i = 0; i < BAD; i++) {
      const refused = await fetch(`${base}/api/echo`, {
        headers: { 'payment-signature': 'bm90IGpzb24' },
      })
      codes.push(((await refused.json()) as { error: string }).error)
    }
    const [code] = codes
    expect(new Set(codes).size).toBe(1)

    const text = await (await fetch(`${base}/metrics`)).text()
    const route = 'route="/api/\\*"'
    expect(metric(text, new RegExp(`^tollgate_paid_requests_total\\{${route}\\}`))).toBe(PAID)
    expect(
      metric(text, new RegExp(`^tollgate_revenue_token_units_total\\{${route},token="0x`)),
    ).toBe(Number(PRICE) * PAID)
    expect(metric(text, new RegExp(`^tollgate_revenue_dollars_total\\{${route}\\}`))).toBeCloseTo(
      (Number(PRICE) * PAID) / 1e6,
      9,
    )
    expect(metric(text, new RegExp(`^tollgate_refusals_total\\{code="${code}",${route}\\}`))).toBe(
      BAD,
    )
    expect(metric(text, new RegExp(`^tollgate_payment_duration_seconds_count\\{${route}\\}`))).toBe(
      PAID,
    )
    // One deposit (the payer's first call) paid by the server.
    expect(metric(text, /^tollgate_gas_used_total\{kind="deposit"\}/)).toBeGreaterThan(0)
    expect(metric(text, /^tollgate_store_commit_records_count/)).toBeGreaterThanOrEqual(PAID)
    expect(text).not.toMatch(new RegExp(payer.address, 'i'))

    const overview = await api<Overview>('overview')
    expect(overview.revenue.total).toBe(String(PRICE * BigInt(PAID)))
    expect(overview.revenue.today).toBe(String(PRICE * BigInt(PAID)))
    expect(overview.revenue.unclaimed).toBe(String(PRICE * BigInt(PAID)))
    expect(overview.channels.count).toBe(1)
    expect(overview.refusals).toEqual({ [code as string]: BAD })
    expect(overview.series.charges.reduce((a, b) => a + b, 0)).toBe(PAID)
    expect(overview.token).toMatchObject({ decimals: 6, dollar: true })
    expect(overview.health.ok).toBe(true)

    const page = await api<ChannelPage>('channels?sort=charged&order=desc&limit=10')
    expect(page.total).toBe(1)
    expect(page.channels[0]).toMatchObject({
      payer: expect.stringMatching(new RegExp(payer.address, 'i')),
      charged: String(PRICE * BigInt(PAID)),
      claimed: '0',
      unclaimed: String(PRICE * BigInt(PAID)),
      withdrawalDeadline: null,
    })
  })

  it('lists the claim of a settlement run with its gas and transaction', async () => {
    const settled = await fetch(`${admin}settle`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(settled.status).toBe(200)
    const history = await api<SettlementPage>('settlements')
    const claim = history.entries.find((e) => e.kind === 'claim')
    expect(claim).toMatchObject({
      channels: 1,
      amount: String(PRICE * BigInt(PAID)),
      hash: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    })
    expect((claim as { gasPerChannel: number }).gasPerChannel).toBeGreaterThan(0)
    const overview = await api<Overview>('overview')
    expect(overview.revenue.unclaimed).toBe('0')
    expect(overview.revenue.claimed).toBe(String(PRICE * BigInt(PAID)))
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(metric(text, /^tollgate_claimed_amount_total/)).toBe(Number(PRICE) * PAID)
    expect(metric(text, /^tollgate_gas_used_total\{kind="claim"\}/)).toBeGreaterThan(0)
  })

  it('refuses the API and /settle without the bearer token, and serves the page', async () => {
    expect((await fetch(`${admin}api/overview`)).status).toBe(401)
    const wrong = await fetch(`${admin}api/channels`, { headers: { authorization: 'Bearer no' } })
    expect(wrong.status).toBe(401)
    expect(((await wrong.json()) as { error: string }).error).toBe('tollgate_unauthorized')
    expect((await fetch(`${admin}settle`, { method: 'POST' })).status).toBe(401)
    const html = await fetch(admin)
    expect(html.status).toBe(200)
    expect(await html.text()).toContain('assets/uplot.iife.min.js')
    const uplot = await fetch(`${admin}assets/uplot.iife.min.js`)
    expect(await uplot.text()).toContain('uPlot')
  })

  it('answers `tollgate status` and `tollgate channels --server` in dollars', async () => {
    const port = Number(new URL(admin).port)
    const file = join(dataDir, 'tollgate.json')
    writeFileSync(
      file,
      JSON.stringify({
        network: 'local',
        rpcUrl: dev.rpcUrl,
        routes: [{ path: '/api/*', price: '$0.002', upstream: upstreamUrl() }],
        settlement: { adminPort: port },
      }),
    )
    const cli = (...args: string[]) =>
      promisify(execFile)('npx', ['tsx', 'src/cli/main.ts', ...args, '--config', file], {
        env: { ...process.env, TOLLGATE_ADMIN_TOKEN: TOKEN },
      })
    const total = `$${((Number(PRICE) * PAID) / 1e6).toFixed(4)}`
    const status = await cli('status')
    expect(status.stdout).toMatch(/^health +ok/m)
    expect(status.stdout).toContain(`revenue total   ${total}`)
    expect(status.stdout).toContain('unclaimed       $0.0000')
    const json = JSON.parse((await cli('status', '--json')).stdout) as Overview
    expect(json.revenue.total).toBe(String(PRICE * BigInt(PAID)))
    const channels = await cli('channels', '--server')
    expect(channels.stdout).toMatch(new RegExp(`${payer.address}.*\\${total}`, 'i'))
    expect(channels.stdout).toContain('1 of 1 channels')
  }, 60_000)

  it('refuses to start an admin listener bound beyond loopback without a token', async () => {
    await expect(
      createServer(config({ adminHost: '0.0.0.0' }), dev.privateKeys[4] as `0x${string}`),
    ).rejects.toMatchObject({ code: 'tollgate_invalid_config' })
  })
})
