/**
 * tollgate as an x402 facilitator for a stock server: `@x402/express` with `@x402/evm`'s exact
 * server scheme and a remote facilitator URL pointing at tollgate's `/supported`, `/verify` and
 * `/settle`, paid by the stock exact client; tollgate's key sends the transfer. Without the
 * bearer token the facilitator answers nothing.
 */
import { x402Client } from '@x402/core/client'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import type { FastifyInstance } from 'fastify'
import type { PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { facilitatorApp } from '../../src/server/facilitator.js'
import { MemoryStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { type StockExactServer, startStockExactServer } from '../helpers/stockExactServer.js'
import { STOCK_PATHS } from '../helpers/stockServer.js'
import { type ExactApp, PRICE, startExactApp } from './exactFixtures.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, , , authorizer, , , stockPayer] = dev.accounts as PrivateKeyAccount[] &
  Record<1 | 4 | 7, PrivateKeyAccount>
const TOKEN = 'a-long-enough-facilitator-token'

let gate: ExactApp
let facilitator: FastifyInstance
let facilitatorUrl: string
let stock: StockExactServer
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  gate = await startExactApp(dev, await MemoryStore.open(), { receiver, authorizer })
  facilitator = facilitatorApp({
    exactPayee: gate.exact,
    network: `eip155:${dev.chainId}`,
    signer: authorizer.address,
    token: TOKEN,
  })
  facilitatorUrl = await facilitator.listen({ host: '127.0.0.1', port: 0 })
  stock = await startStockExactServer({
    rpcUrl: dev.rpcUrl,
    chain: dev.chain,
    facilitator: { url: facilitatorUrl, token: TOKEN },
    payTo: receiver.address,
    asset: { address: h.usdc, name: 'USDC', version: '2' },
    price: PRICE,
  })
})

afterAll(async () => {
  await stock?.stop()
  await facilitator?.close()
  await gate?.close()
  await revert?.()
})

describe('tollgate as a facilitator', () => {
  it('refuses requests without its bearer token', async () => {
    const response = await fetch(`${facilitatorUrl}/supported`)
    expect(response.status).toBe(401)
    expect(await response.json()).toMatchObject({ error: 'tollgate_unauthorized' })
    const wrong = await fetch(`${facilitatorUrl}/settle`, {
      method: 'POST',
      headers: { authorization: 'Bearer not-the-token-at-all', 'content-type': 'application/json' },
      body: '{}',
    })
    expect(wrong.status).toBe(401)
  })

  it('serves a stock exact server: verify, settle, and the transfer is mined by tollgate', async () => {
    const supported = await fetch(`${facilitatorUrl}/supported`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(await supported.json()).toEqual({
      kinds: [{ x402Version: 2, scheme: 'exact', network: `eip155:${dev.chainId}` }],
      extensions: [],
      signers: { 'eip155:*': [authorizer.address] },
    })
    const client = new x402Client()
    client.register(`eip155:${dev.chainId}`, new ExactEvmScheme(stockPayer))
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    const before = await h.usdcBalance(stockPayer.address)
    const receiverBefore = await h.usdcBalance(receiver.address)
    for (let i = 0; i < 2; i++) {
      const response = await pay(`${stock.baseUrl}${STOCK_PATHS.paid}`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ ok: true })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      const mined = await h.publicClient.getTransactionReceipt({
        hash: receipt.value.response.transaction as `0x${string}`,
      })
      expect(mined.from.toLowerCase()).toBe(authorizer.address.toLowerCase())
    }
    expect(await h.usdcBalance(stockPayer.address)).toBe(before - 2n * PRICE)
    expect(await h.usdcBalance(receiver.address)).toBe(receiverBefore + 2n * PRICE)
  })
})
