import type { Hex } from 'viem'
import { revertReason } from '../chain/revertReason.js'
import { type ErrorCode, type Rejection, reject, TollgateError } from '../errors/index.js'
import type { ChainEvent, ChannelRecord } from '../ledger/types.js'
import type { ClaimExecutor, SentTransaction } from './claimExecutor.js'
import { createJournal, type JournalEntry, type JournalMeta } from './journal.js'
import { acquireLease, defaultHolder, type LeaseMeta } from './lease.js'
import {
  type ClaimMethod,
  type PlannedBatch,
  type PlannedClaim,
  planSettlement,
  type SettlementPlan,
} from './planSettlement.js'

/** Attempts of one claim batch or settle before it is reported failed for this run. */
export const DEFAULT_MAX_ATTEMPTS = 3

/** Wait before retrying a failed batch: 2 s (doubled at each further attempt). */
export const DEFAULT_RETRY_DELAY_MS = 2_000

/** What the settler reads and mirrors: the payee (or anything exposing its ledger this way). */
export interface SettlementLedger {
  readonly ledger: {
    records(): Iterable<ChannelRecord>
    get(channelId: Hex): ChannelRecord | undefined
    /** Channels near it are claimed between sweeps. */
    readonly exposureCap: bigint
  }
  apply(event: ChainEvent): unknown
  /** Reloads the channels other instances changed (a shared store), before a run plans. */
  sync?(): Promise<void>
}

/** The logger the settler reports through (Fastify's pino logger fits). */
export interface SettlementLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface SettlerOptions {
  payee: SettlementLedger
  /** The channel store: journal and lease live in its metadata. */
  store: JournalMeta & LeaseMeta
  executor: ClaimExecutor
  /** The server's receiver and token (the settle sweep's arguments). */
  receiver: Hex
  token: Hex
  /** The lease holder's name. @default `<hostname>:<pid>` */
  holder?: string
  /** @default DEFAULT_CLAIM_THRESHOLD */
  threshold?: bigint
  /** @default DEFAULT_MAX_PER_TX */
  maxPerTx?: number
  /** @default DEFAULT_SAFETY_MARGIN_SECONDS */
  safetyMarginSeconds?: number
  /** Token units per native coin, to weigh gas against value; absent: gas is not weighed. */
  tokenPerNative?: bigint
  /** @default DEFAULT_MAX_ATTEMPTS */
  maxAttempts?: number
  /** @default DEFAULT_RETRY_DELAY_MS */
  retryDelayMs?: number
  /** @default DEFAULT_LEASE_MS */
  leaseMs?: number
  log?: SettlementLog
  /** Told of every run that was not a dry run, with its report (the dashboard's history, metrics). */
  onReport?: (report: SettlementReport) => void
}

export interface RunOptions {
  /** Claim every channel with anything unclaimed, not only those due. @default false */
  sweep?: boolean
  /** Plan only: nothing is sent, journaled or mirrored. @default false */
  dryRun?: boolean
  /** Called after each claim batch: channels done so far of the planned total. */
  onProgress?: (done: number, total: number) => void
}

/** One claim transaction of a run. */
export interface ClaimedBatch {
  readonly hash: Hex
  readonly method: ClaimMethod
  readonly channels: number
  readonly amount: bigint
  readonly gasUsed: bigint
  /** Each channel the transaction claimed, and the amount it claimed. */
  readonly claimed: readonly { readonly channelId: Hex; readonly amount: bigint }[]
}

/** A failure of a run, with its stable code. */
export interface SettlementFailure {
  readonly code: ErrorCode
  readonly message: string
  /** Channels whose claim failed (0 for a settle or a read). */
  readonly channels: number
}

/** What one run did. */
export interface SettlementReport {
  readonly ok: boolean
  readonly dryRun: boolean
  readonly plan?: SettlementPlan
  /** Journal entries of an earlier run reconciled with the chain. */
  readonly recovered: number
  readonly claims: readonly ClaimedBatch[]
  readonly claimedChannels: number
  readonly claimedAmount: bigint
  readonly settled?: { readonly hash: Hex; readonly amount: bigint; readonly gasUsed: bigint }
  /** Failures left at the end of the run: their claims wait for the next run. */
  readonly failures: readonly SettlementFailure[]
  /** Every failed attempt of the run, including those a retry recovered from. */
  readonly retried: readonly SettlementFailure[]
}

/** Running totals, for metrics. */
export interface SettlerStats {
  runs: number
  claimedChannels: number
  claimGas: bigint
  /** Gas per claimed channel of the last claim transaction. */
  lastGasPerChannel: number | undefined
  unsettled: bigint | undefined
  failures: Map<ErrorCode, number>
}

