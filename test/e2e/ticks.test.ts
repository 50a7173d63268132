/**
 * HTTP ticks end to end (src/transports/http/PROTOCOL.md): a real anvil, a Fastify app with the
 * tollgate plugin on a real socket over a real LevelDB, and tollgate's payer with ticks on. It
 * makes many calls of tick windows (one voucher each), recovers from a lost response and from a
 * lost request, falls back to a new window after the server restarts, and the claim on chain is
 * exactly what the receipts charged. A stock x402 client pays the same tick route as usual.
 */
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Hex, LocalAccount, PrivateKeyAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { channelReader } from '../../src/chain/readChannel.js'
import type { Payer } from '../../src/client/index.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  decodePaymentRequired,
  decodeSettleResponse,
  encodeHeader,
  paymentPayload,
} from '../../src/protocol/index.js'
import { parseTickReceipt } from '../../src/protocol/tickWire.js'
import { LevelStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { fundedAccount, payerOn, tempDir } from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'

const dev = useDevChain()
const h = dev.harness
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]
const stockPayer = dev.accounts[7] as PrivateKeyAccount
const PRICE = 1000n
const WINDOW = 10
const WITHDRAW_DELAY = 900

interface Server {
  app: FastifyInstance
  payee: Payee
  store: LevelStore
  /** Requests received, by the tick header they carried: 'tick', 'window' or 'none'. */
  seen: { tick: number; window: number; none: number }
}

const data = tempDir()
const folders: (() => void)[] = [data.remove]
let server: Server
let port = 0
let base = ''
let revert: () => Promise<void>

/** Starts the server on the data directory (and on the previous port, after a restart). */
async function start(): Promise<Server> {
  const store = await LevelStore.open(`${data.dir}/channels`)
  const payee = await openPayee({
    chainId: dev.chainId,
    escrow: h.escrow,
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: h.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    store,
    readChannel: channelReader(h.publicClient, h.escrow),
  })
  const app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: h.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
    escrowWriter: h.escrowWriter(receiver),
  })
  const seen = { tick: 0, window: 0, none: 0 }
  app.addHook('onRequest', async (request) => {
    if (request.headers['tollgate-tick'] !== undefined) seen.tick += 1
    else if (request.headers['tollgate-tick-window'] !== undefined) seen.window += 1
    else seen.none += 1
  })
  app.get<{ Querystring: { fail?: string; cost?: string; slow?: string } }>(
    '/quote',
    { config: { price: PRICE, ticks: WINDOW } },
    async (request, reply) => {
      if (request.query.fail) return reply.code(503).send({ busy: true })
      if (request.query.slow) await new Promise((resolve) => setTimeout(resolve, 200))
      if (request.query.cost) reply.charge(request.query.cost)
      return { quote: 42, payer: request.payment?.payer, via: request.payment?.header }
    },
  )
  await app.listen({ host: '127.0.0.1', port })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  port = address.port
  base = `http://127.0.0.1:${port}`
  return { app, payee, store, seen }
}

async function stop(s: Server): Promise<void> {
  await s.app.close()
  await s.payee.close()
}

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await start()
})

afterAll(async () => {
  if (server) await stop(server)
  for (const remove of folders) remove()
  await revert?.()
})

/** What the receipts of a payer's calls charged, in total, read from each `PAYMENT-RESPONSE`. */
class Books {
  charged = 0n
  last: bigint | undefined
  indexes: number[] = []
  /** A tick's `TOLLGATE-TICK-RECEIPT`, or an opening call's `PAYMENT-RESPONSE`. */
  add(response: Response): void {
    const tick = parseTickReceipt(response.headers.get('tollgate-tick-receipt'))
    if (tick.ok) {
      this.charged += tick.value.chargedAmount
      this.last = tick.value.chargedCumulativeAmount
      this.indexes.push(tick.value.index)
      return
    }
    const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
    if (!receipt.ok) throw new Error(receipt.message)
    this.charged += receipt.value.chargedAmount ?? 0n
    this.last = receipt.value.channelState?.chargedCumulativeAmount
    const opening = receipt.value.response.extra?.tick as { index: number } | undefined
    this.indexes.push(opening?.index ?? -1)
  }
}

/**
 * A fetch that can lose the next call: its response (served and charged by the server, never
 * seen by the payer), or its request (never sent).
 */
function lossyFetch() {
  let lose: 'response' | 'request' | undefined
  const sent: Headers[] = []
  const send: typeof fetch = async (input, init) => {
    const what = lose
    lose = undefined
    if (what === 'request') throw new TypeError('fetch failed: the request was lost')
    sent.push(new Headers(init?.headers))
    const response = await fetch(input, init)
    if (what === 'response') {
      await response.arrayBuffer()
      throw new TypeError('fetch failed: the response was lost')
    }
    return response
  }
  return {
    send,
    sent,
    loseNext(what: 'response' | 'request') {
      lose = what
    },
  }
}

let payerAccount: LocalAccount

