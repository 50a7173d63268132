/**
 * Three `tollgate serve` processes on one real redis-server (AOF, appendfsync always) and the
 * anvil dev chain, paid by stock x402 clients (@x402/fetch, batch-settlement) and by our payer,
 * each request sent to a random instance. Mid-load one instance is SIGKILLed and redis-server is
 * SIGKILLed and restarted from its AOF. After settlement: no acknowledged charge was made twice
 * (each channel's acknowledged cumulative amounts are distinct), none is missing from Redis nor
 * from the claim on chain, no channel is charged or claimed beyond its signed ceiling or its
 * balance, and at most the requests in flight at the two crashes are charged unacknowledged.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { x402Client } from '@x402/core/client'
import { toClientEvmSigner } from '@x402/evm'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Hex } from 'viem'
import { generatePrivateKey } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPayer, keySigner, type Payer } from '../../src/client/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer } from '../../src/server/createServer.js'
import { RedisStore } from '../../src/store/index.js'
import { type Running, start as startCli } from '../cli/run.js'
import { fundedAccount } from '../client/fixtures.js'
import { useDevChain } from '../helpers/devChain.js'
import { type RedisServer, startRedis } from '../helpers/redisServer.js'

const dev = useDevChain()
const KEY = dev.privateKeys[4] as Hex
/** `'$0.001'` of the 6-decimal test USDC. */
const PRICE = 1000n
const INSTANCES = 3
const STOCK_PAYERS = 3
const OUR_PAYERS = 3
/** Acknowledged (200) calls each payer makes. */
const CALLS = 25
/** A payer gives up after this many attempts in all (connection refused, busy, Redis down). */
const MAX_ATTEMPTS = CALLS * 8
const KEY_PREFIX = 'multi:'
/** A dead instance's hold keeps its channel busy this long. */
const HOLD_TTL_MS = 1000

interface Instance {
  base: string
  cli: Running
  alive: boolean
}

let redis: RedisServer
let upstream: FastifyInstance
const instances: Instance[] = []
const dirs: string[] = []
let configBase: Record<string, unknown>
let revert: () => Promise<void>

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-redis-multi-'))
  dirs.push(dir)
  return dir
}

beforeAll(async () => {
  revert = await dev.snapshot()
  redis = await startRedis()
  upstream = Fastify()
  upstream.get('/api/echo', async (request) => ({ q: (request.query as { q?: string }).q }))
  const upstreamBase = await upstream.listen({ host: '127.0.0.1', port: 0 })
  configBase = {
    network: 'local',
    rpcUrl: dev.rpcUrl,
    confirmations: 0,
    withdrawDelay: 3600,
    store: { url: redis.url, keyPrefix: KEY_PREFIX, holdTtlMs: HOLD_TTL_MS },
    settlement: { enabled: false },
    routes: [{ path: '/api/*', price: '$0.001', upstream: upstreamBase }],
  }
  const started = await Promise.all(
    Array.from({ length: INSTANCES }, async () => {
      const dir = tempDir()
      const port = await freePort()
      const file = join(dir, 'tollgate.json')
      writeFileSync(
        file,
        JSON.stringify({ ...configBase, dataDir: dir, listen: { host: '127.0.0.1', port } }),
      )
      const cli = startCli(['serve', '--config', file], {
        TOLLGATE_PRIVATE_KEY: KEY,
        LOG_LEVEL: 'info',
      })
      await cli.waitFor(/tollgate serving on/)
      return { base: `http://127.0.0.1:${port}`, cli, alive: true }
    }),
  )
  instances.push(...started)
})

afterAll(async () => {
  for (const instance of instances) {
    if (instance.cli.child.exitCode === null && instance.cli.child.signalCode === null) {
      instance.cli.child.kill('SIGTERM')
      await instance.cli.finished
    }
  }
  await upstream?.close()
  await redis?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  await revert?.()
})

/** One payer's view: what each acknowledged call's receipt said was charged, in order. */
interface PayerRun {
  fetch: typeof fetch
  acknowledged: bigint[]
  channelId: Hex | undefined
  close?: () => Promise<void>
}

async function stockPayer(): Promise<PayerRun> {
  const account = await fundedAccount(dev, 10_000_000n)
  const client = new x402Client()
  client.register(
    `eip155:${dev.chainId}`,
    // With the chain to read, it recovers from a corrective 402 (a charge it never heard of).
    new BatchSettlementEvmScheme(toClientEvmSigner(account, dev.harness.publicClient), {
      storage: new InMemoryClientChannelStorage(),
      depositPolicy: { depositMultiplier: 100 },
    }),
  )
  client.setSpendControls({ allowedAssets: true })
  return { fetch: wrapFetchWithPayment(fetch, client), acknowledged: [], channelId: undefined }
}

async function ourPayer(): Promise<PayerRun & { payer: Payer }> {
  const payer = await createPayer({
    rpcUrl: dev.rpcUrl,
    chainId: dev.chainId,
    account: await fundedAccount(dev, 10_000_000n),
    payerAuthorizer: keySigner(generatePrivateKey()),
    dataDir: tempDir(),
    policy: { deposit: { amount: 200n * PRICE } },
  })
  return {
    payer,
    fetch: ((input: string) => payer.fetch(input)) as typeof fetch,
    acknowledged: [],
    channelId: undefined,
    close: () => payer.close(),
  }
}

