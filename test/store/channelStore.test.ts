/**
 * The ChannelStore contract, run against both implementations: LevelStore on a real LevelDB
 * directory and MemoryStore. Durability across processes is in crash.test.ts.
 */
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  type ChannelStore,
  LevelStore,
  MemoryStore,
  type StoreOptions,
} from '../../src/store/index.js'
import { channelIdOf, makeRecord, makeTempDir, removeDir } from './fixtures.js'

interface Backend {
  name: string
  open(options?: StoreOptions): Promise<ChannelStore>
  /** Makes batch writes fail until the returned function is called. */
  breakWrites(store: ChannelStore): () => void
}

let dir: string
const opened: ChannelStore[] = []

const backends: Backend[] = [
  {
    name: 'LevelStore',
    open: async (options) => track(await LevelStore.open(dir, options)),
    breakWrites: () => {
      // LevelStore writes through classic-level's own `_batch` (src/store/levelStore.ts).
      const spy = vi
        .spyOn(Level.prototype as unknown as { _batch: () => Promise<void> }, '_batch')
        .mockRejectedValue(new Error('IO error: No space left on device'))
      return () => spy.mockRestore()
    },
  },
  {
    name: 'MemoryStore',
    open: async (options) => track(await MemoryStore.open(options)),
    breakWrites: (store) => {
      ;(store as MemoryStore).failWrites(new Error('IO error: No space left on device'))
      return () => (store as MemoryStore).failWrites(undefined)
    },
  },
]

function track(store: ChannelStore): ChannelStore {
  opened.push(store)
  return store
}

beforeEach(async () => {
  dir = await makeTempDir()
})

afterEach(async () => {
  vi.restoreAllMocks()
  for (const store of opened.splice(0)) await store.close().catch(() => {})
  await removeDir(dir)
})

const storeFailed = expect.objectContaining({
  name: 'TollgateError',
  code: 'tollgate_store_failed',
})

