import type { ChainPreset } from '../../chain/presets.js'
import type { ChainWatcherStatus } from '../../chain/watcher.js'
import { claimCandidate } from '../../ledger/transitions.js'
import type { ChannelRecord } from '../../ledger/types.js'
import type { TollgateMetrics } from '../../metrics/index.js'
import type { SettlerStats } from '../../settlement/index.js'
import type { StoreMode } from '../../store/index.js'
import type { SettlementHistory } from './history.js'

/** The minutes of revenue and refusals the overview carries by default (one hour). */
export const DEFAULT_SERIES_MINUTES = 60

/** Channels per page by default, and at most. */
export const DEFAULT_PAGE_SIZE = 50
export const MAX_PAGE_SIZE = 500

/** What the gateway adds to the health the dashboard shows: its upstreams and feeds. */
export interface ExtraHealth {
  readonly ok: boolean
  readonly upstreams?: readonly unknown[]
  readonly feeds?: readonly unknown[]
}

/** What the dashboard reads: a `Tollgate` (from `createTollgate`) has all of it. */
export interface DashboardSource {
  readonly chain: ChainPreset
  readonly payee: {
    readonly ledger: { records(): Iterable<ChannelRecord>; readonly size: number }
    readonly backend: string
    readonly identity: { readonly withdrawDelay: number }
  }
  readonly watcher: { readonly status: ChainWatcherStatus }
  readonly settler: { readonly stats: SettlerStats }
  readonly metrics: TollgateMetrics
  readonly history: SettlementHistory
  readonly storeMode: StoreMode
  /** The gateway's own checks (upstreams, feeds). @default none */
  readonly health?: () => Promise<ExtraHealth>
  /**
   * Whether a token unit is worth a dollar's share (a dollar stablecoin). False for a token an
   * oracle converts: amounts are then shown in the token, not in dollars. @default true
   */
  readonly dollarToken?: boolean
}

const str = (value: bigint) => value.toString()

/**
 * `GET /api/overview`: revenue (total, today, unclaimed, unsettled), channels, the next
 * withdrawal deadline, revenue and refusals per minute, revenue by route, and health. Amounts
 * are token-unit decimal strings; `token.decimals` turns them into whole tokens, which are
 * dollars when `token.dollar`.
 */
export async function overview(source: DashboardSource, minutes: number, now = Date.now()) {
  const { chain, payee, watcher, settler, metrics } = source
  let total = 0n
  let claimed = 0n
  let unclaimed = 0n
  let withdrawing = 0
  let nextDeadline = Number.POSITIVE_INFINITY
  for (const r of payee.ledger.records()) {
    total += r.chargedCumulativeAmount
    claimed += r.totalClaimed
    if (r.withdrawRequestedAt > 0) withdrawing++
    const candidate = claimCandidate(r)
    if (candidate) {
      unclaimed += candidate.unclaimed
      if (candidate.deadline !== undefined)
        nextDeadline = Math.min(nextDeadline, candidate.deadline)
    }
  }
  const midnight = new Date(now)
  midnight.setUTCHours(0, 0, 0, 0)
  const buckets = metrics.ring.last(minutes)
  const codes = new Set<string>()
  for (const b of buckets) for (const code of b.refusals.keys()) codes.add(code)
  const status = watcher.status
  const extra = source.health ? await source.health() : { ok: true }
  const block = (value: bigint | undefined) => (value === undefined ? null : Number(value))
  return {
    now,
    network: chain.network,
    chain: chain.name,
    blockExplorer: chain.blockExplorer ?? null,
    token: {
      address: chain.usdc.address,
      symbol: chain.usdc.name,
      decimals: chain.usdc.decimals,
      dollar: source.dollarToken !== false,
    },
    revenue: {
      total: str(total),
      today: str(metrics.ring.chargedSince(midnight.getTime())),
      claimed: str(claimed),
      unclaimed: str(unclaimed),
      unsettled: settler.stats.unsettled === undefined ? null : str(settler.stats.unsettled),
    },
    channels: { count: payee.ledger.size, withdrawing },
    nextDeadline: Number.isFinite(nextDeadline) ? nextDeadline : null,
    routes: [...metrics.meters()].map((m) => ({
      route: m.route,
      transport: m.transport,
      charges: m.charges,
      charged: str(m.charged),
    })),
    series: {
      start: buckets.map((b) => b.start),
      charged: buckets.map((b) => str(b.charged)),
      charges: buckets.map((b) => b.charges),
      refusals: Object.fromEntries(
        [...codes]
          .sort()
          .map((code) => [code, buckets.map((b) => b.refusals.get(code as never) ?? 0)]),
      ),
    },
    refusals: Object.fromEntries(metrics.refusalsByCode()),
    settlement: {
      runs: settler.stats.runs,
      claimedChannels: settler.stats.claimedChannels,
      failures: Object.fromEntries(settler.stats.failures),
    },
    health: {
      ok: status.consecutiveFailures === 0 && extra.ok,
      watcher: {
        lastProcessedBlock: block(status.lastProcessedBlock),
        headSeen: block(status.headSeen),
        lagBlocks: block(status.lag),
        lagSeconds: status.lastSuccessAt === undefined ? null : (now - status.lastSuccessAt) / 1000,
        consecutiveFailures: status.consecutiveFailures,
      },
      rpcErrors: Object.fromEntries(metrics.rpcErrorsByMethod()),
      signatureBackend: payee.backend,
      storeMode: source.storeMode,
      upstreams: extra.upstreams ?? [],
      feeds: extra.feeds ?? [],
    },
  }
}

