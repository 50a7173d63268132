/**
 * The payer SDK against tollgate's HTTP plugin, on a real anvil over real sockets: a gasless
 * ERC-3009 channel opening, one round trip per paid call, top-ups, concurrent calls on one
 * channel, spend limits that hold across a restart, recovery after the local state is lost,
 * a cooperative refund and a withdrawal; and each call's voucher signed while the call before it
 * is answered.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Hex, LocalAccount } from 'viem'
import { generatePrivateKey } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JOURNAL_FILE, keySigner } from '../../src/client/index.js'
import { TollgateError } from '../../src/errors/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { bytesToHex, domainSeparatorBytes, voucherDigest } from '../../src/verify/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import {
  fundedAccount,
  PRICE,
  payerOn,
  startServer,
  type TestServer,
  tempDir,
  WITHDRAW_DELAY,
} from './fixtures.js'

const dev = useDevChain()
const h = dev.harness
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]

let server: TestServer
let revert: () => Promise<void>
const cleanups: (() => void)[] = []

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await startServer(dev, receiver, authorizer)
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

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    if (err instanceof TollgateError) return err.code
    throw err
  }
  throw new Error('expected a TollgateError')
}

describe('the payer against tollgate over HTTP', () => {
  it('opens a channel gaslessly, pays one round trip per call, tops up, and the books agree', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    // A session key signing with libsecp256k1; the funding wallet only authorizes deposits.
    const sessionKey = keySigner(generatePrivateKey())
    const payer = await payerOn(dev, {
      account,
      payerAuthorizer: sessionKey,
      dataDir: folder(),
      policy: { deposit: { amount: 10n * PRICE } },
    })
    const url = `${server.base}/joke`
    const calls = 25
    const before = server.requests
    let deposits = 0
    for (let i = 0; i < calls; i++) {
      const response = await payer.fetch(url)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ joke: 'paid' })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      if (receipt.value.response.transaction !== '') deposits += 1
    }
    // The first call learns the price from a 402; every later one is paid on its first request.
    expect(server.requests - before).toBe(calls + 1)
    expect(deposits).toBe(3) // 10 prices a deposit
    const [channel] = await payer.channels({ onChain: true })
    if (!channel) throw new Error('no channel')
    expect(channel).toMatchObject({ charged: BigInt(calls) * PRICE, signed: BigInt(calls) * PRICE })
    expect(channel.config.payerAuthorizer.toLowerCase()).toBe(sessionKey.address.toLowerCase())
    expect(channel.onChain?.balance).toBe(30n * PRICE)
    expect(server.payee.ledger.get(channel.channelId)).toMatchObject({
      chargedCumulativeAmount: BigInt(calls) * PRICE,
      balance: 30n * PRICE,
    })
    // Gasless: the payer's wallet paid only the deposits, and holds no ETH.
    expect(await h.usdcBalance(account.address)).toBe(1_000_000n - 30n * PRICE)
    expect(await h.publicClient.getBalance({ address: account.address })).toBe(0n)

    // A new route of the same origin is asked its price first: nothing is signed at a guess.
    const other = await payer.fetch(`${server.base}/other`)
    expect(other.status).toBe(200)
    expect(server.requests - before).toBe(calls + 3)
    // A route with another price: its 402, then its payment; later calls take one round trip.
    expect((await payer.fetch(`${server.base}/dear`)).status).toBe(200)
    expect(server.requests - before).toBe(calls + 5)
    expect((await payer.fetch(`${server.base}/dear`)).status).toBe(200)
    expect(server.requests - before).toBe(calls + 6)
    // A free route of a known origin is served as usual; nothing is charged.
    const free = await payer.fetch(`${server.base}/free`)
    expect(await free.json()).toEqual({ free: true })
    const charged = BigInt(calls + 1 + 4) * PRICE
    const [after] = await payer.channels()
    expect(after?.charged).toBe(charged)
    expect(server.payee.ledger.get(channel.channelId)?.chargedCumulativeAmount).toBe(charged)
    await payer.close()
  })

  it('replays a request body: a Request, a stream, a string, through the 402 exchange', async () => {
    const payer = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n),
      dataDir: folder(),
    })
    const url = `${server.base}/echo`
    const json = { 'content-type': 'application/json' }
    const first = await payer.fetch(
      new Request(url, { method: 'POST', headers: json, body: '{"a":1}' }),
    )
    expect(await first.json()).toEqual({ echo: { a: 1 } })
    const stream = new Blob(['{"b":2}']).stream()
    const second = await payer.fetch(url, {
      method: 'POST',
      headers: json,
      body: stream,
      duplex: 'half',
    } as RequestInit)
    expect(await second.json()).toEqual({ echo: { b: 2 } })
    const third = await payer.fetch(url, { method: 'POST', headers: json, body: '{"c":3}' })
    expect(await third.json()).toEqual({ echo: { c: 3 } })
    expect((await payer.channels())[0]?.charged).toBe(3n * PRICE)
    await payer.close()
  })

  it('serializes concurrent calls on one channel: no conflicting vouchers, top-ups in line', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    // Deposits of the server's advertised minimum (10 prices): top-ups among the calls.
    const payer = await payerOn(dev, {
      account,
      dataDir: folder(),
      policy: { deposit: { max: 10n * PRICE } },
    })
    await payer.fetch(`${server.base}/joke`)
    const before = server.requests
    const responses = await Promise.all(
      Array.from({ length: 12 }, () => payer.fetch(`${server.base}/joke`)),
    )
    expect(responses.map((r) => r.status)).toEqual(Array(12).fill(200))
    expect(server.requests - before).toBe(12)
    const [channel] = await payer.channels({ onChain: true })
    expect(channel?.charged).toBe(13n * PRICE)
    expect(channel?.onChain?.balance).toBe(20n * PRICE)
    expect(server.payee.ledger.get(channel?.channelId ?? '0x')?.chargedCumulativeAmount).toBe(
      13n * PRICE,
    )
    await payer.close()
  })

  it('signs no deposit below the minDeposit the server asks, when its own cap is lower', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const payer = await payerOn(dev, {
      account,
      dataDir: folder(),
      policy: { deposit: { max: 5n * PRICE } },
    })
    const before = server.requests
    await expect(payer.fetch(`${server.base}/joke`)).rejects.toMatchObject({
      code: 'tollgate_spend_limit',
      message: /at least 10000/,
    })
    // The unpaid request that read the requirements, and no payment.
    expect(server.requests - before).toBe(1)
    const [channel] = await payer.channels({ onChain: true })
    expect(channel?.signed ?? 0n).toBe(0n)
    expect(channel?.onChain?.balance ?? 0n).toBe(0n)
    await payer.close()
  })

  it('refuses a call over a limit before signing, and the limits hold across a restart', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const dataDir = folder()
    let clock = Date.UTC(2026, 0, 1)
    const limits = { perRequest: '$0.002', perDay: '$0.005', perWeek: '$0.008' }
    const open = () => payerOn(dev, { account, dataDir, now: () => clock, policy: { limits } })
    let payer = await open()
    const cheap = `${server.base}/joke`
    for (let i = 0; i < 3; i++) expect((await payer.fetch(cheap)).status).toBe(200)
    await payer.close()

    // A restart: the spend record comes back from the data folder.
    payer = await open()
    for (let i = 0; i < 2; i++) expect((await payer.fetch(cheap)).status).toBe(200)
    const before = server.requests
    const journal = readFileSync(join(dataDir, JOURNAL_FILE), 'utf8')
    expect(await codeOf(payer.fetch(cheap))).toBe('tollgate_spend_limit')
    // Nothing was sent nor signed: no request reached the server, the journal did not grow.
    expect(server.requests).toBe(before)
    expect(readFileSync(join(dataDir, JOURNAL_FILE), 'utf8')).toBe(journal)
    await payer.close()

    payer = await open()
    expect(await codeOf(payer.fetch(cheap))).toBe('tollgate_spend_limit')
    clock += 25 * 60 * 60 * 1000 // a day later the daily window has room again...
    for (let i = 0; i < 3; i++) expect((await payer.fetch(cheap)).status).toBe(200)
    // ...but the week's limit (8 calls) is reached.
    expect(await codeOf(payer.fetch(cheap))).toBe('tollgate_spend_limit')
    await payer.close()

    const strict = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n),
      dataDir: folder(),
      policy: { limits: { perRequest: '999' } },
    })
    expect(await codeOf(strict.fetch(cheap))).toBe('tollgate_spend_limit')
    await strict.close()
  })

  it('signs nothing for a new route whose price a limit refuses, even with its origin paid before', async () => {
    const payer = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n),
      dataDir: folder(),
      policy: { limits: { perRequest: PRICE } },
    })
    expect((await payer.fetch(`${server.base}/joke`)).status).toBe(200)
    const [channel] = await payer.channels()
    const held = () => server.payee.ledger.get(channel?.channelId ?? '0x')?.signedMaxClaimable
    const signed = held()
    const before = server.requests
    // /dear costs twice the limit: its 402 is read, and no voucher is sent or signed.
    expect(await codeOf(payer.fetch(`${server.base}/dear`))).toBe('tollgate_spend_limit')
    expect(server.requests - before).toBe(1)
    expect(held()).toBe(signed)
    expect((await payer.channels())[0]?.signed).toBe(PRICE)
    await payer.close()
  })

  it('reserves spend ahead: one flush per reservation, given back at close', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const dataDir = folder()
    const limits = { perDay: 40n * PRICE }
    const open = () =>
      payerOn(dev, {
        account,
        payerAuthorizer: keySigner(generatePrivateKey()),
        dataDir,
        policy: { limits, reservation: { calls: 10 } },
      })
    const payer = await open()
    expect(payer.signing).toEqual({ backend: 'native' })
    const url = `${server.base}/joke`
    for (let i = 0; i < 25; i++) expect((await payer.fetch(url)).status).toBe(200)
    // Three reservations of 10 calls, each one flush (and the channel's first line one more).
    expect(payer.stats()).toMatchObject({ reservations: 3, syncs: 4 })
    // Spent is what was signed; the limits count the open reservation's unused part too.
    expect(payer.spending()).toMatchObject({ day: 25n * PRICE, reserved: 5n * PRICE })
    await payer.close()
    // Closed cleanly, the unused part came back: the record counts what was signed.
    const again = await open()
    expect(again.spending()).toMatchObject({ day: 25n * PRICE, reserved: 0n })
    // Near the limit a reservation takes only the room left, and the limit refuses past it.
    for (let i = 0; i < 15; i++) expect((await again.fetch(url)).status).toBe(200)
    expect(again.spending().day).toBe(40n * PRICE)
    expect(await codeOf(again.fetch(url))).toBe('tollgate_spend_limit')
    await again.close()
  })

  it("signs a call's voucher while the call before it is answered, and sends it only at its own ceiling", async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    /** Per digest signed, the call in progress when it was first signed. */
    const signedDuring = new Map<Hex, number>()
    let call = 0
    const counting = <A extends LocalAccount>(signer: A): A => ({
      ...signer,
      async sign(parameters: { hash: Hex }) {
        if (!signedDuring.has(parameters.hash)) signedDuring.set(parameters.hash, call)
        return (signer.sign as NonNullable<LocalAccount['sign']>)(parameters)
      },
    })
    const payer = await payerOn(dev, {
      account,
      payerAuthorizer: counting(keySigner(generatePrivateKey())),
      dataDir: folder(),
    })
    const url = `${server.base}/joke`
    for (call = 1; call <= 5; call++) expect((await payer.fetch(url)).status).toBe(200)
    const [channel] = await payer.channels()
    if (!channel) throw new Error('no channel')
    const separator = domainSeparatorBytes({ chainId: dev.chainId, verifyingContract: h.escrow })
    const digest = (ceiling: bigint) =>
      bytesToHex(voucherDigest(separator, channel.channelId, ceiling)) as Hex
    // The first call's voucher is signed in it; each later one's during the call before.
    expect(signedDuring.get(digest(PRICE))).toBe(1)
    for (let k = 2; k <= 5; k++) expect(signedDuring.get(digest(BigInt(k) * PRICE))).toBe(k - 1)
    expect(signedDuring.get(digest(6n * PRICE))).toBe(5)
    // A route at twice the price: the voucher signed ahead (6 prices) is not its ceiling (7), so
    // it is signed anew, and the server takes it.
    call = 6
    expect((await payer.fetch(`${server.base}/dear`)).status).toBe(200)
    expect(signedDuring.get(digest(7n * PRICE))).toBe(6)
    expect(server.payee.ledger.get(channel.channelId)?.chargedCumulativeAmount).toBe(7n * PRICE)
    await payer.close()

    // Any other signer (a wallet may prompt, a remote signer bills) signs only what is sent.
    signedDuring.clear()
    const other = await payerOn(dev, {
      account: await fundedAccount(dev, 1_000_000n),
      payerAuthorizer: counting(randomAccount() as LocalAccount),
      dataDir: folder(),
    })
    for (call = 1; call <= 3; call++) expect((await other.fetch(url)).status).toBe(200)
    expect([...signedDuring.values()]).toEqual([1, 2, 3])
    await other.close()
  })

  it('recovers after losing its local state: reads the chain, checks the corrective voucher, adopts it', async () => {
    const account = await fundedAccount(dev, 1_000_000n)
    const sessionKey = randomAccount() as LocalAccount
    const first = await payerOn(dev, { account, payerAuthorizer: sessionKey, dataDir: folder() })
    for (let i = 0; i < 4; i++) expect((await first.fetch(`${server.base}/joke`)).status).toBe(200)
    const [lost] = await first.channels()
    await first.close()

    // Same keys, empty data folder: the channel is found again from its deterministic id.
    const second = await payerOn(dev, { account, payerAuthorizer: sessionKey, dataDir: folder() })
    const response = await second.fetch(`${server.base}/joke`)
    expect(response.status).toBe(200)
    const [found] = await second.channels()
    expect(found?.channelId).toBe(lost?.channelId)
    expect(found?.charged).toBe(5n * PRICE)
    expect(server.payee.ledger.get(found?.channelId ?? '0x')?.chargedCumulativeAmount).toBe(
      5n * PRICE,
    )
    await second.close()
  })

  it('asks for a cooperative refund, then withdraws what is left of another channel', async () => {
    const account = await fundedAccount(dev, 1_000_000n, true)
    const payer = await payerOn(dev, {
      account,
      dataDir: folder(),
      policy: { deposit: { amount: 100n * PRICE } },
    })
    for (let i = 0; i < 3; i++) expect((await payer.fetch(`${server.base}/joke`)).status).toBe(200)
    const [refund, ...others] = await payer.refund(`${server.base}/joke`)
    expect(refund).toMatchObject({ ok: true, amount: 97n * PRICE })
    expect(others).toEqual([])
    const [channel] = await payer.channels({ onChain: true })
    expect(channel?.onChain).toMatchObject({ balance: 3n * PRICE, totalClaimed: 3n * PRICE })
    expect(await h.usdcBalance(account.address)).toBe(1_000_000n - 3n * PRICE)

    // A payer that deposits directly (paying the gas), then takes the rest back by withdrawal.
    const direct = await payerOn(dev, {
      account,
      dataDir: folder(),
      salt: `0x${'01'.padStart(64, '0')}`,
      policy: { deposit: { method: 'direct', amount: 50n * PRICE } },
    })
    expect((await direct.fetch(`${server.base}/joke`)).status).toBe(200)
    const [own] = await direct.channels()
    if (!own) throw new Error('no channel')
    const started = await direct.initiateWithdraw(own.channelId)
    expect(started.finalizeAfter).toBeGreaterThan(0)
    expect(await codeOf(direct.fetch(`${server.base}/joke`))).toBe('tollgate_withdrawal_pending')
    await dev.advance(WITHDRAW_DELAY + 1)
    const finished = await direct.finalizeWithdraw(own.channelId)
    // Nothing was claimed yet, so the whole deposit comes back (the server's claim is its business).
    expect(finished.amount).toBe(50n * PRICE)
    await direct.close()
    await payer.close()
  })
})