/**
 * Claims and settles: one run takes the lease, reconciles the journal with on-chain
 * `totalClaimed`, plans from the ledger, sends each batch (journaled before it is sent, its hash
 * after, confirmed after the receipt), mirrors claims into the ledger, then sends the settle
 * sweep. Failed batches are retried with backoff; claims that a simulation names as failing are
 * dropped from the retry so the rest of the batch lands. Runs are serialized.
 */
export class Settler {
  readonly stats: SettlerStats = {
    runs: 0,
    claimedChannels: 0,
    claimGas: 0n,
    lastGasPerChannel: undefined,
    unsettled: undefined,
    failures: new Map(),
  }
  private readonly o: SettlerOptions
  private readonly journal
  private readonly holder: string
  private running: Promise<SettlementReport> | undefined

  constructor(options: SettlerOptions) {
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS
    if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1)
      throw new TollgateError('tollgate_invalid_config', 'maxAttempts must be >= 1')
    this.o = options
    this.journal = createJournal(options.store)
    this.holder = options.holder ?? defaultHolder()
  }

  /** Whether a run is in progress. */
  get busy(): boolean {
    return this.running !== undefined
  }

  /** Runs once; a call while a run is in progress waits for it, then runs again. */
  run(options: RunOptions = {}): Promise<SettlementReport> {
    const previous = this.running ?? Promise.resolve()
    const next = previous.then(
      () => this.runOnce(options),
      () => this.runOnce(options),
    )
    this.running = next
    void next.finally(() => {
      if (this.running === next) this.running = undefined
    })
    return next
  }

  /** The plan a run would make now, from the ledger alone (no gas weighing, nothing unsettled). */
  due(sweep: boolean): SettlementPlan {
    return this.plan({ sweep, unsettled: 0n, packed: false, gasPrice: 0n })
  }

  private plan(input: {
    sweep: boolean
    unsettled: bigint
    packed: boolean
    gasPrice: bigint
    inFlight?: ReadonlySet<Hex>
  }): SettlementPlan {
    const o = this.o
    return planSettlement({
      records: o.payee.ledger.records(),
      receiver: o.receiver,
      token: o.token,
      exposureCap: o.payee.ledger.exposureCap,
      ...input,
      ...(o.threshold === undefined ? {} : { threshold: o.threshold }),
      ...(o.maxPerTx === undefined ? {} : { maxPerTx: o.maxPerTx }),
      ...(o.safetyMarginSeconds === undefined
        ? {}
        : { safetyMarginSeconds: o.safetyMarginSeconds }),
      ...(o.tokenPerNative === undefined || input.gasPrice === 0n
        ? {}
        : { tokenPerNative: o.tokenPerNative }),
    })
  }

  private async runOnce(options: RunOptions): Promise<SettlementReport> {
    const report = new ReportBuilder(options.dryRun === true)
    this.stats.runs++
    const lease = await acquireLease(this.o.store, this.holder, {
      ...(this.o.leaseMs === undefined ? {} : { durationMs: this.o.leaseMs }),
    })
    if ('ok' in lease) return this.finish(report.fail(lease, 0))
    try {
      try {
        await this.o.payee.sync?.()
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err)
        return this.finish(report.fail(reject('tollgate_store_failed', message), 0))
      }
      const inFlight = options.dryRun ? new Set<Hex>() : await this.recover(report)
      const executor = this.o.executor
      let packed: boolean
      let gasPrice: bigint
      let unsettled: bigint
      try {
        ;[packed, gasPrice, unsettled] = await Promise.all([
          executor.packed(),
          executor.gasPrice(),
          executor.readUnsettled(),
        ])
      } catch (err) {
        return this.finish(report.fail(unavailable(err), 0))
      }
      const plan = this.plan({
        sweep: options.sweep === true,
        unsettled,
        packed,
        gasPrice,
        inFlight,
      })
      report.plan = plan
      if (options.dryRun) return this.finish(report)
      const total = plan.batches.reduce((n, b) => n + b.claims.length, 0)
      let done = 0
      let stop = false
      for (const batch of plan.batches) {
        if (stop) {
          report.failures.push(report.skippedFailure(batch))
          continue
        }
        if (!(await lease.renew())) {
          report.fail(reject('tollgate_settlement_busy', 'the lease was lost during the run'), 0)
          stop = true
          continue
        }
        const outcome = await this.claimBatch(batch, report)
        if (outcome === 'stop') stop = true
        done += batch.claims.length
        options.onProgress?.(done, total)
      }
      if (plan.settle && !stop) await this.settleSweep(report)
      return this.finish(report)
    } finally {
      await lease.release().catch(() => {})
    }
  }

  /** Reconciles journal entries left by an earlier run; returns channels still in flight. */
  private async recover(report: ReportBuilder): Promise<Set<Hex>> {
    const inFlight = new Set<Hex>()
    for (const entry of await this.journal.entries()) {
      if (entry.txs.length > 0) {
        const resumed = await this.o.executor.resume(entry.txs)
        if (resumed && !resumed.ok) report.fail(resumed, entry.claims.length)
      }
      const onChain = await this.mirror(entry)
      if (onChain === undefined) {
        for (const c of entry.claims) inFlight.add(c.channelId)
        report.fail(reject('tollgate_chain_unavailable', 'journal not reconciled'), 0)
        continue
      }
      await this.journal.close(entry)
      report.recovered++
      this.o.log?.info(
        {
          entry: entry.id,
          channels: entry.claims.length,
          landed: entry.claims.filter((c) => (onChain.get(c.channelId) ?? 0n) >= c.totalClaimed)
            .length,
        },
        'tollgate: settlement journal entry reconciled with the chain',
      )
    }
    return inFlight
  }

  /**
   * Reads on-chain `totalClaimed` of the entry's channels and mirrors it into the ledger.
   * Returns what was read, or undefined when the chain cannot be read.
   */
  private async mirror(entry: Pick<JournalEntry, 'claims'>): Promise<Map<Hex, bigint> | undefined> {
    let onChain: Map<Hex, bigint>
    try {
      onChain = await this.o.executor.readClaimed(entry.claims.map((c) => c.channelId))
    } catch {
      return undefined
    }
    for (const { channelId } of entry.claims) {
      const value = onChain.get(channelId) ?? 0n
      const current = this.o.payee.ledger.get(channelId)
      if (current && value > current.totalClaimed)
        this.o.payee.apply({ type: 'claimed', channelId, totalClaimed: value })
    }
    return onChain
  }

  private async claimBatch(
    planned: PlannedBatch,
    report: ReportBuilder,
  ): Promise<'ok' | 'failed' | 'stop'> {
    const maxAttempts = this.o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS
    let batch = planned
    let last: Rejection | undefined
    for (let attempt = 1; attempt <= maxAttempts && batch.claims.length > 0; attempt++) {
      if (attempt > 1)
        await sleep((this.o.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS) * 2 ** (attempt - 2))
      let entry = await this.journal.open(batch)
      const result = await this.o.executor.claim(batch, async (hash, nonce) => {
        entry = await this.journal.sent(entry, hash, nonce)
        this.o.log?.info(
          { hash, nonce, channels: batch.claims.length, method: batch.method },
          'tollgate: claim sent',
        )
      })
      if (result.ok) {
        entry = await this.journal.confirmed(entry)
        for (const c of batch.claims)
          this.o.payee.apply({
            type: 'claimed',
            channelId: c.channelId,
            totalClaimed: c.totalClaimed,
          })
        await this.journal.close(entry)
        this.recordClaim(batch, result.value, report)
        return 'ok'
      }
      last = result
      report.retried.push({
        code: result.code,
        message: result.message,
        channels: batch.claims.length,
      })
      this.o.log?.warn(
        { code: result.code, attempt, channels: batch.claims.length },
        `tollgate: claim failed: ${result.message}`,
      )
      // Whatever was sent may have landed (in part): mirror it, and retry only the rest.
      const onChain = await this.mirror(entry)
      if (onChain === undefined) {
        report.failAfterRetries(result, batch.claims.length)
        return 'failed'
      }
      await this.journal.close(entry)
      if (result.code === 'tollgate_settlement_insufficient_gas') {
        report.failAfterRetries(result, batch.claims.length)
        return 'stop'
      }
      batch = this.remaining(batch, result, onChain, report)
    }
    if (last && batch.claims.length > 0) report.failAfterRetries(last, batch.claims.length)
    return last && batch.claims.length > 0 ? 'failed' : 'ok'
  }

  /** The claims of `batch` still to make: not landed on chain, and not named by a failed simulation. */
  private remaining(
    batch: PlannedBatch,
    failure: Rejection,
    onChain: ReadonlyMap<Hex, bigint>,
    report: ReportBuilder,
  ): PlannedBatch {
    const claims: PlannedClaim[] = []
    for (const claim of batch.claims) {
      if ((onChain.get(claim.channelId) ?? 0n) >= claim.totalClaimed) continue
      if (
        failure.code === 'invalid_batch_settlement_evm_claim_simulation_failed' &&
        failure.message.includes(claim.channelId)
      ) {
        report.failAfterRetries(failure, 1)
        continue
      }
      claims.push(claim)
    }
    return { method: batch.method, claims }
  }

  private recordClaim(batch: PlannedBatch, sent: SentTransaction, report: ReportBuilder): void {
    const amount = batch.claims.reduce((sum, c) => sum + c.amount, 0n)
    report.claims.push({
      hash: sent.hash,
      method: batch.method,
      channels: batch.claims.length,
      amount,
      gasUsed: sent.gasUsed,
      claimed: batch.claims.map((c) => ({ channelId: c.channelId, amount: c.amount })),
    })
    this.stats.claimedChannels += batch.claims.length
    this.stats.claimGas += sent.gasUsed
    this.stats.lastGasPerChannel = Number(sent.gasUsed) / batch.claims.length
    this.o.log?.info(
      {
        hash: sent.hash,
        channels: batch.claims.length,
        amount: amount.toString(),
        gasPerChannel: Math.round(this.stats.lastGasPerChannel),
      },
      'tollgate: claim confirmed',
    )
  }

  private async settleSweep(report: ReportBuilder): Promise<void> {
    const maxAttempts = this.o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1)
        await sleep((this.o.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS) * 2 ** (attempt - 2))
      const result = await this.o.executor.settle()
      if (result.ok) {
        report.settled = {
          hash: result.value.hash,
          amount: result.value.amount,
          gasUsed: result.value.gasUsed,
        }
        this.o.log?.info(
          { hash: result.value.hash, amount: result.value.amount.toString() },
          'tollgate: settled to the receiver',
        )
        return
      }
      if (result.code === 'invalid_batch_settlement_evm_nothing_to_settle') return
      report.retried.push({ code: result.code, message: result.message, channels: 0 })
      this.o.log?.warn({ code: result.code, attempt }, `tollgate: settle failed: ${result.message}`)
      if (result.code === 'tollgate_settlement_insufficient_gas' || attempt === maxAttempts) {
        report.failAfterRetries(result, 0)
        return
      }
    }
  }

  private async finish(report: ReportBuilder): Promise<SettlementReport> {
    for (const f of report.retried) this.countFailure(f.code)
    for (const f of report.failures) {
      if (!report.afterRetries.has(f)) this.countFailure(f.code)
      this.o.log?.error(
        { code: f.code, channels: f.channels },
        `tollgate: settlement: ${f.message}`,
      )
    }
    if (!report.dryRun) {
      try {
        this.stats.unsettled = await this.o.executor.readUnsettled()
      } catch {
        // Kept from the last successful read; the failure is already reported.
      }
    }
    const built = report.build()
    if (!built.dryRun) this.o.onReport?.(built)
    return built
  }

  private countFailure(code: ErrorCode): void {
    this.stats.failures.set(code, (this.stats.failures.get(code) ?? 0) + 1)
  }
}

