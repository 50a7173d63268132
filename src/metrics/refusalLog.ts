import type { ErrorCode } from '../errors/index.js'

/** Refusal lines logged per second at most, by default; the rest are counted. */
export const DEFAULT_REFUSAL_LOG_PER_SECOND = 10

/** The logger refusals go to (pino's call shape; Fastify's `request.log` is one). */
export interface RefusalLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/** What is logged of one refusal; payer and channel when the payload named them. */
export interface Refusal {
  readonly code: ErrorCode
  readonly route: string
  readonly payer?: string | undefined
  readonly channelId?: string | undefined
}

/**
 * Logs each refusal once, at most `perSecond` lines a second: past that, refusals are counted,
 * and one warning says how many were not logged when the second is over. A flood of bad
 * payments therefore costs at most `perSecond + 1` log lines a second.
 */
export class RefusalLog {
  private second = -1
  private lines = 0
  private suppressed = 0
  private logger: RefusalLogger | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly perSecond: number = DEFAULT_REFUSAL_LOG_PER_SECOND,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs `refusal` to `log`, or counts it when this second's lines are used up. */
  note(log: RefusalLogger, refusal: Refusal): void {
    const second = Math.floor(this.now() / 1000)
    if (second !== this.second) {
      this.flush()
      this.second = second
      this.lines = 0
    }
    if (this.lines < this.perSecond) {
      this.lines++
      log.info(refusal, 'tollgate: payment refused')
      return
    }
    this.suppressed++
    this.logger = log
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), (second + 1) * 1000 - this.now())
      this.timer.unref()
    }
  }

  /** Writes the count of refusals not logged, if any; called when a second is over. */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.suppressed === 0 || !this.logger) return
    this.logger.warn(
      { suppressed: this.suppressed, perSecond: this.perSecond },
      `tollgate: ${this.suppressed} more refusals were not logged (at most ${this.perSecond} lines a second)`,
    )
    this.suppressed = 0
  }
}
