/**
 * tollgate as a batch-settlement facilitator for a stock server: `@x402/express` with `@x402/evm`'s
 * batch-settlement server scheme and a remote facilitator URL pointing at tollgate's `/supported`,
 * `/verify` and `/settle`, paid by the stock batch-settlement client on a real anvil. tollgate's
 * key sends the deposit, the claim, the settle and the refund; the stock server's receiver
 * authorizer signs the claim and the refund. Nothing is read from chain before a payload's
 * signatures verify.
 */
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import type { FastifyInstance } from 'fastify'
import {
  type Address,
  createPublicClient,
  createWalletClient,
  http,
  type PrivateKeyAccount,
  type PublicClient,
} from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { contractSignatureCheck } from '../../src/chain/contractSignatureCheck.js'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { escrowWriter } from '../../src/chain/escrowWriter.js'
import { createSendLock } from '../../src/chain/sendLock.js'
import { createTransactionSender } from '../../src/chain/sendTransaction.js'
import { authorizationTransfers } from '../../src/chain/transferWithAuthorization.js'
import { openExactPayee } from '../../src/payee/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import {
  type BatchFacilitator,
  type BatchFacilitatorClient,
  batchFacilitator,
} from '../../src/server/batchFacilitator.js'
import { facilitatorApp } from '../../src/server/facilitator.js'
import { MemoryStore } from '../../src/store/index.js'
import { fundedAccount, payerOn, tempDir } from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'
import {
  HANDLER_BODY,
  STOCK_PATHS,
  type StockServer,
  startStockServer,
} from '../helpers/stockServer.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, , , authorizer, relayer, , stockPayer] = dev.accounts as PrivateKeyAccount[] &
  Record<1 | 4 | 5 | 7, PrivateKeyAccount>
const TOKEN = 'a-long-enough-facilitator-token'
const PRICE = 1000n
const CALLS = 12
const network = `eip155:${dev.chainId}` as const

let facilitator: FastifyInstance
let facilitatorUrl: string
let stock: StockServer
let revert: () => Promise<void>
const temp = tempDir()

/** The batch side of tollgate's facilitator over `publicClient`, sending with the relayer's key. */
function batchOver(publicClient: BatchFacilitatorClient): BatchFacilitator {
  const walletClient = createWalletClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    account: relayer,
    pollingInterval: LOCAL_POLLING_MS,
  })
  const sendLock = createSendLock()
  return batchFacilitator({
    chainId: dev.chainId,
    escrow: dev.contracts.escrow,
    erc3009Collector: dev.contracts.erc3009Collector,
    publicClient,
    writer: escrowWriter({
      publicClient: h.publicClient,
      walletClient,
      escrow: dev.contracts.escrow,
      erc3009Collector: dev.contracts.erc3009Collector,
      sendLock,
    }),
    sender: createTransactionSender({
      publicClient: h.publicClient as PublicClient,
      walletClient,
      sendLock,
    }),
    account: relayer,
    contractCheck: contractSignatureCheck(h.publicClient),
  })
}

beforeAll(async () => {
  revert = await dev.snapshot()
  const publicClient = createPublicClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    pollingInterval: LOCAL_POLLING_MS,
  })
  const exactPayee = await openExactPayee({
    chainId: dev.chainId,
    store: await MemoryStore.open(),
    transfers: authorizationTransfers({
      publicClient,
      account: relayer,
      sender: createTransactionSender({
        publicClient: publicClient as PublicClient,
        walletClient: createWalletClient({
          chain: dev.chain,
          transport: http(dev.rpcUrl, { retryCount: 0 }),
          account: relayer,
        }),
      }),
    }),
  })
  facilitator = facilitatorApp({
    exactPayee,
    batch: batchOver(publicClient),
    network,
    signer: relayer.address,
    token: TOKEN,
  })
  facilitatorUrl = await facilitator.listen({ host: '127.0.0.1', port: 0 })
  stock = await startStockServer({
    rpcUrl: dev.rpcUrl,
    chain: dev.chain,
    facilitator: { url: facilitatorUrl, token: TOKEN },
    receiver: receiver.address,
    receiverAuthorizer: authorizer,
    asset: { address: h.usdc, name: 'USDC', version: '2' },
    price: PRICE,
    withdrawDelay: 3600,
  })
})

