/**
 * A stock x402 client (@x402/fetch with @x402/evm's batch-settlement client scheme) paying a
 * Fastify app with the tollgate plugin, on a real anvil over real sockets: it deposits through
 * the server (ERC-3009), pays by voucher, tops up when its deposit runs out, and the server's
 * ledger and the chain agree with what the client was told.
 */
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Address, createWalletClient, http, type PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { escrowWriter } from '../../src/chain/escrowWriter.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { useDevChain } from '../helpers/devChain.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, , , authorizer, , , stockPayer] =
  dev.accounts as PrivateKeyAccount[] as PrivateKeyAccount[] & {
    1: PrivateKeyAccount
    4: PrivateKeyAccount
    7: PrivateKeyAccount
  }
const lower = (a: Address) => a.toLowerCase() as Address
const PRICE = 1000n
const CALLS = 25

let app: FastifyInstance
let payee: Payee
let url: string
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: dev.contracts.escrow,
    identity: {
      receiver: lower(receiver.address),
      receiverAuthorizer: lower(authorizer.address),
      token: lower(dev.contracts.usdc),
      withdrawDelay: 86_400,
    },
    store: await MemoryStore.open(),
    readChannel: channelReader(h.publicClient, dev.contracts.escrow),
  })
  app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: dev.contracts.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: 86_400,
    escrowWriter: escrowWriter({
      publicClient: h.publicClient,
      walletClient: createWalletClient({
        chain: dev.chain,
        transport: http(dev.rpcUrl, { retryCount: 0 }),
        account: receiver,
        pollingInterval: LOCAL_POLLING_MS,
      }),
      escrow: dev.contracts.escrow,
      erc3009Collector: dev.contracts.erc3009Collector,
    }),
  })
  app.get(
    '/quote',
    { config: { price: PRICE.toString(), description: 'a quote' } },
    async (request) => ({
      quote: 42,
      payer: request.payment?.payer,
    }),
  )
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  url = `http://127.0.0.1:${address.port}/quote`
})

afterAll(async () => {
  await app?.close()
  await payee?.close()
  await revert?.()
})

describe('a stock x402 client', () => {
  it('deposits, pays every call, tops up, and the books agree with the chain', async () => {
    const client = new x402Client()
    client.register(
      `eip155:${dev.chainId}`,
      new BatchSettlementEvmScheme(stockPayer, { storage: new InMemoryClientChannelStorage() }),
    )
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)

    const before = await h.usdcBalance(stockPayer.address)
    let charged = 0n
    let deposits = 0
    let channelId: string | undefined
    for (let i = 0; i < CALLS; i++) {
      const response = await pay(url)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ quote: 42, payer: lower(stockPayer.address) })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      expect(receipt.value.chargedAmount).toBe(PRICE)
      charged += PRICE
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(charged)
      if (receipt.value.response.transaction !== '') deposits += 1
      channelId ??= receipt.value.channelState?.channelId
    }
    if (!channelId) throw new Error('no channel id in the receipts')
    const record = payee.ledger.get(channelId as `0x${string}`)
    expect(record).toMatchObject({ chargedCumulativeAmount: charged, signedMaxClaimable: charged })
    // The stock client deposits 10x the price at a time, so it had to top up.
    expect(deposits).toBeGreaterThanOrEqual(2)
    const onChain = await h.channel(channelId as `0x${string}`)
    expect(onChain.balance).toBe(record?.balance)
    expect(onChain.balance).toBeGreaterThanOrEqual(charged)
    expect(await h.usdcBalance(stockPayer.address)).toBe(before - onChain.balance)
  })
})
