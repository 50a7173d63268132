import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { type Address, decodeEventLog, type Hex, type Log } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { WebSocketServer } from 'ws'
import { BatchSettlement, TestUSDC } from '../chain/contracts.generated.js'
import { decodeBatchClaimed } from '../chain/decodeBatchClaimed.js'
import { devPublicClient, startDevChain } from '../chain/devChain.js'
import { type ChannelReader, channelReader } from '../chain/readChannel.js'
import { createPayer, keySigner, type Payer } from '../client/index.js'
import { parseConfig } from '../server/config.js'
import { createServer } from '../server/createServer.js'
import { parseCommandArgs, stringOf, usage } from './args.js'
import { aborted, interruptible, untilAborted } from './interruptible.js'

/** The demo's size; the defaults run in well under a minute. */
export interface DemoOptions {
  /** Agents paying for HTTP calls, each on its own channel. @default 4 */
  agents?: number
  /** Paid calls per agent. @default 75 */
  calls?: number
  /** Agents streaming the billed feed. @default 2 */
  streamers?: number
  /** Feed messages each streamer takes. @default 400 */
  messages?: number
  /** Progress lines. @default console.log */
  log?: (line: string) => void
  /** Stops the demo: everything it started is stopped and removed, and it rejects with the reason. */
  signal?: AbortSignal
  /**
   * Called with the summary while everything still runs (the dashboard is reachable at
   * `summary.dashboardUrl`); the demo stops it all when the promise settles.
   */
  onSummary?: (summary: DemoSummary) => Promise<void>
}

/** What the demo did, read back from the server's ledger and from the chain. */
export interface DemoSummary {
  calls: number
  /** Feed messages the server charged for (what the streamers paid). */
  messages: number
  /** Feed messages the streamers read; the rest were in flight when they closed, and paid. */
  messagesRead: number
  /** Sum of what the server charged, over every channel (token units). */
  charged: bigint
  /** Sum of `totalClaimed` of those channels, read from the escrow. */
  claimed: bigint
  /** Token units the receiver's wallet gained: claimed revenue swept by `settle`. */
  settled: bigint
  /** Channels claimed and the claim transactions that did it. */
  claimedChannels: number
  claimTransactions: number
  /** Receipt gas of the claim transactions over the channels they claimed. */
  gasPerClaimedChannel: number
  /** Every transaction mined while the demo ran (deposits, withdrawal, claims, settles). */
  transactions: number
  /** The withdrawing payer's channel: claimed before the end of its withdraw delay. */
  withdrawal: { channelId: Hex; claimed: bigint; secondsLeft: number }
  seconds: number
  /** The server's dashboard on its admin listener (127.0.0.1), reachable while the demo runs. */
  dashboardUrl: string
}

const WITHDRAW_DELAY = 900
const CALL_PRICE = '$0.001'
const MESSAGE_PRICE = '$0.0001'
/** {@link MESSAGE_PRICE} in USDC units. */
const MESSAGE_UNITS = 100n
/** What each payer deposits at a time: $0.10, a hundred calls or a thousand messages. */
const DEPOSIT_UNITS = 100_000n
const USDC_UNIT = 1_000_000
/** A streamer gives up when the feed sends nothing for this long. */
const FEED_STALL_MS = 15_000
/** The upstream ticker sends one tick per symbol this often. */
const TICK_INTERVAL_MS = 5