describe.each(backends)('$name', (backend) => {
  it('keeps only the latest record of each channel', async () => {
    const store = await backend.open()
    for (let v = 1n; v <= 3n; v++) {
      await Promise.all([0, 1, 2].map((n) => store.put(makeRecord(n, v * 100n + BigInt(n)))))
    }
    await store.put(makeRecord(1, 999n))
    const all = await store.loadAll()
    expect(all.map((r) => [r.channelId, r.signedMaxClaimable])).toEqual([
      [channelIdOf(0), 300n],
      [channelIdOf(1), 999n],
      [channelIdOf(2), 302n],
    ])
  })

  it('group-commits: 200 puts in one tick share one batch; a later put replaces an earlier one', async () => {
    const store = await backend.open()
    // 100 channels, each put twice: first with n, then with 1000 + n.
    const puts = Array.from({ length: 200 }, (_, i) =>
      store.put(makeRecord(i % 100, i < 100 ? BigInt(i) : BigInt(900 + i))),
    )
    await Promise.all(puts)
    expect(store.stats.batches).toBeLessThanOrEqual(2)
    expect(store.stats.records).toBe(100)
    const all = await store.loadAll()
    expect(all).toHaveLength(100)
    for (const record of all) {
      expect(record.signedMaxClaimable).toBe(1000n + BigInt(Number.parseInt(record.channelId, 16)))
    }
  })

  it('group-commits puts that arrive while a batch is being written', async () => {
    const store = await backend.open()
    // 200 requests on 50 channels arriving in order over ~20 ms, each awaiting its own put.
    const requests = Array.from({ length: 200 }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, Math.floor(i / 10)))
      await store.put(makeRecord(i % 50, BigInt(i)))
    })
    await Promise.all(requests)
    console.info(`${backend.name}: 200 puts over ~20 ms took ${store.stats.batches} batches`)
    expect(store.stats.batches).toBeGreaterThan(0)
    expect(store.stats.batches).toBeLessThanOrEqual(100) // one batch per put without group commit
    const all = await store.loadAll()
    expect(all).toHaveLength(50)
    // Channel c was put last at i = 150 + c.
    for (const record of all) {
      const c = Number.parseInt(record.channelId, 16)
      expect(record.signedMaxClaimable).toBe(BigInt(150 + c))
    }
  })

  it('rejects the puts of a failed batch with tollgate_store_failed and stays usable', async () => {
    const store = await backend.open()
    await store.put(makeRecord(1, 10n))
    const heal = backend.breakWrites(store)
    const failed = [store.put(makeRecord(1, 20n)), store.put(makeRecord(2, 20n))]
    for (const put of failed) await expect(put).rejects.toThrow(storeFailed)
    await expect(store.putMeta('k', 'v')).rejects.toThrow(storeFailed)
    expect(store.stats.failedBatches).toBeGreaterThan(0)
    heal()
    await store.put(makeRecord(2, 30n))
    await store.putMeta('k', 'w')
    const all = await store.loadAll()
    expect(all.map((r) => r.signedMaxClaimable)).toEqual([10n, 30n])
    expect(await store.getMeta('k')).toBe('w')
  })

  it('rejects a record that cannot be encoded without failing the rest of its batch', async () => {
    const store = await backend.open()
    const bad = { ...makeRecord(1, 5n), signedMaxClaimable: -5n }
    const results = await Promise.allSettled([store.put(bad), store.put(makeRecord(2, 5n))])
    expect(results[0]).toMatchObject({ status: 'rejected', reason: { code: 'tollgate_internal' } })
    expect(results[1]).toMatchObject({ status: 'fulfilled' })
    expect((await store.loadAll()).map((r) => r.channelId)).toEqual([channelIdOf(2)])
  })

  describe('relaxed mode', () => {
    it('resolves at once and writes by itself on its flush interval, with no flush()', async () => {
      const store = await backend.open({ mode: 'relaxed', flushIntervalMs: 30 })
      await Promise.all([1, 2, 3].map((n) => store.put(makeRecord(n, 7n))))
      expect(store.stats.batches).toBe(0)
      expect((await store.loadAll()).length).toBe(3) // reads see records not yet written
      await vi.waitFor(() => expect(store.stats.batches).toBe(1), { timeout: 2_000, interval: 2 })
      expect(store.stats.records).toBe(3)
    })

    it('flush() writes at once', async () => {
      const store = await backend.open({ mode: 'relaxed', flushIntervalMs: 60_000 })
      await store.put(makeRecord(1, 7n))
      await store.put(makeRecord(1, 8n))
      expect(store.stats.batches).toBe(0)
      await store.flush()
      expect(store.stats).toMatchObject({ batches: 1, records: 1 })
      await store.flush()
      expect(store.stats.batches).toBe(1)
    })

    it('keeps records of a failed write for a retry and refuses new puts until one succeeds', async () => {
      const store = await backend.open({ mode: 'relaxed', flushIntervalMs: 10 })
      const heal = backend.breakWrites(store)
      await store.put(makeRecord(1, 7n))
      await vi.waitFor(() => expect(store.stats.failedBatches).toBeGreaterThan(0), {
        timeout: 2_000,
        interval: 2,
      })
      await expect(store.put(makeRecord(2, 7n))).rejects.toThrow(storeFailed)
      await expect(store.flush()).rejects.toThrow(storeFailed)
      heal()
      await vi.waitFor(() => expect(store.stats.batches).toBe(1), { timeout: 2_000, interval: 2 })
      await store.put(makeRecord(2, 8n))
      await store.flush()
      const all = await store.loadAll()
      expect(all.map((r) => r.signedMaxClaimable)).toEqual([7n, 8n])
    })
  })

  describe('meta', () => {
    it('puts, gets, lists by prefix in key order and deletes', async () => {
      const store = await backend.open()
      await store.putMeta('journal/2', 'b')
      await store.putMeta('journal/10', 'a')
      await store.putMeta('lease', '{"holder":"x"}')
      await store.putMeta('journal/1', 'c')
      expect(await store.getMeta('lease')).toBe('{"holder":"x"}')
      expect(await store.getMeta('missing')).toBeUndefined()
      expect(await store.listMeta('journal/')).toEqual([
        ['journal/1', 'c'],
        ['journal/10', 'a'],
        ['journal/2', 'b'],
      ])
      await store.deleteMeta('journal/10')
      expect(await store.getMeta('journal/10')).toBeUndefined()
      expect((await store.listMeta('')).map(([key]) => key)).toEqual([
        'journal/1',
        'journal/2',
        'lease',
      ])
    })

    it('reads see meta writes still in flight', async () => {
      const store = await backend.open()
      const write = store.putMeta('chain/lastBlock', '42')
      const del = store.deleteMeta('gone')
      expect(await store.getMeta('chain/lastBlock')).toBe('42')
      expect(await store.listMeta('chain/')).toEqual([['chain/lastBlock', '42']])
      await Promise.all([write, del])
    })

    it('is durable in relaxed mode too', async () => {
      const store = await backend.open({ mode: 'relaxed', flushIntervalMs: 60_000 })
      await store.putMeta('chain/lastBlock', '42')
      expect(store.stats.batches).toBe(1)
    })
  })

  describe('close', () => {
    it('is idempotent; later puts, meta writes and reads reject with tollgate_store_failed', async () => {
      const store = await backend.open()
      await store.close()
      await store.close()
      await expect(store.put(makeRecord(1, 1n))).rejects.toThrow(storeFailed)
      await expect(store.putMeta('k', 'v')).rejects.toThrow(storeFailed)
      await expect(store.getMeta('k')).rejects.toThrow(storeFailed)
      await expect(store.loadAll()).rejects.toThrow(storeFailed)
    })

    it('flushes relaxed writes first', async () => {
      const store = await backend.open({ mode: 'relaxed', flushIntervalMs: 60_000 })
      await store.put(makeRecord(1, 1n))
      await store.close()
      expect(store.stats.batches).toBe(1)
    })
  })

  it('validates its options with tollgate_invalid_config', async () => {
    const invalid = [
      { mode: 'fast' },
      { flushIntervalMs: 0 },
      { flushIntervalMs: 1.5 },
      { flushIntervalMs: 120_000 },
      { flushIntervalMs: '100' },
    ] as unknown as StoreOptions[]
    for (const options of invalid) {
      await expect(backend.open(options)).rejects.toThrow(
        expect.objectContaining({ code: 'tollgate_invalid_config' }),
      )
    }
  })
})
