import { EventEmitter } from 'node:events'
import { setImmediate as nextLoop, setTimeout as sleep } from 'node:timers/promises'
import type { FastifyRequest } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { FeedPump } from '../../../src/transports/ws/feedPump.js'
import { FEED_BURST, type FeedContext } from '../../../src/transports/ws/index.js'
import { resolveFeedRoute, resolveWsOptions } from '../../../src/transports/ws/resolveOptions.js'
import { Session } from '../../../src/transports/ws/session.js'
import {
  FrameClient,
  makeApp,
  openChannel,
  PRICE,
  pluginOptions,
  type TestApp,
  until,
  voucherPayment,
} from './fixtures.js'

const apps: TestApp[] = []
afterEach(async () => {
  for (const t of apps.splice(0)) await t.app.close()
})

/** An endless pull source: `{ n }` for n = 1, 2, …, every `delayMs`; stops when the session ends. */
function counter(delayMs = 0, bytes = 0) {
  const pad = 'x'.repeat(bytes)
  return async function* ({ signal }: FeedContext) {
    let n = 0
    while (!signal.aborted) {
      if (delayMs > 0) await sleep(delayMs)
      yield bytes > 0 ? { n: ++n, pad } : { n: ++n }
    }
  }
}

async function feedApp(
  route: Partial<Parameters<TestApp['app']['tollgateFeed']>[1]>,
  plugin: Parameters<typeof makeApp>[1] = {},
) {
  const t = await makeApp(
    (app) =>
      app.tollgateFeed('/feed', {
        price: PRICE,
        creditWindow: 5,
        lowWater: 2,
        source: counter(),
        ...route,
      }),
    plugin,
  )
  apps.push(t)
  return t
}

