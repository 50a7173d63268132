/**
 * Sequential paid calls per second of one payer, tollgate's payer SDK against the stock x402
 * client (`@x402/fetch` with `@x402/evm`'s batch-settlement client scheme), in one run, through
 * the same server: a Fastify app with the tollgate plugin (durable LevelStore in a temp dir,
 * ERC-3009 deposits taken) on a local anvil. Round trips are counted at the server: HTTP
 * requests received per paid call. Each client first opens its channel with one gasless deposit
 * (the server advertises a `minDeposit` covering every call, so neither tops up while measured).
 * Beside them: whether our payer signs on libsecp256k1 and what one voucher signature costs
 * natively and in JavaScript (same run), and its journal's writes and flushes per call and calls
 * per spend reservation over the measured calls. Where a call's time goes, per client: in the
 * server (from its `onRequest` to its `onResponse` hook, summed over the call's requests), in the
 * store's group commits (the LevelDB batch write and its fsync, part of the server's time), and
 * the rest (the client, its HTTP stack and the socket). Beside the headline, on a twin route of
 * the same server that offers ticks (src/transports/http/PROTOCOL.md, `config.ticks`), our payer
 * with `ticks: true`: one voucher a window, then one hash preimage a call (stock clients would
 * pay that route as they pay the other).
 *
 * `TOLLGATE_BENCH_PROFILE=<path>` adds one phase of our payer alone after the measured ones (not
 * counted), under the V8 CPU profiler (this process: payer and server): it writes
 * `<path>.cpuprofile` and the top 15 functions by self time to `<path>.txt`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { x402Client } from '@x402/core/client'
import {
  BatchSettlementEvmScheme,
  InMemoryClientChannelStorage,
} from '@x402/evm/batch-settlement/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import Fastify from 'fastify'
import { createWalletClient, http, type LocalAccount } from 'viem'
import { generatePrivateKey } from 'viem/accounts'
import {
  DEV_USDC_DOMAIN,
  devPublicClient,
  LOCAL_POLLING_MS,
  startDevChain,
} from '../src/chain/devChain.js'
import { escrowWriter } from '../src/chain/escrowWriter.js'
import { channelReader } from '../src/chain/readChannel.js'
import { createPayer, keySigner } from '../src/client/index.js'
import { openPayee } from '../src/payee/index.js'
import { LevelStore } from '../src/store/index.js'
import { tollgate } from '../src/transports/http/index.js'
import { bytesToHex, domainSeparatorBytes, voucherDigest } from '../src/verify/index.js'
import type { Log } from './run.js'
import { startCpuProfile, topSelfTime } from './support/cpuProfile.js'

/** Token units per call: `'$0.001'` of a 6-decimal USDC. */
const PRICE = 1000n
const WITHDRAW_DELAY = 3600
/** Calls of each client before the clocks start (the first opens its channel). */
const WARMUP = 30
/** Measured time per client, at least, and the most calls of one client. */
const PHASE_MS = 6_000
const MAX_CALLS = 40_000
/** Calls per slice; the clients take turns, slice by slice. */
const SLICE_CALLS = 50
/** Voucher signatures timed per backend, in rounds that alternate between them. */
const SIGN_ROUNDS = 10
const SIGNS_PER_ROUND = 200
/** Calls of our payer under the profiler, when one is asked for. */
const PROFILED_CALLS = 2_000
const PROFILE = process.env.TOLLGATE_BENCH_PROFILE
/** Calls a tick window covers, as the twin route offers it. */
const TICK_WINDOW = 100
/** The deposit every channel opens with: covers every call of the run. */
const MIN_DEPOSIT = PRICE * BigInt(MAX_CALLS + SLICE_CALLS + WARMUP + 1 + PROFILED_CALLS)

interface Phase {
  calls: number
  perSecond: number
  roundTrips: number
  /** CPU of the whole process (client and server) per call: steadier than time on a shared machine. */
  cpuMs: number
  /** Milliseconds per call in the server's hooks (onRequest to onResponse), the store's commits included. */
  serverMs: number
  /** Milliseconds per call in the store's group commits (batch write and fsync). */
  commitMs: number
  /** The store's group commits per call. */
  commits: number
}

