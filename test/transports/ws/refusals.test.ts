import { afterEach, describe, expect, it } from 'vitest'
import { isErrorCode } from '../../../src/errors/index.js'
import { WS_SUBPROTOCOL } from '../../../src/transports/ws/index.js'
import { otherKey } from '../../ledger/fixtures.js'
import {
  FrameClient,
  makeApp,
  openChannel,
  PRICE,
  type TestApp,
  until,
  voucherPayment,
} from './fixtures.js'

const apps: TestApp[] = []
afterEach(async () => {
  for (const t of apps.splice(0)) await t.app.close()
})

async function feedApp(
  plugin: Parameters<typeof makeApp>[1] = {},
  payee: Parameters<typeof makeApp>[2] = {},
) {
  const t = await makeApp(
    (app) =>
      app.tollgateFeed('/feed', {
        price: PRICE,
        creditWindow: 5,
        source: async function* () {
          for (let n = 1; ; n++) yield n
        },
      }),
    plugin,
    payee,
  )
  apps.push(t)
  return t
}

describe('bad frames', () => {
  it('answers each with an error frame and a stable code, then closes with 1008 after too many', async () => {
    const t = await feedApp({ maxBadFrames: 5, maxFrameBytes: 1024 })
    const c = await FrameClient.connect(t.app, '/feed')
    await c.accepted()
    c.send('{not json')
    c.send('[1,2]')
    c.send({ type: 'teleport' })
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true })
    c.send({ type: 'request', id: 'x'.repeat(2000) })
    const codes = (await c.take('error', 5)).map((e) => e.code)
    expect(codes).toEqual([
      'tollgate_ws_bad_frame',
      'tollgate_ws_bad_frame',
      'tollgate_ws_bad_frame',
      'tollgate_ws_bad_frame',
      'tollgate_ws_frame_too_large',
    ])
    expect(codes.every(isErrorCode)).toBe(true)
    expect(await c.closed).toEqual({ code: 1008, reason: 'too many bad frames' })

    // The process and the route are fine: a new connection is served.
    const next = await FrameClient.connect(t.app, '/feed')
    expect((await next.accepted()).amount).toBe('10')
    await next.close()
  })

  it('closes with 1009 a frame above maxPayload, without buffering it', async () => {
    const t = await feedApp({ maxFrameBytes: 1024, maxPayload: 4096 })
    const c = await FrameClient.connect(t.app, '/feed')
    await c.accepted()
    c.send('x'.repeat(8192))
    expect((await c.closed).code).toBe(1009)
  })

  it('closes a connection that pays nothing within the pay timeout', async () => {
    const t = await feedApp({ payTimeoutMs: 50 })
    const c = await FrameClient.connect(t.app, '/feed')
    expect(await c.closed).toEqual({ code: 1008, reason: 'no voucher within the pay timeout' })
  })

  it('pins the protocol version by subprotocol', async () => {
    const t = await feedApp()
    const pinned = await FrameClient.connect(t.app, '/feed', WS_SUBPROTOCOL)
    expect(pinned.ws.protocol).toBe(WS_SUBPROTOCOL)
    await pinned.close()
    await expect(FrameClient.connect(t.app, '/feed', 'tollgate.v9')).rejects.toThrow(/subprotocol/)
  })
})

