/**
 * Child process of crash.test.ts: opens a durable LevelStore at argv[2] and, for argv[3]
 * channels concurrently, puts records with increasing signedMaxClaimable in a tight loop,
 * printing `acked <channelId> <signedMaxClaimable>` once each put has resolved. It runs until
 * killed. Resumes above what the store holds, so that values keep rising across runs.
 */
import { LevelStore } from '../../src/store/index.js'
import { channelIdOf, makeRecord } from './fixtures.js'

const [location, channelArg] = process.argv.slice(2)
if (location === undefined || channelArg === undefined) {
  throw new Error('usage: crashWriter.ts <location> <channels>')
}
const channels = Number(channelArg)
const store = await LevelStore.open(location)
const stored = new Map((await store.loadAll()).map((r) => [r.channelId, r.signedMaxClaimable]))
process.stdout.write(`opened recovered=${store.recoveredFromCrash}\n`)

// Channel 0 lives above 2^100, to take the codec's wide-amount path.
const BASE = [1n << 100n]

async function writeLoop(n: number): Promise<never> {
  let value = stored.get(channelIdOf(n)) ?? BASE[n] ?? 0n
  for (;;) {
    value += BigInt(1 + Math.floor(Math.random() * 1_000))
    // The charged total trails the voucher, as in the server.
    await store.put(makeRecord(n, value, value - 1n))
    // Pipes are written synchronously on Linux: a printed ack is in the pipe before the next put.
    process.stdout.write(`acked ${channelIdOf(n)} ${value}\n`)
  }
}

await Promise.all(Array.from({ length: channels }, (_, n) => writeLoop(n)))