/**
 * The main job on embedded defaults: a local chain with tollgate's contracts, a tollgate gateway
 * (a paid HTTP route proxied to a small quote service, a billed WebSocket feed of price ticks,
 * settlement on schedule), payer agents paying within spend limits, one payer withdrawing, then a
 * settlement sweep. Everything runs on 127.0.0.1 in temporary folders and is stopped at the end,
 * or as soon as `signal` aborts.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const agents = options.agents ?? 4
  const calls = options.calls ?? 75
  const streamers = options.streamers ?? 2
  const messages = options.messages ?? 400
  const started = performance.now()
  const log = options.log ?? console.log
  const step = (line: string) =>
    log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`)
  if (agents + streamers > 8)
    throw new RangeError('at most 8 payers: the dev chain funds 10 accounts')

  const dir = await mkdtemp(join(tmpdir(), 'tollgate-demo-'))
  const cleanups: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })]
  const steps = async (): Promise<DemoSummary> => {
    step('starting a local chain (anvil, one block a second) and deploying the contracts')
    const dev = await startDevChain({ blockTime: 1 })
    cleanups.unshift(() => dev.stop())
    const client = devPublicClient(dev)
    const readChannel = channelReader(client, dev.contracts.escrow)
    const firstBlock = await client.getBlockNumber()
    const receiver = dev.accounts[1]?.address as Address
    const usdc = dev.contracts.usdc
    const receiverBefore = await client.readContract({
      address: usdc,
      abi: TestUSDC.abi,
      functionName: 'balanceOf',
      args: [receiver],
    })

    const upstream = await startQuoteService()
    cleanups.unshift(() => upstream.close())
    const ticker = await startTicker(TICK_INTERVAL_MS)
    cleanups.unshift(() => ticker.close())
    const config = parseConfig(
      {
        network: 'local',
        rpcUrl: dev.rpcUrl,
        withdrawDelay: WITHDRAW_DELAY,
        dataDir: join(dir, 'server'),
        confirmations: 1,
        listen: { host: '127.0.0.1', port: 0 },
        routes: [{ path: '/api/quote', price: CALL_PRICE, upstream: upstream.url }],
        feeds: [
          { path: '/feed/ticks', price: MESSAGE_PRICE, creditWindow: 100, upstream: ticker.url },
        ],
        settlement: { checkIntervalSeconds: 1, safetyMarginSeconds: 300, adminPort: 0 },
      },
      dir,
    )
    const server = await createServer(config, dev.privateKeys[1] as Hex, { logger: false })
    cleanups.unshift(() => server.close())
    const origin = await server.app.listen({ host: '127.0.0.1', port: 0 })
    step(
      `tollgate serving on ${origin}: GET /api/quote at ${CALL_PRICE}, feed /feed/ticks at ${MESSAGE_PRICE} a message`,
    )
    const dashboardUrl = server.adminUrl as string
    step(`dashboard (revenue, channels, settlement, health): ${dashboardUrl}`)

    const payers: Payer[] = []
    for (let i = 0; i < agents + streamers; i++) {
      const payer = await createPayer({
        account: privateKeyToAccount(dev.privateKeys[2 + i] as Hex),
        payerAuthorizer: keySigner(generatePrivateKey()),
        rpcUrl: dev.rpcUrl,
        chainId: dev.anvil.chainId,
        escrow: dev.contracts.escrow,
        erc3009Collector: dev.contracts.erc3009Collector,
        dataDir: join(dir, `payer-${i}`),
        policy: {
          limits: { perRequest: '$0.01', perDay: '$5' },
          deposit: { amount: DEPOSIT_UNITS },
        },
      })
      cleanups.unshift(() => payer.close())
      payers.push(payer)
    }

    step(`${agents} agents open channels (gasless ERC-3009 deposits) and pay ${calls} calls each`)
    // When one agent fails, the others stop at their next step, so that nothing is left running.
    let failed = false
    let paidCalls = 0
    const callers = payers.slice(0, agents).map(async (payer, i) => {
      for (let n = 1; n <= calls && !failed; n++) {
        const response = await payer.fetch(`${origin}/api/quote?symbol=ETH-USD`)
        if (response.status !== 200) {
          throw new Error(
            `agent ${i + 1}: call ${n} answered ${response.status}: ${await response.text()}`,
          )
        }
        await response.json()
        paidCalls++
        if (n % 25 === 0 || n === calls) step(`agent ${i + 1}: ${n}/${calls} calls paid`)
      }
    })

    step(`${streamers} agents stream ${messages} ticks each from the billed feed`)
    let messagesRead = 0
    const feedUrl = origin.replace(/^http/, 'ws')
    const streams = payers.slice(agents).map(async (payer, i) => {
      const feed = await payer.connect(`${feedUrl}/feed/ticks`)
      // A feed that goes quiet ends the session, so the demo fails rather than waits forever.
      let stalled = false
      let watchdog: NodeJS.Timeout | undefined
      const watch = () => {
        clearTimeout(watchdog)
        watchdog = setTimeout(() => {
          stalled = true
          void feed.close()
        }, FEED_STALL_MS)
      }
      feed.subscribe()
      watch()
      let n = 0
      try {
        for await (const _tick of feed) {
          watch()
          messagesRead++
          if (++n % 100 === 0) step(`streamer ${i + 1}: ${n}/${messages} ticks paid`)
          if (n === messages || failed) break
        }
      } finally {
        clearTimeout(watchdog)
      }
      if (stalled) throw new Error(`streamer ${i + 1}: no tick for ${FEED_STALL_MS / 1000} s`)
      if (n < messages && !failed)
        throw new Error(`streamer ${i + 1}: the feed ended after ${n} ticks`)
      await feed.close()
    })
    const outcomes = await Promise.allSettled(
      [...callers, ...streams].map((agent) =>
        agent.catch((err: unknown) => {
          failed = true
          throw err
        }),
      ),
    )
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason

    const withdrawing = payers[0] as Payer
    const [channel] = await withdrawing.channels()
    if (!channel) throw new Error('agent 1 has no channel')
    const withdrawal = await withdrawing.initiateWithdraw(channel.channelId)
    step(
      `agent 1 starts a withdrawal of its channel (${WITHDRAW_DELAY} s delay): the server must claim it first`,
    )
    const claimedOnWithdrawal = await waitForClaim(readChannel, channel.channelId, channel.charged)
    const now = Number((await client.getBlock()).timestamp)
    step(
      `claimed by the server's schedule, ${withdrawal.finalizeAfter - now} s before the withdrawal could take it`,
    )

    step('settlement sweep: claim every channel in batches, then settle to the receiver')
    const report = await server.settler.run({ sweep: true })
    if (!report.ok)
      throw new Error(`settlement failed: ${report.failures.map((f) => f.code).join(', ')}`)

    const channels = [...server.payee.ledger.records()]
    const streamerAddresses = new Set(payers.slice(agents).map((p) => p.address.toLowerCase()))
    let charged = 0n
    let claimed = 0n
    let messagesCharged = 0n
    for (const record of channels) {
      charged += record.chargedCumulativeAmount
      if (streamerAddresses.has(record.config.payer.toLowerCase())) {
        messagesCharged += record.chargedCumulativeAmount
      }
      claimed += (await readChannel(record.channelId)).totalClaimed
    }
    const receiverAfter = await client.readContract({
      address: usdc,
      abi: TestUSDC.abi,
      functionName: 'balanceOf',
      args: [receiver],
    })
    const chainFacts = await readChainFacts(client, dev.contracts.escrow, firstBlock)
    const summary: DemoSummary = {
      calls: paidCalls,
      messages: Number(messagesCharged / MESSAGE_UNITS),
      messagesRead,
      charged,
      claimed,
      settled: receiverAfter - receiverBefore,
      ...chainFacts,
      withdrawal: {
        channelId: channel.channelId,
        claimed: claimedOnWithdrawal,
        secondsLeft: withdrawal.finalizeAfter - now,
      },
      seconds: Math.round((performance.now() - started) / 100) / 10,
      dashboardUrl,
    }
    await options.onSummary?.(summary)
    return summary
  }
  try {
    return await (options.signal ? untilAborted(steps(), options.signal) : steps())
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {})
  }
}

/** The quote service the gateway sells: a plain HTTP server on 127.0.0.1. */
async function startQuoteService(): Promise<{ url: string; close(): Promise<void> }> {
  let price = 3500
  const server = createHttpServer((request, response) => {
    price += Math.round((Math.random() - 0.5) * 10)
    const symbol = new URL(request.url ?? '/', 'http://localhost').searchParams.get('symbol')
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify({ symbol, price, at: Date.now() }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * The market-data feed the gateway sells: a WebSocket server on 127.0.0.1 that sends a price tick
 * per symbol every `intervalMs` to whoever is connected (the gateway), like an exchange feed.
 */
async function startTicker(intervalMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const prices = new Map([
    ['ETH-USD', 350_000],
    ['BTC-USD', 9_500_000],
    ['SOL-USD', 20_000],
  ])
  const timer = setInterval(() => {
    const at = Date.now()
    for (const [symbol, cents] of prices) {
      const next = Math.max(1, cents + Math.round(cents * 0.0005 * (Math.random() * 2 - 1)))
      prices.set(symbol, next)
      const tick = JSON.stringify({ symbol, priceCents: next, at })
      for (const client of server.clients) client.send(tick)
    }
  }, intervalMs)
  const { port } = server.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () => {
      clearInterval(timer)
      for (const client of server.clients) client.terminate()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** Waits until the escrow shows the channel claimed up to `charged`; returns its `totalClaimed`. */
async function waitForClaim(
  readChannel: ChannelReader,
  channelId: Hex,
  charged: bigint,
): Promise<bigint> {
  for (let i = 0; i < 120; i++) {
    const { totalClaimed } = await readChannel(channelId)
    if (totalClaimed >= charged && totalClaimed > 0n) return totalClaimed
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`channel ${channelId} was not claimed within 30 s of its withdrawal`)
}

/** Claim transactions, channels claimed, their gas, and every transaction since `fromBlock`. */
async function readChainFacts(
  client: ReturnType<typeof devPublicClient>,
  escrow: Address,
  fromBlock: bigint,
): Promise<
  Pick<
    DemoSummary,
    'claimedChannels' | 'claimTransactions' | 'gasPerClaimedChannel' | 'transactions'
  >
> {
  const logs: Log[] = await client.getLogs({ address: escrow, fromBlock: fromBlock + 1n })
  const claimTxs = new Map<Hex, number>()
  for (const log of logs) {
    const event = decodeEventLog({ abi: BatchSettlement.abi, data: log.data, topics: log.topics })
    const hash = log.transactionHash as Hex
    if (event.eventName === 'Claimed') claimTxs.set(hash, (claimTxs.get(hash) ?? 0) + 1)
    if (event.eventName === 'BatchClaimed') {
      const rows = decodeBatchClaimed(event.args.claims).length
      claimTxs.set(hash, (claimTxs.get(hash) ?? 0) + rows)
    }
  }
  let gas = 0n
  for (const hash of claimTxs.keys()) {
    gas += (await client.getTransactionReceipt({ hash })).gasUsed
  }
  const claimedChannels = [...claimTxs.values()].reduce((a, b) => a + b, 0)
  let transactions = 0
  const last = await client.getBlockNumber()
  for (let n = fromBlock + 1n; n <= last; n++) {
    transactions += (await client.getBlock({ blockNumber: n })).transactions.length
  }
  return {
    claimedChannels,
    claimTransactions: claimTxs.size,
    gasPerClaimedChannel: claimedChannels === 0 ? 0 : Math.round(Number(gas) / claimedChannels),
    transactions,
  }
}

/** The summary as a few lines of text. */
export function formatSummary(s: DemoSummary): string {
  const usd = (units: bigint) => `$${(Number(units) / USDC_UNIT).toFixed(4)}`
  const paid = s.calls + s.messages
  return [
    '',
    'tollgate demo: summary (read back from the server ledger and the chain)',
    `  paid HTTP calls           ${s.calls}`,
    `  paid feed messages        ${s.messages}  (${s.messagesRead} read, ${s.messages - s.messagesRead} in flight when the streams closed)`,
    `  revenue charged           ${usd(s.charged)}`,
    `  claimed on chain          ${usd(s.claimed)}  (${s.claimedChannels} channel claims in ${s.claimTransactions} transactions)`,
    `  settled to the receiver   ${usd(s.settled)}`,
    `  gas per claimed channel   ${s.gasPerClaimedChannel.toLocaleString('en-US')}`,
    `  withdrawal                claimed ${usd(s.withdrawal.claimed)} with ${s.withdrawal.secondsLeft} s to spare`,
    `  on-chain transactions     ${s.transactions}, for ${paid} paid calls and messages (one per call would be ${paid})`,
    `  took                      ${s.seconds} s`,
    `  dashboard                 ${s.dashboardUrl}`,
  ].join('\n')
}

/** The usage lines of `tollgate demo`. */
export const DEMO_USAGE = `  demo [--agents N] [--calls N] [--streamers N] [--messages N] [--keep]
                            the whole flow on a local chain in under a minute: paid calls, a billed
                            feed, a withdrawal, claims and settlement, and a summary read from the
                            chain; --keep keeps it running, with its dashboard, until Ctrl-C
`

/** The demo's command-line options, each a whole number setting the {@link DemoOptions} field of its name. */
const OPTIONS = ['agents', 'calls', 'streamers', 'messages'] as const

/**
 * `tollgate demo [--agents N] [--calls N] [--streamers N] [--messages N] [--keep]`: runs
 * {@link runDemo}, printing progress, then the summary and the dashboard's URL. Fails when the
 * summary does not add up with the chain. With `--keep` everything keeps running (the dashboard
 * stays reachable) until SIGINT or SIGTERM, which stops it all (exit code 130 or 143).
 *
 * @returns The exit code.
 */
export async function demoCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    ...Object.fromEntries(OPTIONS.map((name) => [name, { type: 'string' }] as const)),
    keep: { type: 'boolean' },
  })
  const keep = args.values.keep === true
  const options: DemoOptions = {}
  for (const name of OPTIONS) {
    const text = stringOf(args, name)
    if (text === undefined) continue
    const value = Number(text)
    if (!Number.isSafeInteger(value) || value < 0) {
      usage(`--${name} needs a whole number, got "${text}"`)
    }
    options[name] = value
  }
  return interruptible(async (signal) => {
    await runDemo({
      ...options,
      signal,
      onSummary: async (s) => {
        process.stdout.write(`${formatSummary(s)}\n`)
        if (s.claimed !== s.charged || s.settled !== s.claimed) {
          throw new Error('the summary does not add up: claimed, settled and charged differ')
        }
        if (!keep) {
          process.stdout.write('(run with --keep to keep the demo and its dashboard running)\n')
          return
        }
        process.stdout.write(`\nopen ${s.dashboardUrl} ; Ctrl-C stops the demo\n`)
        await aborted(signal)
      },
    })
    return 0
  })
}
