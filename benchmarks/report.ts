/**
 * The benchmark table: each figure next to the reference it is compared with, both measured in
 * the same run (or, where marked, a published figure), and their ratio. `npm run bench` prints it
 * as markdown and keeps it, with the raw figures, in `benchmarks/results/<date>.json`.
 */
import { cpus, totalmem } from 'node:os'
import type { Figures } from './run.js'

export interface Row {
  benchmark: string
  figure: string
  value: number | undefined
  reference: string
  referenceValue: number | undefined
  /** `higher`: more is better (throughput); `lower`: less is better (gas, time). */
  better: 'higher' | 'lower'
  /** What the issues ask of the ratio, e.g. `≥ 0.6x`. */
  target?: string
}

type RowSpec = Omit<Row, 'benchmark' | 'value' | 'referenceValue'> & {
  value: string
  referenceValue?: string
  /** A published figure (not measured in this run). */
  published?: number
}

/** Which figures of each benchmark are compared with which; keys are paths into its figures. */
/** Where the reference gas figures come from. */
const REFERENCE = 'x402 reference escrow, receipt gas measured alike'

/**
 * The x402 reference `x402BatchSettlement`'s receipt gas (`gasUsed`), measured like for like:
 * anvil, hardfork prague, the reference built with its own settings (solc 0.8.28, optimizer 200
 * runs), the same test USDC, accounts, salts and warm-up as the gas benchmark (figures of
 * shared/x402-batch-settlement.md). Its Forge snapshot counts execution gas only, not comparable.
 */
export const REFERENCE_GAS = Object.freeze({
  firstDeposit: 133_130,
  claim1: 48_369,
  claim10PerChannel: 23_840,
  claim100PerChannel: 21_425,
  settle: 46_044,
})

const SPECS: Record<string, RowSpec[]> = {
  gas: [
    row(
      'claimPacked gas / channel, 1',
      'claim_gas_per_channel.1',
      'x402 `claim` ABI, same contract',
      'claim_gas_per_channel_x402_abi.1',
      'lower',
    ),
    row(
      'claimPacked gas / channel, 10',
      'claim_gas_per_channel.10',
      'x402 `claim` ABI, same contract',
      'claim_gas_per_channel_x402_abi.10',
      'lower',
    ),
    row(
      'claimPacked gas / channel, 100',
      'claim_gas_per_channel.100',
      'x402 `claim` ABI, same contract',
      'claim_gas_per_channel_x402_abi.100',
      'lower',
    ),
    published(
      'claimPacked gas / channel, 1',
      'claim_gas_per_channel.1',
      REFERENCE,
      REFERENCE_GAS.claim1,
      'lower',
    ),
    published(
      'claimPacked gas / channel, 10',
      'claim_gas_per_channel.10',
      REFERENCE,
      REFERENCE_GAS.claim10PerChannel,
      'lower',
    ),
    published(
      'claimPacked gas / channel, 100',
      'claim_gas_per_channel.100',
      REFERENCE,
      REFERENCE_GAS.claim100PerChannel,
      'lower',
    ),
    published('settle gas', 'settle_gas', REFERENCE, REFERENCE_GAS.settle, 'lower'),
    published(
      'first ERC-3009 deposit gas',
      'deposit_erc3009_gas',
      REFERENCE,
      REFERENCE_GAS.firstDeposit,
      'lower',
    ),
  ],
  verify: [
    row(
      'voucher signatures / s, native',
      'native_per_s',
      'viem `recoverTypedDataAddress`',
      'viem_recover_per_s',
      'higher',
      '≥ 25x',
    ),
    row(
      'voucher signatures / s, JS fallback',
      'js_fallback_per_s',
      'viem `recoverTypedDataAddress`',
      'viem_recover_per_s',
      'higher',
    ),
  ],
  ledger: [
    row(
      'vouchers / s, decode + verify + ledger + LevelDB (durable)',
      'vouchers_per_s',
      'signature checks alone',
      'verify_only_per_s',
      'higher',
      '≥ 0.8x',
    ),
    row(
      'vouchers / s, durable LevelDB',
      'vouchers_per_s',
      'same path, in-memory store',
      'memory_store_vouchers_per_s',
      'higher',
    ),
    row(
      'keccak-256 µs per voucher (two hashes), in use',
      'keccak_us_per_voucher',
      '@noble/hashes',
      'keccak_noble_us_per_voucher',
      'lower',
    ),
    published(
      'heap bytes per open channel, 100 000 loaded',
      'bytes_per_channel',
      'target',
      1024,
      'lower',
      '≤ 1x',
    ),
    published('reload of 100 000 channels, ms', 'reload_100k_ms', 'target', 2000, 'lower', '≤ 1x'),
  ],
  http: [
    row('paid requests / s', 'paid_rps', 'same route unpaid', 'unpaid_rps', 'higher', '≥ 0.2x'),
    row(
      'paid requests / s',
      'paid_rps',
      'stock x402 server (@x402/express), paid',
      'stock_x402_paid_rps',
      'higher',
      '≥ 30x',
    ),
    published(
      'added p99 latency at half of peak, ms',
      'p99_added_ms',
      'target (issue 16)',
      2,
      'lower',
      '≤ 1x',
    ),
    published(
      'added p99 latency at half of peak, relaxed store, ms',
      'p99_added_ms_relaxed',
      'target (issue 16)',
      0.5,
      'lower',
      '≤ 1x',
    ),
    published(
      'server CPU µs per paid request',
      'server_cpu_us_per_paid',
      'target (issue 16)',
      90,
      'lower',
      '≤ 1x',
    ),
    row(
      'server CPU µs per paid request',
      'server_cpu_us_per_paid',
      'same route unpaid',
      'server_cpu_us_per_unpaid',
      'lower',
    ),
    row(
      'paid tick calls / s',
      'tick_rps',
      'same route unpaid (tick run)',
      'tick_unpaid_rps',
      'higher',
      '≥ 0.5x',
    ),
  ],
  redis: [
    row(
      'paid requests / s, one instance on Redis',
      'paid_rps_redis_1',
      'the same on LevelDB',
      'paid_rps_level',
      'higher',
      '≥ 0.8x',
    ),
    row(
      'server CPU µs / paid call, Redis',
      'server_cpu_us_per_paid.redis',
      'the same on LevelDB',
      'server_cpu_us_per_paid.level',
      'lower',
      '≤ 1.3x',
    ),
    published(
      'Redis round trips / paid call (rate limits in Redis)',
      'redis_round_trips_per_paid_call',
      'target',
      2,
      'lower',
      '≤ 1x',
    ),
    published(
      'Redis round trips / paid call (rate limits local)',
      'redis_round_trips_per_paid_call_local_rate_limits',
      'target',
      2,
      'lower',
      '≤ 1x',
    ),
  ],
  ws: [
    row(
      'billed feed messages / s',
      'billed_msgs_per_s',
      'same feed unbilled',
      'unbilled_msgs_per_s',
      'higher',
      '≥ 0.9x',
    ),
    row(
      'billed fan-out messages / s, 1 000 subscribers',
      'fanout_billed_msgs_per_s',
      'same feed unbilled',
      'fanout_unbilled_msgs_per_s',
      'higher',
      '≥ 0.9x',
    ),
    published(
      'server heap bytes / billed session, 1 000 subscribers',
      'bytes_per_session',
      'target',
      16 * 1024,
      'lower',
      '≤ 1x',
    ),
  ],
  client: [
    row(
      'sequential paid calls / s',
      'ours_calls_per_s',
      'stock `@x402/fetch` client',
      'stock_calls_per_s',
      'higher',
      '≥ 3x',
    ),
    row(
      'round trips per paid call',
      'ours_round_trips_per_call',
      'stock `@x402/fetch` client',
      'stock_round_trips_per_call',
      'lower',
    ),
  ],
  settle: [
    published(
      'engine claim gas / channel, 10',
      'claim_gas_per_channel.10',
      REFERENCE,
      REFERENCE_GAS.claim10PerChannel,
      'lower',
    ),
    row('claim + settle 1 000 channels, wall time s', 'claim_settle_1000_s', 'none', '', 'lower'),
  ],
  abuse: [
    row(
      'honest paid requests / s under a flood',
      'paid_rps_under_flood',
      'same load, no flood',
      'paid_rps_quiet',
      'higher',
      '≥ 0.5x',
    ),
    row('transactions sent for refused payloads', 'refused_deposit_txs', 'none', '', 'lower'),
  ],
}

