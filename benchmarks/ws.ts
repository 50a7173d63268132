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
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextLoop } from 'node:timers/promises'
import Fastify from 'fastify'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import type { WebSocket } from 'ws'
import { LOCAL_CHAIN_ID } from '../src/chain/anvil.js'
import type { OnChainChannel } from '../src/ledger/index.js'
import { openPayee } from '../src/payee/index.js'
import { CANONICAL_ADDRESSES, type ChannelConfig } from '../src/protocol/index.js'
import { LevelStore } from '../src/store/index.js'
import { DEFAULT_HIGH_WATER_BYTES } from '../src/transports/ws/constants.js'
import { FEED_BURST, type FeedContext, tollgateWs } from '../src/transports/ws/index.js'
import { bytesToHex, channelId, domainSeparator } from '../src/verify/index.js'
import type { Log } from './run.js'
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
