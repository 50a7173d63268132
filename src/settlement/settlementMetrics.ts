import { Counter, Gauge, Registry } from 'prom-client'
import { claimCandidate } from '../ledger/transitions.js'
import type { ChannelRecord } from '../ledger/types.js'
import type { Settler } from './settler.js'

export interface SettlementMetricsOptions {
  /** The ledger's records (unclaimed totals and withdrawal deadlines are computed at each scrape). */
  records: () => Iterable<ChannelRecord>
  settler: Settler
  /** Add the metrics to this registry. @default a new one */
  registry?: Registry
  /** Unix milliseconds. @default Date.now */
  now?: () => number
}

/**
 * The settlement's Prometheus metrics (prom-client), computed when scraped:
 * - `tollgate_unclaimed_amount`: charged and not yet claimed, over every channel (token units);
 * - `tollgate_unsettled_amount`: claimed on chain and not yet settled to the receiver, as last read;
 * - `tollgate_next_claim_deadline_seconds`: seconds left before the earliest pending withdrawal
 *   with unclaimed money ends (`+Inf` when none);
 * - `tollgate_claim_gas_per_channel`: gas per claimed channel, averaged over every claim sent;
 * - `tollgate_claimed_channels_total`, `tollgate_settlement_runs_total`;
 * - `tollgate_settlement_failures_total{code}`: failed attempts and failed runs, by stable code.
 *
 * @returns the registry holding them (serve `registry.metrics()` with `registry.contentType`).
 */
export function settlementMetrics(options: SettlementMetricsOptions): Registry {
  const registry = options.registry ?? new Registry()
  const { settler } = options
  const now = options.now ?? Date.now
  const registers = [registry]
  new Gauge({
    name: 'tollgate_unclaimed_amount',
    help: 'Charged and not yet claimed on chain, over every channel, in token units.',
    registers,
    collect() {
      let total = 0n
      for (const r of options.records()) total += claimCandidate(r)?.unclaimed ?? 0n
      this.set(Number(total))
    },
  })
  new Gauge({
    name: 'tollgate_unsettled_amount',
    help: 'Claimed on chain and not yet settled to the receiver, in token units, as last read.',
    registers,
    collect() {
      this.set(Number(settler.stats.unsettled ?? 0n))
    },
  })
  new Gauge({
    name: 'tollgate_next_claim_deadline_seconds',
    help: 'Seconds before the earliest pending withdrawal with unclaimed money ends (+Inf when none).',
    registers,
    collect() {
      let deadline = Number.POSITIVE_INFINITY
      for (const r of options.records()) {
        deadline = Math.min(deadline, claimCandidate(r)?.deadline ?? Number.POSITIVE_INFINITY)
      }
      this.set(deadline - now() / 1000)
    },
  })
  new Gauge({
    name: 'tollgate_claim_gas_per_channel',
    help: 'Gas per claimed channel, averaged over every claim transaction sent.',
    registers,
    collect() {
      const { claimGas, claimedChannels } = settler.stats
      this.set(claimedChannels === 0 ? 0 : Number(claimGas) / claimedChannels)
    },
  })
  new Counter({
    name: 'tollgate_claimed_channels_total',
    help: 'Channel claims confirmed on chain.',
    registers,
    collect() {
      this.reset()
      this.inc(settler.stats.claimedChannels)
    },
  })
  new Counter({
    name: 'tollgate_settlement_runs_total',
    help: 'Settlement runs.',
    registers,
    collect() {
      this.reset()
      this.inc(settler.stats.runs)
    },
  })
  new Counter({
    name: 'tollgate_settlement_failures_total',
    help: 'Failed claim or settle attempts and failed settlement runs, by error code.',
    labelNames: ['code'],
    registers,
    collect() {
      this.reset()
      for (const [code, count] of settler.stats.failures) this.inc({ code }, count)
    },
  })
  return registry
}