function row(
  figure: string,
  value: string,
  reference: string,
  referenceValue: string,
  better: Row['better'],
  target?: string,
): RowSpec {
  return { figure, value, reference, referenceValue, better, ...(target ? { target } : {}) }
}

function published(
  figure: string,
  value: string,
  reference: string,
  publishedValue: number,
  better: Row['better'],
  target?: string,
): RowSpec {
  return {
    figure,
    value,
    reference,
    published: publishedValue,
    better,
    ...(target ? { target } : {}),
  }
}

/** The value at a dotted path of a benchmark's figures, if it is a number. */
function pick(figures: Figures, path: string): number | undefined {
  let value: unknown = figures
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[key]
  }
  return typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : undefined
}

/** The rows of one benchmark's figures; figures it did not produce show as `-`. */
export function rowsOf(benchmark: string, figures: Figures): Row[] {
  return (SPECS[benchmark] ?? []).map((spec) => ({
    benchmark,
    figure: spec.figure,
    value: pick(figures, spec.value),
    reference: spec.reference,
    referenceValue:
      spec.published ?? (spec.referenceValue ? pick(figures, spec.referenceValue) : undefined),
    better: spec.better,
    ...(spec.target ? { target: spec.target } : {}),
  }))
}

const formatNumber = (n: number | undefined): string =>
  n === undefined
    ? '-'
    : Number.isInteger(n)
      ? n.toLocaleString('en-US')
      : n.toLocaleString('en-US', { maximumFractionDigits: 3 })

/** `value / reference`, the way the issues state their targets. */
export function ratioOf(r: Row): number | undefined {
  if (r.value === undefined || r.referenceValue === undefined || r.referenceValue === 0)
    return undefined
  return r.value / r.referenceValue
}

/** The markdown table of rows. */
export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    '| benchmark | figure | tollgate | reference | reference value | ratio | target |',
    '|---|---|---:|---|---:|---:|---|',
  ]
  for (const r of rows) {
    const ratio = ratioOf(r)
    lines.push(
      `| ${r.benchmark} | ${r.figure} | ${formatNumber(r.value)} | ${r.reference} | ${formatNumber(r.referenceValue)} | ${ratio === undefined ? '-' : `${ratio.toFixed(2)}x`} | ${r.target ?? ''} |`,
    )
  }
  return lines.join('\n')
}

/** Where the run was taken, for the results file and the README. */
export function machine(): { cpu: string; cores: number; memoryGb: number; node: string } {
  const all = cpus()
  return {
    cpu: all[0]?.model.trim() ?? 'unknown',
    cores: all.length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  }
}
