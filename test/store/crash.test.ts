/**
 * A real crash: a child process writes durably and is killed with SIGKILL mid-stream. Every
 * value it acknowledged must be covered by what the store holds (DESIGN.md, money invariant 2),
 * and the next open must report the crash.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LevelStore } from '../../src/store/index.js'
import { makeTempDir, removeDir } from './fixtures.js'

const WRITER = fileURLToPath(new URL('./crashWriter.ts', import.meta.url))
const CHANNELS = 4
/** Kill between 200 and 600 ms after the first ack. */
const killDelay = () => 200 + Math.floor(Math.random() * 400)
const STARTUP_TIMEOUT_MS = 20_000

let dir: string

beforeEach(async () => {
  dir = await makeTempDir()
})

afterEach(async () => {
  await removeDir(dir)
})

interface Run {
  /** Highest acknowledged signedMaxClaimable per channel id. */
  acked: Map<string, bigint>
  ackCount: number
  recoveredSeenByChild: boolean | undefined
}

/** Runs the writer until SIGKILL, a random time after its first ack; collects its acks. */
function runAndKill(location: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, location, String(CHANNELS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const run: Run = { acked: new Map(), ackCount: 0, recoveredSeenByChild: undefined }
    let buffered = ''
    let stderr = ''
    let killTimer: NodeJS.Timeout | undefined
    const startupTimer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the writer acked nothing within ${STARTUP_TIMEOUT_MS} ms: ${stderr}`))
    }, STARTUP_TIMEOUT_MS)
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? '' // a partial last line is not an ack
      for (const line of lines) {
        const [word, a, b] = line.split(' ')
        if (word === 'opened') run.recoveredSeenByChild = a === 'recovered=true'
        if (word !== 'acked' || a === undefined || b === undefined) continue
        run.ackCount++
        const value = BigInt(b)
        if (value > (run.acked.get(a) ?? -1n)) run.acked.set(a, value)
        if (killTimer === undefined) {
          clearTimeout(startupTimer)
          killTimer = setTimeout(() => child.kill('SIGKILL'), killDelay())
        }
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(startupTimer)
      clearTimeout(killTimer)
      if (signal === 'SIGKILL' && killTimer !== undefined) resolve(run)
      else
        reject(new Error(`the writer exited (${code ?? signal}) before it was killed: ${stderr}`))
    })
  })
}

/** Every channel's stored voucher covers the highest value acknowledged for it. */
async function expectCovered(acked: Map<string, bigint>): Promise<void> {
  const store = await LevelStore.open(dir)
  try {
    expect(store.recoveredFromCrash).toBe(true)
    const stored = new Map((await store.loadAll()).map((r) => [r.channelId as string, r]))
    for (const [channelId, ackedValue] of acked) {
      const record = stored.get(channelId)
      expect(record?.signedMaxClaimable, channelId).toBeGreaterThanOrEqual(ackedValue)
      expect(record?.chargedCumulativeAmount).toBeLessThan(record?.signedMaxClaimable ?? -1n)
    }
  } finally {
    await store.close()
  }
}

describe('LevelStore after SIGKILL', () => {
  it('holds, for every channel, at least the highest acknowledged voucher', async () => {
    // Run 1 crashes; run 2 starts on the crashed store and crashes too; the parent checks and
    // closes cleanly; run 3 starts clean and crashes.
    const acked = new Map<string, bigint>()
    const merge = (run: Run) => {
      expect(run.ackCount).toBeGreaterThan(0)
      console.info(`writer acked ${run.ackCount} puts before SIGKILL`)
      for (const [id, value] of run.acked) if (value > (acked.get(id) ?? -1n)) acked.set(id, value)
    }

    const first = await runAndKill(dir)
    expect(first.recoveredSeenByChild).toBe(false)
    merge(first)
    const second = await runAndKill(dir)
    expect(second.recoveredSeenByChild).toBe(true)
    merge(second)
    await expectCovered(acked)

    const third = await runAndKill(dir)
    expect(third.recoveredSeenByChild).toBe(false)
    merge(third)
    await expectCovered(acked)
  })
})
