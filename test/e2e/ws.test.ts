/**
 * The WebSocket transport end to end: a real anvil with the escrow, channels opened by direct
 * deposit, a durable LevelStore in a temp dir, the chain watcher, a Fastify server on a real
 * socket, and a bare `ws` client written here that speaks the frame protocol (PROTOCOL.md) with
 * vouchers signed by viem. At the end the server closes and the reopened store is checked
 * against what the clients received.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Account, type Hex, pad, toHex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { channelReader } from '../../src/chain/readChannel.js'
import { type ChainWatcher, createChainWatcher } from '../../src/chain/watcher.js'
import { isErrorCode } from '../../src/errors/index.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  type PaymentPayload,
  type PaymentRequirements,
  paymentPayload,
} from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import {
  type FeedContext,
  type RequestHandler,
  type ServerFrame,
  tollgateWs,
  WS_SUBPROTOCOL,
} from '../../src/transports/ws/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { type ChannelConfig, randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const [payer, receiver, authorizer] = dev.accounts.slice(6, 9) as [Account, Account, Account]
const sessionKey = randomAccount()
const WITHDRAW_DELAY = 900
const FEED_PRICE = 1000n
const RPC_PRICE = 5000n
const WINDOW = 10
const LOW_WATER = 4
const DEPOSIT = 10_000_000n
/** How long the client waits for a frame before the test fails. */
const FRAME_TIMEOUT_MS = 10_000

let app: FastifyInstance
let payee: Payee
let store: LevelStore
let watcher: ChainWatcher
let dir: string
let base: string
let revert: () => Promise<void>
const chainReads = new Map<Hex, number>()
/** Per channel: what the clients were charged, by the `charged` of every billed frame received. */
const received = new Map<Hex, bigint>()

/** An endless pull source: `{ n }` for n = 1, 2, …, one a millisecond, until the session ends. */
async function* ticks({ signal }: FeedContext) {
  for (let n = 1; !signal.aborted; n++) {
    await sleep(1)
    yield { n }
  }
}

/** Charges 100 units a token when `tokens` is given (dynamic pricing), else the price. */
const complete: RequestHandler = (body, context) => {
  const { tokens } = body as { tokens?: number }
  if (tokens !== undefined) context.charge(BigInt(tokens) * 100n)
  return { tokens: tokens ?? 'all' }
}

beforeAll(async () => {
  revert = await dev.snapshot()
  dir = await mkdtemp(join(tmpdir(), 'tollgate-ws-e2e-'))
  store = await LevelStore.open(dir)
  const read = channelReader(h.publicClient, h.escrow)
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: h.escrow,
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: h.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    store,
    readChannel: async (id) => {
      chainReads.set(id, (chainReads.get(id) ?? 0) + 1)
      return read(id)
    },
  })
  watcher = createChainWatcher({
    client: h.publicClient,
    escrow: h.escrow,
    sink: payee,
    meta: store,
    confirmations: 0,
  })
  await watcher.pollOnce()
  app = Fastify()
  await app.register(tollgateWs, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: h.usdc, name: 'USDC', version: '2' },
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
  })
  app.tollgateFeed('/ticks', {
    price: FEED_PRICE,
    creditWindow: WINDOW,
    lowWater: LOW_WATER,
    source: ticks,
  })
  app.tollgateRequests('/complete', {
    price: RPC_PRICE,
    creditWindow: WINDOW,
    lowWater: LOW_WATER,
    handler: complete,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  base = `ws://127.0.0.1:${address.port}`
})

afterAll(async () => {
  await watcher?.stop()
  await app?.close()
  await payee?.close().catch(() => {})
  await revert?.()
  if (dir) await rm(dir, { recursive: true, force: true })
})

type FrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>