/**
 * Microseconds per voucher signature of the same key on libsecp256k1 and on viem's JavaScript,
 * in alternating rounds; both must give the same signatures (RFC 6979).
 */
async function signingCost(privateKey: `0x${string}`, chainId: number, escrow: `0x${string}`) {
  const native = keySigner(privateKey, 'native')
  const js = keySigner(privateKey, 'js')
  const separator = domainSeparatorBytes({ chainId, verifyingContract: escrow })
  const hashes = Array.from({ length: SIGNS_PER_ROUND }, (_, i) =>
    bytesToHex(voucherDigest(separator, `0x${'cd'.repeat(32)}`, BigInt(i + 1))),
  )
  const time = async (signer: typeof native) => {
    const start = performance.now()
    let last = ''
    for (const hash of hashes) last = await (signer.sign?.({ hash }) ?? '')
    return { us: ((performance.now() - start) * 1000) / hashes.length, last }
  }
  let nativeUs = 0
  let jsUs = 0
  for (let round = 0; round < SIGN_ROUNDS; round++) {
    const n = await time(native)
    const j = await time(js)
    if (n.last !== j.last) throw new Error('native and JS voucher signatures differ')
    nativeUs += n.us / SIGN_ROUNDS
    jsUs += j.us / SIGN_ROUNDS
  }
  return {
    native_sign_us: Number(nativeUs.toFixed(1)),
    js_sign_us: Number(jsUs.toFixed(1)),
    js_over_native: Number((jsUs / nativeUs).toFixed(1)),
  }
}

/** Where a client's call goes, in milliseconds: the server (store commits part of it), the rest. */
function split(p: Phase) {
  const call = 1000 / p.perSecond
  return {
    call: Number(call.toFixed(3)),
    server: Number(p.serverMs.toFixed(3)),
    store_commit: Number(p.commitMs.toFixed(3)),
    store_commits: Number(p.commits.toFixed(2)),
    client_and_socket: Number((call - p.serverMs).toFixed(3)),
  }
}

