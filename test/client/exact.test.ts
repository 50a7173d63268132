/**
 * The payer with x402 `exact`, on a real anvil: `payer.fetch` pays the stock @x402/express exact
 * server (one mined transfer per call), a call over a spend limit signs nothing and moves
 * nothing, and where a server offers batch-settlement and exact the payer pays by channel.
 */
import type { LocalAccount, PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { type ExactApp, PRICE, startExactApp } from '../e2e/exactFixtures.js'
import { useDevChain } from '../helpers/devChain.js'
import { type StockExactServer, startStockExactServer } from '../helpers/stockExactServer.js'
import { STOCK_PATHS } from '../helpers/stockServer.js'
import { fundedAccount, payerOn, tempDir } from './fixtures.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, , , authorizer, facilitator] = dev.accounts as PrivateKeyAccount[] &
  Record<1 | 4 | 5, PrivateKeyAccount>

let stock: StockExactServer
let gate: ExactApp
let revert: () => Promise<void>
let funded: LocalAccount
const dirs: ReturnType<typeof tempDir>[] = []
const folder = () => {
  const made = tempDir()
  dirs.push(made)
  return made.dir
}

beforeAll(async () => {
  revert = await dev.snapshot()
  funded = await fundedAccount(dev, 1_000_000n)
  stock = await startStockExactServer({
    rpcUrl: dev.rpcUrl,
    chain: dev.chain,
    facilitator: { account: facilitator },
    payTo: receiver.address,
    asset: { address: h.usdc, name: 'USDC', version: '2' },
    price: PRICE,
  })
  gate = await startExactApp(dev, await MemoryStore.open(), { receiver, authorizer })
})

afterAll(async () => {
  await stock?.stop()
  await gate?.close()
  await revert?.()
  for (const d of dirs) d.remove()
})

describe('payer.fetch and exact', () => {
  it('pays the stock exact server, one transfer per call', async () => {
    const payer = await payerOn(dev, { account: funded, dataDir: folder() })
    const before = await h.usdcBalance(funded.address)
    const receiverBefore = await h.usdcBalance(receiver.address)
    for (let i = 0; i < 3; i++) {
      const response = await payer.fetch(`${stock.baseUrl}${STOCK_PATHS.paid}`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ ok: true })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      const mined = await h.publicClient.getTransactionReceipt({
        hash: receipt.value.response.transaction as `0x${string}`,
      })
      expect(mined.status).toBe('success')
    }
    expect(await h.usdcBalance(funded.address)).toBe(before - 3n * PRICE)
    expect(await h.usdcBalance(receiver.address)).toBe(receiverBefore + 3n * PRICE)
    await payer.close()
  })

  it('refuses a call over its spend limit and signs nothing', async () => {
    const payer = await payerOn(dev, {
      account: funded,
      dataDir: folder(),
      policy: { limits: { perDay: (2n * PRICE).toString() } },
    })
    const url = `${stock.baseUrl}${STOCK_PATHS.paid}`
    expect((await payer.fetch(url)).status).toBe(200)
    expect((await payer.fetch(url)).status).toBe(200)
    const before = await h.usdcBalance(funded.address)
    await expect(payer.fetch(url)).rejects.toMatchObject({ code: 'tollgate_spend_limit' })
    expect(await h.usdcBalance(funded.address)).toBe(before)
    await payer.close()
  })

  it('pays by channel where a server offers batch-settlement and exact', async () => {
    const payer = await payerOn(dev, { account: funded, dataDir: folder() })
    const receiverBefore = await h.usdcBalance(receiver.address)
    const response = await payer.fetch(`${gate.baseUrl}/quote`)
    expect(response.status).toBe(200)
    const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
    if (!receipt.ok) throw new Error(receipt.message)
    expect(receipt.value.chargedAmount).toBe(PRICE)
    expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(PRICE)
    // Paid into the channel, not transferred to the receiver.
    expect(await h.usdcBalance(receiver.address)).toBe(receiverBefore)
    expect(await payer.channels()).toHaveLength(1)
    await payer.close()
  })
})