afterAll(async () => {
  await stock?.stop()
  await facilitator?.close()
  temp.remove()
  await revert?.()
})

const lower = (a: Address) => a.toLowerCase()

describe('tollgate as a batch-settlement facilitator', () => {
  const scheme = new BatchSettlementEvmScheme(stockPayer, {
    storage: new InMemoryClientChannelStorage(),
  })
  let channelId: `0x${string}` | undefined

  it('lists batch-settlement beside exact', async () => {
    const response = await fetch(`${facilitatorUrl}/supported`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(await response.json()).toEqual({
      kinds: [
        { x402Version: 2, scheme: 'exact', network },
        { x402Version: 2, scheme: 'batch-settlement', network },
      ],
      extensions: [],
      signers: { 'eip155:*': [relayer.address] },
    })
  })

  it('serves a stock server: the deposit sent by tollgate, every call paid by voucher', async () => {
    const client = new x402Client()
    client.register(network, scheme)
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    const before = await h.usdcBalance(stockPayer.address)
    let deposited = 0n
    for (let i = 0; i < CALLS; i++) {
      const response = await pay(`${stock.baseUrl}${STOCK_PATHS.paid}`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual(HANDLER_BODY)
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(BigInt(i + 1) * PRICE)
      channelId ??= receipt.value.channelState?.channelId
      const { transaction } = receipt.value.response
      if (transaction !== '') {
        const mined = await h.publicClient.getTransactionReceipt({
          hash: transaction as `0x${string}`,
        })
        expect(lower(mined.from)).toBe(lower(relayer.address))
        deposited += BigInt(receipt.value.response.amount ?? 0)
      }
    }
    expect(deposited).toBeGreaterThanOrEqual(BigInt(CALLS) * PRICE)
    expect(await h.usdcBalance(stockPayer.address)).toBe(before - deposited)
    if (channelId === undefined) throw new Error('no channel')
    const { balance, totalClaimed } = await h.channel(channelId)
    expect(balance).toBe(deposited)
    expect(totalClaimed).toBe(0n)

    const probe = await fetch(`${stock.baseUrl}${STOCK_PATHS.paid}`)
    const [requirements] = JSON.parse(
      Buffer.from(probe.headers.get('payment-required') ?? '', 'base64').toString(),
    ).accepts
    const next = await scheme.createPaymentPayload(2, requirements)
    const verify = await fetch(`${facilitatorUrl}/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        x402Version: 2,
        paymentPayload: { x402Version: 2, accepted: requirements, payload: next.payload },
        paymentRequirements: requirements,
      }),
    })
    expect(await verify.json()).toEqual({
      isValid: true,
      payer: lower(stockPayer.address),
      extra: {
        channelId,
        balance: deposited.toString(),
        totalClaimed: '0',
        withdrawRequestedAt: 0,
        refundNonce: '0',
      },
    })
  })

  it("claims and settles the stock server's vouchers, and refunds the rest to the payer", async () => {
    if (channelId === undefined) throw new Error('no channel')
    const manager = stock.scheme.createChannelManager(stock.facilitatorClient, network, h.usdc)
    const receiverBefore = await h.usdcBalance(receiver.address)
    const claims = await manager.claim()
    expect(claims.map((c) => c.vouchers)).toEqual([1])
    const { balance, totalClaimed } = await h.channel(channelId)
    expect(totalClaimed).toBe(BigInt(CALLS) * PRICE)
    const settled = await manager.settle()
    const mined = await h.publicClient.getTransactionReceipt({
      hash: settled.transaction as `0x${string}`,
    })
    expect(lower(mined.from)).toBe(lower(relayer.address))
    expect(await h.usdcBalance(receiver.address)).toBe(receiverBefore + BigInt(CALLS) * PRICE)

    const payerBefore = await h.usdcBalance(stockPayer.address)
    const refund = await scheme.refund(`${stock.baseUrl}${STOCK_PATHS.paid}`)
    expect(refund.success).toBe(true)
    expect(BigInt(refund.amount ?? 0)).toBe(balance - totalClaimed)
    expect(await h.usdcBalance(stockPayer.address)).toBe(payerBefore + balance - totalClaimed)
  })

  it('reads nothing from chain for a payload whose signatures are not the payer’s or the authorizer’s', async () => {
    let reads = 0
    const counting = new Proxy(h.publicClient, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          reads += 1
          return value.apply(target, args)
        }
      },
    }) as BatchFacilitatorClient
    const batch = batchOver(counting)
    const probe = await fetch(`${stock.baseUrl}${STOCK_PATHS.paid}`)
    const required = JSON.parse(
      Buffer.from(probe.headers.get('payment-required') ?? '', 'base64').toString(),
    )
    const requirements = required.accepts[0]
    const forger = new BatchSettlementEvmScheme(dev.accounts[8] as PrivateKeyAccount, {
      storage: new InMemoryClientChannelStorage(),
    })
    const created = await forger.createPaymentPayload(2, requirements)
    const payload = created.payload as {
      channelConfig: Record<string, unknown>
      voucher: { channelId: `0x${string}`; maxClaimableAmount: string; signature: `0x${string}` }
    }
    const signature = payload.voucher.signature

    // A claim and a refund whose receiver-authorizer signatures are another key's.
    const row = {
      channelId: payload.voucher.channelId,
      maxClaimableAmount: BigInt(payload.voucher.maxClaimableAmount),
      totalClaimed: BigInt(payload.voucher.maxClaimableAmount),
    }
    const claims = [
      {
        voucher: {
          channel: payload.channelConfig,
          maxClaimableAmount: row.maxClaimableAmount.toString(),
        },
        signature,
        totalClaimed: row.totalClaimed.toString(),
      },
    ]
    const byStranger = await h.signClaimBatch(relayer, [row])
    const claim = await batch.settle(
      {
        x402Version: 2,
        accepted: requirements,
        payload: { type: 'claim', claims, claimAuthorizerSignature: byStranger },
      },
      requirements,
    )
    expect(claim).toMatchObject({
      success: false,
      errorReason: 'invalid_batch_settlement_evm_authorizer_address_mismatch',
    })
    const refund = await batch.settle(
      {
        x402Version: 2,
        accepted: requirements,
        payload: {
          type: 'refund',
          channelConfig: payload.channelConfig,
          voucher: payload.voucher,
          amount: '1000',
          refundNonce: '0',
          claims: [],
          refundAuthorizerSignature: await h.signRefund(relayer, row.channelId, 0n, 1000n),
        },
      },
      requirements,
    )
    expect(refund).toMatchObject({
      success: false,
      errorReason: 'invalid_batch_settlement_evm_authorizer_address_mismatch',
    })

    // A deposit whose voucher is not the payer's.
    payload.voucher.signature = `0x${signature.slice(2, 10)}${signature[10] === 'a' ? 'b' : 'a'}${signature.slice(11)}`
    const paymentPayload = { x402Version: 2, accepted: requirements, payload: created.payload }
    const verified = await batch.verify(paymentPayload, requirements)
    expect(verified).toMatchObject({
      isValid: false,
      invalidReason: 'invalid_batch_settlement_evm_voucher_signature',
    })
    const settled = await batch.settle(paymentPayload, requirements)
    expect(settled).toMatchObject({
      success: false,
      errorReason: 'invalid_batch_settlement_evm_voucher_signature',
      transaction: '',
    })
    expect(reads).toBe(0)
  })

  it("serves tollgate's payer too: its deposit and vouchers through tollgate's facilitator", async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const payer = await payerOn(dev, {
      account,
      dataDir: temp.dir,
      policy: { deposit: { amount: 10n * PRICE } },
    })
    for (let i = 0; i < 3; i++) {
      const response = await payer.fetch(`${stock.baseUrl}${STOCK_PATHS.paid}`)
      expect(response.status).toBe(200)
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(BigInt(i + 1) * PRICE)
    }
    const [channel] = await payer.channels({ onChain: true })
    expect(channel?.onChain?.balance).toBe(10n * PRICE)
    await payer.close()
  })
})
