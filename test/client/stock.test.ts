/**
 * The payer SDK against the stock x402 server (Express, `@x402/express`, `@x402/evm`'s
 * batch-settlement server scheme, the stock facilitator in process) on a real anvil: it opens a
 * channel with a gasless ERC-3009 deposit the stock facilitator submits, pays by voucher with one
 * round trip per call, tops up, and its books agree with the chain and the stock server's.
 */
import type { LocalAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEV_USDC_DOMAIN } from '../../src/chain/devChain.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { useDevChain } from '../helpers/devChain.js'
import {
  HANDLER_BODY,
  STOCK_PATHS,
  type StockServer,
  startStockServer,
} from '../helpers/stockServer.js'
import { fundedAccount, PRICE, payerOn, tempDir } from './fixtures.js'

const dev = useDevChain()
const h = dev.harness
const [receiver, authorizer, facilitator] = [dev.accounts[1], dev.accounts[4], dev.accounts[5]] as [
  LocalAccount,
  LocalAccount,
  LocalAccount,
]

let stock: StockServer
let requests = 0
let revert: () => Promise<void>
const temp = tempDir()

beforeAll(async () => {
  revert = await dev.snapshot()
  stock = await startStockServer({
    rpcUrl: dev.rpcUrl,
    chain: dev.chain,
    facilitator,
    receiver: receiver.address,
    receiverAuthorizer: authorizer,
    asset: { address: h.usdc, ...DEV_USDC_DOMAIN },
    price: PRICE,
    withdrawDelay: 3600,
  })
})

afterAll(async () => {
  await stock?.stop()
  temp.remove()
  await revert?.()
})

/** A fetch that counts the requests sent to the stock server. */
const counted: typeof fetch = (input, init) => {
  requests += 1
  return fetch(input, init)
}

describe('the payer against the stock x402 server', () => {
  it('deposits through the stock facilitator, pays each call in one round trip, and tops up', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const payer = await payerOn(dev, {
      account,
      dataDir: temp.dir,
      fetch: counted,
      policy: { deposit: { amount: 10n * PRICE } },
    })
    const url = `${stock.baseUrl}${STOCK_PATHS.paid}`
    const calls = 15
    let deposits = 0
    for (let i = 0; i < calls; i++) {
      const response = await payer.fetch(url)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual(HANDLER_BODY)
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(BigInt(i + 1) * PRICE)
      if (receipt.value.response.transaction !== '') deposits += 1
    }
    expect(requests).toBe(calls + 1)
    expect(deposits).toBe(2)
    const [channel] = await payer.channels({ onChain: true })
    expect(channel).toMatchObject({ charged: BigInt(calls) * PRICE, balance: 20n * PRICE })
    expect(channel?.onChain?.balance).toBe(20n * PRICE)
    expect(await h.usdcBalance(account.address)).toBe(1_000_000n - 20n * PRICE)
    await payer.close()
  })
})