async function newPayer(send: typeof fetch): Promise<Payer> {
  const account = await fundedAccount(dev, 10_000_000n)
  payerAccount = account
  const folder = tempDir()
  folders.push(folder.remove)
  return payerOn(dev, {
    account,
    dataDir: folder.dir,
    fetch: send,
    ticks: true,
    policy: { deposit: { amount: 1000n * PRICE } },
  })
}

describe('HTTP ticks', () => {
  let payer: Payer
  let lossy: ReturnType<typeof lossyFetch>
  let channelId: Hex
  const books = new Books()

  it('pays a window with one voucher, then one preimage a call, and the books agree', async () => {
    lossy = lossyFetch()
    payer = await newPayer(lossy.send)
    const calls = 3 * WINDOW + 5
    const before = { ...server.seen }
    for (let i = 0; i < calls; i++) {
      const response = await payer.fetch(`${base}/quote`)
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({
        quote: 42,
        via: i % WINDOW === 0 ? 'PAYMENT-SIGNATURE' : 'TOLLGATE-TICK',
      })
      books.add(response)
      if (i === 0) {
        // The whole window counts as spent when its voucher is signed.
        const [channel] = await payer.channels()
        expect(channel?.signed).toBe(BigInt(WINDOW) * PRICE)
        channelId = channel?.channelId as Hex
      }
    }
    expect(books.charged).toBe(BigInt(calls) * PRICE)
    expect(books.indexes.slice(0, WINDOW + 1)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0])
    // One unpaid request learnt the price; one voucher a window; every other call one tick.
    expect(server.seen.none - before.none).toBe(1)
    expect(server.seen.window - before.window).toBe(4)
    expect(server.seen.tick - before.tick).toBe(calls - 4)
    const [channel] = await payer.channels()
    expect(channel?.charged).toBe(books.charged)
    expect(channel?.signed).toBe(4n * BigInt(WINDOW) * PRICE)
    const record = server.payee.ledger.get(channelId)
    expect(record?.chargedCumulativeAmount).toBe(books.charged)
    expect(record?.signedMaxClaimable).toBe(4n * BigInt(WINDOW) * PRICE)
    // The window is open and holds its channel: a stock-path voucher would be busy or take over.
    expect(server.payee.ledger.isHeld(channelId)).toBe(true)
  })

  it('refuses a replayed preimage, and a tick of a channel with no window, by stable codes', async () => {
    const last = lossy.sent.at(-1)?.get('tollgate-tick')
    if (!last) throw new Error('no tick sent')
    const replay = await fetch(`${base}/quote`, { headers: { 'tollgate-tick': last } })
    expect(replay.status).toBe(402)
    const required = decodePaymentRequired(replay.headers.get('payment-required') ?? undefined)
    expect(required.ok && required.value.error).toBe('tollgate_tick_invalid')
    expect(Number(replay.headers.get('tollgate-tick-expected'))).toBe(
      Number(last.split(' ')[1]) + 1,
    )
    const [, index, preimage] = last.split(' ')
    const elsewhere = await fetch(`${base}/quote`, {
      headers: { 'tollgate-tick': `0x${'11'.repeat(32)} ${index} ${preimage}` },
    })
    const refused = decodePaymentRequired(elsewhere.headers.get('payment-required') ?? undefined)
    expect(refused.ok && refused.value.error).toBe('tollgate_tick_window_ended')
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(books.charged)
  })

  it('a failed call is not charged and its preimage stays good', async () => {
    const failed = await payer.fetch(`${base}/quote?fail=1`)
    expect(failed.status).toBe(503)
    const next = await payer.fetch(`${base}/quote?cost=250`)
    expect(next.status).toBe(200)
    books.add(next)
    expect(books.indexes.at(-1)).toBe(5)
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(books.charged)
  })

  it('recovers a lost response with the next preimage, and a lost request with the index the server expects', async () => {
    lossy.loseNext('response')
    await expect(payer.fetch(`${base}/quote`)).rejects.toThrow('the response was lost')
    // Served and charged, never seen: the next tick's receipt shows it.
    const after = await payer.fetch(`${base}/quote`)
    expect(after.status).toBe(200)
    const receipt = parseTickReceipt(after.headers.get('tollgate-tick-receipt'))
    if (!receipt.ok) throw new Error(receipt.message)
    expect(receipt.value.index).toBe(7)
    const delivered = books.charged + 2n * PRICE
    expect(receipt.value.chargedCumulativeAmount).toBe(delivered)
    books.charged = delivered
    books.indexes.push(7)

    lossy.loseNext('request')
    await expect(payer.fetch(`${base}/quote`)).rejects.toThrow('the request was lost')
    // Never served: the payer presents tick 9, the server answers that it expects 8, and 8 is paid.
    const sentBefore = lossy.sent.length
    const recovered = await payer.fetch(`${base}/quote`)
    expect(recovered.status).toBe(200)
    books.add(recovered)
    expect(lossy.sent.length - sentBefore).toBe(2)
    expect(books.indexes.at(-1)).toBe(8)
    const [channel] = await payer.channels()
    expect(channel?.charged).toBe(books.charged)
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(books.charged)
  })

  it('a restart ends the window; the payer opens a new one and is charged only what was delivered', async () => {
    // The window's last tick ends it; the next call opens another, which the restart ends.
    books.add(await payer.fetch(`${base}/quote`))
    expect(books.indexes.at(-1)).toBe(9)
    books.add(await payer.fetch(`${base}/quote`))
    expect(books.indexes.at(-1)).toBe(0)
    expect(server.payee.ledger.isHeld(channelId)).toBe(true)
    await stop(server)
    server = await start()
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(books.charged)
    expect(server.payee.ledger.isHeld(channelId)).toBe(false)
    const before = { ...server.seen }
    for (let i = 0; i < 5; i++) {
      const response = await payer.fetch(`${base}/quote`)
      expect(response.status).toBe(200)
      books.add(response)
    }
    expect(books.indexes.slice(-5)).toEqual([0, 1, 2, 3, 4])
    // The first tick after the restart was refused (window ended), then one voucher opened a window.
    expect(server.seen.tick - before.tick).toBe(5)
    expect(server.seen.window - before.window).toBe(1)
    const [channel] = await payer.channels()
    expect(channel?.charged).toBe(books.charged)
  })

  it('one call of a window at a time; a voucher on the standard path ends an idle window', async () => {
    const slow = payer.fetch(`${base}/quote?slow=1`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const meanwhile = await fetch(`${base}/quote`, {
      headers: { 'tollgate-tick': `${channelId} 99 0x${'00'.repeat(32)}` },
    })
    const busy = decodePaymentRequired(meanwhile.headers.get('payment-required') ?? undefined)
    expect(busy.ok && busy.value.error).toBe('invalid_batch_settlement_evm_channel_busy')
    const served = await slow
    expect(served.status).toBe(200)
    books.add(served)

    // The payer's own voucher for one call, sent by hand on the standard path.
    const [channel] = await payer.channels()
    if (!channel) throw new Error('no channel')
    const accepted = decodePaymentRequired(
      (await fetch(`${base}/quote`)).headers.get('payment-required') ?? undefined,
    )
    if (!accepted.ok || !accepted.value.accepts[0]) throw new Error('no requirements')
    const max = books.charged + PRICE
    const header = encodeHeader(
      paymentPayload({
        accepted: accepted.value.accepts[0],
        payload: {
          type: 'voucher',
          channelConfig: channel.config,
          voucher: {
            channelId,
            maxClaimableAmount: max,
            signature: await h.signVoucher(payerAccount, channelId, max),
          },
        },
      }),
    )
    const standard = await fetch(`${base}/quote`, { headers: { 'payment-signature': header } })
    expect(standard.status).toBe(200)
    expect(await standard.json()).toMatchObject({ via: 'PAYMENT-SIGNATURE' })
    books.add(standard)
    expect(server.payee.ledger.isHeld(channelId)).toBe(false)
    // The payer learns of the ended window from its next tick, adopts the charge it did not make
    // itself (its own signed voucher), and opens a new window.
    const after = await payer.fetch(`${base}/quote`)
    expect(after.status).toBe(200)
    books.add(after)
    expect(books.indexes.at(-1)).toBe(0)
    expect(server.payee.ledger.get(channelId)?.chargedCumulativeAmount).toBe(books.charged)
    expect((await payer.channels())[0]?.charged).toBe(books.charged)
  })

  it('a stock x402 client pays the tick route by the standard path', async () => {
    const client = new x402Client()
    client.register(
      `eip155:${dev.chainId}`,
      new BatchSettlementEvmScheme(stockPayer, { storage: new InMemoryClientChannelStorage() }),
    )
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    let charged = 0n
    for (let i = 0; i < 5; i++) {
      const response = await pay(`${base}/quote`)
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ quote: 42, via: 'PAYMENT-SIGNATURE' })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      charged += PRICE
      expect(receipt.value.channelState?.chargedCumulativeAmount).toBe(charged)
      expect(receipt.value.response.extra?.tick).toBeUndefined()
    }
  })

  it('settlement claims exactly what the receipts charged', async () => {
    await stop(server)
    server = await start()
    const record = server.payee.ledger.get(channelId)
    if (!record) throw new Error('no record')
    expect(record.chargedCumulativeAmount).toBe(books.charged)
    await h.write(receiver, 'claim', [
      [
        {
          voucher: { channel: record.config, maxClaimableAmount: record.signedMaxClaimable },
          signature: record.signature,
          totalClaimed: record.chargedCumulativeAmount,
        },
      ],
    ])
    expect((await h.channel(channelId)).totalClaimed).toBe(books.charged)
    const [channel] = await payer.channels()
    expect(channel?.charged).toBe(books.charged)
    await payer.close()
  })
})
