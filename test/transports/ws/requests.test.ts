import { afterEach, describe, expect, it } from 'vitest'
import type { RequestHandler } from '../../../src/transports/ws/index.js'
import { FrameClient, makeApp, openChannel, type TestApp, until } from './fixtures.js'

const PRICE = 100n

const apps: TestApp[] = []
afterEach(async () => {
  for (const t of apps.splice(0)) await t.app.close()
})

/** Charges `body.cost` when given (dynamic pricing), throws on `body.fail`, echoes the body. */
const handler: RequestHandler = async (body, context) => {
  const request = body as { cost?: number | string; fail?: boolean; wait?: Promise<void> }
  if (request.fail) throw new Error('handler failed')
  if (request.cost !== undefined) context.charge(BigInt(request.cost))
  return { echo: body, payer: context.payer }
}

async function rpcApp(route: Partial<Parameters<TestApp['app']['tollgateRequests']>[1]> = {}) {
  const t = await makeApp((app) =>
    app.tollgateRequests('/rpc', {
      price: PRICE,
      creditWindow: 10,
      lowWater: 2,
      handler,
      ...route,
    }),
  )
  apps.push(t)
  return t
}

describe('billed requests', () => {
  it('charges each request its actual price, at most the route price (dynamic pricing)', async () => {
    const t = await rpcApp()
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/rpc')
    const accepted = await c.accepted()
    expect(accepted.amount).toBe('100')
    await c.pay(accepted, channel, 10n * PRICE)

    c.send({ type: 'request', id: 1, body: {} })
    expect(await c.next('response')).toMatchObject({ id: 1, charged: '100', body: { echo: {} } })
    c.send({ type: 'request', id: 'b', body: { cost: 30 } })
    expect(await c.next('response')).toMatchObject({ id: 'b', charged: '30' })
    c.send({ type: 'request', id: 3, body: { cost: 0 } })
    expect(await c.next('response')).toMatchObject({ id: 3, charged: '0' })
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(130n)

    // Above the price: a programming error, nothing charged. A failing handler: nothing charged.
    c.send({ type: 'request', id: 4, body: { cost: 101 } })
    expect(await c.next('error')).toMatchObject({ id: 4, code: 'tollgate_internal' })
    c.send({ type: 'request', id: 5, body: { fail: true } })
    expect(await c.next('error')).toMatchObject({ id: 5, code: 'tollgate_internal' })
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(130n)

    c.send({ type: 'end' })
    const final = await c.next('receipt')
    expect(final).toMatchObject({
      final: true,
      paymentResponse: { extra: { chargedAmount: '130' } },
    })
    expect((await c.closed).code).toBe(1000)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(130n)
  })

  it('refuses a request without credit, with the requirements to pay, and serves it after a voucher', async () => {
    const t = await rpcApp()
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/rpc')
    const accepted = await c.accepted()
    c.send({ type: 'request', id: 1, body: {} })
    const refused = await c.next('error')
    expect(refused).toMatchObject({ id: 1, code: 'tollgate_ws_no_credit' })
    expect(refused.paymentRequired?.accepts[0]).toEqual(accepted)

    await c.pay(accepted, channel, 2n * PRICE + 50n)
    for (const id of [2, 3]) c.send({ type: 'request', id, body: {} })
    await c.take('response', 2)
    // 50 left: less than the price, so the next request is refused even if it would cost less.
    c.send({ type: 'request', id: 4, body: { cost: 10 } })
    expect(await c.next('error')).toMatchObject({ id: 4, code: 'tollgate_ws_no_credit' })
    await c.pay(accepted, channel, 4n * PRICE)
    c.send({ type: 'request', id: 5, body: { cost: 10 } })
    expect(await c.next('response')).toMatchObject({ id: 5, charged: '10' })
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(210n)
    await c.close()
  })

  it('sends voucher-needed once the credit left falls to the low-water mark', async () => {
    const t = await rpcApp()
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/rpc')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 5n * PRICE)
    for (const id of [1, 2]) c.send({ type: 'request', id, body: {} })
    await c.count('response', 2)
    expect(c.all('voucher-needed')).toEqual([])
    c.send({ type: 'request', id: 3, body: {} })
    await c.count('response', 3)
    expect((await c.next('voucher-needed')).creditRemaining).toBe('200')
    await c.close()
  })

  it('sets the price aside while a request runs, and bounds requests in flight', async () => {
    const gates: (() => void)[] = []
    const t = await rpcApp({
      maxInFlight: 2,
      handler: () => new Promise((resolve) => gates.push(() => resolve('done'))),
    })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/rpc')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 3n * PRICE)
    for (const id of [1, 2, 3]) c.send({ type: 'request', id, body: {} })
    expect(await c.next('error')).toMatchObject({ id: 3, code: 'tollgate_ws_too_many_requests' })
    await until(() => gates.length === 2)
    for (const open of gates.splice(0)) open()
    await c.take('response', 2)
    c.send({ type: 'request', id: 4, body: {} })
    await until(() => gates.length === 1)
    // 100 left, reserved by request 4: a fifth finds no credit.
    c.send({ type: 'request', id: 5, body: {} })
    expect(await c.next('error')).toMatchObject({ id: 5, code: 'tollgate_ws_no_credit' })
    // end lets request 4 finish and be charged, then sends the final receipt.
    c.send({ type: 'end' })
    gates[0]?.()
    expect(await c.next('response')).toMatchObject({ id: 4, charged: '100' })
    expect(await c.next('receipt')).toMatchObject({ final: true })
    await c.closed
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(300n)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)
  })

  it('does not charge a request whose connection closed before it was answered', async () => {
    let finish: (() => void) | undefined
    const t = await rpcApp({
      handler: () => new Promise((resolve) => (finish = () => resolve('late'))),
    })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/rpc')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 3n * PRICE)
    c.send({ type: 'request', id: 1, body: {} })
    await until(() => finish !== undefined)
    await c.close()
    await until(() => !t.payee.ledger.isHeld(channel.id))
    finish?.()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(t.payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(0n)
  })

  it('refuses subscribe on a request route, and request on a feed route', async () => {
    const t = await makeApp((app) => {
      app.tollgateRequests('/rpc', { price: PRICE, handler })
      app.tollgateFeed('/feed', { price: PRICE, source: async function* () {} })
    })
    apps.push(t)
    const rpc = await FrameClient.connect(t.app, '/rpc')
    rpc.send({ type: 'subscribe' })
    expect((await rpc.next('error')).code).toBe('tollgate_ws_bad_frame')
    const feed = await FrameClient.connect(t.app, '/feed')
    feed.send({ type: 'request', id: 1 })
    expect((await feed.next('error')).code).toBe('tollgate_ws_bad_frame')
    await rpc.close()
    await feed.close()
  })
})
