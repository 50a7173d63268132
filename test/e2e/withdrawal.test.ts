/**
 * A payer starts a withdrawal on chain while paying a tollgate server: the chain watcher mirrors
 * it, settlement is told at once with the deadline, and the server refuses new vouchers on that
 * channel (DESIGN.md invariant 4) while other channels keep being served.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { type Address, type Hex, type PrivateKeyAccount, pad, toHex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { channelReader } from '../../src/chain/readChannel.js'
import { type ChainWatcher, createChainWatcher } from '../../src/chain/watcher.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  decodePaymentRequired,
  encodeHeader,
  type PaymentRequirements,
  paymentPayload,
} from '../../src/protocol/index.js'
import type { ChannelConfig } from '../../src/protocol/types.js'
import { MemoryStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const accounts = dev.accounts as PrivateKeyAccount[]
const receiver = accounts[1] as PrivateKeyAccount
const payer = accounts[2] as PrivateKeyAccount
const authorizer = accounts[4] as PrivateKeyAccount
const sessionKey = randomAccount()
const lower = (a: Address) => a.toLowerCase() as Address
const PRICE = 1000n
const DELAY = 3600

let app: FastifyInstance
let payee: Payee
let watcher: ChainWatcher
let url: string
let revert: () => Promise<void>
const alerts: { channelId: Hex; finalizeAfter: number }[] = []

beforeAll(async () => {
  revert = await dev.snapshot()
  const store = await MemoryStore.open()
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: dev.contracts.escrow,
    identity: {
      receiver: lower(receiver.address),
      receiverAuthorizer: lower(authorizer.address),
      token: lower(dev.contracts.usdc),
      withdrawDelay: DELAY,
    },
    store,
    readChannel: channelReader(h.publicClient, dev.contracts.escrow),
  })
  watcher = createChainWatcher({
    client: h.publicClient,
    escrow: dev.contracts.escrow,
    sink: payee,
    meta: store,
    confirmations: 0,
    onWithdrawInitiated: (channelId, finalizeAfter) => alerts.push({ channelId, finalizeAfter }),
  })
  app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: dev.contracts.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: DELAY,
  })
  app.get('/data', { config: { price: PRICE.toString() } }, async () => ({ ok: true }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  url = `http://127.0.0.1:${address.port}/data`
  await watcher.pollOnce()
})

afterAll(async () => {
  await watcher?.stop()
  await app?.close()
  await payee?.close()
  await revert?.()
})

let salt = 500
async function openChannel(): Promise<{ config: ChannelConfig; id: Hex }> {
  const config: ChannelConfig = {
    payer: lower(payer.address),
    payerAuthorizer: lower(sessionKey.address),
    receiver: lower(receiver.address),
    receiverAuthorizer: lower(authorizer.address),
    token: lower(dev.contracts.usdc),
    withdrawDelay: DELAY,
    salt: pad(toHex(++salt), { size: 32 }),
  }
  await h.depositErc3009(payer, payer, config, 1_000_000n, BigInt(salt))
  return { config, id: await h.channelId(config) }
}

async function accepted(): Promise<PaymentRequirements> {
  const response = await fetch(url)
  const required = decodePaymentRequired(response.headers.get('payment-required') ?? undefined)
  if (!required.ok || !required.value.accepts[0]) throw new Error('no requirements')
  return required.value.accepts[0]
}

async function pay(channel: { config: ChannelConfig; id: Hex }, max: bigint): Promise<Response> {
  const signature = await h.signVoucher(sessionKey, channel.id, max)
  const header = encodeHeader(
    paymentPayload({
      accepted: await accepted(),
      payload: {
        type: 'voucher',
        channelConfig: channel.config,
        voucher: { channelId: channel.id, maxClaimableAmount: max, signature },
      },
    }),
  )
  return fetch(url, { headers: { 'payment-signature': header } })
}

describe('a withdrawal started on chain', () => {
  it('stops acceptance on that channel at once, alerts settlement with the deadline, and leaves others served', async () => {
    const leaving = await openChannel()
    const staying = await openChannel()
    expect((await pay(leaving, PRICE)).status).toBe(200)
    expect((await pay(staying, PRICE)).status).toBe(200)

    const receipt = await h.write(payer, 'initiateWithdraw', [leaving.config, 1_000_000n])
    const block = await h.publicClient.getBlock({ blockNumber: receipt.blockNumber })
    await watcher.pollOnce()

    expect(alerts).toEqual([
      { channelId: leaving.id, finalizeAfter: Number(block.timestamp) + DELAY },
    ])
    expect(payee.claimable().map((c) => [c.record.channelId, c.deadline])).toContainEqual([
      leaving.id,
      Number(block.timestamp) + DELAY,
    ])
    const refused = await pay(leaving, 2n * PRICE)
    expect(refused.status).toBe(402)
    expect(((await refused.json()) as { error: string }).error).toBe('tollgate_withdrawal_pending')
    expect(payee.ledger.get(leaving.id)?.chargedCumulativeAmount).toBe(PRICE)

    expect((await pay(staying, 2n * PRICE)).status).toBe(200)
  })
})