describe('credit windows', () => {
  it('advertises the price per message and the window, charges each message, pauses at zero and resumes on a top-up', async () => {
    const t = await feedApp({})
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    expect(accepted.amount).toBe('10')
    expect(accepted.extra).toMatchObject({ creditWindow: 5, minDeposit: '50' })

    c.send({ type: 'subscribe' })
    expect(await c.next('paused')).toEqual({ type: 'paused', reason: 'credit' })

    const first = await c.pay(accepted, channel, 5n * PRICE)
    expect(first.creditRemaining).toBe('50')
    expect(first.paymentResponse.extra).toMatchObject({ chargedAmount: '0' })
    await c.next('resumed')
    await c.count('data', 5)
    expect(await c.next('paused')).toEqual({ type: 'paused', reason: 'credit' })

    // Nothing more is sent unpaid, and the connection stays open.
    await sleep(50)
    expect(c.all('data')).toHaveLength(5)
    expect(c.all('data').map((d) => d.seq)).toEqual([1, 2, 3, 4, 5])
    expect(c.all('data').every((d) => d.charged === '10')).toBe(true)
    const held = t.payee.ledger.get(channel.id)
    expect(held?.chargedCumulativeAmount).toBe(50n)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(true)

    // voucher-needed came when two messages of credit were left: after message 3.
    const types = c.log.map((f) => (f.type === 'data' ? `data${f.seq}` : f.type))
    expect(types.indexOf('voucher-needed')).toBe(types.indexOf('data3') + 1)
    expect(types.indexOf('data4')).toBe(types.indexOf('voucher-needed') + 1)
    const needed = c.all('voucher-needed')[0]
    expect(needed?.creditRemaining).toBe('20')

    // The top-up resumes the feed from where it paused.
    const topUp = await c.pay(accepted, channel, 10n * PRICE)
    expect(topUp.creditRemaining).toBe('50')
    expect(topUp.paymentResponse.extra).toMatchObject({
      chargedAmount: '50',
      channelState: { chargedCumulativeAmount: '50' },
    })
    await c.count('data', 10)
    expect(c.all('data').map((d) => d.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])

    c.send({ type: 'end' })
    const final = await c.next('receipt')
    expect(final.final).toBe(true)
    expect(final.paymentResponse.extra).toMatchObject({
      chargedAmount: '50',
      channelState: { chargedCumulativeAmount: '100' },
    })
    expect(await c.closed).toEqual({ code: 1000, reason: 'session ended' })
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(100n)
    const stored = (await t.store.loadAll()).find((r) => r.channelId === channel.id)
    expect(stored?.signedMaxClaimable).toBe(100n)
    expect(stored?.chargedCumulativeAmount).toBe(100n)
  })

  it('writes the charged total behind every half reserve and at the end, not once a message', async () => {
    const t = await feedApp({ creditWindow: 500 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 500n * PRICE)
    await t.store.flush()
    const before = t.store.stats.records
    c.send({ type: 'subscribe' })
    await c.count('data', 500)
    await c.next('paused')
    await c.pay(accepted, channel, 1000n * PRICE)
    await c.count('data', 1000)
    c.send({ type: 'end' })
    await c.closed
    await t.store.flush()
    // One write per half reserve (32 messages), the top-up voucher and the release.
    const writes = t.store.stats.records - before
    expect(writes).toBeGreaterThanOrEqual(1000 / 64)
    expect(writes).toBeLessThanOrEqual(1000 / 32 + 3)
    const stored = (await t.store.loadAll()).find((r) => r.channelId === channel.id)
    expect(stored?.chargedCumulativeAmount).toBe(1000n * PRICE)
    expect(stored?.inFlightCumulativeAmount).toBe(1000n * PRICE)
  })

  it('charges the ledger for many messages at once, never beyond the voucher, exactly at the end', async () => {
    const t = await feedApp({ creditWindow: 2000, lowWater: 100 })
    const charges: bigint[] = []
    const chargeHeld = t.payee.chargeHeld.bind(t.payee)
    t.payee.chargeHeld = (hold, amount) => {
      charges.push(amount)
      const result = chargeHeld(hold, amount)
      const record = result.ok ? result.record : undefined
      if (record && record.chargedCumulativeAmount > record.signedMaxClaimable) {
        throw new Error('charged beyond the voucher')
      }
      return result
    }
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 2000n * PRICE)
    c.send({ type: 'subscribe' })
    await c.count('data', 2000)
    await c.next('paused')
    // Paused for credit: everything sent is charged, nothing more.
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(2000n * PRICE)
    const types = c.log.map((f) => (f.type === 'data' ? `data${f.seq}` : f.type))
    expect(types.indexOf('voucher-needed')).toBe(types.indexOf('data1900') + 1)
    c.send({ type: 'end' })
    await c.closed
    expect(charges.reduce((sum, amount) => sum + amount, 0n)).toBe(2000n * PRICE)
    // One charge per half reserve (32 messages) or fewer messages, not one a message.
    expect(charges.length).toBeLessThan(2000 / 16)
    expect(charges.length).toBeGreaterThanOrEqual(2000 / 32)
  })

  it('has a slow feed charged in the ledger while it is still held, not only at the end', async () => {
    const ticker = new EventEmitter()
    const t = await feedApp({ source: ticker, event: 'tick', creditWindow: 100 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 100n * PRICE)
    c.send({ type: 'subscribe' })
    await until(() => ticker.listenerCount('tick') === 1)
    for (let n = 1; n <= 3; n++) ticker.emit('tick', { n })
    await c.count('data', 3)
    await until(() => t.payee.ledger.get(channel.id)?.chargedCumulativeAmount === 3n * PRICE)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(true)
    await c.close()
  })

  it('never stalls a prompt client: it tops up on voucher-needed across several windows', async () => {
    const t = await feedApp({ source: counter(8), creditWindow: 10, lowWater: 6 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    let ceiling = 10n * PRICE
    await c.pay(accepted, channel, ceiling)
    c.send({ type: 'subscribe' })
    for (let window = 0; window < 3; window++) {
      await c.next('voucher-needed')
      ceiling += 10n * PRICE
      await c.pay(accepted, channel, ceiling)
    }
    await c.count('data', 30, 5_000)
    c.send({ type: 'end' })
    await c.closed
    expect(c.all('paused')).toEqual([])
    const delivered = BigInt(c.all('data').length)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(delivered * PRICE)
  })

  it('accepts a first voucher that opens more than one window, and a top-up ceiling above the window', async () => {
    const t = await feedApp({})
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    const receipt = await c.pay(accepted, channel, 12n * PRICE)
    expect(receipt.creditRemaining).toBe('120')
    c.send({ type: 'subscribe' })
    await c.count('data', 12)
    await c.next('paused')
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(120n)
    await c.close()
  })
})

describe('session end', () => {
  it('commits every delivered message and releases the hold when the client closes', async () => {
    const t = await feedApp({ source: counter(1), creditWindow: 1000 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 1000n * PRICE)
    c.send({ type: 'subscribe' })
    await c.count('data', 20)
    await c.close()
    await until(() => !t.payee.ledger.isHeld(channel.id))
    const delivered = BigInt(c.all('data').length)
    expect(delivered).toBeGreaterThanOrEqual(20n)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(delivered * PRICE)
  })

  it('holds nothing for a connection that never paid', async () => {
    const t = await feedApp({})
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    await c.accepted()
    c.send({ type: 'subscribe' })
    await c.next('paused')
    await c.close()
    expect(t.payee.ledger.get(channel.id)).toBeUndefined()
    expect(t.payee.ledger.size).toBe(0)
    expect(c.all('data')).toEqual([])
  })

  it('ends the session with a final receipt when the source finishes', async () => {
    const t = await feedApp({
      source: async function* () {
        yield 'a'
        yield 'b'
      },
    })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 5n * PRICE)
    c.send({ type: 'subscribe' })
    const final = await c.next('receipt')
    expect(final.final).toBe(true)
    expect(c.all('data').map((d) => d.body)).toEqual(['a', 'b'])
    expect((await c.closed).code).toBe(1000)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(20n)
  })

  it('sends each message as the JSON of its data frame, byte for byte', async () => {
    const bodies = ['a"b\\', { x: [1, null, 2.5] }, undefined, 0, null, 'é\u2028😀', [], true]
    const t = await feedApp({
      source: async function* () {
        yield* bodies
      },
      creditWindow: 10,
    })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const raw: string[] = []
    c.ws.on('message', (data) => {
      const text = String(data)
      if (text.startsWith('{"type":"data"')) raw.push(text)
    })
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 10n * PRICE)
    c.send({ type: 'subscribe' })
    await c.closed
    expect(raw).toEqual(
      bodies.map((body, i) => JSON.stringify({ type: 'data', seq: i + 1, body, charged: '10' })),
    )
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(80n)
  })

  it('closes a failing source with 1011 and charges only what was sent', async () => {
    const t = await feedApp({
      source: async function* () {
        yield 1
        throw new Error('upstream down')
      },
    })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 5n * PRICE)
    c.send({ type: 'subscribe' })
    expect((await c.next('error')).code).toBe('tollgate_internal')
    expect((await c.closed).code).toBe(1011)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(10n)
  })

  it('ends every session with a final receipt (1001) when the server closes', async () => {
    const t = await feedApp({})
    apps.pop()
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 3n * PRICE)
    c.send({ type: 'subscribe' })
    await c.count('data', 3)
    await t.app.close()
    const final = await c.next('receipt')
    expect(final.final).toBe(true)
    expect((await c.closed).code).toBe(1001)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(30n)
  })
})

