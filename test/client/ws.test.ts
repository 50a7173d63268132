/**
 * The payer SDK against tollgate's WebSocket transport, on a real anvil over real sockets: a
 * billed feed that never stalls while the limits allow (the payer answers `voucher-needed` ahead
 * of the credit running out), billed requests, receipts that add up to the messages received,
 * a spend limit that ends the session, and a channel write made while a voucher is prepared
 * (its deposit awaited on chain) that the prepare does not undo.
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

  it('keeps what was written to the channel while a session deposited: its origins and its charge', async () => {
    // The funding key behind a remote signer: the session's direct deposit waits for it.
    const funding = await fundedAccount(dev, 1_000_000n, true)
    let reached: () => void = () => {}
    const signing = new Promise<void>((resolve) => {
      reached = resolve
    })
    let approve: () => void = () => {}
    const approved = new Promise<void>((resolve) => {
      approve = resolve
    })
    const account: LocalAccount = {
      ...funding,
      async signTransaction(transaction, options) {
        reached()
        await approved
        return funding.signTransaction(transaction, options)
      },
    }
    const dataDir = folder()
    const options = { account, dataDir, policy: { deposit: { amount: 1000n * MESSAGE } } }
    const payer = await payerOn(dev, options)
    const connecting = payer.connect(`${ws}/ticks`)
    await signing
    // A call over HTTP on the same channel, meanwhile: it records its origin, then waits for the
    // channel, which the session holds.
    const fetched = payer.fetch(`${server.base}/joke`)
    while (!(await payer.channels()).some((c) => c.origins.includes(server.base))) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    approve()
    const feed = await connecting
    feed.subscribe()
    let read = 0
    for await (const _ of feed) if (++read === 45) break
    await feed.close()
    const response = await fetched
    expect(await response.json()).toEqual({ joke: 'paid' })
    const [channel] = await payer.channels()
    const wsOrigin = new URL(ws).origin
    expect(channel?.origins).toEqual([wsOrigin, server.base])
    const held = server.payee.ledger.get(channel?.channelId ?? '0x')?.chargedCumulativeAmount
    expect(channel?.charged).toBe(feed.charged + PRICE)
    expect(held).toBe(channel?.charged)
    await payer.close()
    const reopened = await payerOn(dev, options)
    const [again] = await reopened.channels()
    expect(again?.origins).toEqual([wsOrigin, server.base])
    expect(again?.charged).toBe(held)
    const refunds = await reopened.refund(server.base, { amount: PRICE })
    expect(refunds.map((r) => r.ok)).toEqual([true])
    await reopened.close()
  })

  it("never records less charged than the session's receipts while a remote signer signs its top-ups", async () => {
    const key = await fundedAccount(dev, 0n)
    // A remote signer: each voucher comes back a little later, while the feed keeps arriving.
    const remote: LocalAccount = {
      ...key,
      async sign(parameters) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        return (key.sign as NonNullable<LocalAccount['sign']>)(parameters)
      },
    }
    const options = {
      account: await fundedAccount(dev, 1_000_000n, true),
      payerAuthorizer: remote,
      dataDir: folder(),
      policy: { deposit: { amount: 1000n * MESSAGE } },
      onWarning: () => {},
    }
    const payer = await payerOn(dev, options)
    const feed = await payer.connect(`${ws}/ticks`)
    feed.subscribe()
    const recorded: bigint[] = []
    for await (const _ of feed) {
      recorded.push((await payer.channels())[0]?.charged ?? -1n)
      if (recorded.length === 95) break
    }
    await feed.close()
    expect(recorded.every((charged, i) => i === 0 || charged >= (recorded[i - 1] ?? 0n))).toBe(true)
    const [channel] = await payer.channels()
    const held = server.payee.ledger.get(channel?.channelId ?? '0x')?.chargedCumulativeAmount
    expect(channel?.charged).toBe(held)
    expect(channel?.charged).toBe(feed.charged)
    await payer.close()
    const reopened = await payerOn(dev, options)
    expect((await reopened.channels())[0]?.charged).toBe(held)
    await reopened.close()
  })
})
