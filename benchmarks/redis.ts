/**
 * Paid HTTP throughput on a shared Redis against the embedded LevelDB, side by side in one run:
 * the load generator of the http benchmark (benchmarks/support/loadgen.ts, a child process, one
 * channel per connection, every voucher signed before the clock starts) drives
 *
 * - `level`: a Fastify app with the tollgate plugin on a durable LevelStore (rate limits local),
 *   in this process: the reference;
 * - `redis_1`: the same app on a durable RedisStore (a real redis-server, AOF, appendfsync
 *   always) in this process, rate limits counted in Redis as createTollgate sets them; its twin
 *   on the same store with local rate limits shows the store's own share;
 * - `redis_2`: two instances in child processes of their own (benchmarks/support/redisInstance.ts)
 *   on the same Redis, half of the connections each. The machine has two cores for the two
 *   instances, the generators and redis-server, so CPU per paid call is reported beside throughput.
 *
 * Redis round trips are counted by Redis itself, in untimed phases of their own: `MONITOR` reports
 * every command with its source, and those sent by a client (not run inside a Lua script) over
 * the paid requests answered 200 are the round trips per paid call (every client sends one command
 * per round trip: no pipelining, no MULTI). Timed phases log `INFO commandstats` (script inner
 * commands included) as a cross-check. Server CPU per paid call is this process's for `level` and
 * `redis_1` (LevelDB's background threads included) and the two children's for `redis_2`;
 * redis-server's own CPU per paid call (`INFO cpu`) is reported apart. Added latency: `level` and
 * `redis_1` at the same offered rate, half of `level`'s peak; `p99_added_ms_redis` is redis minus
 * level. Phases alternate over a few rounds and the best of each counts (the CPU is shared).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { Account, Address, LocalAccount } from 'viem'
import { DEV_USDC_DOMAIN, devPublicClient, startDevChain } from '../src/chain/devChain.js'
import { channelReader } from '../src/chain/readChannel.js'
import { openPayee, type Payee } from '../src/payee/index.js'
import { type ChannelStore, LevelStore, RedisStore } from '../src/store/index.js'
import { type TollgateOptions, tollgate } from '../src/transports/http/index.js'
import { EscrowHarness } from '../test/helpers/escrow.js'
import { type RedisServer, startRedis } from '../test/helpers/redisServer.js'
import { HANDLER_BODY } from '../test/helpers/stockServer.js'
import type { Log } from './run.js'
import {
  type LoadChannel,
  type LoadResult,
  type LoadSpec,
  openChannels,
  receiptMismatches,
  requirementsOf,
  runLoad,
} from './support/loadgen.js'
import { type RedisInstance, startRedisInstance } from './support/redisInstance.js'

/** Connections, each paying on a channel of its own. */
const CONNECTIONS = 32
/** Token units per request: `'$0.001'` of a 6-decimal USDC. */
const PRICE = 1000n
const WITHDRAW_DELAY = 3600
/** Requests per connection before each clock starts. */
const WARMUP = 20
/** Rounds of each phase; the best counts. */
const ROUNDS = 3
/** Measured requests per connection at most, in each phase. */
const REQUESTS = 500
/** Longest measured phase. */
const PEAK_MS = 4_000
/** Length of each phase at half of peak load. */
const HALF_LOAD_MS = 4_000
/** Requests per connection in each untimed phase that counts round trips. */
const COUNTED_REQUESTS = 40
/** Paid phases on the Redis channel set (redis_1, its twin, redis_2, half load), the most of either set. */
const PHASES_PER_SET = 4 * ROUNDS
const DEPOSIT = PRICE * BigInt((WARMUP + REQUESTS) * PHASES_PER_SET + 3 * (2 + COUNTED_REQUESTS))
const KEY_PREFIX = 'bench:'

/** What Redis counted over one phase. */
interface RedisCounts {
  commands: number
  cpuUs: number
}

