/**
 * A feed's messages per second over WebSocket, billed and unbilled, side by side in one run on
 * one Fastify server: the same source and the same `data` frames, sent by a plain
 * @fastify/websocket route (unbilled) and by `app.tollgateFeed` (billed per message, credit
 * windows of WINDOW messages, a durable LevelStore in a temp dir). The channels' on-chain state
 * is seeded in the payee's chain reader, as the transport's tests do.
 *
 * The two are measured in alternation (each going first in every other round), ROUNDS times
 * each, by the same generator (support/wsLoad.ts) in a child process, with CONNECTIONS
 * connections each on a channel of its own. The medians are reported, with the ratio of the
 * server's CPU time per message beside the ratio of the rates: on a shared machine the rates are
 * noisy, the CPU time per message much less so. After each billed round the ledger's charge of
 * every channel must equal what its connection received times the price, and so must its final
 * receipt.
 *
 * `TOLLGATE_BENCH_PROFILE=<path>` adds one billed and one unbilled fan-out phase after the fan-out
 * rounds (not counted), each with its measured part under the V8 CPU profiler (this process: the
 * server side): it writes `<path>-billed.cpuprofile` and the top 15 functions by self time to
 * `<path>-billed.txt`, and likewise `<path>-unbilled.*`.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setImmediate as nextLoop } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Account, Address, Hex, LocalAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import type { WebSocket } from 'ws'
import { LOCAL_CHAIN_ID } from '../src/chain/anvil.js'
import { DEV_USDC_DOMAIN, devPublicClient, startDevChain } from '../src/chain/devChain.js'
import { channelReader } from '../src/chain/readChannel.js'
import type { OnChainChannel } from '../src/ledger/index.js'
import { openPayee, type Payee } from '../src/payee/index.js'
import { CANONICAL_ADDRESSES, type ChannelConfig } from '../src/protocol/index.js'
import { LevelStore } from '../src/store/index.js'
import { DEFAULT_HIGH_WATER_BYTES } from '../src/transports/ws/constants.js'
import { FEED_BURST, type FeedContext, tollgateWs } from '../src/transports/ws/index.js'
import { bytesToHex, channelId, domainSeparator } from '../src/verify/index.js'
import type { Log } from './run.js'
import { type CpuProfile, startCpuProfile, topSelfTime } from './support/cpuProfile.js'
import { depositMany } from './support/depositMany.js'
import type { LoadChannel } from './support/loadgen.js'
import { runWsLoad, type WsLoadResult } from './support/wsLoad.js'

const CHAIN_ID = LOCAL_CHAIN_ID
const ESCROW = CANONICAL_ADDRESSES.escrow
/** Token units a message: 10 units of USDC is $0.00001. */
const PRICE = 10n
/** Messages one voucher pays for: $0.10 of USDC. */
const WINDOW = 10_000
/**
 * Messages of credit left when the server asks for the next voucher: half a window, since the
 * `voucher-needed` frame queues behind up to the high-water mark of `data` frames (about 2 600
 * of these) and the voucher is stored (fsync) before its receipt.
 */
const LOW_WATER = 5_000
const CONNECTIONS = 4
const ROUNDS = 4
const WARMUP = 5_000
/** Messages per connection at most in one measured phase. */
const MESSAGES = 400_000
const DURATION_MS = 2_500
/** `ws.bufferedAmount` past which both feeds wait for the socket to drain (the plugin's default). */
const HIGH_WATER_BYTES = DEFAULT_HIGH_WATER_BYTES
const IDENTITY = {
  receiver: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  receiverAuthorizer: '0x15d34aaf54267db7d7c367839aaf71a00a2c6a65',
  token: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  withdrawDelay: 3600,
} as const satisfies Record<string, Address | number>
const DOMAIN = domainSeparator({ chainId: CHAIN_ID, verifyingContract: ESCROW })

/** The feed both routes serve: a market tick per message, as fast as it is pulled. */
async function* ticks({ signal }: Pick<FeedContext, 'signal'>) {
  for (let n = 1; !signal.aborted; n++) {
    yield { sym: 'BTC-USD', px: 60_000 + (n % 1000) / 100, n }
  }
}

