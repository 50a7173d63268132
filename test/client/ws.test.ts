/**
 * The payer SDK against tollgate's WebSocket transport, on a real anvil over real sockets: a
 * billed feed that never stalls while the limits allow (the payer answers `voucher-needed` ahead
 * of the credit running out), billed requests, receipts that add up to the messages received,
 * and a spend limit that ends the session.
 */
import type { LocalAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { fundedAccount, PRICE, payerOn, startServer, type TestServer, tempDir } from './fixtures.js'

const dev = useDevChain()
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]
const MESSAGE = PRICE / 10n

let server: TestServer
let ws: string
let revert: () => Promise<void>
const cleanups: (() => void)[] = []

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await startServer(dev, receiver, authorizer)
  ws = server.base.replace('http://', 'ws://')
})

afterAll(async () => {
  await server?.stop()
  for (const cleanup of cleanups) cleanup()
  await revert?.()
})

function folder(): string {
  const temp = tempDir()
  cleanups.push(temp.remove)
  return temp.dir
}

describe('the payer against tollgate over WebSocket', () => {
  it('reads a billed feed across many credit windows, and the books agree', async () => {
    const payer = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n, true),
      dataDir: folder(),
      policy: { deposit: { amount: 1000n * MESSAGE } },
    })
    const feed = await payer.connect(`${ws}/ticks`)
    feed.subscribe()
    const messages: unknown[] = []
    for await (const message of feed) {
      messages.push(message)
      if (messages.length === 95) break
    }
    await feed.close()
    expect(messages).toHaveLength(95)
    const [channel] = await payer.channels({ onChain: true })
    // Every message read was charged; a few more may have been in flight when the session ended.
    expect(feed.charged).toBeGreaterThanOrEqual(95n * MESSAGE)
    expect(channel?.charged).toBe(feed.charged)
    expect(server.payee.ledger.get(channel?.channelId ?? '0x')?.chargedCumulativeAmount).toBe(
      feed.charged,
    )
    expect(channel?.onChain?.balance).toBe(1000n * MESSAGE)
    await payer.close()
  })

  it('pays billed requests, and a spend limit ends the session before signing more', async () => {
    const payer = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n, true),
      dataDir: folder(),
      policy: { limits: { perDay: (25n * MESSAGE).toString() } },
    })
    const session = await payer.connect(`${ws}/rpc`)
    for (let i = 0; i < 15; i++) expect(await session.request({ i })).toEqual({ echo: { i } })
    expect(session.charged).toBe(15n * MESSAGE)
    // Windows of 10 requests, topped up two before the credit runs out: ceilings 10, then 18; the
    // next (26) would pass the day's limit of 25, so the session uses its credit up and stops.
    let refused: unknown
    try {
      for (let i = 0; i < 30; i++) await session.request({ i })
    } catch (err) {
      refused = err
    }
    expect(refused).toBeInstanceOf(TollgateError)
    expect((refused as TollgateError).code).toBe('tollgate_spend_limit')
    expect(session.charged).toBe(18n * MESSAGE)
    await payer.close()
  })
})
