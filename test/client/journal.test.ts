/**
 * The payer's journal on a real disk: spends and channels come back after a restart, a torn
 * last line (a crash mid-append) is dropped, a long journal is compacted without changing what
 * the spend limits see, and the limits are checked against it.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Hex } from 'viem'
import { afterAll, describe, expect, it } from 'vitest'
import { checkSpend, JOURNAL_FILE, resolveLimits } from '../../src/client/index.js'
import { JOURNAL_COMPACT_LINES, Journal, type PayerChannel } from '../../src/client/journal.js'
import { tempDir } from './fixtures.js'

const HOUR = 60 * 60 * 1000
const NOW = Date.UTC(2026, 5, 1)
const cleanups: (() => void)[] = []
afterAll(() => {
  for (const cleanup of cleanups) cleanup()
})

function folder(): string {
  const temp = tempDir()
  cleanups.push(temp.remove)
  return temp.dir
}

const channel: PayerChannel = {
  channelId: `0x${'ab'.repeat(32)}` as Hex,
  network: 'eip155:31337',
  escrow: `0x${'40'.repeat(20)}` as Hex,
  config: {
    payer: `0x${'01'.repeat(20)}`,
    payerAuthorizer: `0x${'02'.repeat(20)}`,
    receiver: `0x${'03'.repeat(20)}`,
    receiverAuthorizer: `0x${'04'.repeat(20)}`,
    token: `0x${'05'.repeat(20)}`,
    withdrawDelay: 900,
    salt: `0x${'00'.repeat(32)}`,
  },
  origins: ['http://a.test'],
  balance: 10_000n,
  charged: 0n,
  signed: 0n,
  withdrawInitiatedAt: 0,
}

describe('the payer journal', () => {
  it('brings spends and channels back after a restart, dropping a torn last line', async () => {
    const dir = folder()
    const journal = await Journal.open(dir, () => NOW)
    await journal.putSpends(
      [{ at: NOW - 30 * HOUR, origin: 'http://a.test', amount: 5n }],
      channel,
      true,
    )
    await journal.putSpends(
      [{ at: NOW - HOUR, origin: 'http://b.test', amount: 7n }],
      { ...channel, signed: 12n },
      true,
    )
    await journal.close()
    appendFileSync(join(dir, JOURNAL_FILE), '{"k":"spend","at":1')

    const again = await Journal.open(dir, () => NOW)
    expect(again.channels.get(channel.channelId)?.signed).toBe(12n)
    expect(again.spentSince(NOW - 24 * HOUR)).toBe(7n)
    expect(again.spentSince(NOW - 48 * HOUR)).toBe(12n)
    expect(again.originTotals.get('http://a.test')).toBe(5n)
    const limits = resolveLimits({ perDay: '10', perOrigin: '7' })
    const check = { origin: 'http://a.test', price: 3n, increase: 1n, now: NOW }
    expect(checkSpend(limits, again, check).ok).toBe(true)
    const perOrigin = checkSpend(limits, again, { ...check, increase: 3n })
    expect(perOrigin).toMatchObject({ ok: false, code: 'tollgate_spend_limit' })
    expect(perOrigin.ok ? '' : perOrigin.message).toMatch(/perOrigin/)
    const perDay = checkSpend(limits, again, { ...check, origin: 'http://c.test', increase: 4n })
    expect(perDay.ok ? '' : perDay.message).toMatch(/perDay/)
    await again.close()
  })

  it('compacts a long journal, keeping the totals and the rolling windows', async () => {
    const dir = folder()
    const lines: string[] = []
    for (let i = 0; i < JOURNAL_COMPACT_LINES; i++) {
      const at = NOW - (JOURNAL_COMPACT_LINES - i) * HOUR // older spends fall out of the week
      lines.push(JSON.stringify({ k: 'spend', at, origin: 'http://a.test', amount: '1' }))
    }
    writeFileSync(join(dir, JOURNAL_FILE), `${lines.join('\n')}\n`)
    const before = await Journal.open(dir, () => NOW)
    const week = before.spentSince(NOW - 7 * 24 * HOUR)
    await before.close()
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8').split('\n').length).toBeLessThan(200)
    const after = await Journal.open(dir, () => NOW)
    expect(after.originTotals.get('http://a.test')).toBe(BigInt(JOURNAL_COMPACT_LINES))
    expect(after.spentSince(NOW - 7 * 24 * HOUR)).toBe(week)
    expect(week).toBe(7n * 24n - 1n)
    await after.close()
  })

  it('compacts as it grows, and what it holds survives the rewrite', async () => {
    const dir = folder()
    const journal = await Journal.open(dir, () => NOW)
    await journal.putSpends([{ at: NOW, origin: 'http://a.test', amount: 3n }], channel, true)
    for (let i = 1; i <= JOURNAL_COMPACT_LINES; i++) {
      await journal.putChannel({ ...channel, charged: BigInt(i) }, false)
    }
    await journal.close()
    expect(readFileSync(join(dir, JOURNAL_FILE), 'utf8').split('\n').length).toBeLessThan(
      JOURNAL_COMPACT_LINES / 2,
    )
    const again = await Journal.open(dir, () => NOW)
    expect(again.channels.get(channel.channelId)?.charged).toBe(BigInt(JOURNAL_COMPACT_LINES))
    expect(again.spentSince(NOW - HOUR)).toBe(3n)
    expect(again.originTotals.get('http://a.test')).toBe(3n)
    await again.close()
  })

  it('replays an open reservation as signed in full, and counts spends by their dates', async () => {
    const dir = folder()
    const journal = await Journal.open(dir, () => NOW)
    const expiresAt = NOW + 60_000
    const reserved: PayerChannel = {
      ...channel,
      charged: 2n,
      signed: 3n,
      reservation: { origin: 'http://a.test', ceiling: 10n, expiresAt },
    }
    // A reservation dated at its expiry, then an exact transfer dated now: kept in date order.
    await journal.putSpends(
      [{ at: expiresAt, origin: 'http://a.test', amount: 10n }],
      reserved,
      true,
    )
    await journal.putTransferSpend({ at: NOW, origin: 'http://b.test', amount: 1n })
    expect(journal.spends.map((spend) => spend.at)).toEqual([NOW, expiresAt])
    expect(journal.spentSince(NOW - HOUR)).toBe(11n)
    expect(journal.spentSince(NOW)).toBe(10n)
    expect(journal.stats()).toEqual({ writes: 2, syncs: 2 })
    await journal.close()

    // A crash with the reservation open: its vouchers may all have been signed.
    const crashed = await Journal.open(dir, () => NOW)
    const back = crashed.channels.get(channel.channelId)
    expect(back?.signed).toBe(10n)
    expect(back?.reservation).toBeUndefined()
    expect(crashed.spentSince(NOW - HOUR)).toBe(11n)
    // A release gives back the unused part at the reservation's own date.
    await crashed.putSpends(
      [{ at: expiresAt, origin: 'http://a.test', amount: -7n }],
      { ...channel, signed: 3n },
      false,
    )
    expect(crashed.stats()).toEqual({ writes: 1, syncs: 0 })
    await crashed.close()
    const released = await Journal.open(dir, () => NOW)
    expect(released.spentSince(NOW - HOUR)).toBe(4n)
    expect(released.spentSince(expiresAt)).toBe(0n)
    expect(released.originTotals.get('http://a.test')).toBe(3n)
    expect(released.channels.get(channel.channelId)?.signed).toBe(3n)
    await released.close()
  })
})