/**
 * The unbilled feed, as an application writes it with @fastify/websocket alone: on `subscribe`,
 * pull the source and send each message as the same `data` frame, waiting for the socket to
 * drain to half the high-water mark when its send queue passes it, and yielding to the event
 * loop every FEED_BURST messages as the billed feed does.
 */
function plainFeed(socket: WebSocket): void {
  const abort = new AbortController()
  let wake: (() => void) | undefined
  const flushed = () => {
    const resume = wake
    wake = undefined
    resume?.()
  }
  const charged = PRICE.toString()
  const pump = async () => {
    let seq = 0
    let paused = false
    for await (const body of ticks({ signal: abort.signal })) {
      for (;;) {
        const queued = socket.bufferedAmount
        if (queued < HIGH_WATER_BYTES && !(paused && queued > HIGH_WATER_BYTES / 2)) break
        paused = true
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        if (abort.signal.aborted) return
      }
      paused = false
      if (seq % FEED_BURST === 0) await nextLoop()
      socket.send(JSON.stringify({ type: 'data', seq: ++seq, body, charged }), flushed)
    }
  }
  socket.on('close', () => {
    abort.abort()
    flushed()
  })
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type?: string }
    if (frame.type === 'subscribe') void pump()
  })
}

/** Fresh channels (their own session keys), seeded on the payee's fake chain. */
function makeChannels(count: number, chain: Map<Hex, OnChainChannel>): LoadChannel[] {
  const out: LoadChannel[] = []
  for (let i = 0; i < count; i++) {
    const sessionKey = bytesToHex(randomBytes(32))
    const config: ChannelConfig = {
      payer: bytesToHex(randomBytes(20)),
      payerAuthorizer: privateKeyToAccount(sessionKey).address.toLowerCase() as Address,
      ...IDENTITY,
      salt: bytesToHex(randomBytes(32)),
    }
    const id = channelId(config, DOMAIN)
    chain.set(id, {
      balance: 10n ** 15n,
      totalClaimed: 0n,
      withdrawRequestedAt: 0,
      refundNonce: 0n,
    })
    out.push({ config, channelId: id, sessionKey, charged: 0n })
  }
  return out
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length / 2
  if (Number.isInteger(mid)) return ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
  return sorted[Math.floor(mid)] ?? 0
}

/** Subscribers of the fan-out feed, each on a channel of its own opened on the dev chain. */
const FANOUT_SUBSCRIBERS = 1_000
const FANOUT_ROUNDS = 3
const FANOUT_WINDOW = 1_000
const FANOUT_WARMUP = 20
const FANOUT_DURATION_MS = 3_000
/** A cap per connection far above what the measured phase delivers: the duration ends it. */
const FANOUT_MESSAGES = 2_000
/** Each fan-out channel's deposit: every voucher of every phase. */
const FANOUT_DEPOSIT = 1_000_000n
/**
 * How long after the sessions are open the heap is sampled: past the keep-alive (4 s) of the
 * HTTP connections that their channels' first reads from chain opened to the node, so that
 * what is counted is what a session keeps.
 */
const HEAP_SETTLE_MS = 5_000
/** What issue 16 asks: billed fan-out at least 0.9x the unbilled, at most 16 KiB a session. */
const FANOUT_RATIO_TARGET = 0.9
const BYTES_PER_SESSION_TARGET = 16 * 1024

/** The head of every `data` frame, byte for byte as the billed feed writes it. */
const DATA_HEAD = '{"type":"data","seq":'
const PROFILE = process.env.TOLLGATE_BENCH_PROFILE

/**
 * The unbilled fan-out, as an application writes it with @fastify/websocket alone: every socket
 * listens to the shared ticker; each tick is serialized once (for all sockets) and sent as the
 * same `data` frame with the socket's own `seq`; a socket whose send queue is past the
 * high-water mark skips ticks until it has drained to half of it.
 */
