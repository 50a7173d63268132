/**
 * The group-commit pipeline on its own, with a write function that holds each batch until the
 * test lets it finish (an fsync in progress) and a "disk" that only a finished write changes.
 */
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import { CommitLog } from '../../src/store/commitLog.js'
import { GroupCommit } from '../../src/store/groupCommit.js'
import { resolveStoreOptions } from '../../src/store/resolveStoreOptions.js'
import type { WriteBatch } from '../../src/store/types.js'
import { channelIdOf } from './fixtures.js'

/** A disk whose batch writes finish (or fail) when the test says so, one at a time. */
function slowDisk() {
  const disk = new Map<Hex, string>()
  const writes: { batch: string[]; finish: (error?: Error) => void }[] = []
  const write = (batch: WriteBatch) =>
    new Promise<void>((resolve, reject) => {
      writes.push({
        batch: [...batch.records.keys()],
        finish: (error) => {
          if (error) return reject(error)
          for (const [id, bytes] of batch.records) disk.set(id, bytes.toString())
          resolve()
        },
      })
    })
  /** Resolves once the `n`-th write (from 1) has started. */
  const started = async (n: number) => {
    while (writes.length < n) await new Promise((resolve) => setImmediate(resolve))
    return writes[n - 1] as (typeof writes)[number]
  }
  return { disk, writes, write, started }
}

const settled = (promise: Promise<void>) =>
  promise.then(
    () => 'resolved',
    (error: unknown) => error,
  )

describe('group commit, durable mode', () => {
  it('acknowledges a write only once its batch is on disk', async () => {
    const { disk, write, started } = slowDisk()
    const queue = new GroupCommit(write, resolveStoreOptions())
    const put = queue.putRecord(channelIdOf(1), Buffer.from('a'))
    let acknowledged = false
    void put.then(() => {
      acknowledged = true
    })
    const first = await started(1)
    await new Promise((resolve) => setImmediate(resolve))
    expect(acknowledged).toBe(false)
    first.finish()
    await put
    expect(disk.get(channelIdOf(1))).toBe('a')
  })

  it('puts arriving during a write all go into the next batch: one write behind the one in progress', async () => {
    const { disk, writes, write, started } = slowDisk()
    const queue = new GroupCommit(write, resolveStoreOptions())
    const log = new CommitLog()
    queue.log = log
    const first = queue.putRecord(channelIdOf(1), Buffer.from('a'))
    const inProgress = await started(1)
    const waiting = [2, 3, 4].map((c) => queue.putRecord(channelIdOf(c), Buffer.from('b')))
    inProgress.finish()
    await first
    const next = await started(2)
    expect(next.batch).toEqual([channelIdOf(2), channelIdOf(3), channelIdOf(4)])
    next.finish()
    await Promise.all(waiting)
    expect(writes).toHaveLength(2)
    expect([...disk.keys()]).toHaveLength(4)
    const summary = log.summary()
    expect(summary.batchRecords).toMatchObject({ count: 2, max: 3, p50: 1 })
    expect(summary.waitMs.count).toBe(4)
    expect(summary.maxBatchesSkipped).toBe(0)
  })

  it('fails every waiter of a batch whose write fails, and none of the batch before', async () => {
    const { disk, write, started } = slowDisk()
    const queue = new GroupCommit(write, resolveStoreOptions())
    const first = queue.putRecord(channelIdOf(1), Buffer.from('a'))
    const inProgress = await started(1)
    const doomed = [
      queue.putRecord(channelIdOf(2), Buffer.from('b')),
      queue.putRecord(channelIdOf(3), Buffer.from('c')),
      queue.putMeta('k', 'v'),
    ].map(settled)
    inProgress.finish()
    expect(await settled(first)).toBe('resolved')
    ;(await started(2)).finish(new Error('fsync: input/output error'))
    for (const outcome of await Promise.all(doomed)) {
      expect(outcome).toBeInstanceOf(TollgateError)
      expect((outcome as TollgateError).code).toBe('tollgate_store_failed')
    }
    expect([...disk.keys()]).toEqual([channelIdOf(1)])
    // The pipeline stays usable: the next write goes to disk.
    const again = queue.putRecord(channelIdOf(2), Buffer.from('d'))
    ;(await started(3)).finish()
    await again
    expect(disk.get(channelIdOf(2))).toBe('d')
  })
})