/** One call to `base`: the charged total of its receipt when acknowledged (200), else undefined. */
async function call(run: PayerRun, base: string, q: number): Promise<bigint | undefined> {
  let response: Response
  try {
    response = await run.fetch(`${base}/api/echo?q=${q}`)
  } catch {
    return undefined
  }
  const body = await response.text()
  if (response.status !== 200) return undefined
  expect(JSON.parse(body)).toEqual({ q: String(q) })
  const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
  if (!receipt.ok) throw new Error(receipt.message)
  const charged = receipt.value.channelState?.chargedCumulativeAmount
  const id = receipt.value.channelState?.channelId
  if (charged === undefined || id === undefined) throw new Error('a receipt without channelState')
  run.channelId = id as Hex
  return charged
}

describe('three instances on one Redis, one SIGKILLed and Redis restarted mid-load', () => {
  it('charges nothing twice, overdraws nothing, and the chain covers every acknowledged charge', async () => {
    const runs: PayerRun[] = []
    for (let i = 0; i < STOCK_PAYERS; i++) runs.push(await stockPayer())
    for (let i = 0; i < OUR_PAYERS; i++) runs.push(await ourPayer())
    // Each channel's opening deposit one at a time: the instances send them from one key.
    for (const run of runs) {
      const charged = await call(run, (instances[0] as Instance).base, 0)
      if (charged === undefined) throw new Error('a first call failed')
      run.acknowledged.push(charged)
    }

    let total = runs.length
    let killed = false
    let restarted: Promise<void> | undefined
    const disrupt = async () => {
      total++
      if (!killed && total >= (runs.length * CALLS) / 3) {
        killed = true
        const victim = instances[INSTANCES - 1] as Instance
        victim.alive = false
        victim.cli.child.kill('SIGKILL')
      }
      if (!restarted && total >= (2 * runs.length * CALLS) / 3) restarted = redis.restart()
    }
    await Promise.all(
      runs.map(async (run) => {
        let attempts = 0
        while (run.acknowledged.length < CALLS) {
          if (++attempts > MAX_ATTEMPTS) throw new Error('a payer made no progress')
          // Random instances, the dead one too: a payer cannot tell until it is refused.
          const instance = instances[Math.floor(Math.random() * INSTANCES)] as Instance
          const charged = await call(run, instance.base, run.acknowledged.length)
          if (charged === undefined) {
            await new Promise((resolve) => setTimeout(resolve, 100))
            continue
          }
          run.acknowledged.push(charged)
          await disrupt()
        }
      }),
    )
    expect(killed).toBe(true)
    await restarted

    // Settlement, by a fourth instance on the same Redis.
    const dir = tempDir()
    const settler = await createServer(
      parseConfig({ ...configBase, dataDir: dir, listen: { port: 0 } }, dir),
      KEY,
    )
    try {
      const report = await settler.settler.run({ sweep: true })
      expect(report.claimedChannels).toBe(runs.length)
    } finally {
      await settler.close()
    }

    const store = await RedisStore.open({ url: redis.url, keyPrefix: KEY_PREFIX })
    try {
      for (const run of runs) {
        const id = run.channelId as Hex
        const acknowledged = run.acknowledged
        // No acknowledged charge twice: every receipt of the channel a new cumulative amount.
        expect(new Set(acknowledged).size).toBe(acknowledged.length)
        expect([...acknowledged].sort((a, b) => (a < b ? -1 : 1))).toEqual(acknowledged)
        const last = acknowledged[acknowledged.length - 1] as bigint
        const record = await store.load(id)
        if (!record) throw new Error(`channel ${id} not in Redis`)
        const onChain = await dev.harness.channel(id)
        // Covered by Redis and by the claim on chain; nothing beyond the ceiling or the balance.
        expect(record.chargedCumulativeAmount).toBeGreaterThanOrEqual(last)
        expect(onChain.totalClaimed).toBe(record.chargedCumulativeAmount)
        expect(record.chargedCumulativeAmount).toBeLessThanOrEqual(record.signedMaxClaimable)
        expect(record.signedMaxClaimable).toBeLessThanOrEqual(onChain.balance)
        // Unacknowledged charges: at most the request in flight at each of the two crashes.
        expect(record.chargedCumulativeAmount - last).toBeLessThanOrEqual(2n * PRICE)
      }
      // Our payers' books: what each was told it was charged is what was claimed, but for a
      // request in flight at a crash it never heard of again.
      for (const run of runs) {
        if (!('payer' in run)) continue
        const [channel] = await (run as PayerRun & { payer: Payer }).payer.channels({
          onChain: true,
        })
        if (!channel?.onChain) throw new Error('no channel on chain')
        expect(channel.onChain.totalClaimed).toBeGreaterThanOrEqual(channel.charged)
        expect(channel.onChain.totalClaimed - channel.charged).toBeLessThanOrEqual(2n * PRICE)
      }
    } finally {
      await store.close()
      for (const run of runs) await run.close?.()
    }
  })
})