export async function run(log: Log) {
  const dev = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-redis-'))
  let redis: RedisServer | undefined
  let counter: Redis | undefined
  const apps: FastifyInstance[] = []
  const payees: Payee[] = []
  const stores: ChannelStore[] = []
  const instances: RedisInstance[] = []
  try {
    const [, receiver, authorizer, funder] = dev.accounts as [
      Account,
      Account,
      LocalAccount,
      Account,
    ]
    const harness = EscrowHarness.on(dev)
    const lower = (a: Address) => a.toLowerCase() as Address
    redis = await startRedis()
    counter = new Redis(redis.url)
    const identity = {
      receiver: lower(receiver.address),
      receiverAuthorizer: lower(authorizer.address),
      token: lower(dev.contracts.usdc),
      withdrawDelay: WITHDRAW_DELAY,
    }
    const open = async (store: ChannelStore) => {
      stores.push(store)
      const payee = await openPayee({
        chainId: dev.chain.id,
        escrow: dev.contracts.escrow,
        identity,
        store,
        readChannel: channelReader(devPublicClient(dev), dev.contracts.escrow),
      })
      payees.push(payee)
      return payee
    }
    const level = await open(await LevelStore.open(join(dir, 'channels')))
    const redisStore = await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX })
    const shared = await open(redisStore)
    const serve = async (payee: Payee, extra: Partial<TollgateOptions>): Promise<string> => {
      const app = Fastify()
      apps.push(app)
      await app.register(tollgate, {
        payee,
        network: `eip155:${dev.chain.id}`,
        asset: { address: dev.contracts.usdc, ...DEV_USDC_DOMAIN, decimals: 6 },
        payTo: receiver.address,
        receiverAuthorizer: authorizer.address,
        withdrawDelay: WITHDRAW_DELAY,
        metrics: false,
        // Run on every request, as in production, but never refuse one: all come from 127.0.0.1.
        rateLimit: {
          perIp: { max: 1_000_000_000, timeWindowMs: 10_000 },
          perPayer: { max: 1_000_000_000, timeWindowMs: 10_000 },
        },
        ...extra,
      })
      app.get('/paid', { config: { price: PRICE } }, async () => HANDLER_BODY)
      return `${await app.listen({ host: '127.0.0.1', port: 0 })}/paid`
    }
    const levelUrl = await serve(level, {})
    const redisUrl = await serve(shared, { rateLimitRedis: redisStore.client })
    const twinUrl = await serve(shared, {})
    for (let i = 0; i < 2; i++) {
      instances.push(
        await startRedisInstance({
          redisUrl: redis.url,
          keyPrefix: KEY_PREFIX,
          chainId: dev.chain.id,
          escrow: dev.contracts.escrow,
          usdc: dev.contracts.usdc,
          receiver: identity.receiver,
          authorizer: identity.receiverAuthorizer,
          withdrawDelay: WITHDRAW_DELAY,
          price: PRICE,
          balance: DEPOSIT,
        }),
      )
    }

    const accepted = await requirementsOf(levelUrl)
    const opened = performance.now()
    await harness.approve(funder, DEPOSIT * BigInt(2 * CONNECTIONS))
    const levelChannels = await openChannels(harness, funder, accepted, CONNECTIONS, DEPOSIT)
    const redisChannels = await openChannels(harness, funder, accepted, CONNECTIONS, DEPOSIT)
    log(
      `${2 * CONNECTIONS} channels deposited on chain in ${((performance.now() - opened) / 1000).toFixed(1)} s`,
    )

    const commandCalls = async (): Promise<RedisCounts> => {
      const info = await (counter as Redis).info('commandstats')
      let commands = 0
      for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (match[1] !== 'info' && match[1] !== 'config') commands += Number(match[2])
      }
      const cpu = await (counter as Redis).info('cpu')
      const seconds = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0)
      return { commands, cpuUs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6 }
    }
    const counted = async <T>(task: () => Promise<T>): Promise<[T, RedisCounts]> => {
      await (counter as Redis).config('RESETSTAT')
      const before = await commandCalls()
      const result = await task()
      const after = await commandCalls()
      return [result, { commands: after.commands, cpuUs: after.cpuUs - before.cpuUs }]
    }
    const common = { price: PRICE, chainId: dev.chain.id, escrow: dev.contracts.escrow, accepted }
    const phase = async (
      name: string,
      spec: Omit<LoadSpec, 'price' | 'chainId' | 'escrow' | 'accepted' | 'warmup' | 'requests'>,
    ): Promise<{ result: LoadResult; redis: RedisCounts; paid: number }> => {
      const full: LoadSpec = { ...common, warmup: WARMUP, requests: REQUESTS, ...spec }
      globalThis.gc?.()
      const [result, counts] = await counted(() => runLoad(full))
      check(name, full, result)
      const paid = sum(result.served)
      log(`${describe(name, result)}; ${perCall(counts, paid)}`)
      return { result, redis: counts, paid }
    }

    /** Client commands per paid call over a short untimed load on `urls` (a part of the channels each). */
    const roundTrips = async (name: string, urls: string[]): Promise<number> => {
      const monitor = await (counter as Redis).monitor()
      let commands = 0
      monitor.on('monitor', (_time: string, _args: string[], source: string) => {
        if (source !== 'lua') commands++
      })
      const parts = urls.map((_, i) => redisChannels.filter((_c, k) => k % urls.length === i))
      const results = await Promise.all(
        urls.map((url, i) =>
          runLoad({
            ...common,
            warmup: 2,
            requests: COUNTED_REQUESTS,
            durationMs: PEAK_MS,
            url,
            channels: parts[i] as LoadChannel[],
          }),
        ),
      )
      // MONITOR reports a command once it ran; the last ones of the load are in before this ping.
      await (counter as Redis).ping()
      monitor.disconnect()
      results.forEach((result, i) => {
        check(name, { ...common, channels: parts[i] } as LoadSpec, result)
      })
      const paid = sum(results.flatMap((r) => r.served))
      const perPaid = (commands - 1) / paid
      log(
        `${name}: ${commands - 1} client commands for ${paid} paid calls: ${perPaid.toFixed(2)} round trips each`,
      )
      return perPaid
    }
    const trips = {
      redis_1: await roundTrips('round trips, redis_1', [redisUrl]),
      local_limits: await roundTrips('round trips, redis_1 with local rate limits', [twinUrl]),
      redis_2: await roundTrips(
        'round trips, redis_2',
        instances.map((i) => i.url),
      ),
    }

    type Measured = Awaited<ReturnType<typeof phase>>
    const best = (a: Measured | undefined, b: Measured, lower = false) =>
      !a || (lower ? b.result.p99Ms < a.result.p99Ms : b.result.rps > a.result.rps) ? b : a
    let levelPeak: Measured | undefined
    let redisPeak: Measured | undefined
    let twinPeak: Measured | undefined
    for (let round = 1; round <= ROUNDS; round++) {
      const peak = { durationMs: PEAK_MS }
      levelPeak = best(
        levelPeak,
        await phase(`level, peak, round ${round}`, {
          ...peak,
          url: levelUrl,
          channels: levelChannels,
        }),
      )
      redisPeak = best(
        redisPeak,
        await phase(`redis_1, peak, round ${round}`, {
          ...peak,
          url: redisUrl,
          channels: redisChannels,
        }),
      )
      twinPeak = best(
        twinPeak,
        await phase(`redis_1 with local rate limits, peak, round ${round}`, {
          ...peak,
          url: twinUrl,
          channels: redisChannels,
        }),
      )
    }
    if (!levelPeak || !redisPeak || !twinPeak) throw new Error('no peak round measured')

    // Two instances, half of the connections each, at once.
    let twoBest: { rps: number; cpuUsPerPaid: number; redis: RedisCounts; paid: number } | undefined
    for (let round = 1; round <= ROUNDS; round++) {
      const halves = [redisChannels.slice(0, CONNECTIONS / 2), redisChannels.slice(CONNECTIONS / 2)]
      globalThis.gc?.()
      const cpu0 = await Promise.all(instances.map((i) => i.cpuUs()))
      const [results, counts] = await counted(() =>
        Promise.all(
          instances.map((instance, i) =>
            runLoad({
              ...common,
              warmup: WARMUP,
              requests: REQUESTS,
              durationMs: PEAK_MS,
              url: instance.url,
              channels: halves[i] as LoadChannel[],
            }),
          ),
        ),
      )
      const cpu1 = await Promise.all(instances.map((i) => i.cpuUs()))
      results.forEach((result, i) => {
        check(`redis_2, instance ${i + 1}`, { ...common, channels: halves[i] } as LoadSpec, result)
      })
      const requests = sum(results.map((r) => r.requests))
      const rps = requests / (Math.max(...results.map((r) => r.wallMs)) / 1000)
      const paid = sum(results.flatMap((r) => r.served))
      const cpuUsPerPaid = (sum(cpu1) - sum(cpu0)) / paid
      log(
        `redis_2, round ${round}: ${round0(rps)} req/s (${requests}); instances' CPU ${round0(cpuUsPerPaid)} µs per paid call (warm-up included); ${perCall(counts, paid)}`,
      )
      if (!twoBest || rps > twoBest.rps) twoBest = { rps, cpuUsPerPaid, redis: counts, paid }
    }
    if (!twoBest) throw new Error('no two-instance round measured')

    const rate = Math.max(1, Math.round(levelPeak.result.rps / 2))
    let levelHalf: Measured | undefined
    let redisHalf: Measured | undefined
    for (let round = 1; round <= ROUNDS; round++) {
      const half = { durationMs: HALF_LOAD_MS, rate }
      levelHalf = best(
        levelHalf,
        await phase(`level, ${rate}/s, round ${round}`, {
          ...half,
          url: levelUrl,
          channels: levelChannels,
        }),
        true,
      )
      redisHalf = best(
        redisHalf,
        await phase(`redis_1, ${rate}/s, round ${round}`, {
          ...half,
          url: redisUrl,
          channels: redisChannels,
        }),
        true,
      )
    }
    if (!levelHalf || !redisHalf) throw new Error('no half-load round measured')

    return {
      paid_rps_level: round0(levelPeak.result.rps),
      paid_rps_redis_1: round0(redisPeak.result.rps),
      paid_rps_redis_2: round0(twoBest.rps),
      redis_round_trips_per_paid_call: round(trips.redis_1, 2),
      server_cpu_us_per_paid: {
        level: round0(levelPeak.result.serverCpuUsPerRequest),
        redis: round0(redisPeak.result.serverCpuUsPerRequest),
      },
      p99_added_ms_redis: round(redisHalf.result.p99Ms - levelHalf.result.p99Ms, 3),
      redis_vs_level: round(redisPeak.result.rps / levelPeak.result.rps, 3),
      cpu_redis_vs_level: round(
        redisPeak.result.serverCpuUsPerRequest / levelPeak.result.serverCpuUsPerRequest,
        3,
      ),
      paid_rps_redis_1_local_rate_limits: round0(twinPeak.result.rps),
      redis_round_trips_per_paid_call_local_rate_limits: round(trips.local_limits, 2),
      server_cpu_us_per_paid_redis_local_rate_limits: round0(twinPeak.result.serverCpuUsPerRequest),
      redis_2_round_trips_per_paid_call: round(trips.redis_2, 2),
      redis_2_instances_cpu_us_per_paid: round0(twoBest.cpuUsPerPaid),
      redis_server_cpu_us_per_paid: {
        redis_1: round0(redisPeak.redis.cpuUs / redisPeak.paid),
        redis_2: round0(twoBest.redis.cpuUs / twoBest.paid),
      },
      p99_ms: { level: round(levelHalf.result.p99Ms, 3), redis: round(redisHalf.result.p99Ms, 3) },
      half_load_rps: rate,
      connections: CONNECTIONS,
    }
  } finally {
    for (const instance of instances) await instance.stop()
    for (const app of apps) await app.close()
    for (const payee of payees) await payee.close()
    for (const store of stores) await store.close()
    counter?.disconnect()
    await redis?.stop()
    await dev.stop()
    rmSync(dir, { recursive: true, force: true })
  }

  /** A phase with errors, or whose receipts disagree with what was served, ends the benchmark; its channels then move on. */
  function check(name: string, spec: LoadSpec, result: LoadResult): void {
    if (result.errors > 0 || result.ok === 0) {
      throw new Error(`${name}: ${result.errors} errors; first: ${result.firstError}`)
    }
    const problems = receiptMismatches(spec, result)
    if (problems.length > 0) throw new Error(`${name}: receipts disagree: ${problems[0]}`)
    spec.channels.forEach((channel, i) => {
      channel.charged += BigInt(result.served[i] ?? 0) * PRICE
    })
  }
}

function perCall(counts: RedisCounts, paid: number): string {
  return `Redis: ${(counts.commands / paid).toFixed(2)} commands and ${round0(counts.cpuUs / paid)} µs CPU per paid call`
}

function describe(name: string, r: LoadResult): string {
  return [
    `${name}: ${round0(r.rps)} req/s (${r.requests} in ${(r.wallMs / 1000).toFixed(1)} s)`,
    `p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`,
    `server CPU ${round0(r.serverCpuUsPerRequest)} µs/req (${round0(r.serverCpuShare * 100)}%)`,
    `generator CPU ${round0(r.generatorCpuShare * 100)}%`,
  ].join('; ')
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0)
}

function round0(value: number): number {
  return Math.round(value)
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}