class ReportBuilder {
  plan: SettlementPlan | undefined
  recovered = 0
  readonly claims: ClaimedBatch[] = []
  settled: { hash: Hex; amount: bigint; gasUsed: bigint } | undefined
  readonly failures: SettlementFailure[] = []
  readonly retried: SettlementFailure[] = []
  /** Final failures of claims or settles whose attempts are already counted in {@link retried}. */
  readonly afterRetries = new WeakSet<SettlementFailure>()

  constructor(readonly dryRun: boolean) {}

  fail(rejection: Rejection, channels: number): this {
    this.failures.push({ code: rejection.code, message: rejection.message, channels })
    return this
  }

  /** A final failure of a claim or settle whose attempts were recorded in {@link retried}. */
  failAfterRetries(rejection: Rejection, channels: number): void {
    const failure: SettlementFailure = {
      code: rejection.code,
      message: rejection.message,
      channels,
    }
    this.failures.push(failure)
    this.afterRetries.add(failure)
  }

  skippedFailure(batch: PlannedBatch): SettlementFailure {
    return {
      code: 'tollgate_settlement_insufficient_gas',
      message: 'not sent: the settlement account cannot pay for gas',
      channels: batch.claims.length,
    }
  }

  build(): SettlementReport {
    const claimedChannels = this.claims.reduce((n, c) => n + c.channels, 0)
    return {
      ok: this.failures.length === 0,
      dryRun: this.dryRun,
      ...(this.plan ? { plan: this.plan } : {}),
      recovered: this.recovered,
      claims: this.claims,
      claimedChannels,
      claimedAmount: this.claims.reduce((sum, c) => sum + c.amount, 0n),
      ...(this.settled ? { settled: this.settled } : {}),
      failures: this.failures,
      retried: this.retried,
    }
  }
}

function unavailable(err: unknown): Rejection {
  return reject('tollgate_chain_unavailable', revertReason(err))
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