/** A bare `ws` client of the frame protocol: it records every frame and sums what it was charged. */
class Client {
  readonly log: ServerFrame[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  private wake: (() => void) | undefined
  private isClosed = false

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame
      this.log.push(frame)
      if (frame.type === 'data' || frame.type === 'response') {
        const id = this.channelId
        if (id) received.set(id, (received.get(id) ?? 0n) + BigInt(frame.charged))
      }
      this.wake?.()
    })
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.isClosed = true
        resolve({ code, reason: reason.toString() })
        this.wake?.()
      }),
    )
  }

  /** The channel this client paid on last. */
  channelId: Hex | undefined

  static async open(path: string): Promise<Client> {
    const ws = new WebSocket(`${base}${path}`, WS_SUBPROTOCOL)
    const client = new Client(ws)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    return client
  }

  /** The requirements of the `payment-required` frame sent on connect. */
  async accepted(): Promise<PaymentRequirements> {
    const [frame] = await this.frames('payment-required', 1)
    const accepted = frame?.paymentRequired.accepts[0]
    if (!accepted) throw new Error('no requirements')
    return accepted
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  async pay(accepted: PaymentRequirements, channel: Channel, max: bigint): Promise<void> {
    this.channelId = channel.id
    this.send({ type: 'pay', payment: await voucher(accepted, channel, max) })
  }

  /** Frames of `type` received so far. */
  all<T extends ServerFrame['type']>(type: T): FrameOf<T>[] {
    return this.log.filter((frame): frame is FrameOf<T> => frame.type === type)
  }

  /** Waits until `count` frames of `type` were received; returns them all. */
  async frames<T extends ServerFrame['type']>(type: T, count: number): Promise<FrameOf<T>[]> {
    await this.until(() => this.all(type).length >= count, `${count} ${type} frames`)
    return this.all(type)
  }

  /** Waits until `check` holds, re-checked on every frame and on close. */
  async until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + FRAME_TIMEOUT_MS
    while (!check()) {
      const left = deadline - Date.now()
      if (left <= 0 || this.isClosed) {
        throw new Error(`waited for ${what}; got ${JSON.stringify(this.log.map((f) => f.type))}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          this.wake = undefined
          resolve()
        }
      })
    }
  }

  /** The frames received after the last frame of `type`. */
  after(type: ServerFrame['type']): ServerFrame[] {
    let at = this.log.length - 1
    while (at >= 0 && this.log[at]?.type !== type) at--
    return this.log.slice(at + 1)
  }

  /** Sends `end` and waits for the close; returns the final receipt. */
  async end(): Promise<FrameOf<'receipt'>> {
    this.send({ type: 'end' })
    const closed = await this.closed
    expect(closed).toEqual({ code: 1000, reason: 'session ended' })
    const final = this.log.at(-1)
    if (final?.type !== 'receipt' || !final.final) throw new Error('no final receipt')
    return final
  }
}

interface Channel {
  config: ChannelConfig
  id: Hex
}

let salt = 4000
/** A channel opened on chain by a direct deposit; the server has never seen it. */
async function openChannel(amount = DEPOSIT): Promise<Channel> {
  const config: ChannelConfig = {
    payer: payer.address.toLowerCase() as Hex,
    payerAuthorizer: sessionKey.address.toLowerCase() as Hex,
    receiver: receiver.address.toLowerCase() as Hex,
    receiverAuthorizer: authorizer.address.toLowerCase() as Hex,
    token: h.usdc.toLowerCase() as Hex,
    withdrawDelay: WITHDRAW_DELAY,
    salt: pad(toHex(++salt), { size: 32 }),
  }
  await h.approve(payer, amount)
  await h.depositDirect(payer, config, amount)
  return { config, id: await h.channelId(config) }
}

async function voucher(
  accepted: PaymentRequirements,
  channel: Channel,
  max: bigint,
): Promise<PaymentPayload> {
  return paymentPayload({
    accepted,
    payload: {
      type: 'voucher',
      channelConfig: channel.config,
      voucher: {
        channelId: channel.id,
        maxClaimableAmount: max,
        signature: await h.signVoucher(sessionKey, channel.id, max),
      },
    },
  })
}

const charged = (id: Hex) => payee.ledger.get(id)?.chargedCumulativeAmount
/** The sum of `extra.chargedAmount` over a client's receipts. */
const receiptsTotal = (c: Client) =>
  c
    .all('receipt')
    .reduce(
      (sum, r) =>
        sum + BigInt((r.paymentResponse.extra as { chargedAmount: string }).chargedAmount),
      0n,
    )

describe('a billed feed', () => {
  it('is consumed across several credit windows, pauses on exhausted credit without dropping, and resumes on the next voucher', async () => {
    const channel = await openChannel()
    const c = await Client.open('/ticks')
    const accepted = await c.accepted()
    expect(accepted).toMatchObject({
      amount: FEED_PRICE.toString(),
      extra: { creditWindow: WINDOW, minDeposit: (FEED_PRICE * BigInt(WINDOW)).toString() },
    })
    const window = FEED_PRICE * BigInt(WINDOW)
    let ceiling = window
    await c.pay(accepted, channel, ceiling)
    await c.frames('receipt', 1)
    // First sight: the channel was read from chain once, and is not read again below.
    expect(chainReads.get(channel.id)).toBe(1)
    c.send({ type: 'subscribe' })

    // The client answers each voucher-needed with the next window's voucher.
    for (let w = 1; w < 4; w++) {
      await c.frames('voucher-needed', w)
      ceiling += window
      await c.pay(accepted, channel, ceiling)
      await c.frames('receipt', w + 1)
    }
    // No fifth voucher: the feed stops at the credit's end and says why; the socket stays open.
    const messages = 4 * WINDOW
    await c.frames('data', messages)
    await c.until(
      () => c.after('data').some((f) => f.type === 'paused' && f.reason === 'credit'),
      'paused for credit',
    )
    await sleep(50)
    expect(c.all('data')).toHaveLength(messages)
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    expect(charged(channel.id)).toBe(ceiling)

    // The next voucher resumes the feed where it paused.
    ceiling += window
    await c.pay(accepted, channel, ceiling)
    await c.frames('data', messages + WINDOW)
    const seqAt = (seq: number) => c.log.findIndex((f) => f.type === 'data' && f.seq === seq)
    expect(c.log.slice(seqAt(messages) + 1, seqAt(messages + 1)).map((f) => f.type)).toEqual([
      'paused',
      'receipt',
      'resumed',
    ])
    const final = await c.end()

    const data = c.all('data')
    expect(data.map((d) => d.seq)).toEqual(data.map((_d, i) => i + 1))
    expect(data.every((d) => d.charged === FEED_PRICE.toString())).toBe(true)
    const total = BigInt(data.length) * FEED_PRICE
    expect(charged(channel.id)).toBe(total)
    expect(received.get(channel.id)).toBe(total)
    expect(receiptsTotal(c)).toBe(total)
    expect(final.paymentResponse.extra).toMatchObject({
      channelState: { chargedCumulativeAmount: total.toString() },
    })
    expect(payee.ledger.isHeld(channel.id)).toBe(false)
    expect(chainReads.get(channel.id)).toBe(1)
  })

  it('refuses a channel that was never deposited on chain', async () => {
    const config: ChannelConfig = {
      payer: payer.address.toLowerCase() as Hex,
      payerAuthorizer: sessionKey.address.toLowerCase() as Hex,
      receiver: receiver.address.toLowerCase() as Hex,
      receiverAuthorizer: authorizer.address.toLowerCase() as Hex,
      token: h.usdc.toLowerCase() as Hex,
      withdrawDelay: WITHDRAW_DELAY,
      salt: pad(toHex(++salt), { size: 32 }),
    }
    const empty = { config, id: await h.channelId(config) }
    const c = await Client.open('/ticks')
    await c.pay(await c.accepted(), empty, FEED_PRICE * BigInt(WINDOW))
    const [error] = await c.frames('error', 1)
    expect(error?.code).toBe('invalid_batch_settlement_evm_channel_not_found')
    expect(payee.ledger.get(empty.id)).toBeUndefined()
    c.ws.close()
    await c.closed
  })
})

describe('billed requests', () => {
  it('charges each request its actual price (dynamic pricing) across credit windows', async () => {
    const channel = await openChannel()
    const c = await Client.open('/complete')
    const accepted = await c.accepted()
    expect(accepted.amount).toBe(RPC_PRICE.toString())
    const window = RPC_PRICE * BigInt(WINDOW)
    let ceiling = window
    await c.pay(accepted, channel, ceiling)
    await c.frames('receipt', 1)

    // 30 requests, one at a time; every third generates 7 tokens (700 units), the others pay the
    // price. The client tops up on voucher-needed.
    const expected: bigint[] = []
    for (let i = 1; i <= 30; i++) {
      const dynamic = i % 3 === 0
      c.send({ type: 'request', id: i, body: dynamic ? { tokens: 7 } : {} })
      expected.push(dynamic ? 700n : RPC_PRICE)
      await c.frames('response', i)
      if (c.all('voucher-needed').length >= c.all('receipt').length) {
        ceiling = (received.get(channel.id) ?? 0n) + window
        await c.pay(accepted, channel, ceiling)
        await c.frames('receipt', c.all('voucher-needed').length + 1)
      }
    }
    const responses = c.all('response')
    expect(responses.map((r) => r.id)).toEqual(expected.map((_e, i) => i + 1))
    expect(responses.map((r) => BigInt(r.charged))).toEqual(expected)
    expect(c.all('error')).toEqual([])
    expect(c.all('receipt').length).toBeGreaterThan(2)
    await c.end()

    const total = expected.reduce((a, b) => a + b, 0n)
    expect(charged(channel.id)).toBe(total)
    expect(received.get(channel.id)).toBe(total)
    expect(receiptsTotal(c)).toBe(total)
  })
})

describe('a withdrawal started on chain', () => {
  it('stops acceptance of new vouchers on that channel with tollgate_withdrawal_pending', async () => {
    const channel = await openChannel()
    const c = await Client.open('/ticks')
    const accepted = await c.accepted()
    const window = FEED_PRICE * BigInt(WINDOW)
    await c.pay(accepted, channel, window)
    c.send({ type: 'subscribe' })
    await c.frames('data', 2)

    const receipt = await h.write(payer, 'initiateWithdraw', [channel.config, DEPOSIT])
    const block = await h.publicClient.getBlock({ blockNumber: receipt.blockNumber })
    await watcher.pollOnce()
    expect(payee.ledger.get(channel.id)?.withdrawRequestedAt).toBe(Number(block.timestamp))

    // The credit already held is served; the top-up is refused and the feed stays paused.
    await c.pay(accepted, channel, 2n * window)
    const [refused] = await c.frames('error', 1)
    expect(refused?.code).toBe('tollgate_withdrawal_pending')
    await c.until(
      () => c.after('data').some((f) => f.type === 'paused' && f.reason === 'credit'),
      'paused for credit',
    )
    expect(c.all('data')).toHaveLength(WINDOW)
    await c.end()

    // A new session on the channel is refused too.
    const next = await Client.open('/ticks')
    await next.pay(await next.accepted(), channel, 2n * window)
    const [again] = await next.frames('error', 1)
    expect(again?.code).toBe('tollgate_withdrawal_pending')
    next.ws.close()
    await next.closed
    expect(charged(channel.id)).toBe(window)
    expect(received.get(channel.id)).toBe(window)
  })
})

describe('two connections on one channel', () => {
  it('are serialized: one holds the channel, the other is refused until it ends, then resyncs; nothing is charged twice', async () => {
    const channel = await openChannel()
    const a = await Client.open('/ticks')
    const b = await Client.open('/ticks')
    const accepted = await a.accepted()
    await b.accepted()
    const window = FEED_PRICE * BigInt(WINDOW)
    // The same voucher on both connections at once: one session takes the channel.
    const payment = await voucher(accepted, channel, window)
    a.send({ type: 'pay', payment })
    b.send({ type: 'pay', payment })
    await Promise.all(
      [a, b].map((c) =>
        c.until(() => c.all('receipt').length + c.all('error').length > 0, 'an answer'),
      ),
    )
    const [holder, other] = a.all('receipt').length > 0 ? [a, b] : [b, a]
    expect(other.all('receipt')).toEqual([])
    expect(other.all('error').map((e) => e.code)).toEqual([
      'invalid_batch_settlement_evm_channel_busy',
    ])
    holder.channelId = channel.id
    other.channelId = channel.id

    // Both subscribe; only the holder is served, the other waits for credit.
    holder.send({ type: 'subscribe' })
    other.send({ type: 'subscribe' })
    await holder.frames('data', WINDOW)
    await other.frames('paused', 1)
    await holder.pay(accepted, channel, 2n * window)
    await holder.frames('receipt', 2)
    await other.pay(accepted, channel, 3n * window)
    await other.until(() => other.all('error').length === 2, 'a second refusal')
    expect(other.all('error')[1]?.code).toBe('invalid_batch_settlement_evm_channel_busy')
    await holder.frames('data', 2 * WINDOW)
    await holder.end()

    // The other resyncs from the corrective payment-required of a stale voucher, then is served.
    await other.pay(accepted, channel, window)
    const [, , stale] = await other.frames('error', 3)
    expect(stale?.code).toBe('invalid_batch_settlement_evm_cumulative_amount_mismatch')
    const state = stale?.paymentRequired?.accepts[0]?.extra as {
      channelState: { chargedCumulativeAmount: string }
    }
    const resynced = BigInt(state.channelState.chargedCumulativeAmount)
    expect(resynced).toBe(BigInt(holder.all('data').length) * FEED_PRICE)
    await other.pay(accepted, channel, resynced + window)
    await other.frames('data', WINDOW)
    await other.end()

    const delivered = BigInt(holder.all('data').length + other.all('data').length)
    expect(charged(channel.id)).toBe(delivered * FEED_PRICE)
    expect(received.get(channel.id)).toBe(delivered * FEED_PRICE)
    expect(receiptsTotal(holder) + receiptsTotal(other)).toBe(delivered * FEED_PRICE)
  })
})

describe('bad frames', () => {
  it('each get an error frame with a stable code, and the server keeps serving', async () => {
    const channel = await openChannel()
    const healthy = await Client.open('/ticks')
    const accepted = await healthy.accepted()
    await healthy.pay(accepted, channel, 100n * FEED_PRICE)
    healthy.send({ type: 'subscribe' })
    await healthy.frames('data', 1)

    const other = await openChannel()
    const good = await voucher(accepted, other, FEED_PRICE * BigInt(WINDOW))
    // Signed by a stranger, for a ceiling above what the first connection below will use.
    const forged = paymentPayload({
      accepted,
      payload: {
        type: 'voucher',
        channelConfig: other.config,
        voucher: {
          channelId: other.id,
          maxClaimableAmount: 3n * FEED_PRICE * BigInt(WINDOW),
          signature: await h.signVoucher(
            randomAccount(),
            other.id,
            3n * FEED_PRICE * BigInt(WINDOW),
          ),
        },
      },
    })
    // Another channel's id under this channel's config.
    const mismatched = paymentPayload({
      accepted,
      payload: {
        type: 'voucher',
        channelConfig: other.config,
        voucher: {
          channelId: channel.id,
          maxClaimableAmount: 3n * FEED_PRICE * BigInt(WINDOW),
          signature: await h.signVoucher(sessionKey, channel.id, 3n * FEED_PRICE * BigInt(WINDOW)),
        },
      },
    })
    const garbage: [frame: unknown, code: string][] = [
      ['{"type":', 'tollgate_ws_bad_frame'],
      ['[1,2,3]', 'tollgate_ws_bad_frame'],
      ['"pay"', 'tollgate_ws_bad_frame'],
      [{ type: 'teleport' }, 'tollgate_ws_bad_frame'],
      [{ no: 'type' }, 'tollgate_ws_bad_frame'],
      [{ type: 'pay', payment: 'money' }, 'tollgate_ws_bad_frame'],
      [{ type: 'request', id: 1 }, 'tollgate_ws_bad_frame'],
      [{ type: 'pay', payment: { x402Version: 1 } }, 'invalid_x402_version'],
      [
        { type: 'pay', payment: { ...good, payload: { ...good.payload, type: 'refund' } } },
        'invalid_batch_settlement_evm_payload_type',
      ],
      [
        { type: 'pay', payment: { ...good, accepted: { ...accepted, amount: '1' } } },
        'invalid_payment_requirements',
      ],
      [
        { type: 'pay', payment: { ...good, accepted: { ...accepted, network: 'eip155:1' } } },
        'invalid_network',
      ],
      [{ type: 'pay', payment: forged }, 'invalid_batch_settlement_evm_voucher_signature'],
      [{ type: 'pay', payment: mismatched }, 'invalid_batch_settlement_evm_channel_id_mismatch'],
      [
        JSON.stringify({ type: 'subscribe', params: 'x'.repeat(20_000) }),
        'tollgate_ws_frame_too_large',
      ],
    ]
    // Nine bad frames on one connection, each answered; then it pays and is served.
    const first = await Client.open('/ticks')
    await first.accepted()
    const firstBatch = garbage.slice(0, 9)
    for (const [frame] of firstBatch) first.send(frame)
    // Payments are decided in turn, beside the other frames: compare the codes as sets.
    const errors = await first.frames('error', firstBatch.length)
    expect(errors.map((e) => e.code).sort()).toEqual(firstBatch.map(([, code]) => code).sort())
    expect(errors.every((e) => isErrorCode(e.code))).toBe(true)
    await first.pay(accepted, other, FEED_PRICE * BigInt(WINDOW))
    first.send({ type: 'subscribe' })
    await first.frames('data', WINDOW)
    await first.end()

    // The rest on another connection; the tenth bad frame closes it with 1008.
    const second = await Client.open('/ticks')
    await second.accepted()
    const secondBatch = [...garbage.slice(9), ...garbage.slice(0, 10 - (garbage.length - 9))]
    for (const [frame] of secondBatch) second.send(frame)
    expect(await second.closed).toEqual({ code: 1008, reason: 'too many bad frames' })
    expect(
      second
        .all('error')
        .map((e) => e.code)
        .sort(),
    ).toEqual(secondBatch.map(([, code]) => code).sort())
    expect(second.all('data')).toEqual([])

    // Meanwhile the healthy session kept being served.
    const before = healthy.all('data').length
    await healthy.frames('data', before + 5)
    await healthy.end()
    expect(charged(channel.id)).toBe(BigInt(healthy.all('data').length) * FEED_PRICE)
  })
})

describe('the end of the server', () => {
  it('leaves every final charge in the store: the reopened LevelStore holds what the clients received', async () => {
    await watcher.stop()
    await app.close()
    await payee.close()
    const reopened = await LevelStore.open(dir)
    try {
      expect(reopened.recoveredFromCrash).toBe(false)
      const stored = new Map((await reopened.loadAll()).map((r) => [r.channelId, r]))
      expect(received.size).toBeGreaterThanOrEqual(5)
      for (const [id, total] of received) {
        const record = stored.get(id)
        expect(record?.chargedCumulativeAmount).toBe(total)
        expect(record?.signedMaxClaimable).toBeGreaterThanOrEqual(total)
        expect(record?.signature).not.toBe('0x')
      }
    } finally {
      await reopened.close()
    }
  })
})
