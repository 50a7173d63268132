import { TollgateError } from '../errors/index.js'
import type { SettlementReport, Settler } from './settler.js'

/** Time between two sweeps of every channel with anything unclaimed: 1 hour. */
export const DEFAULT_SWEEP_INTERVAL_MS = 3_600_000

/** Time between two checks for claims due (threshold, exposure cap, withdrawals): 30 s. */
export const DEFAULT_CHECK_INTERVAL_MS = 30_000

/** Least time between two looks for claims due that {@link SettlementSchedule.nudge} asks for. */
export const NUDGE_INTERVAL_MS = 1_000

/** What started a run. */
export type SettlementTrigger = 'check' | 'sweep' | 'withdrawal' | 'exposure' | 'manual'

export interface SettlementScheduleOptions {
  settler: Settler
  /** @default DEFAULT_SWEEP_INTERVAL_MS */
  sweepIntervalMs?: number
  /** @default DEFAULT_CHECK_INTERVAL_MS */
  checkIntervalMs?: number
  /** Each run's report. */
  onReport?: (report: SettlementReport, trigger: SettlementTrigger) => void
  /** A run threw (a bug or the store failing); the schedule goes on. */
  onError?: (err: unknown) => void
  /** Unix milliseconds. @default Date.now */
  now?: () => number
}

export interface SettlementSchedule {
  /** Checks every `checkIntervalMs` and sweeps every `sweepIntervalMs`; the timer does not keep the process alive. Idempotent. */
  start(): void
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>
  /**
   * Runs now (after the run in progress, if any): a withdrawal alert from the chain watcher, a
   * channel at its exposure cap, or an operator's request.
   */
  trigger(
    trigger: SettlementTrigger,
    options?: { sweep?: boolean; dryRun?: boolean },
  ): Promise<SettlementReport>
  /**
   * Asks for a look at the claims due soon, from the request path (a channel refused at its
   * exposure cap, a withdrawal mirrored): at most one look per {@link NUDGE_INTERVAL_MS}, which
   * runs the settler only when the plan holds a claim and no run is going. Cheap to call often,
   * also by a payer sending refused vouchers on purpose.
   */
  nudge(trigger: SettlementTrigger): void
  /** The last run's report. */
  readonly lastReport: SettlementReport | undefined
}

/**
 * Runs the settler inside the server: a check every `checkIntervalMs` that runs only when the
 * ledger has claims due (so an idle server sends nothing and reads nothing), a sweep every
 * `sweepIntervalMs`, and at once on {@link SettlementSchedule.trigger}.
 *
 * @throws TollgateError `tollgate_invalid_config` on non-positive intervals.
 */
export function createSettlementSchedule(options: SettlementScheduleOptions): SettlementSchedule {
  const { settler } = options
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS
  const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS
  for (const [name, value] of [
    ['sweepIntervalMs', sweepIntervalMs],
    ['checkIntervalMs', checkIntervalMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new TollgateError('tollgate_invalid_config', `${name} must be a positive integer`)
  }
  const now = options.now ?? Date.now
  let timer: NodeJS.Timeout | undefined
  let lastSweepAt = now()
  let lastReport: SettlementReport | undefined
  let inFlight: Promise<unknown> = Promise.resolve()
  /** Runs left with failures: checked again at the next tick even if nothing new is due. */
  let retryPending = false
  let running = false
  let nudged: NodeJS.Timeout | undefined
  let lastNudgeAt = Number.NEGATIVE_INFINITY

  const run = (trigger: SettlementTrigger, runOptions: { sweep?: boolean; dryRun?: boolean }) => {
    const started = settler.run(runOptions).then((report) => {
      if (!runOptions.dryRun) {
        lastReport = report
        retryPending = !report.ok
      }
      options.onReport?.(report, trigger)
      return report
    })
    inFlight = started.catch(() => {})
    return started
  }

  const tick = async () => {
    timer = undefined
    try {
      const sweep = now() - lastSweepAt >= sweepIntervalMs
      if (sweep) {
        lastSweepAt = now()
        await run('sweep', { sweep: true })
      } else if (retryPending || settler.due(false).batches.length > 0) {
        await run('check', {})
      }
    } catch (err) {
      options.onError?.(err)
    }
    if (running) schedule()
  }

  const schedule = () => {
    timer = setTimeout(() => void tick(), checkIntervalMs)
    timer.unref()
  }

  return {
    start() {
      if (running) return
      running = true
      schedule()
    },
    async stop() {
      running = false
      if (timer) clearTimeout(timer)
      if (nudged) clearTimeout(nudged)
      timer = undefined
      nudged = undefined
      await inFlight
    },
    trigger(trigger, runOptions = {}) {
      return run(trigger, runOptions)
    },
    nudge(trigger) {
      if (nudged || !running) return
      const wait = Math.max(0, lastNudgeAt + NUDGE_INTERVAL_MS - now())
      nudged = setTimeout(() => {
        nudged = undefined
        lastNudgeAt = now()
        if (settler.busy || settler.due(false).batches.length === 0) return
        run(trigger, {}).catch((err: unknown) => options.onError?.(err))
      }, wait)
      nudged.unref()
    },
    get lastReport() {
      return lastReport
    },
  }
}
