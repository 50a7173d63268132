import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Address } from 'viem'
import type { ErrorCode, Result } from '../errors/index.js'
import type { TokenRate } from '../payee/dollarsToTokenUnits.js'
import { DEFAULT_RING_MINUTES, MinuteRing } from './minuteRing.js'
import { DEFAULT_REFUSAL_LOG_PER_SECOND, RefusalLog } from './refusalLog.js'

/** What gas is spent on: claim batches, settle sweeps, gasless deposits, refunds. */
export type GasKind = 'claim' | 'settle' | 'deposit' | 'refund'

/** Buckets of the latency histograms, in seconds: 100 µs to 1 s. */
export const LATENCY_BUCKETS = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
])

/** Buckets of the store's batch sizes, in records. */
export const BATCH_BUCKETS = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])

/** What the watcher gauges read at each scrape (a `ChainWatcher`'s `status` fits). */
export interface WatcherStatusLike {
  readonly lag: bigint | undefined
  /** Unix ms of the last successful poll. */
  readonly lastSuccessAt: number | undefined
}

/** The token revenue is counted in. */
export interface MeteredToken {
  /** Its address: the `token` label. */
  readonly address: Address
  readonly decimals: number
  /**
   * Whether one whole token is worth one dollar (USDC): revenue in dollars is then its token
   * units over `10^decimals`. `false`: dollars are counted only at a rate given to
   * {@link TollgateMetrics.priceDollars}; without one, revenue is reported in token units only.
   * @default true
   */
  readonly dollarPeg?: boolean
}

export interface TollgateMetricsOptions {
  token: MeteredToken
  /** Add the metrics to this registry. @default a new one */
  registry?: Registry
  /** Minutes of per-minute revenue and refusal buckets kept for the dashboard. @default DEFAULT_RING_MINUTES */
  ringMinutes?: number
  /** Refusal log lines per second at most. @default DEFAULT_REFUSAL_LOG_PER_SECOND */
  refusalLogPerSecond?: number
  /** Unix milliseconds. @default Date.now */
  now?: () => number
}

/**
 * One paid route's counters, bound when the route is registered: the hot path adds to two
 * fields and one ring slot, and prom-client reads the fields when it is scraped.
 */
export class RouteMeter {
  /** Paid requests (HTTP) or billed messages (WebSocket). */
  charges = 0
  /** Token units charged. */
  charged = 0n
  /** Dollars charged at the rate in force at each charge, when the metrics have a rate. */
  dollars = 0
  /** Token units charged while the rate had no usable round: not counted in {@link dollars}. */
  unpriced = 0n
  private readonly latency: { observe(value: number): void } | undefined

  constructor(
    /** The route as registered (`/api/*`), never a concrete URL: label values stay bounded. */
    readonly route: string,
    readonly transport: 'http' | 'ws',
    private readonly metrics: TollgateMetrics,
    latency: Histogram<'route'> | undefined,
  ) {
    this.latency = latency?.labels(route)
  }

  /** Counts one paid request or billed message of `amount` token units. */
  charge(amount: bigint): void {
    this.charges++
    this.charged += amount
    this.metrics.ring.charge(amount)
    const rate = this.metrics.rate?.()
    if (rate === undefined) return
    if (!rate.ok) {
      this.unpriced += amount
      return
    }
    const { answer, decimals } = rate.value
    this.dollars += Number(amount * answer) / 10 ** (this.metrics.token.decimals + decimals)
  }

  /** Records how long a payment took to be decided and stored, in seconds. */
  observe(seconds: number): void {
    this.latency?.observe(seconds)
  }

  /** Counts one refusal with `code` on this route. */
  refuse(code: ErrorCode): void {
    this.metrics.refuse(this.route, code)
  }
}

/**
 * The server's own Prometheus metrics (prom-client) and the in-memory series the dashboard
 * draws. Label values are bounded: routes as registered, error codes of the table, JSON-RPC
 * method names, gas kinds; never a payer or a channel.
 *
 * - `tollgate_paid_requests_total{route}`, `tollgate_billed_messages_total{route}`;
 * - `tollgate_refusals_total{code,route}`;
 * - `tollgate_revenue_token_units_total{route,token}`, `tollgate_revenue_dollars_total{route}`
 *   (at one dollar a token, or at the rate of {@link TollgateMetrics.priceDollars} when each charge
 *   was made; none for a token without a dollar peg or a rate), and
 *   `tollgate_revenue_unpriced_token_units_total{route,token}` (charged while that rate had no
 *   usable round);
 * - `tollgate_payment_duration_seconds{route}`: an HTTP payment decided and stored (histogram);
 * - `tollgate_store_commit_duration_seconds`, `tollgate_store_commit_records` (histograms);
 * - `tollgate_watcher_lag_blocks`, `tollgate_watcher_lag_seconds`;
 * - `tollgate_rpc_errors_total{method}`; `tollgate_ws_sessions`;
 * - `tollgate_claimed_amount_total` (token units), `tollgate_gas_used_total{kind}`.
 *
 * @example
 * const metrics = new TollgateMetrics({ token: { address: usdc, decimals: 6 } })
 * await app.register(tollgate, { ...terms, metrics })
 * app.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()))
 */
