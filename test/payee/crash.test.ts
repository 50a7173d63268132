/**
 * The crash bound (DESIGN.md, "Crashes and clean stops"): a server process is SIGKILLed with a
 * dynamic-price charge committed, with a request in flight, and in the middle of a billed feed;
 * the store it leaves is reopened and what the payer is charged is compared with what was
 * delivered. Bound: one request's price on HTTP; `persistEvery` (64) messages on a feed.
 */

import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openPayee, type Payee } from '../../src/payee/index.js'
import {
  CANONICAL_ADDRESSES,
  decodePaymentRequired,
  decodeSettleResponse,
} from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig } from '../ledger/fixtures.js'
import { type Channel, voucherHeader } from '../transports/http/fixtures.js'
import { FrameClient } from '../transports/ws/fixtures.js'
import { startCrashServer } from './crashServerProcess.js'

const PRICE = 11_000n
const CHARGED = 30n
const FEED_PRICE = 10n
const PERSIST_EVERY = 64n

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const startServer = (dir: string) => startCrashServer(dir, cleanups)

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

/** Reopens the store the killed process left, as the next start would. */
async function reopen(dir: string): Promise<Payee> {
  const payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: CANONICAL_ADDRESSES.escrow,
    identity: IDENTITY,
    store: await LevelStore.open(dir),
    readChannel: async () => {
      throw new Error('no chain reads after a restart')
    },
  })
  cleanups.push(() => payee.close())
  return payee
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-crash-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function newChannel(): Channel {
  const config = makeConfig()
  return { config, id: channelId(config, DOMAIN) }
}

async function accepted(url: string, method = 'GET') {
  const response = await fetch(url, { method })
  expect(response.status).toBe(402)
  const required = decodePaymentRequired(response.headers.get('payment-required') ?? '')
  if (!required.ok) throw new Error(required.message)
  const [first] = required.value.accepts
  if (!first) throw new Error('no requirements')
  return first
}

describe('after SIGKILL', () => {
  it('keeps a committed dynamic-price charge: the payer is not charged the ceiling', async () => {
    const dir = tempDir()
    const server = await startServer(dir)
    const channel = newChannel()
    const header = await voucherHeader(
      await accepted(`${server.base}/work`, 'POST'),
      channel,
      PRICE,
    )
    const paid = await fetch(`${server.base}/work`, {
      method: 'POST',
      headers: { 'payment-signature': header },
    })
    expect(paid.status).toBe(200)
    const receipt = decodeSettleResponse(paid.headers.get('payment-response') ?? '')
    expect(receipt.ok && receipt.value.chargedAmount).toBe(CHARGED)
    // The charge is written behind the response; give the group commit its fsync.
    await new Promise((resolve) => setTimeout(resolve, 300))
    await kill(server.child)

    const payee = await reopen(dir)
    expect(payee.recovery.fromCrash).toBe(true)
    expect(payee.ledger.get(channel.id)?.chargedCumulativeAmount).toBe(CHARGED)
  })

  it('charges at most the price of the one request in flight', async () => {
    const dir = tempDir()
    const server = await startServer(dir)
    const channel = newChannel()
    const work = await voucherHeader(await accepted(`${server.base}/work`, 'POST'), channel, PRICE)
    expect(
      (
        await fetch(`${server.base}/work`, {
          method: 'POST',
          headers: { 'payment-signature': work },
        })
      ).status,
    ).toBe(200)
    const hang = await voucherHeader(
      await accepted(`${server.base}/hang`),
      channel,
      CHARGED + PRICE,
    )
    const inFlight = fetch(`${server.base}/hang`, { headers: { 'payment-signature': hang } }).catch(
      () => undefined,
    )
    await server.waitFor('hang')
    await kill(server.child)
    await inFlight

    const payee = await reopen(dir)
    const charged = payee.ledger.get(channel.id)?.chargedCumulativeAmount ?? 0n
    const delivered = CHARGED
    expect(charged).toBeGreaterThanOrEqual(delivered)
    expect(charged - delivered).toBeLessThanOrEqual(PRICE)
  })

  it('charges a feed at most persistEvery messages beyond what was delivered', async () => {
    const dir = tempDir()
    const server = await startServer(dir)
    const channel = newChannel()
    const client = await FrameClient.open(`${server.base.replace('http', 'ws')}/ticks`)
    const window = 500n * FEED_PRICE
    await client.pay(await client.accepted(), channel, window)
    client.send({ type: 'subscribe' })
    await client.count('data', 150, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await kill(server.child)

    const payee = await reopen(dir)
    const charged = payee.ledger.get(channel.id)?.chargedCumulativeAmount ?? 0n
    const delivered = 150n * FEED_PRICE
    expect(charged).toBeGreaterThanOrEqual(delivered)
    expect(charged - delivered).toBeLessThanOrEqual(PERSIST_EVERY * FEED_PRICE)
    expect(charged).toBeLessThan(window)
  })
})