describe('live sources', () => {
  it('keeps the latest messages while paused (bounded), drops older ones uncharged, and shows them as a seq gap', async () => {
    const ticker = new EventEmitter()
    const t = await feedApp({ source: ticker, event: 'tick', liveBuffer: 3 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    c.send({ type: 'subscribe' })
    await c.next('paused')
    for (let i = 1; i <= 10; i++) ticker.emit('tick', { i })
    await c.pay(accepted, channel, 5n * PRICE)
    await c.count('data', 3)
    expect(c.all('data').map((d) => d.seq)).toEqual([8, 9, 10])
    ticker.emit('tick', { i: 11 })
    await c.count('data', 4)
    expect(c.all('data').at(-1)).toMatchObject({ seq: 11, body: { i: 11 } })
    await c.close()
    await until(() => ticker.listenerCount('tick') === 0)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(40n)
  })
})

describe('fan-out', () => {
  it('charges each of 50 subscribers of one live feed exactly what it received, paused or not', async () => {
    const subscribers = 50
    const ticks = 60
    /** The tick whose body is not JSON: skipped for everyone, charged to no one. */
    const broken = 10
    const ticker = new EventEmitter()
    const t = await feedApp(
      { source: ticker, event: 'tick', creditWindow: 20, liveBuffer: 16, persistEvery: 8 },
      { maxConnectionsPerIp: subscribers },
    )
    // Even subscribers pay for every tick; odd ones for 3 to 12 messages, then pause for credit.
    const credit = (i: number) => (i % 2 === 0 ? BigInt(ticks) : BigInt(3 + (i % 10)))
    const clients = await Promise.all(
      Array.from({ length: subscribers }, async (_, i) => {
        const channel = openChannel(t)
        const c = await FrameClient.connect(t.app, '/feed')
        const accepted = await c.accepted()
        // Subscribed (and paused for credit) before its receipt comes.
        c.send({ type: 'subscribe' })
        await c.pay(accepted, channel, credit(i) * PRICE)
        return { c, channel, accepted }
      }),
    )
    await until(() => ticker.listenerCount('tick') === 1)
    for (let n = 1; n <= ticks; n++) {
      ticker.emit('tick', n === broken ? { n, big: 1n } : { n })
      await nextLoop()
    }
    await Promise.all(
      clients.map(async ({ c, channel, accepted }, i) => {
        const paid = Number(credit(i))
        if (i % 2 === 0) {
          await c.count('data', ticks - 1)
          return
        }
        await c.count('data', paid)
        await c.count('paused', 2)
        // A top-up delivers 5 of the latest messages kept while paused.
        await c.pay(accepted, channel, (credit(i) + 5n) * PRICE)
        await c.count('data', paid + 5)
      }),
    )
    for (const { c } of clients) c.send({ type: 'end' })
    await Promise.all(clients.map(({ c }) => c.closed))

    for (const [i, { c, channel }] of clients.entries()) {
      const data = c.all('data')
      const received = BigInt(data.length) * PRICE
      expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(received)
      expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
      const receipts = c.all('receipt')
      const final = receipts.at(-1)
      expect(final?.final).toBe(true)
      expect(final?.paymentResponse.extra?.channelState).toMatchObject({
        chargedCumulativeAmount: received.toString(),
      })
      const reported = receipts.reduce(
        (sum, r) => sum + BigInt(String(r.paymentResponse.extra?.chargedAmount)),
        0n,
      )
      expect(reported).toBe(received)
      expect(data.every((d) => d.charged === PRICE.toString())).toBe(true)
      const seqs = data.map((d) => d.seq)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
      expect(new Set(seqs).size).toBe(seqs.length)
      expect(data.every((d) => (d.body as { n: number }).n === d.seq)).toBe(true)
      if (i % 2 === 0) {
        expect(seqs).toEqual(
          Array.from({ length: ticks }, (_, k) => k + 1).filter((n) => n !== broken),
        )
        expect(c.all('error').map((e) => e.code)).toEqual(['tollgate_internal'])
      }
    }
    expect(ticker.listenerCount('tick')).toBe(0)
  })
})

describe('backpressure', () => {
  it('stops sending to a consumer that does not read, within the high-water mark, and resumes when it reads', async () => {
    const body = 4096
    const high = 16 * 1024
    const t = await feedApp(
      { source: counter(0, body), creditWindow: 100_000 },
      { highWaterBytes: high },
    )
    const channel = openChannel(t, 100_000_000n)
    const c = await FrameClient.inject(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 100_000n * PRICE)
    c.ws.pause()
    c.send({ type: 'subscribe' })

    // The charge settles: the feed stopped, not buffering without bound.
    let last = -1n
    await until(() => {
      const charged = t.payee.ledger.get(channel.id)?.chargedCumulativeAmount ?? 0n
      const settled = charged > 0n && charged === last
      last = charged
      return settled
    })
    await sleep(100)
    const charged = t.payee.ledger.get(channel.id)?.chargedCumulativeAmount ?? 0n
    expect(charged).toBe(last)
    const [server] = t.app.websocketServer.clients
    expect(server?.bufferedAmount).toBeLessThanOrEqual(high + body + 1024)
    // Messages in flight: the server queue plus the in-memory pipe's buffers, not thousands.
    expect(charged / PRICE).toBeLessThan(60n)

    c.ws.resume()
    await c.count('data', Number(charged / PRICE) + 20)
    expect(c.all('paused')).toContainEqual({ type: 'paused', reason: 'backpressure' })
    expect(c.all('resumed').length).toBeGreaterThanOrEqual(2)
    c.send({ type: 'end' })
    await c.closed
    const delivered = BigInt(c.all('data').length)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(delivered * PRICE)
  })
})

describe('payments', () => {
  it('pays and subscribes in either order, and takes a voucher paid before subscribe', async () => {
    const t = await feedApp({})
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    c.send({ type: 'pay', payment: await voucherPayment(accepted, channel, 2n * PRICE) })
    c.send({ type: 'subscribe' })
    await c.count('data', 2)
    expect(c.all('receipt')).toHaveLength(1)
    await c.close()
  })
})

/**
 * A socket that takes every frame at once and never queues: what a client in another process
 * that reads as fast as it is sent looks like to the feed.
 */
class InstantSocket extends EventEmitter {
  readyState = 1
  readonly bufferedAmount = 0
  data = 0
  receipts = 0
  send(text: string, flushed?: () => void): void {
    if (text.startsWith('{"type":"data"')) this.data++
    else if (text.startsWith('{"type":"receipt"')) this.receipts++
    flushed?.()
  }
  ping(): void {}
  close(): void {
    this.readyState = 3
    this.emit('close')
  }
}

describe('fairness', () => {
  it('yields to the event loop after a burst when neither the source nor the socket ever waits', async () => {
    const t = await feedApp({})
    const options = resolveWsOptions({ ...pluginOptions(t.payee), heartbeatMs: 0 })
    const priced = resolveFeedRoute('/fast', { price: PRICE, source: counter() }, options).now()
    if (!priced.ok) throw new Error(priced.message)
    const route = priced.value
    const socket = new InstantSocket()
    const session = new Session(
      socket as never,
      route,
      options,
      { url: 'ws://test/fast' },
      t.app.log,
      () => {},
    )
    session.start(new FeedPump(session, route, {} as FastifyRequest))
    const channel = openChannel(t)
    const payment = await voucherPayment(route.requirements, channel, 100_000n * PRICE)
    socket.emit('message', Buffer.from(JSON.stringify({ type: 'pay', payment })), false)
    await until(() => socket.receipts === 1)
    socket.emit('message', Buffer.from('{"type":"subscribe"}'), false)

    // Every turn of the event loop comes round, with at most one burst sent in between.
    let sent = socket.data
    for (let turn = 0; turn < 20; turn++) {
      await nextLoop()
      expect(socket.data - sent).toBeLessThanOrEqual(FEED_BURST)
      sent = socket.data
    }
    // Still streaming: twenty turns did not wait for the whole credit to be spent.
    expect(sent).toBeGreaterThan(0)
    expect(sent).toBeLessThan(100_000)
    session.close(1000, 'done')
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(
      BigInt(socket.data) * PRICE,
    )
  })
})