function plainFanout(
  socket: WebSocket,
  ticker: EventEmitter,
  serialize: (body: unknown) => string,
) {
  const tail = `,"charged":"${PRICE}"}`
  let seq = 0
  let paused = false
  const listener = (body: unknown) => {
    seq++
    const queued = socket.bufferedAmount
    if (queued >= HIGH_WATER_BYTES || (paused && queued > HIGH_WATER_BYTES / 2)) {
      paused = true
      return
    }
    paused = false
    socket.send(`${DATA_HEAD}${seq},"body":${serialize(body)}${tail}`)
  }
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type?: string }
    if (frame.type === 'subscribe') ticker.on('tick', listener)
  })
  socket.on('close', () => ticker.off('tick', listener))
}

/** Emits ticks on `ticker`, one a turn of the event loop, until the returned function is called. */
function produce(ticker: EventEmitter): () => Promise<void> {
  let running = true
  const done = (async () => {
    for (let n = 1; running; n++) {
      ticker.emit('tick', { sym: 'BTC-USD', px: 60_000 + (n % 1000) / 100, n })
      await nextLoop()
    }
  })()
  return async () => {
    running = false
    await done
  }
}

/** Resolves once the server has closed every socket of the previous phase (at most 10 s). */
async function closedAll(server: { clients: Set<unknown> }): Promise<void> {
  const deadline = Date.now() + 10_000
  while (server.clients.size > 0) {
    if (Date.now() > deadline) throw new Error(`${server.clients.size} sockets still open`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** TCP sockets of this process (its listening socket and every connection, both ways). */
function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
}

/** The server's heap after a full garbage collection (run.ts starts node with --expose-gc). */
function heapAfterGc(): number {
  globalThis.gc?.()
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

/**
 * One live feed (an event emitter ticking as fast as the event loop turns) with
 * FANOUT_SUBSCRIBERS subscribers, billed (`app.tollgateFeed`, each subscriber on a channel of
 * its own deposited on the dev chain, a durable LevelStore) and unbilled (plainFanout), measured
 * in alternation in one run by the same generator in a child process. Delivered messages per
 * second are the `data` frames all subscribers received. `bytes_per_session` is the server's heap
 * with every billed session open, paid and subscribed, less the heap before they connected, per
 * session (sockets, session, ledger record and hold all counted), measured after the rounds (the
 * code is compiled) on FANOUT_SUBSCRIBERS channels the payee has not seen yet, HEAP_SETTLE_MS
 * after they opened; the same for the unbilled connections is reported beside it.
 */
async function fanout(log: Log) {
  const dev = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-ws-fanout-'))
  let app: FastifyInstance | undefined
  let payee: Payee | undefined
  try {
    const [, receiver, authorizer, funder] = dev.accounts as [
      Account,
      Account,
      Account,
      LocalAccount,
    ]
    const lower = (a: Address) => a.toLowerCase() as Address
    const identity = {
      receiver: lower(receiver.address),
      receiverAuthorizer: lower(authorizer.address),
      token: lower(dev.contracts.usdc),
      withdrawDelay: IDENTITY.withdrawDelay,
    }
    const opened = performance.now()
    // The measured rounds' channels, then fresh ones for the heap per session (their ledger
    // records counted, the code already compiled by the rounds).
    const all = await depositMany(dev, funder, identity, 2 * FANOUT_SUBSCRIBERS, FANOUT_DEPOSIT)
    const openS = (performance.now() - opened) / 1000
    log(`${all.length} channels deposited on the dev chain in ${openS.toFixed(1)} s`)
    const channels = all.slice(0, FANOUT_SUBSCRIBERS)
    const fresh = all.slice(FANOUT_SUBSCRIBERS)

    const store = await LevelStore.open(dir)
    payee = await openPayee({
      chainId: dev.chain.id,
      escrow: dev.contracts.escrow,
      identity,
      store,
      readChannel: channelReader(devPublicClient(dev), dev.contracts.escrow),
    })
    app = Fastify({ logger: false })
    await app.register(tollgateWs, {
      payee,
      network: `eip155:${dev.chain.id}`,
      asset: { address: dev.contracts.usdc, ...DEV_USDC_DOMAIN },
      payTo: receiver.address,
      receiverAuthorizer: authorizer.address,
      withdrawDelay: IDENTITY.withdrawDelay,
      highWaterBytes: HIGH_WATER_BYTES,
      maxConnectionsPerIp: FANOUT_SUBSCRIBERS * 2,
    })
    const ticker = new EventEmitter()
    ticker.setMaxListeners(0)
    app.tollgateFeed('/fanout', {
      price: PRICE,
      creditWindow: FANOUT_WINDOW,
      source: ticker,
      event: 'tick',
    })
    let lastBody: unknown
    let lastJson = ''
    const serialize = (body: unknown) => {
      if (body !== lastBody) {
        lastBody = body
        lastJson = JSON.stringify(body)
      }
      return lastJson
    }
    app.get('/fanout-plain', { websocket: true }, (socket) =>
      plainFanout(socket, ticker, serialize),
    )
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const base = `ws://127.0.0.1:${address.port}`
    const ledger = payee.ledger
    const server = app.websocketServer

    const phase = async (
      billed: boolean,
      ticking: boolean,
      channels: LoadChannel[],
      onStarted?: () => void,
    ) => {
      const before = channels.map((c) => ledger.get(c.channelId)?.chargedCumulativeAmount ?? 0n)
      const written = { ...store.stats }
      const stop = ticking ? produce(ticker) : undefined
      let result: WsLoadResult
      try {
        result = await runWsLoad(
          {
            url: `${base}/${billed ? 'fanout' : 'fanout-plain'}`,
            billed,
            channels,
            price: PRICE,
            window: FANOUT_WINDOW,
            chainId: dev.chain.id,
            escrow: dev.contracts.escrow,
            warmup: ticking ? FANOUT_WARMUP : 0,
            messages: FANOUT_MESSAGES,
            durationMs: ticking ? FANOUT_DURATION_MS : HEAP_SETTLE_MS + 1_000,
          },
          onStarted,
        )
      } finally {
        await stop?.()
      }
      await closedAll(server)
      if (result.errors.length > 0) throw new Error(`fan-out: error frames ${result.errors}`)
      if (billed) {
        channels.forEach((channel, i) => {
          const record = ledger.get(channel.channelId)
          const expected = (before[i] ?? 0n) + BigInt(result.received[i] ?? 0) * PRICE
          const receipt = result.finalCharged[i]
          if (record?.chargedCumulativeAmount !== expected || receipt !== expected.toString()) {
            throw new Error(
              `fan-out channel ${channel.channelId}: received ${result.received[i]}, expected ${expected}, ledger ${record?.chargedCumulativeAmount}, final receipt ${receipt}`,
            )
          }
          // The next phase's vouchers start above the ceiling held now.
          channel.charged = record.signedMaxClaimable
        })
      }
      const stored = {
        records: store.stats.records - written.records,
        batches: store.stats.batches - written.batches,
      }
      return { ...result, stored }
    }
    const perSession = async (billed: boolean) => {
      const empty = heapAfterGc()
      let full: { heap: number; sockets: number } | undefined
      await phase(billed, false, fresh, () => {
        setTimeout(() => {
          full = { heap: heapAfterGc(), sockets: tcpSockets() }
        }, HEAP_SETTLE_MS)
      })
      if (!full) throw new Error('the heap was not sampled')
      return { bytes: Math.round((full.heap - empty) / FANOUT_SUBSCRIBERS), sockets: full.sockets }
    }

    const unbilled: WsLoadResult[] = []
    const billed: WsLoadResult[] = []
    for (let round = 1; round <= FANOUT_ROUNDS; round++) {
      const order = round % 2 === 1 ? [false, true] : [true, false]
      for (const isBilled of order) {
        const result = await phase(isBilled, true, channels)
        ;(isBilled ? billed : unbilled).push(result)
        const { records, batches } = result.stored
        log(
          `fan-out round ${round} ${isBilled ? 'billed' : 'unbilled'}: ${Math.round(result.msgsPerS)} msgs/s to ${FANOUT_SUBSCRIBERS} subscribers, server CPU ${result.serverCpuShare.toFixed(2)} (${result.serverCpuUsPerMessage.toFixed(2)} µs/msg), generator CPU ${result.generatorCpuShare.toFixed(2)}, ${result.vouchers} vouchers, paused ${result.backpressurePauses} times for backpressure, ${records} records stored in ${batches} batches`,
        )
      }
    }
    if (PROFILE) {
      for (const isBilled of [true, false]) {
        const path = `${PROFILE}-${isBilled ? 'billed' : 'unbilled'}`
        let profiled: Promise<CpuProfile> | undefined
        const result = await phase(isBilled, true, channels, () => {
          const starting = startCpuProfile()
          profiled = new Promise<void>((resolve) => setTimeout(resolve, FANOUT_DURATION_MS))
            .then(() => starting)
            .then((stop) => stop())
        })
        if (!profiled) throw new Error('the profiler did not start')
        const profile = await profiled
        writeFileSync(`${path}.cpuprofile`, JSON.stringify(profile))
        writeFileSync(`${path}.txt`, `${topSelfTime(profile)}\n`)
        log(
          `fan-out ${isBilled ? 'billed' : 'unbilled'}, profiled: ${Math.round(result.msgsPerS)} msgs/s, server ${result.serverCpuUsPerMessage.toFixed(2)} µs/msg; top: ${path}.txt`,
        )
      }
    }
    const billedHeap = await perSession(true)
    const unbilledHeap = await perSession(false)
    const bytesPerSession = billedHeap.bytes
    const bytesPerConnection = unbilledHeap.bytes
    log(
      `server heap: ${bytesPerSession} bytes a billed session (${billedHeap.sockets} TCP sockets open), ${bytesPerConnection} bytes an unbilled connection (${unbilledHeap.sockets})`,
    )
    const billedRate = median(billed.map((r) => r.msgsPerS))
    const unbilledRate = median(unbilled.map((r) => r.msgsPerS))
    const billedUs = median(billed.map((r) => r.serverCpuUsPerMessage))
    const unbilledUs = median(unbilled.map((r) => r.serverCpuUsPerMessage))
    return {
      fanout_1000_ratio: Number((billedRate / unbilledRate).toFixed(3)),
      fanout_1000_ratio_target: FANOUT_RATIO_TARGET,
      bytes_per_session: bytesPerSession,
      bytes_per_session_target: BYTES_PER_SESSION_TARGET,
      fanout_billed_msgs_per_s: Math.round(billedRate),
      fanout_unbilled_msgs_per_s: Math.round(unbilledRate),
      fanout_cpu_ratio: Number((unbilledUs / billedUs).toFixed(3)),
      fanout_billed_server_us_per_msg: Number(billedUs.toFixed(2)),
      fanout_unbilled_server_us_per_msg: Number(unbilledUs.toFixed(2)),
      fanout_generator_cpu_share: Number(
        Math.max(...[...billed, ...unbilled].map((r) => r.generatorCpuShare)).toFixed(2),
      ),
      unbilled_bytes_per_connection: bytesPerConnection,
      fanout_subscribers: FANOUT_SUBSCRIBERS,
      fanout_channels_opened: all.length,
      fanout_channels_open_s: Number(openS.toFixed(1)),
    }
  } finally {
    await app?.close()
    await payee?.close()
    await dev.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function run(log: Log) {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-ws-'))
  const store = await LevelStore.open(dir)
  const chain = new Map<Hex, OnChainChannel>()
  const payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: ESCROW,
    identity: IDENTITY,
    store,
    readChannel: async (id) =>
      chain.get(id) ?? { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
  })
  const app = Fastify({ logger: false })
  await app.register(tollgateWs, {
    payee,
    network: `eip155:${CHAIN_ID}`,
    asset: { address: IDENTITY.token, name: 'USDC', version: '2' },
    payTo: IDENTITY.receiver,
    receiverAuthorizer: IDENTITY.receiverAuthorizer,
    withdrawDelay: IDENTITY.withdrawDelay,
    highWaterBytes: HIGH_WATER_BYTES,
  })
  app.tollgateFeed('/billed', {
    price: PRICE,
    creditWindow: WINDOW,
    lowWater: LOW_WATER,
    source: ticks,
  })
  // The plugin registered @fastify/websocket; the unbilled route uses it bare.
  app.get('/plain', { websocket: true }, (socket) => plainFeed(socket))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const base = `ws://127.0.0.1:${address.port}`
  log(
    `${CONNECTIONS} connections, ${ROUNDS} rounds each, up to ${DURATION_MS} ms or ${MESSAGES} messages a connection; credit window ${WINDOW} messages, LevelStore (durable), ECDSA ${payee.backend}`,
  )

  const unbilled: WsLoadResult[] = []
  const billed: WsLoadResult[] = []
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate which goes first, so that neither always follows the other.
      const order =
        round % 2 === 1 ? (['unbilled', 'billed'] as const) : (['billed', 'unbilled'] as const)
      for (const mode of order) {
        const channels = makeChannels(CONNECTIONS, chain)
        const result = await runWsLoad({
          url: `${base}/${mode === 'billed' ? 'billed' : 'plain'}`,
          billed: mode === 'billed',
          channels,
          price: PRICE,
          window: WINDOW,
          chainId: CHAIN_ID,
          escrow: ESCROW,
          warmup: WARMUP,
          messages: MESSAGES,
          durationMs: DURATION_MS,
        })
        if (result.errors.length > 0) throw new Error(`${mode}: error frames ${result.errors}`)
        if (mode === 'billed') {
          checkCharges(channels, result, (id) => payee.ledger.get(id)?.chargedCumulativeAmount)
          billed.push(result)
        } else {
          unbilled.push(result)
        }
        log(
          `round ${round} ${mode}: ${Math.round(result.msgsPerS)} msgs/s, server CPU ${result.serverCpuShare.toFixed(2)} (${result.serverCpuUsPerMessage.toFixed(2)} µs/msg), generator CPU ${result.generatorCpuShare.toFixed(2)}, ${result.vouchers} vouchers, paused ${result.creditPauses} times for credit and ${result.backpressurePauses} for backpressure`,
        )
      }
    }
  } finally {
    await app.close()
    await payee.close()
    rmSync(dir, { recursive: true, force: true })
  }

  const unbilledRate = median(unbilled.map((r) => r.msgsPerS))
  const billedRate = median(billed.map((r) => r.msgsPerS))
  const all = [...unbilled, ...billed]
  const unbilledUs = median(unbilled.map((r) => r.serverCpuUsPerMessage))
  const billedUs = median(billed.map((r) => r.serverCpuUsPerMessage))
  return {
    unbilled_msgs_per_s: Math.round(unbilledRate),
    billed_msgs_per_s: Math.round(billedRate),
    ratio: Number((billedRate / unbilledRate).toFixed(3)),
    cpu_ratio: Number((unbilledUs / billedUs).toFixed(3)),
    generator_cpu_share: Number(Math.max(...all.map((r) => r.generatorCpuShare)).toFixed(2)),
    unbilled_server_us_per_msg: Number(unbilledUs.toFixed(2)),
    billed_server_us_per_msg: Number(billedUs.toFixed(2)),
    connections: CONNECTIONS,
    credit_window: WINDOW,
    low_water: LOW_WATER,
    credit_pauses: billed.reduce((n, r) => n + r.creditPauses, 0),
    ...(await fanout(log)),
  }
}

/** Every channel's charge equals what its connection received × the price, as its final receipt says. */
function checkCharges(
  channels: LoadChannel[],
  result: WsLoadResult,
  charged: (id: Hex) => bigint | undefined,
): void {
  channels.forEach((channel, i) => {
    const expected = BigInt(result.received[i] ?? 0) * PRICE
    const ledger = charged(channel.channelId)
    const receipt = result.finalCharged[i]
    if (ledger !== expected || receipt !== expected.toString()) {
      throw new Error(
        `channel ${channel.channelId}: received ${result.received[i]} messages (${expected}), ledger ${ledger}, final receipt ${receipt}`,
      )
    }
  })
}