describe('bad payments', () => {
  it('refuses malformed, mismatched, forged and unknown-channel payments with their x402 codes', async () => {
    const t = await feedApp({ maxBadFrames: 100 })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    const refused = async (payment: unknown) => {
      c.send({ type: 'pay', payment })
      return c.next('error')
    }

    expect((await refused({ x402Version: 1 })).code).toBe('invalid_x402_version')
    const good = await voucherPayment(accepted, channel, 5n * PRICE)
    expect((await refused({ ...good, payload: { type: 'nope' } })).code).toBe(
      'invalid_batch_settlement_evm_payload_type',
    )
    const cheaper = { ...good, accepted: { ...accepted, amount: '1' } }
    const mismatch = await refused(cheaper)
    expect(mismatch.code).toBe('invalid_payment_requirements')
    expect(mismatch.paymentRequired?.accepts[0]).toEqual(accepted)
    expect((await refused({ ...good, accepted: { ...accepted, network: 'eip155:1' } })).code).toBe(
      'invalid_network',
    )
    const forged = await voucherPayment(accepted, channel, 5n * PRICE, otherKey)
    expect((await refused(forged)).code).toBe('invalid_batch_settlement_evm_voucher_signature')
    const unknown = await voucherPayment(accepted, { ...channel, id: `0x${'ab'.repeat(32)}` }, 50n)
    expect((await refused(unknown)).code).toBe('invalid_batch_settlement_evm_channel_id_mismatch')
    const overBalance = await voucherPayment(accepted, channel, 2_000_000n)
    expect((await refused(overBalance)).code).toBe(
      'invalid_batch_settlement_evm_cumulative_exceeds_balance',
    )
    expect(t.payee.ledger.isHeld(channel.id)).toBe(false)

    // A good voucher is still taken on the same connection.
    await c.pay(accepted, channel, 5n * PRICE)
    expect(t.payee.ledger.isHeld(channel.id)).toBe(true)
    await c.close()
  })

  it('answers a top-up below what is charged with a corrective payment-required', async () => {
    const t = await feedApp()
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    await c.pay(accepted, channel, 3n * PRICE)
    c.send({ type: 'subscribe' })
    await c.count('data', 3)
    c.send({ type: 'pay', payment: await voucherPayment(accepted, channel, 3n * PRICE) })
    const error = await c.next('error')
    expect(error.code).toBe('invalid_batch_settlement_evm_cumulative_amount_mismatch')
    expect(error.paymentRequired?.accepts[0]?.extra).toMatchObject({
      channelState: { chargedCumulativeAmount: '30' },
      voucherState: { signedMaxClaimable: '30' },
    })
    await c.close()
  })

  it('refuses a second connection on a channel another connection holds (channel busy)', async () => {
    const t = await feedApp()
    const channel = openChannel(t)
    const first = await FrameClient.connect(t.app, '/feed')
    const accepted = await first.accepted()
    await first.pay(accepted, channel, 5n * PRICE)
    const second = await FrameClient.connect(t.app, '/feed')
    await second.accepted()
    second.send({ type: 'pay', payment: await voucherPayment(accepted, channel, 6n * PRICE) })
    expect((await second.next('error')).code).toBe('invalid_batch_settlement_evm_channel_busy')
    await first.close()
    await until(() => !t.payee.ledger.isHeld(channel.id))
    expect((await second.pay(accepted, channel, 6n * PRICE)).creditRemaining).toBe('60')
    await second.close()
  })

  it('refuses vouchers once a withdrawal is pending, before and during a session', async () => {
    const t = await feedApp()
    const pending = openChannel(t)
    t.chain.set(pending.id, {
      balance: 1_000_000n,
      totalClaimed: 0n,
      withdrawRequestedAt: 1_700_000_000,
      refundNonce: 0n,
    })
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    c.send({ type: 'pay', payment: await voucherPayment(accepted, pending, 5n * PRICE) })
    expect((await c.next('error')).code).toBe('tollgate_withdrawal_pending')

    const channel = openChannel(t)
    await c.pay(accepted, channel, 5n * PRICE)
    t.payee.apply({ type: 'withdrawInitiated', channelId: channel.id, initiatedAt: 1_700_000_000 })
    c.send({ type: 'pay', payment: await voucherPayment(accepted, channel, 10n * PRICE) })
    expect((await c.next('error')).code).toBe('tollgate_withdrawal_pending')
    await c.close()
  })

  it('refuses a voucher past the exposure cap', async () => {
    const t = await feedApp({}, { exposureCap: 100n })
    const channel = openChannel(t)
    const c = await FrameClient.connect(t.app, '/feed')
    const accepted = await c.accepted()
    c.send({ type: 'pay', payment: await voucherPayment(accepted, channel, 101n) })
    expect((await c.next('error')).code).toBe('tollgate_exposure_cap')
    expect((await c.pay(accepted, channel, 100n)).creditRemaining).toBe('100')
    await c.close()
  })
})

describe('limits per client address', () => {
  it('refuses a connection past maxConnectionsPerIp with tollgate_rate_limited and 1008', async () => {
    const t = await feedApp({ maxConnectionsPerIp: 2 })
    const first = await FrameClient.connect(t.app, '/feed')
    const second = await FrameClient.connect(t.app, '/feed')
    await first.accepted()
    await second.accepted()
    const third = await FrameClient.connect(t.app, '/feed')
    expect((await third.next('error')).code).toBe('tollgate_rate_limited')
    expect((await third.closed).code).toBe(1008)
    // A connection that closes frees its place (once the server has seen the socket end).
    await first.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const again = await FrameClient.connect(t.app, '/feed')
    await again.accepted()
    await again.close()
    await second.close()
  })

  it('counts bad frames over all connections of an address: reconnecting does not reset them', async () => {
    const t = await feedApp({ maxBadFrames: 100, maxBadFramesPerIp: 3 })
    const a = await FrameClient.connect(t.app, '/feed')
    await a.accepted()
    a.send('{not json')
    a.send('{not json')
    await a.take('error', 2)
    await a.close()
    const b = await FrameClient.connect(t.app, '/feed')
    await b.accepted()
    b.send('{not json')
    b.send('{not json')
    expect(await b.closed).toEqual({ code: 1008, reason: 'too many bad frames' })
    const c = await FrameClient.connect(t.app, '/feed')
    expect((await c.next('error')).code).toBe('tollgate_rate_limited')
    expect((await c.closed).code).toBe(1008)
  })
})