/** The JSON of `GET /api/overview`. */
export type Overview = Awaited<ReturnType<typeof overview>>

/** Columns the channel list sorts by. */
export const CHANNEL_SORTS = [
  'charged',
  'balance',
  'claimed',
  'unclaimed',
  'deadline',
  'payer',
] as const

export type ChannelSort = (typeof CHANNEL_SORTS)[number]

/** One row of the channel list. */
interface ChannelRow {
  readonly record: ChannelRecord
  readonly unclaimed: bigint
  /** Unix seconds when the payer may finalize its withdrawal; absent when none is pending. */
  readonly deadline: number | undefined
}

/**
 * `GET /api/channels`: one page of the server's channels, sorted; each with its payer, balance,
 * charged, claimed and unclaimed amounts, and withdrawal deadline.
 */
export function channels(
  source: DashboardSource,
  query: { sort: ChannelSort; order: 'asc' | 'desc'; offset: number; limit: number },
) {
  const delay = source.payee.identity.withdrawDelay
  const rows: ChannelRow[] = []
  for (const record of source.payee.ledger.records()) {
    const unclaimed = record.chargedCumulativeAmount - record.totalClaimed
    rows.push({
      record,
      unclaimed: unclaimed > 0n ? unclaimed : 0n,
      deadline: record.withdrawRequestedAt > 0 ? record.withdrawRequestedAt + delay : undefined,
    })
  }
  const key = sortKey(query.sort)
  const sign = query.order === 'asc' ? 1 : -1
  rows.sort((a, b) => {
    const x = key(a)
    const y = key(b)
    return x < y ? -sign : x > y ? sign : 0
  })
  return {
    total: rows.length,
    offset: query.offset,
    limit: query.limit,
    sort: query.sort,
    order: query.order,
    channels: rows.slice(query.offset, query.offset + query.limit).map((row) => ({
      channelId: row.record.channelId,
      payer: row.record.config.payer,
      balance: str(row.record.balance),
      charged: str(row.record.chargedCumulativeAmount),
      claimed: str(row.record.totalClaimed),
      unclaimed: str(row.unclaimed),
      withdrawalDeadline: row.deadline ?? null,
    })),
  }
}

/** The JSON of `GET /api/channels`. */
export type ChannelPage = ReturnType<typeof channels>

function sortKey(sort: ChannelSort): (row: ChannelRow) => bigint | number | string {
  switch (sort) {
    case 'charged':
      return (row) => row.record.chargedCumulativeAmount
    case 'balance':
      return (row) => row.record.balance
    case 'claimed':
      return (row) => row.record.totalClaimed
    case 'unclaimed':
      return (row) => row.unclaimed
    case 'deadline':
      return (row) => row.deadline ?? Number.POSITIVE_INFINITY
    case 'payer':
      return (row) => row.record.config.payer.toLowerCase()
  }
}

/**
 * `GET /api/settlements`: the settlement history, newest first: each claim with its channels,
 * gas per channel and transaction (linked to the block explorer when the chain has one), each
 * settle, each failure.
 */
export function settlements(source: DashboardSource) {
  const explorer = source.chain.blockExplorer
  const link = (hash: string) => (explorer ? `${explorer}/tx/${hash}` : null)
  return {
    blockExplorer: explorer ?? null,
    entries: source.history.newestFirst().map((e) => {
      switch (e.kind) {
        case 'claim':
          return {
            kind: e.kind,
            at: e.at,
            hash: e.hash,
            url: link(e.hash),
            method: e.method,
            channels: e.claimed.length,
            amount: str(e.amount),
            gasUsed: str(e.gasUsed),
            gasPerChannel: Math.round(Number(e.gasUsed) / Math.max(1, e.claimed.length)),
            claimed: e.claimed.map((c) => ({ channelId: c.channelId, amount: str(c.amount) })),
          }
        case 'settle':
          return {
            kind: e.kind,
            at: e.at,
            hash: e.hash,
            url: link(e.hash),
            amount: str(e.amount),
            gasUsed: str(e.gasUsed),
          }
        default:
          return { kind: e.kind, at: e.at, code: e.code, message: e.message, channels: e.channels }
      }
    }),
  }
}

/** The JSON of `GET /api/settlements`. */
export type SettlementPage = ReturnType<typeof settlements>
