import { join } from 'node:path'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import type { Address, Hex, LocalAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { LOCAL_CHAIN_ID } from '../chain/anvil.js'
import { contractSignatureCheck } from '../chain/contractSignatureCheck.js'
import { type EscrowWriter, escrowWriter } from '../chain/escrowWriter.js'
import { type ChainPreset, PRESETS, type PresetName } from '../chain/presets.js'
import { type PriceFeed, watchPriceFeed } from '../chain/priceFeed.js'
import { privateKeyOf } from '../chain/privateKey.js'
import { createTransactionSender } from '../chain/sendTransaction.js'
import { authorizationTransfers } from '../chain/transferWithAuthorization.js'
import { type ChainWatcher, createChainWatcher } from '../chain/watcher.js'
import { TollgateError } from '../errors/index.js'
import { TollgateMetrics } from '../metrics/index.js'
import {
  type ExactPayee,
  httpFacilitator,
  type OnChainLimits,
  openExactPayee,
  type Payee,
} from '../payee/index.js'
import {
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CLAIM_THRESHOLD,
  DEFAULT_MAX_PER_TX,
  DEFAULT_SAFETY_MARGIN_SECONDS,
  DEFAULT_SETTLEMENT_CONFIRMATIONS,
  DEFAULT_SWEEP_INTERVAL_MS,
  type SettlementLog,
  type SettlementSchedule,
  type Settler,
  settlementMetrics,
} from '../settlement/index.js'
import { type ChannelStore, LevelStore, RedisStore, type StoreMode } from '../store/index.js'
import { type TollgateOptions, tollgate } from '../transports/http/index.js'
import { type PaidTools, paidTools } from '../transports/mcp/index.js'
import type { PaymentTerms } from '../transports/terms.js'
import { type TollgateWsOptions, tollgateWs } from '../transports/ws/index.js'
import { type BatchFacilitator, batchFacilitator } from './batchFacilitator.js'
import { chainClientsFor } from './chainClients.js'
import { DEFAULT_DATA_DIR, DEFAULT_WITHDRAW_DELAY } from './config.js'
import { payeeFor } from './configuredPayee.js'
import { type DashboardOptions, dashboardPlugin, SettlementHistory } from './dashboard/index.js'
import { scheduleFor, settlerFor } from './settlement.js'

/** How settlement claims and settles (see src/settlement); every field has a default. */
export interface SettlementOptions {
  /** Run the schedule (checks and sweeps); withdrawals are claimed even when false. @default true */
  readonly enabled?: boolean | undefined
  /** Seconds between sweeps of every channel with anything unclaimed. @default 3600 */
  readonly sweepIntervalSeconds?: number | undefined
  /** Seconds between checks for claims due; below `safetyMarginSeconds`. @default 30 */
  readonly checkIntervalSeconds?: number | undefined
  /** Unclaimed token units per channel that trigger a claim between sweeps. @default DEFAULT_CLAIM_THRESHOLD */
  readonly threshold?: bigint | undefined
  /** Channels per claim transaction. @default DEFAULT_MAX_PER_TX */
  readonly maxPerTx?: number | undefined
  /** Seconds before a withdrawal ends by which its claim must land. @default DEFAULT_SAFETY_MARGIN_SECONDS */
  readonly safetyMarginSeconds?: number | undefined
  /** Blocks a claim must be buried under. @default DEFAULT_SETTLEMENT_CONFIRMATIONS */
  readonly confirmations?: number | undefined
  /** Token units one native coin buys, to skip claims worth less than their gas. */
  readonly tokenPerNative?: bigint | undefined
  /** Claim through `claimPacked`; absent: used when the escrow has it. */
  readonly packedClaims?: boolean | undefined
}

/** The same settlement options with every default filled in. */
export interface ResolvedSettlement {
  readonly enabled: boolean
  readonly sweepIntervalSeconds: number
  readonly checkIntervalSeconds: number
  readonly threshold: bigint
  readonly maxPerTx: number
  readonly safetyMarginSeconds: number
  readonly confirmations: number
  readonly tokenPerNative?: bigint | undefined
  readonly packedClaims?: boolean | undefined
}

/** A logger with pino's call shape (Fastify's `app.log` is one). */
export interface TollgateLogger extends SettlementLog {
  warn(obj: object, msg: string): void
}

/** What {@link createTollgate} opens. */
export interface CreateTollgateOptions {
  /** A preset name (`'base'`, `'base-sepolia'`, `'local'`) or a chain of your own. */
  network: PresetName | ChainPreset
  /** The chain's RPC endpoint. @default the preset's public endpoint (rate-limited: use your own) */
  rpcUrl?: string | undefined
  /**
   * The receiver authorizer, as a viem local account or a private key: it sends claims, settles,
   * deposits and refunds (and pays their gas). Keep the key out of source code.
   */
  account: LocalAccount | Hex
  /** Where settled revenue goes. @default the account's address */
  receiver?: Address | undefined
  /** Seconds a payer waits to take back an unclaimed deposit, 900 to 2 592 000. @default 86 400 */
  withdrawDelay?: number | undefined
  /** The data directory (vouchers in `<dataDir>/vouchers`, LevelDB). @default '.tollgate' */
  dataDir?: string | undefined
  /** A store of your own instead of `dataDir` (it is closed by {@link Tollgate.close}). */
  store?: ChannelStore | undefined
  /** `durable` (each voucher on disk before serving) or `relaxed` (written behind). @default 'durable' */
  storeMode?: StoreMode | undefined
  /** Blocks an escrow event waits before it is mirrored. @default 0 on the local chain, else the watcher's default */
  confirmations?: number | undefined
  /** @default every default of {@link SettlementOptions} */
  settlement?: SettlementOptions | undefined
  /** What payers may make the server send on chain at its expense (deposits, refunds). @default DEFAULT_ONCHAIN_LIMITS */
  onChainLimits?: OnChainLimits | undefined
  /**
   * How x402 `exact` payments are settled on routes that accept them (`config.exact`): by the
   * account (it sends each `transferWithAuthorization` and pays its gas, through the same send
   * lock and fee handling as claims), or by a remote x402 facilitator. @default by the account
   */
  exact?: ExactOptions | undefined
  /**
   * Prices dollar routes of `tg.http`, `tg.ws` and `tg.mcp` through a Chainlink-style feed of the
   * token (see the HTTP plugin's `oracle`): the token need not be a dollar.
   */
  oracle?: OracleOptions | undefined
  /** Where tollgate logs what an operator must know. @default nothing is logged */
  logger?: TollgateLogger | undefined
}

/** The price feed {@link createTollgate} reads for its oracle, through its own RPC endpoint. */
export interface OracleOptions {
  /** The `AggregatorV3Interface` feed: dollars per whole token. */
  readonly feed: Address
  /** The oldest round accepted, in seconds (the feed's heartbeat plus a margin). */
  readonly maxAgeSeconds: number
  /** Seconds between reads. @default DEFAULT_FEED_REFRESH_SECONDS */
  readonly refreshSeconds?: number | undefined
  /** The smallest answer accepted, in the feed's units (a peg guard). @default no floor */
  readonly minAnswer?: bigint | undefined
  /** Convert dollar prices at the rate (`false`: the token is a dollar; the feed only guards). @default true */
  readonly convert?: boolean | undefined
}

/** How {@link createTollgate} settles exact payments; every field has a default. */
export interface ExactOptions {
  /** A remote facilitator's `/verify` and `/settle` (and its bearer token) instead of the account. */
  readonly facilitator?: { readonly url: string; readonly token?: string | undefined } | undefined
  /** Most transfers waiting to be mined at once. @default DEFAULT_MAX_PENDING_TRANSFERS */
  readonly maxPendingTransfers?: number | undefined
  /** Whether priced routes accept `exact` unless their `config.exact` says otherwise. @default false */
  readonly byDefault?: boolean | undefined
}

/** A running tollgate: the parts, the two Fastify plugins with the payment terms, and one close. */
export interface Tollgate {
  readonly payee: Payee
  /** The exact-scheme payment path of the routes that accept `exact`. */
  readonly exactPayee: ExactPayee
  /** batch-settlement for stock x402 servers, served by `facilitatorApp({ batch })`. */
  readonly batchFacilitator: BatchFacilitator
  /** The oracle's price feed, read on its interval until {@link close}; absent without `oracle`. */
  readonly priceFeed: PriceFeed | undefined
  readonly watcher: ChainWatcher
  readonly settler: Settler
  /** Runs the settler on its schedule (unless disabled) and at once when a withdrawal starts. */
  readonly settlement: SettlementSchedule
  /** The terms both plugins announce: network, asset, payTo, receiver authorizer, withdraw delay. */
  readonly terms: PaymentTerms
  readonly chain: ChainPreset
  /** The store's mode. */
  readonly storeMode: StoreMode
  /**
   * Prometheus metrics (prom-client): settlement, paid traffic by route, refusals, revenue,
   * payment and store latency, the watcher's lag, RPC errors, WebSocket sessions, gas by kind.
   * Serve `metrics.metrics()` with `metrics.contentType`.
   */
  readonly metrics: Registry
  /** The counters and per-minute series behind {@link metrics} and the dashboard. */
  readonly serverMetrics: TollgateMetrics
  /** Claims and settles of this process's settlement runs, newest last (bounded). */
  readonly history: SettlementHistory
  /**
   * The dashboard (a page and its JSON API) as a Fastify plugin: register it under a prefix of
   * an app of yours, e.g. `app.register(tg.dashboard, { prefix: '/admin', token })`.
   */
  readonly dashboard: FastifyPluginAsync<DashboardOptions>
  /**
   * The HTTP plugin (paid routes, deposits, refunds), with this tollgate's terms; closing the app
   * closes the tollgate. Options of `tollgate` other than the terms may be given.
   */
  readonly http: FastifyPluginAsync<Partial<Omit<TollgateOptions, keyof PaymentTerms>>>
  /** The WebSocket plugin (billed feeds and requests), with this tollgate's terms. */
  readonly ws: FastifyPluginAsync<Partial<Omit<TollgateWsOptions, keyof PaymentTerms>>>
  /**
   * Paid MCP tools ({@link paidTools}) with this tollgate's terms, gasless deposits taken. Without
   * a Fastify plugin registered, call {@link start} (and {@link close}) yourself.
   */
  readonly mcp: PaidTools
  /**
   * Starts watching the chain and the settlement schedule. The plugins call it when their app is
   * ready; call it yourself when you use neither. Idempotent.
   */
  start(): void
  /** Stops settling and watching, then flushes and closes the store (marked clean). Idempotent. */
  close(): Promise<void>
  /**
   * Like {@link close}, but leaves the store as it was found: for a start that failed after
   * `createTollgate` returned (a store found unclean stays so).
   */
  abandon(): Promise<void>
}

/**
 * Opens everything a paid API needs in one call: the voucher store, the payee, the chain watcher
 * and the settlement schedule (claims batched on a schedule, withdrawals claimed before their
 * deadline). Register `tg.http` and `tg.ws` in a Fastify app: watching and settling start when
 * the app is ready, and `app.close()` (on SIGINT, say) or `tg.close()` closes it all in order, the
 * store marked clean. A start that fails closes what it opened and leaves the store as it found it.
 *
 * @throws TollgateError `tollgate_invalid_config` on bad options; `tollgate_identity_mismatch`
 * when the data directory belongs to another key or identity; `tollgate_store_failed`.
 *
 * @example
 * const tg = await createTollgate({ network: 'base-sepolia', rpcUrl, account: privateKeyToAccount(key) })
 * await app.register(tg.http)
 * app.get('/joke', { config: { price: '$0.001' } }, async () => ({ joke: '...' }))
 * process.once('SIGINT', () => app.close())
 */
export async function createTollgate(options: CreateTollgateOptions): Promise<Tollgate> {
  const chain = resolveChain(options.network)
  const rpcUrl = options.rpcUrl ?? chain.publicRpcUrl
  if (rpcUrl === undefined || !/^https?:\/\//.test(rpcUrl)) {
    invalid(`rpcUrl must be an http(s) URL, got ${JSON.stringify(rpcUrl)}`)
  }
  const account = accountOf(options.account)
  const withdrawDelay = options.withdrawDelay ?? DEFAULT_WITHDRAW_DELAY
  if (!Number.isSafeInteger(withdrawDelay) || withdrawDelay < 900 || withdrawDelay > 2_592_000) {
    invalid(`withdrawDelay must be an integer in [900, 2592000], got ${withdrawDelay}`)
  }
  if (options.store && options.dataDir !== undefined) invalid('give dataDir or store, not both')
  const settlementOptions = resolveSettlement(options.settlement ?? {}, withdrawDelay)
  const receiver = options.receiver ?? account.address
  const log = options.logger
  const local = chain.chainId === LOCAL_CHAIN_ID
  const metrics = new TollgateMetrics({
    token: { address: chain.usdc.address, decimals: chain.usdc.decimals },
  })
  const history = new SettlementHistory()
  const clients = chainClientsFor(chain, rpcUrl, account, (method) => metrics.rpcFailed(method))

  const store =
    options.store ??
    (await LevelStore.open(join(options.dataDir ?? DEFAULT_DATA_DIR, 'vouchers'), {
      ...(options.storeMode ? { mode: options.storeMode } : {}),
    }))
  store.observeCommits?.((seconds, records) => metrics.storeCommitted(seconds, records))
  // Bound once the schedule exists; the payee calls it when a channel needs a claim soon.
  let claimNeeded: () => void = () => {}
  let payee: Payee
  try {
    payee = await payeeFor(chain, receiver, withdrawDelay, clients, store, {
      onWarning: (message, cause) => log?.warn({ err: cause }, `tollgate: ${message}`),
      onClaimNeeded: () => claimNeeded(),
      ...(options.onChainLimits ? { onChainLimits: options.onChainLimits } : {}),
    })
  } catch (err) {
    await store.closeAsFound()
    throw err
  }
  let exactPayee: ExactPayee
  try {
    exactPayee = await exactPayeeFor(chain.chainId, store, clients, options.exact ?? {})
  } catch (err) {
    await payee.abandon()
    throw err
  }
  let priceFeed: PriceFeed | undefined
  try {
    priceFeed = options.oracle
      ? await watchPriceFeed({
          client: clients.publicClient,
          address: options.oracle.feed,
          maxAgeSeconds: options.oracle.maxAgeSeconds,
          refreshSeconds: options.oracle.refreshSeconds,
          minAnswer: options.oracle.minAnswer,
          onError: (err) =>
            log?.warn({ err }, 'tollgate: reading the price feed failed; the last round stands'),
        })
      : undefined
  } catch (err) {
    await payee.abandon()
    throw err
  }
  const convert = options.oracle !== undefined && options.oracle.convert !== false
  // The token need not be a dollar: revenue in dollars is counted at the rate of each charge.
  const feed = priceFeed
  if (convert && feed) metrics.priceDollars(() => feed.current())
  const settler = settlerFor(chain, settlementOptions, clients, payee, store, log, (report) => {
    history.record(report)
    for (const claim of report.claims) metrics.gasUsed('claim', claim.gasUsed)
    if (report.settled) metrics.gasUsed('settle', report.settled.gasUsed)
    metrics.claimedAmount += report.claimedAmount
  })
  const settlement = scheduleFor(settlementOptions, settler, log)
  claimNeeded = () => settlement.nudge('exposure')
  const watcher = createChainWatcher({
    client: clients.publicClient,
    escrow: chain.escrow,
    sink: payee,
    meta: store,
    ...(options.confirmations === undefined ? {} : { confirmations: options.confirmations }),
    ...(local ? { pollIntervalMs: 500 } : {}),
    onWithdrawInitiated: (channelId, finalizeAfter) => {
      log?.warn(
        { channelId, finalizeAfter },
        'tollgate: a payer started a withdrawal; claiming before the deadline',
      )
      return settlement.trigger('withdrawal')
    },
    onError: (err) => log?.error({ err }, 'tollgate: chain watcher poll failed; retrying'),
  })
  metrics.watch(() => watcher.status)
  const terms: PaymentTerms = {
    payee,
    network: chain.network,
    asset: chain.usdc,
    payTo: receiver,
    receiverAuthorizer: account.address,
    withdrawDelay,
  }
  const oracle = priceFeed ? { oracle: { feed: priceFeed, convert } } : {}
  const writer = gasCounted(
    escrowWriter({
      publicClient: clients.publicClient,
      walletClient: clients.walletClient,
      escrow: chain.escrow,
      erc3009Collector: chain.erc3009Collector,
      sendLock: clients.sendLock,
    }),
    metrics,
  )
  let started = false
  const start = () => {
    if (started || closed) return
    started = true
    watcher.start()
    if (settlementOptions.enabled) settlement.start()
  }
  let closed: Promise<void> | undefined
  const stop = (closeStore: () => Promise<void>) => {
    closed ??= (async () => {
      priceFeed?.close()
      await settlement.stop()
      await watcher.stop()
      await closeStore()
    })()
    return closed
  }
  const close = () => stop(() => payee.close())
  const closeWith = (app: FastifyInstance) => {
    app.addHook('onReady', async () => start())
    app.addHook('onClose', async () => close())
  }
  const http: Tollgate['http'] = fp(
    async (app, extra) => {
      await app.register(tollgate, {
        escrowWriter: writer,
        exactPayee,
        ...(options.exact?.byDefault ? { exactByDefault: true } : {}),
        metrics,
        ...oracle,
        // Instances on one Redis count their rate limits there too.
        ...(store instanceof RedisStore ? { rateLimitRedis: store.client } : {}),
        ...extra,
        ...terms,
      })
      closeWith(app)
    },
    { fastify: '5.x', name: 'tollgate-http-terms' },
  )
  const ws: Tollgate['ws'] = fp(
    async (app, extra) => {
      await app.register(tollgateWs, { metrics, ...oracle, ...extra, ...terms })
      closeWith(app)
    },
    { fastify: '5.x', name: 'tollgate-ws-terms' },
  )
  return {
    payee,
    exactPayee,
    batchFacilitator: batchFacilitator({
      chainId: chain.chainId,
      escrow: chain.escrow,
      erc3009Collector: chain.erc3009Collector,
      publicClient: clients.publicClient,
      writer,
      sender: createTransactionSender(clients),
      account: clients.walletClient.account,
      contractCheck: contractSignatureCheck(clients.publicClient),
    }),
    priceFeed,
    watcher,
    settler,
    settlement,
    terms,
    chain,
    storeMode: store.mode,
    metrics: settlementMetrics({
      records: () => payee.ledger.records(),
      settler,
      registry: metrics.registry,
    }),
    serverMetrics: metrics,
    history,
    dashboard: async (app, dashboardOptions) =>
      dashboardPlugin(app, {
        ...dashboardOptions,
        source: {
          chain,
          payee,
          watcher,
          settler,
          metrics,
          history,
          storeMode: store.mode,
          dollarToken: !convert,
          ...dashboardOptions.source,
        },
      }),
    http,
    ws,
    mcp: paidTools({ ...terms, ...oracle, escrowWriter: writer }),
    start,
    close,
    abandon: () => stop(() => payee.abandon()),
  }
}

/** The exact payee over the voucher store: transfers sent by the account, or a facilitator. */
function exactPayeeFor(
  chainId: number,
  store: ChannelStore,
  clients: ReturnType<typeof chainClientsFor>,
  exact: ExactOptions,
): Promise<ExactPayee> {
  const { publicClient, walletClient, sendLock } = clients
  return openExactPayee({
    chainId,
    store,
    ...(exact.maxPendingTransfers === undefined
      ? {}
      : { maxPendingTransfers: exact.maxPendingTransfers }),
    ...(exact.facilitator
      ? { facilitator: httpFacilitator(exact.facilitator) }
      : {
          transfers: authorizationTransfers({
            publicClient,
            account: walletClient.account,
            sender: createTransactionSender({ publicClient, walletClient, sendLock }),
          }),
        }),
  })
}

/** `writer`, adding the gas of each deposit and refund it sends to `metrics`. */
function gasCounted(writer: EscrowWriter, metrics: TollgateMetrics): EscrowWriter {
  return {
    async deposit(payload) {
      const result = await writer.deposit(payload)
      if (result.ok) metrics.gasUsed('deposit', result.value.gasUsed)
      return result
    },
    async refund(payload, charged) {
      const result = await writer.refund(payload, charged)
      if (result.ok) metrics.gasUsed('refund', result.value.gasUsed)
      return result
    },
  }
}

/**
 * The receiver authorizer's account from a private key or a viem local account; a key read from
 * an unset environment variable is a configuration error that says so, not a crash.
 */
function accountOf(account: LocalAccount | Hex | undefined): LocalAccount {
  if (typeof account === 'string') return privateKeyToAccount(privateKeyOf(account, 'account'))
  if (typeof account !== 'object' || account === null || typeof account.address !== 'string') {
    invalid(
      `account must be a private key or a viem local account, got ${String(account)} (is the environment variable holding the key set?)`,
    )
  }
  return account
}

function resolveChain(network: PresetName | ChainPreset): ChainPreset {
  if (typeof network !== 'string') return network
  if (!Object.hasOwn(PRESETS, network)) {
    invalid(
      `network "${network}" is not one of ${Object.keys(PRESETS).join(', ')} (or give a ChainPreset)`,
    )
  }
  return PRESETS[network]
}

/** Fills in the settlement defaults and checks what depends on the withdraw delay. */
export function resolveSettlement(
  options: SettlementOptions,
  withdrawDelay: number,
): ResolvedSettlement {
  const resolved: ResolvedSettlement = {
    enabled: options.enabled ?? true,
    sweepIntervalSeconds: options.sweepIntervalSeconds ?? DEFAULT_SWEEP_INTERVAL_MS / 1000,
    checkIntervalSeconds: options.checkIntervalSeconds ?? DEFAULT_CHECK_INTERVAL_MS / 1000,
    threshold: options.threshold ?? DEFAULT_CLAIM_THRESHOLD,
    maxPerTx: options.maxPerTx ?? DEFAULT_MAX_PER_TX,
    safetyMarginSeconds: options.safetyMarginSeconds ?? DEFAULT_SAFETY_MARGIN_SECONDS,
    confirmations: options.confirmations ?? DEFAULT_SETTLEMENT_CONFIRMATIONS,
    ...(options.tokenPerNative === undefined ? {} : { tokenPerNative: options.tokenPerNative }),
    ...(options.packedClaims === undefined ? {} : { packedClaims: options.packedClaims }),
  }
  if (resolved.safetyMarginSeconds >= withdrawDelay) {
    invalid(
      `settlement.safetyMarginSeconds (${resolved.safetyMarginSeconds}) must be below withdrawDelay (${withdrawDelay})`,
    )
  }
  // A failed withdrawal claim is retried at the next check, which must come within the margin.
  if (resolved.checkIntervalSeconds >= resolved.safetyMarginSeconds) {
    invalid(
      `settlement.checkIntervalSeconds (${resolved.checkIntervalSeconds}) must be below settlement.safetyMarginSeconds (${resolved.safetyMarginSeconds})`,
    )
  }
  return resolved
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', detail)
}
