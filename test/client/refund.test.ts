/**
 * `payer.refund(origin)` as the README shows it: every channel the payer holds with the origin
 * is refunded through a paid route of that channel (the server answers refunds on paid routes
 * only), with one result per channel; on a real anvil and a real tollgate server.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LocalAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JOURNAL_FILE } from '../../src/client/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { fundedAccount, PRICE, payerOn, startServer, type TestServer, tempDir } from './fixtures.js'

const dev = useDevChain()
const [receiver, authorizer, otherReceiver, otherAuthorizer] = [
  dev.accounts[1],
  dev.accounts[4],
  dev.accounts[5],
  dev.accounts[6],
] as LocalAccount[] as [LocalAccount, LocalAccount, LocalAccount, LocalAccount]

let revert: () => Promise<void>
const servers: TestServer[] = []
const cleanups: (() => void)[] = []

beforeAll(async () => {
  revert = await dev.snapshot()
})

afterAll(async () => {
  for (const server of servers) await server.stop()
  for (const cleanup of cleanups) cleanup()
  await revert?.()
})

function folder(): string {
  const temp = tempDir()
  cleanups.push(temp.remove)
  return temp.dir
}

async function serve(r: LocalAccount, a: LocalAccount, port = 0): Promise<TestServer> {
  const server = await startServer(dev, r, a, port)
  servers.push(server)
  return server
}

describe('payer.refund(origin)', () => {
  it('refunds a channel opened on a POST route, given only the origin', async () => {
    const server = await serve(receiver, authorizer)
    const account = await fundedAccount(dev, 1_000_000n)
    const dataDir = folder()
    const payer = await payerOn(dev, {
      account,
      dataDir,
      policy: { deposit: { amount: 100n * PRICE } },
    })
    for (let i = 0; i < 2; i++) {
      const response = await payer.fetch(`${server.base}/echo?i=${i}`, {
        method: 'POST',
        body: 'x',
      })
      expect(response.status).toBe(200)
    }
    const [channel] = await payer.channels()
    expect(channel?.resources).toEqual({
      [server.base]: { url: `${server.base}/echo`, method: 'POST' },
    })
    const refunds = await payer.refund(server.base)
    expect(refunds).toEqual([
      {
        channelId: channel?.channelId,
        ok: true,
        amount: 98n * PRICE,
        transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      },
    ])
    expect(await payer.refund('http://127.0.0.1:1')).toEqual([])
    await payer.close()

    // A journal written before paid routes were kept still loads; its refunds go to the URL given.
    const path = join(dataDir, JOURNAL_FILE)
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean)
    const old = lines.map((line) => {
      const parsed = JSON.parse(line)
      if (parsed.k === 'channel') delete parsed.channel.resources
      return JSON.stringify(parsed)
    })
    writeFileSync(path, `${old.join('\n')}\n`)
    const reopened = await payerOn(dev, { account, dataDir })
    const [again] = await reopened.channels()
    expect(again?.resources).toBeUndefined()
    const [refused] = await reopened.refund(`${server.base}/joke`)
    expect(refused).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_refund_no_balance',
    })
    await reopened.close()
  })

  it('refunds every channel of the origin, one result each, when the server changed its identity', async () => {
    const first = await serve(receiver, authorizer)
    const port = Number(new URL(first.base).port)
    const account = await fundedAccount(dev, 1_000_000n)
    const payer = await payerOn(dev, {
      account,
      dataDir: folder(),
      policy: { deposit: { amount: 10n * PRICE } },
      // A connection per request: a socket kept alive to the stopped server would fail the
      // first request to its successor on the same port.
      fetch: (input, init) => {
        const headers = new Headers(init?.headers)
        headers.set('connection', 'close')
        return fetch(input, { ...init, headers })
      },
    })
    expect((await payer.fetch(`${first.base}/joke`)).status).toBe(200)
    await first.stop()
    servers.splice(servers.indexOf(first), 1)
    // Same origin, another receiver: a second channel.
    const second = await serve(otherReceiver, otherAuthorizer, port)
    expect(second.base).toBe(first.base)
    expect((await payer.fetch(`${second.base}/dear`)).status).toBe(200)
    const [old, current] = await payer.channels()
    const refunds = await payer.refund(second.base)
    expect(refunds).toHaveLength(2)
    // The first channel's server is gone: the one at the origin now refuses its channel.
    expect(refunds[0]).toMatchObject({ channelId: old?.channelId, ok: false })
    expect(refunds[1]).toMatchObject({
      channelId: current?.channelId,
      ok: true,
      amount: (current?.balance ?? 0n) - 2n * PRICE,
    })
    await payer.close()
  })
})
