/**
 * `tollgate serve` with an exact route: the stock exact client (@x402/fetch with @x402/evm's
 * exact scheme) pays a gateway route configured with `"exact": true`, the server's key sends the
 * transfer, the upstream answer is passed on once the transfer is mined; a route without it
 * offers batch-settlement only.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { x402Client } from '@x402/core/client'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import type { PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSettleResponse, type PaymentRequirements } from '../../src/protocol/index.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import { useDevChain } from '../helpers/devChain.js'

const dev = useDevChain()
const h = dev.harness
const accounts = dev.accounts as PrivateKeyAccount[]
const payer = accounts[8] as PrivateKeyAccount
const key = accounts[4] as PrivateKeyAccount

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
  await upstream.listen({ host: '127.0.0.1', port: 0 })
  const address = upstream.server.address()
  if (!address || typeof address === 'string') throw new Error('no upstream port')
  dataDir = mkdtempSync(join(tmpdir(), 'tollgate-serve-exact-'))
  const target = `http://127.0.0.1:${address.port}`
  const config = parseConfig(
    {
      network: 'local',
      rpcUrl: dev.rpcUrl,
      dataDir,
      confirmations: 0,
      withdrawDelay: 3600,
      routes: [
        { path: '/api/*', price: '$0.002', upstream: target, exact: true },
        { path: '/batch/*', price: '$0.002', upstream: target },
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

const schemesOf = async (url: string) => {
  const response = await fetch(url)
  await response.body?.cancel()
  const required = JSON.parse(
    Buffer.from(response.headers.get('payment-required') ?? '', 'base64').toString(),
  ) as { accepts: PaymentRequirements[] }
  return required.accepts.map((a) => a.scheme)
}

describe('tollgate serve with an exact route', () => {
  it('is paid by the stock exact client, the key sending the mined transfer', async () => {
    expect(await schemesOf(`${base}/api/echo`)).toEqual(['batch-settlement', 'exact'])
    expect(await schemesOf(`${base}/batch/echo`)).toEqual(['batch-settlement'])

    const client = new x402Client()
    client.register(`eip155:${dev.chainId}`, new ExactEvmScheme(payer))
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    const before = await h.usdcBalance(payer.address)
    const response = await pay(`${base}/api/echo?q=hi`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ echoed: 'hi' })
    const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
    if (!receipt.ok) throw new Error(receipt.message)
    const mined = await h.publicClient.getTransactionReceipt({
      hash: receipt.value.response.transaction as `0x${string}`,
    })
    expect(mined.status).toBe('success')
    expect(mined.from.toLowerCase()).toBe(key.address.toLowerCase())
    expect(await h.usdcBalance(payer.address)).toBe(before - 2000n)
  })
})
