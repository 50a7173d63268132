import { spawnSync } from 'node:child_process'
import { hostname } from 'node:os'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import {
  acquireLease,
  createJournal,
  LEASE_KEY,
  type PlannedBatch,
} from '../../src/settlement/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { makeConfig } from '../ledger/fixtures.js'

const batch: PlannedBatch = {
  method: 'claimPacked',
  claims: [1, 2].map((i) => ({
    channelId: `0x${i.toString(16).padStart(64, '0')}` as Hex,
    config: makeConfig(),
    maxClaimableAmount: 5_000n,
    signature: `0x${'11'.repeat(65)}` as Hex,
    totalClaimed: 4_000n + BigInt(i),
    amount: 4_000n + BigInt(i),
    reason: 'sweep' as const,
  })),
}

describe('settlement journal', () => {
  it('keeps each batch from planned to sent (every hash) to confirmed, until closed', async () => {
    const store = await MemoryStore.open()
    const journal = createJournal(store)
    const planned = await journal.open(batch)
    const other = await journal.open({ ...batch, method: 'claim' })
    expect(planned.state).toBe('planned')
    const sent = await journal.sent(planned, `0x${'aa'.repeat(32)}`, 7)
    const replaced = await journal.sent(sent, `0x${'bb'.repeat(32)}`, 7)
    expect(await journal.entries()).toEqual([
      {
        id: planned.id,
        method: 'claimPacked',
        state: 'sent',
        claims: [
          { channelId: batch.claims[0]?.channelId, totalClaimed: 4_001n },
          { channelId: batch.claims[1]?.channelId, totalClaimed: 4_002n },
        ],
        txs: [`0x${'aa'.repeat(32)}`, `0x${'bb'.repeat(32)}`],
        nonce: 7,
      },
      other,
    ])
    await journal.confirmed(replaced)
    expect((await journal.entries())[0]?.state).toBe('confirmed')
    await journal.close(replaced)
    await journal.close(other)
    expect(await journal.entries()).toEqual([])
  })
})

describe('settlement lease', () => {
  it('is held by one holder until released or expired, and renewed by its holder', async () => {
    const store = await MemoryStore.open()
    let now = 1_000
    const clock = { now: () => now, durationMs: 100 }
    const a = await acquireLease(store, 'host-a:1', clock)
    if ('ok' in a) throw new Error('not taken')
    const busy = await acquireLease(store, 'host-b:1', clock)
    expect(busy).toMatchObject({ ok: false, code: 'tollgate_settlement_busy' })
    now += 60
    expect(await a.renew()).toBe(true)
    now += 60
    expect(await acquireLease(store, 'host-b:1', clock)).toMatchObject({ ok: false })
    now += 200
    const b = await acquireLease(store, 'host-b:1', clock)
    expect('ok' in b).toBe(false)
    expect(await a.renew()).toBe(false)
    if (!('ok' in b)) await b.release()
    expect(await store.getMeta(LEASE_KEY)).toBeUndefined()
  })

  it('is taken over from a process of this host that no longer runs', async () => {
    const store = await MemoryStore.open()
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
    const deadHolder = `${hostname()}:${gone.stdout.toString()}`
    await store.putMeta(
      LEASE_KEY,
      JSON.stringify({ holder: deadHolder, expiresAt: Date.now() + 60_000 }),
    )
    const mine = `${hostname()}:${process.pid}`
    const lease = await acquireLease(store, mine)
    expect('ok' in lease).toBe(false)
    expect(JSON.parse((await store.getMeta(LEASE_KEY)) ?? '{}').holder).toBe(mine)
    // A holder of this host that still runs (pid 1 always does) keeps its lease.
    await store.putMeta(
      LEASE_KEY,
      JSON.stringify({ holder: `${hostname()}:1`, expiresAt: Date.now() + 60_000 }),
    )
    expect(await acquireLease(store, mine)).toMatchObject({
      ok: false,
      code: 'tollgate_settlement_busy',
    })
  })
})
