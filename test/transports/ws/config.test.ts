import { EventEmitter } from 'node:events'
import Fastify from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { TollgateError } from '../../../src/errors/index.js'
import { parsePrice } from '../../../src/transports/http/index.js'
import {
  DEFAULT_CREDIT_WINDOW,
  parseClientFrame,
  tollgateWs,
} from '../../../src/transports/ws/index.js'
import { makeApp, PRICE, pluginOptions, type TestApp } from './fixtures.js'

const apps: TestApp[] = []
afterEach(async () => {
  for (const t of apps.splice(0)) await t.app.close()
})

function expectInvalid(run: () => unknown, detail: RegExp): void {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(TollgateError)
    expect((err as TollgateError).code).toBe('tollgate_invalid_config')
    expect((err as TollgateError).message).toMatch(detail)
    return
  }
  throw new Error('no error thrown')
}

describe('options', () => {
  it('fails registration on bad plugin options', async () => {
    const t = await makeApp(() => {})
    apps.push(t)
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ payee: {} }, /payee/],
      [{ network: 'base' }, /network/],
      [{ withdrawDelay: 10 }, /withdrawDelay/],
      [{ asset: { address: '0x1', name: 'USDC', version: '2' } }, /asset/],
      [{ maxFrameBytes: 0 }, /maxFrameBytes/],
      [{ maxFrameBytes: 4096, maxPayload: 1024 }, /maxPayload/],
      [{ payTimeoutMs: -1 }, /payTimeoutMs/],
    ]
    for (const [override, detail] of cases) {
      const app = Fastify({ logger: false })
      await expect(
        app.register(tollgateWs, { ...pluginOptions(t.payee), ...override } as never).ready(),
      ).rejects.toThrow(detail)
      await app.close()
    }
  })

  it('fails a route registration on bad route options, and defaults the rest', async () => {
    let checked = false
    const t = await makeApp((app) => {
      const source = async function* () {}
      expectInvalid(() => app.tollgateFeed('/a', { price: 0n, source }), /price/)
      expectInvalid(() => app.tollgateFeed('/a', { price: '1.5', source }), /price/)
      expectInvalid(
        () => app.tollgateFeed('/a', { price: 1n, creditWindow: 0, source }),
        /creditWindow/,
      )
      expectInvalid(
        () => app.tollgateFeed('/a', { price: 1n, creditWindow: 4, lowWater: 4, source }),
        /lowWater/,
      )
      expectInvalid(() => app.tollgateFeed('/a', { price: 1n, source: {} as never }), /source/)
      expectInvalid(() => app.tollgateFeed('a', { price: 1n, source }), /path/)
      expectInvalid(() => app.tollgateRequests('/r', { price: 1n, handler: 1 as never }), /handler/)
      app.tollgateFeed('/ok', { price: '10', source: new EventEmitter() })
      app.tollgateRequests('/rpc', { price: PRICE, handler: () => null })
      checked = true
    })
    apps.push(t)
    expect(checked).toBe(true)
    expect(DEFAULT_CREDIT_WINDOW).toBe(100)
  })
})

describe('route prices (parsePrice, shared with HTTP)', () => {
  it('takes dollars with the token decimals, token units, and refuses what it cannot price exactly', () => {
    expect(parsePrice('$0.0001', 6, 'price')).toBe(100n)
    expect(parsePrice('250', undefined, 'price')).toBe(250n)
    expect(parsePrice(7n, 6, 'price')).toBe(7n)
    expectInvalid(() => parsePrice('$0.0001', undefined, 'price'), /decimals/)
    expectInvalid(() => parsePrice('$0.0000001', 6, 'price'), /below one token unit/)
    expectInvalid(() => parsePrice('0.5', 6, 'price'), /ambiguous/)
    expectInvalid(() => parsePrice(0n, 6, 'price'), /below one token unit/)
  })
})

describe('parseClientFrame', () => {
  const parse = (text: string, max = 1024) =>
    parseClientFrame({ data: Buffer.from(text), isBinary: false }, max)

  it('parses the four client frames', () => {
    expect(parse('{"type":"pay","payment":{"x":1}}')).toEqual({
      ok: true,
      value: { type: 'pay', payment: { x: 1 } },
    })
    expect(parse('{"type":"subscribe"}')).toEqual({ ok: true, value: { type: 'subscribe' } })
    expect(parse('{"type":"subscribe","params":{"symbol":"ETH"}}')).toMatchObject({
      value: { params: { symbol: 'ETH' } },
    })
    expect(parse('{"type":"request","id":7,"body":[1]}')).toEqual({
      ok: true,
      value: { type: 'request', id: 7, body: [1] },
    })
    expect(parse('{"type":"end"}')).toEqual({ ok: true, value: { type: 'end' } })
    expect(
      parseClientFrame(
        { data: [Buffer.from('{"type":'), Buffer.from('"end"}')], isBinary: false },
        64,
      ),
    ).toEqual({ ok: true, value: { type: 'end' } })
  })

  it('refuses what is not a frame with a stable code, never throwing', () => {
    const bad = [
      '',
      'null',
      '"pay"',
      '{"type":"pay"}',
      '{"type":"pay","payment":[]}',
      '{"type":"request"}',
      '{"type":"request","id":1.5}',
      '{"type":"request","id":""}',
      '{"type":"__proto__"}',
      '{}',
    ]
    for (const text of bad)
      expect(parse(text)).toMatchObject({ ok: false, code: 'tollgate_ws_bad_frame' })
    expect(parse('{"type":"end"}', 4)).toMatchObject({
      ok: false,
      code: 'tollgate_ws_frame_too_large',
    })
    expect(parseClientFrame({ data: Buffer.from('{}'), isBinary: true }, 64)).toMatchObject({
      ok: false,
      code: 'tollgate_ws_bad_frame',
    })
  })
})