export class TollgateMetrics {
  readonly registry: Registry
  /** Per-minute revenue and refusals, for the dashboard's charts. */
  readonly ring: MinuteRing
  /** The rate-limited log every refusal goes through. */
  readonly refusalLog: RefusalLog
  readonly token: MeteredToken
  /**
   * Dollars per whole token at each charge (an oracle's rate), set by {@link priceDollars}.
   * @internal read by {@link RouteMeter.charge}
   */
  rate: (() => Result<TokenRate>) | undefined
  /** Token units claimed on chain by this process's settlement runs. */
  claimedAmount = 0n
  private readonly routes = new Map<string, RouteMeter>()
  private readonly refusals = new Map<string, Map<ErrorCode, number>>()
  private readonly rpcErrors = new Map<string, number>()
  private readonly gas: Record<GasKind, bigint> = { claim: 0n, settle: 0n, deposit: 0n, refund: 0n }
  private readonly sessions: Gauge
  private readonly paymentDuration: Histogram<'route'>
  private readonly commitDuration: Histogram
  private readonly commitRecords: Histogram
  private watcher: (() => WatcherStatusLike) | undefined

  constructor(options: TollgateMetricsOptions) {
    const registry = options.registry ?? new Registry()
    const now = options.now ?? Date.now
    this.registry = registry
    this.token = options.token
    this.ring = new MinuteRing(options.ringMinutes ?? DEFAULT_RING_MINUTES, now)
    this.refusalLog = new RefusalLog(
      options.refusalLogPerSecond ?? DEFAULT_REFUSAL_LOG_PER_SECOND,
      now,
    )
    const registers = [registry]
    const routes = this.routes
    const token = options.token.address.toLowerCase()
    const unit = 10 ** options.token.decimals
    const perRoute = (transport: RouteMeter['transport']) =>
      function collect(this: Counter<'route'>) {
        this.reset()
        for (const meter of routes.values()) {
          if (meter.transport === transport) this.inc({ route: meter.route }, meter.charges)
        }
      }
    new Counter({
      name: 'tollgate_paid_requests_total',
      help: 'Paid HTTP requests served and charged, by route.',
      labelNames: ['route'],
      registers,
      collect: perRoute('http'),
    })
    new Counter({
      name: 'tollgate_billed_messages_total',
      help: 'WebSocket messages charged (feed messages and request replies), by route.',
      labelNames: ['route'],
      registers,
      collect: perRoute('ws'),
    })
    const refusals = this.refusals
    new Counter({
      name: 'tollgate_refusals_total',
      help: 'Payments refused, by error code and route.',
      labelNames: ['code', 'route'],
      registers,
      collect() {
        this.reset()
        for (const [route, codes] of refusals) {
          for (const [code, count] of codes) this.inc({ code, route }, count)
        }
      },
    })
    new Counter({
      name: 'tollgate_revenue_token_units_total',
      help: 'Revenue charged, in token units, by route and token address.',
      labelNames: ['route', 'token'],
      registers,
      collect() {
        this.reset()
        for (const meter of routes.values()) {
          this.inc({ route: meter.route, token }, Number(meter.charged))
        }
      },
    })
    const rated = () => this.rate !== undefined
    const pegged = options.token.dollarPeg !== false
    new Counter({
      name: 'tollgate_revenue_dollars_total',
      help: "Revenue charged, in dollars, by route: at one dollar a token (a dollar stablecoin), or at the oracle's rate when each charge was made (charges made while it had no usable round are in tollgate_revenue_unpriced_token_units_total). No series for a token without a dollar peg or a rate.",
      labelNames: ['route'],
      registers,
      collect() {
        this.reset()
        if (!rated() && !pegged) return
        for (const meter of routes.values()) {
          const dollars = rated() ? meter.dollars : Number(meter.charged) / unit
          this.inc({ route: meter.route }, dollars)
        }
      },
    })
    new Counter({
      name: 'tollgate_revenue_unpriced_token_units_total',
      help: "Revenue charged while the oracle's rate had no usable round, in token units, by route and token address: not in tollgate_revenue_dollars_total.",
      labelNames: ['route', 'token'],
      registers,
      collect() {
        this.reset()
        if (!rated()) return
        for (const meter of routes.values()) {
          this.inc({ route: meter.route, token }, Number(meter.unpriced))
        }
      },
    })
    this.paymentDuration = new Histogram({
      name: 'tollgate_payment_duration_seconds',
      help: "Time an HTTP payment takes to be decided and stored before the route's handler runs (signature, ledger, durable store write), by route.",
      labelNames: ['route'],
      buckets: [...LATENCY_BUCKETS],
      registers,
    })
    this.commitDuration = new Histogram({
      name: 'tollgate_store_commit_duration_seconds',
      help: 'Time a group-committed store batch takes to be written (one fsync in durable mode).',
      buckets: [...LATENCY_BUCKETS],
      registers,
    })
    this.commitRecords = new Histogram({
      name: 'tollgate_store_commit_records',
      help: 'Channel records per store batch.',
      buckets: [...BATCH_BUCKETS],
      registers,
    })
    const watched = () => this.watcher?.()
    new Gauge({
      name: 'tollgate_watcher_lag_blocks',
      help: "Blocks between the node's head and the last block whose escrow events are applied.",
      registers,
      collect() {
        const lag = watched()?.lag
        this.set(lag === undefined ? Number.NaN : Number(lag))
      },
    })
    new Gauge({
      name: 'tollgate_watcher_lag_seconds',
      help: 'Seconds since the chain watcher last polled the node successfully.',
      registers,
      collect() {
        const at = watched()?.lastSuccessAt
        this.set(at === undefined ? Number.NaN : (now() - at) / 1000)
      },
    })
    const rpcErrors = this.rpcErrors
    new Counter({
      name: 'tollgate_rpc_errors_total',
      help: 'Failed JSON-RPC requests to the chain node (transport errors and error answers), by method.',
      labelNames: ['method'],
      registers,
      collect() {
        this.reset()
        for (const [method, count] of rpcErrors) this.inc({ method }, count)
      },
    })
    this.sessions = new Gauge({
      name: 'tollgate_ws_sessions',
      help: 'Open billed WebSocket sessions.',
      registers,
    })
    const claimed = () => this.claimedAmount
    new Counter({
      name: 'tollgate_claimed_amount_total',
      help: 'Token units claimed on chain by settlement.',
      registers,
      collect() {
        this.reset()
        this.inc(Number(claimed()))
      },
    })
    const gas = this.gas
    new Counter({
      name: 'tollgate_gas_used_total',
      help: 'Gas used by the transactions the server sent, by kind (claim, settle, deposit, refund).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset()
        for (const [kind, used] of Object.entries(gas)) this.inc({ kind }, Number(used))
      },
    })
  }

  /**
   * The meter of a paid route, made once when the route is registered (the same one for a route
   * registered again, for another method say).
   */
  route(transport: RouteMeter['transport'], route: string): RouteMeter {
    const key = `${transport} ${route}`
    let meter = this.routes.get(key)
    if (!meter) {
      meter = new RouteMeter(
        route,
        transport,
        this,
        transport === 'http' ? this.paymentDuration : undefined,
      )
      this.routes.set(key, meter)
    }
    return meter
  }

  /** Every route's meter, in registration order. */
  meters(): Iterable<RouteMeter> {
    return this.routes.values()
  }

  /** Counts a refusal with `code` on `route`. */
  refuse(route: string, code: ErrorCode): void {
    let codes = this.refusals.get(route)
    if (!codes) {
      codes = new Map()
      this.refusals.set(route, codes)
    }
    codes.set(code, (codes.get(code) ?? 0) + 1)
    this.ring.refuse(code)
  }

  /** Refusals so far by code, over every route. */
  refusalsByCode(): Map<ErrorCode, number> {
    const out = new Map<ErrorCode, number>()
    for (const codes of this.refusals.values()) {
      for (const [code, count] of codes) out.set(code, (out.get(code) ?? 0) + count)
    }
    return out
  }

  /** Counts a failed JSON-RPC request. */
  rpcFailed(method: string): void {
    this.rpcErrors.set(method, (this.rpcErrors.get(method) ?? 0) + 1)
  }

  /** Failed JSON-RPC requests so far by method. */
  rpcErrorsByMethod(): ReadonlyMap<string, number> {
    return this.rpcErrors
  }

  /** Adds the gas of a mined transaction. */
  gasUsed(kind: GasKind, gas: bigint): void {
    this.gas[kind] += gas
  }

  /** Records a store batch written in `seconds` with `records` channel records. */
  storeCommitted(seconds: number, records: number): void {
    this.commitDuration.observe(seconds)
    this.commitRecords.observe(records)
  }

  /**
   * Counts revenue in dollars at `rate` (dollars per whole token, an oracle's `feed.current()`)
   * as each charge is made, instead of at one dollar a token: for a token that is not a dollar.
   * A charge made while `rate` has no usable round is counted in
   * `tollgate_revenue_unpriced_token_units_total` instead. Set it before the first charge: the
   * dollars of charges counted before it are not known.
   *
   * @example
   * metrics.priceDollars(() => feed.current())
   */
  priceDollars(rate: () => Result<TokenRate>): void {
    this.rate = rate
  }

  /** Where the watcher gauges read the chain watcher's progress. */
  watch(status: () => WatcherStatusLike): void {
    this.watcher = status
  }

  sessionOpened(): void {
    this.sessions.inc()
  }

  sessionClosed(): void {
    this.sessions.dec()
  }
}