export async function run(log: Log) {
  const dev = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-client-'))
  const closers: (() => Promise<unknown>)[] = []
  try {
    const [, receiver, , , authorizer, ticking, ours, theirs] = dev.accounts as LocalAccount[] as [
      LocalAccount,
      LocalAccount,
      LocalAccount,
      LocalAccount,
      LocalAccount,
      LocalAccount,
      LocalAccount,
      LocalAccount,
    ]
    const publicClient = devPublicClient(dev)
    const store = await LevelStore.open(join(dir, 'vouchers'))
    let commitSeconds = 0
    let commits = 0
    store.observeCommits((seconds) => {
      commitSeconds += seconds
      commits += 1
    })
    const payee = await openPayee({
      chainId: dev.chain.id,
      escrow: dev.contracts.escrow,
      identity: {
        receiver: receiver.address,
        receiverAuthorizer: authorizer.address,
        token: dev.contracts.usdc,
        withdrawDelay: WITHDRAW_DELAY,
      },
      store,
      readChannel: channelReader(publicClient, dev.contracts.escrow),
    })
    closers.push(() => payee.close())
    const app = Fastify()
    closers.unshift(() => app.close())
    await app.register(tollgate, {
      payee,
      network: `eip155:${dev.chain.id}`,
      asset: { address: dev.contracts.usdc, ...DEV_USDC_DOMAIN, decimals: 6 },
      payTo: receiver.address,
      receiverAuthorizer: authorizer.address,
      withdrawDelay: WITHDRAW_DELAY,
      minDeposit: MIN_DEPOSIT,
      // The limiters run on every request, as in production, but never refuse one here.
      rateLimit: {
        perIp: { max: 1_000_000_000, timeWindowMs: 10_000 },
        perPayer: { max: 1_000_000_000, timeWindowMs: 10_000 },
      },
      escrowWriter: escrowWriter({
        publicClient,
        walletClient: createWalletClient({
          chain: dev.chain,
          transport: http(dev.rpcUrl, { retryCount: 0 }),
          account: receiver,
          pollingInterval: LOCAL_POLLING_MS,
        }),
        escrow: dev.contracts.escrow,
        erc3009Collector: dev.contracts.erc3009Collector,
      }),
    })
    let requests = 0
    let serverMs = 0
    const received = new WeakMap<object, number>()
    app.addHook('onRequest', async (request) => {
      requests += 1
      received.set(request, performance.now())
    })
    app.addHook('onResponse', async (request) => {
      serverMs += performance.now() - (received.get(request) ?? performance.now())
    })
    app.get('/paid', { config: { price: PRICE } }, async () => ({ ok: true }))
    app.get('/free', async () => ({ ok: true }))
    app.get('/ticked', { config: { price: PRICE, ticks: TICK_WINDOW } }, async () => ({
      ok: true,
    }))
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const url = `http://127.0.0.1:${address.port}/paid`
    /** The same handler unpaid, through plain fetch: the floor any paying client stands on. */
    const unpaid: typeof fetch = () => fetch(`http://127.0.0.1:${address.port}/free`)

    const sessionKey = generatePrivateKey()
    const payer = await createPayer({
      account: ours,
      // A session key signing with libsecp256k1: the funding key only deposits.
      payerAuthorizer: keySigner(sessionKey),
      rpcUrl: dev.rpcUrl,
      chainId: dev.chain.id,
      dataDir: join(dir, 'payer'),
      policy: { limits: { perRequest: '$0.01', perDay: '$1000' } },
    })
    closers.unshift(() => payer.close())
    const tickPayer = await createPayer({
      account: ticking,
      payerAuthorizer: keySigner(generatePrivateKey()),
      rpcUrl: dev.rpcUrl,
      chainId: dev.chain.id,
      dataDir: join(dir, 'tick-payer'),
      policy: { limits: { perRequest: '$0.01', perDay: '$1000' } },
      ticks: true,
    })
    closers.unshift(() => tickPayer.close())
    const ticked: typeof fetch = () => tickPayer.fetch(`http://127.0.0.1:${address.port}/ticked`)
    const client = new x402Client()
    client.register(
      `eip155:${dev.chain.id}`,
      new BatchSettlementEvmScheme(theirs, { storage: new InMemoryClientChannelStorage() }),
    )
    client.setSpendControls({ allowedAssets: true })
    const stockFetch = wrapFetchWithPayment(fetch, client)

    const call = async (pay: typeof fetch) => {
      const response = await pay(url)
      if (response.status !== 200) throw new Error(`paid call answered ${response.status}`)
      await response.arrayBuffer()
    }
    /** Totals of one client over its slices. */
    const totals = () => ({
      calls: 0,
      ms: 0,
      requests: 0,
      cpuMicros: 0,
      serverMs: 0,
      commitMs: 0,
      commits: 0,
    })
    const slice = async (pay: typeof fetch, total: ReturnType<typeof totals>) => {
      const before = requests
      const serverBefore = serverMs
      const commitBefore = commitSeconds
      const commitsBefore = commits
      const cpu = process.cpuUsage()
      const start = performance.now()
      for (let i = 0; i < SLICE_CALLS; i++) await call(pay)
      total.ms += performance.now() - start
      const used = process.cpuUsage(cpu)
      total.cpuMicros += used.user + used.system
      total.calls += SLICE_CALLS
      total.requests += requests - before
      total.serverMs += serverMs - serverBefore
      total.commitMs += (commitSeconds - commitBefore) * 1000
      total.commits += commits - commitsBefore
    }
    const phase = (total: ReturnType<typeof totals>): Phase => ({
      calls: total.calls,
      perSecond: (total.calls * 1000) / total.ms,
      roundTrips: total.requests / total.calls,
      cpuMs: total.cpuMicros / 1000 / total.calls,
      serverMs: total.serverMs / total.calls,
      commitMs: total.commitMs / total.calls,
      commits: total.commits / total.calls,
    })
    const describe = (name: string, p: Phase) =>
      `${name}: ${p.perSecond.toFixed(0)} calls/s, ${p.roundTrips.toFixed(2)} round trips/call, ${p.cpuMs.toFixed(2)} ms CPU/call (${p.calls} calls); per call ${(1000 / p.perSecond).toFixed(2)} ms: ${p.serverMs.toFixed(2)} in the server (${p.commitMs.toFixed(2)} of it in ${p.commits.toFixed(2)} store commits), ${(1000 / p.perSecond - p.serverMs).toFixed(2)} in the client and the socket`

    for (let i = 0; i < WARMUP; i++) await call(payer.fetch)
    for (let i = 0; i < WARMUP; i++) await call(stockFetch)
    for (let i = 0; i < WARMUP; i++) await call(ticked)
    // Short slices, alternating: a burst of someone else's work on a shared machine falls on
    // both clients alike.
    const ourTotals = totals()
    const stockTotals = totals()
    const floorTotals = totals()
    const tickTotals = totals()
    const statsBefore = payer.stats()
    while (Math.min(ourTotals.ms, stockTotals.ms) < PHASE_MS && ourTotals.calls < MAX_CALLS) {
      await slice(payer.fetch, ourTotals)
      await slice(stockFetch, stockTotals)
      await slice(unpaid, floorTotals)
      await slice(ticked, tickTotals)
    }
    const statsAfter = payer.stats()
    const reservations = statsAfter.reservations - statsBefore.reservations
    const journal = {
      writes_per_call: Number(
        ((statsAfter.writes - statsBefore.writes) / ourTotals.calls).toFixed(3),
      ),
      fsyncs_per_call: Number(
        ((statsAfter.syncs - statsBefore.syncs) / ourTotals.calls).toFixed(3),
      ),
      calls_per_reservation:
        reservations === 0 ? ourTotals.calls : Math.round(ourTotals.calls / reservations),
    }
    if (PROFILE) {
      const stop = await startCpuProfile()
      for (let i = 0; i < PROFILED_CALLS; i++) await call(payer.fetch)
      const profile = await stop()
      writeFileSync(`${PROFILE}.cpuprofile`, JSON.stringify(profile))
      writeFileSync(`${PROFILE}.txt`, `${topSelfTime(profile)}\n`)
      log(`profile: ${PROFILE}.cpuprofile, top: ${PROFILE}.txt`)
    }
    const native = await signingCost(sessionKey, dev.chain.id, dev.contracts.escrow)
    const a = phase(ourTotals)
    const b = phase(stockTotals)
    log(describe('tollgate payer', a))
    log(describe('stock @x402/fetch', b))
    const t = phase(tickTotals)
    log(describe('unpaid twin route, plain fetch (the floor)', phase(floorTotals)))
    log(describe(`tollgate payer with ticks, window ${TICK_WINDOW}`, t))
    log(
      `ratio ${(a.perSecond / b.perSecond).toFixed(1)}x; with ticks ${(t.perSecond / b.perSecond).toFixed(1)}x`,
    )
    log(
      `voucher signing: ${payer.signing.backend}; ${native.native_sign_us.toFixed(1)} µs native, ${native.js_sign_us.toFixed(1)} µs JS`,
    )
    log(
      `journal: ${journal.writes_per_call} writes and ${journal.fsyncs_per_call} fsyncs per call, ${journal.calls_per_reservation} calls per reservation`,
    )
    return {
      ours_calls_per_s: Math.round(a.perSecond),
      stock_calls_per_s: Math.round(b.perSecond),
      ours_round_trips_per_call: Number(a.roundTrips.toFixed(2)),
      stock_round_trips_per_call: Number(b.roundTrips.toFixed(2)),
      split_ms_per_call: {
        ours: split(a),
        stock: split(b),
        ours_ticks: split(t),
      },
      ours_ticks_calls_per_s: Math.round(t.perSecond),
      ticks_vs_stock: Number((t.perSecond / b.perSecond).toFixed(2)),
      native_signing: { used: payer.signing.backend === 'native', ...native },
      journal,
    }
  } finally {
    for (const close of closers) await close()
    await dev.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}
