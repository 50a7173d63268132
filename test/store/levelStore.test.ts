/** LevelStore specifics: what survives a reopen of the directory, and crash detection. */
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ChannelRecord } from '../../src/ledger/types.js'
import { LevelStore } from '../../src/store/index.js'
import {
  channelIdOf,
  MAX_UINT128,
  makeRecord,
  makeTempDir,
  recordArb,
  removeDir,
} from './fixtures.js'

let dir: string

beforeEach(async () => {
  dir = await makeTempDir()
})

afterEach(async () => {
  await removeDir(dir)
})

describe('LevelStore', () => {
  it('round-trips arbitrary records, extremes included, through a reopen', async () => {
    const byChannel = (records: ChannelRecord[]) =>
      [...new Map(records.map((r) => [r.channelId, r])).values()].sort((a, b) =>
        a.channelId < b.channelId ? -1 : 1,
      )
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { minLength: 1, maxLength: 30 }), async (records) => {
        const location = await mkdtemp(join(dir, 'run-'))
        const writer = await LevelStore.open(location)
        await Promise.all(records.map((record) => writer.put(record)))
        await writer.close()
        const reader = await LevelStore.open(location)
        try {
          expect(await reader.loadAll()).toEqual(byChannel(records))
        } finally {
          await reader.close()
        }
      }),
      {
        numRuns: 25,
        examples: [
          [
            [
              makeRecord(0, 0n),
              { ...makeRecord(1, MAX_UINT128, MAX_UINT128), refundNonce: MAX_UINT128 },
            ],
          ],
        ],
      },
    )
  })

  it('reopens with exactly the latest record of every channel, and the meta', async () => {
    const store = await LevelStore.open(dir)
    const latest = new Map<number, bigint>()
    for (let round = 1; round <= 5; round++) {
      await Promise.all(
        Array.from({ length: 40 }, (_, n) => {
          if ((n + round) % 3 === 0) return undefined // not every channel every round
          const value = BigInt(round * 1_000 + n)
          latest.set(n, value)
          return store.put(makeRecord(n, value, value - 1n))
        }),
      )
    }
    await store.putMeta('chain/lastBlock', '1234')
    await store.close()

    const reopened = await LevelStore.open(dir)
    try {
      const all = await reopened.loadAll()
      expect(
        all.map((r) => [r.channelId, r.signedMaxClaimable, r.chargedCumulativeAmount]),
      ).toEqual(
        [...latest]
          .sort(([a], [b]) => a - b)
          .map(([n, value]) => [channelIdOf(n), value, value - 1n]),
      )
      expect(await reopened.getMeta('chain/lastBlock')).toBe('1234')
    } finally {
      await reopened.close()
    }
  })

  it('reports recoveredFromCrash false on a new directory and after a clean close', async () => {
    const first = await LevelStore.open(dir)
    expect(first.recoveredFromCrash).toBe(false)
    await first.put(makeRecord(1, 1n))
    await first.close()
    const second = await LevelStore.open(dir)
    expect(second.recoveredFromCrash).toBe(false)
    await second.close()
  })

  it('refuses a directory another store holds open, with tollgate_store_failed', async () => {
    const store = await LevelStore.open(dir)
    try {
      await expect(LevelStore.open(dir)).rejects.toThrow(
        expect.objectContaining({ code: 'tollgate_store_failed' }),
      )
    } finally {
      await store.close()
    }
  })

  it('refuses an empty location with tollgate_invalid_config', async () => {
    await expect(LevelStore.open('')).rejects.toThrow(
      expect.objectContaining({ code: 'tollgate_invalid_config' }),
    )
  })
})
