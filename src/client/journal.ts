import { mkdirSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { join } from 'node:path'
import type { Address, Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { ChannelConfig, Network } from '../protocol/index.js'

/** The journal's file in the payer's data folder. */
export const JOURNAL_FILE = 'payer.jsonl'

/** Past this many lines, the journal is rewritten as a snapshot when it is opened. */
export const JOURNAL_COMPACT_LINES = 10_000

/** How long a spend entry counts: a week, the longest rolling window of the spend policy. */
export const SPEND_HORIZON_MS = 7 * 24 * 60 * 60 * 1000

/** What the payer knows of one channel. Amounts in token units. */
export interface PayerChannel {
  readonly channelId: Hex
  readonly network: Network
  readonly escrow: Address
  readonly config: ChannelConfig
  /** Origins (scheme://host:port) paid through this channel. */
  readonly origins: readonly string[]
  /** Deposited and not taken back, as last learnt from a receipt or the chain. */
  readonly balance: bigint
  /** `chargedCumulativeAmount`, as verified from the server's receipts. */
  readonly charged: bigint
  /** The highest voucher ceiling ever signed: what the server can claim at most. */
  readonly signed: bigint
  /** Unix seconds when this payer started a withdrawal; 0 when none. */
  readonly withdrawInitiatedAt: number
  /** Why the payer stopped paying this channel's server; absent while it is trusted. */
  readonly blocked?: string
  /**
   * A paid resource of this channel per origin, where its refunds are sent (a server answers
   * refunds on its paid routes only); absent in journals written before it was kept.
   */
  readonly resources?: Readonly<Record<string, PaidResource>>
  /**
   * The spend reservation open on this channel: the spend record counts the channel up to
   * `ceiling`, so vouchers up to it are signed with no durable write of their own. Replayed
   * after a crash, it is taken as signed in full (its unused part is forfeited, never signed).
   */
  readonly reservation?: Reservation
}

/** Spend reserved ahead of the vouchers of one channel and origin (see {@link PayerChannel.reservation}). */
export interface Reservation {
  readonly origin: string
  /** The voucher ceiling the spend record counts the channel up to. */
  readonly ceiling: bigint
  /** Unix milliseconds: the reservation's spend is dated here, and no voucher is signed under it after. */
  readonly expiresAt: number
}

/** A route a channel paid: the URL without its query, and the method. */
export interface PaidResource {
  readonly url: string
  readonly method: string
}

/**
 * One spend, as counted by the spend policy: the growth of a channel's reserved ceiling, an
 * `exact` transfer, or (negative) the unused part of a reservation given back.
 */
export interface SpendEntry {
  /** Unix milliseconds: no voucher it counts was signed after (a reservation's expiry). */
  readonly at: number
  readonly origin: string
  readonly amount: bigint
}

/** What the journal wrote since it was opened: appended batches of lines, and those flushed. */
export interface JournalStats {
  readonly writes: number
  readonly syncs: number
}

/** A line of the journal. */
type Line =
  | { k: 'channel'; channel: WireChannel }
  | { k: 'spend'; at: number; origin: string; amount: string }
  | { k: 'origin'; origin: string; total: string }
  /** A spend of a snapshot: in the rolling windows only, its origin's total is on an `origin` line. */
  | { k: 'window'; at: number; origin: string; amount: string }

type WireChannel = Omit<PayerChannel, 'balance' | 'charged' | 'signed' | 'reservation'> & {
  balance: string
  charged: string
  signed: string
  reservation?: Omit<Reservation, 'ceiling'> & { ceiling: string }
}

const toWire = ({ reservation, ...c }: PayerChannel): WireChannel => ({
  ...c,
  balance: c.balance.toString(),
  charged: c.charged.toString(),
  signed: c.signed.toString(),
  ...(reservation === undefined
    ? {}
    : { reservation: { ...reservation, ceiling: reservation.ceiling.toString() } }),
})

const fromWire = ({ reservation, ...c }: WireChannel): PayerChannel => ({
  ...c,
  balance: BigInt(c.balance),
  charged: BigInt(c.charged),
  signed: BigInt(c.signed),
  ...(reservation === undefined
    ? {}
    : { reservation: { ...reservation, ceiling: BigInt(reservation.ceiling) } }),
})

/**
 * A channel as replayed: an open reservation is taken as signed in full, since the vouchers
 * signed under it were not written one by one (the crash bound: its unused part is forfeited).
 */
function replayed(channel: PayerChannel): PayerChannel {
  const { reservation, ...rest } = channel
  if (reservation === undefined || reservation.ceiling <= rest.signed) return rest
  return { ...rest, signed: reservation.ceiling }
}

/**
 * The payer's persistent record in its data folder: one append-only file of JSON lines holding
 * its channels (the last line of a channel wins) and its spends. A write that the spend policy
 * relies on (a spend, a reservation) is flushed to disk (`fdatasync`) before it returns, so a
 * voucher is never signed for a spend that a crash could forget. Not shared between processes:
 * one payer per data folder.
 */
export class Journal {
  readonly channels = new Map<Hex, PayerChannel>()
  /** Spends of the last {@link SPEND_HORIZON_MS} (and of this process), in date order. */
  readonly spends: SpendEntry[] = []
  /** `running[i]`: the sum of `spends[0..i]`, so a window's total is one binary search away. */
  private readonly running: bigint[] = []
  /** Everything ever spent per origin. */
  readonly originTotals = new Map<string, bigint>()
  private writing: Promise<void> = Promise.resolve()
  private file: FileHandle | undefined
  /** Lines in the file: past {@link JOURNAL_COMPACT_LINES} it is rewritten as a snapshot. */
  private lineCount = 0
  private writes = 0
  private syncs = 0

  private constructor(
    readonly path: string,
    private readonly now: () => number,
  ) {}

  /**
   * Opens (or creates) the journal of `dataDir` and replays it. A journal past
   * {@link JOURNAL_COMPACT_LINES} lines is rewritten as a snapshot (channels, totals per origin,
   * the last week's spends), when it is opened and as it grows.
   *
   * @param now Unix milliseconds, for the spends' horizon. @default Date.now
   * @throws TollgateError `tollgate_invalid_config` when the file is not a payer journal.
   */
  static async open(dataDir: string, now: () => number = Date.now): Promise<Journal> {
    mkdirSync(dataDir, { recursive: true })
    const path = join(dataDir, JOURNAL_FILE)
    let text = ''
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const lines = text.split('\n')
    const state = replay(lines, path, now())
    const journal = new Journal(path, now)
    for (const [id, channel] of state.channels) journal.channels.set(id, replayed(channel))
    for (const spend of state.spends) journal.addSpend(spend)
    for (const [origin, total] of state.originTotals) journal.originTotals.set(origin, total)
    if (lines.length > JOURNAL_COMPACT_LINES) await journal.rewrite()
    else {
      journal.file = await open(path, 'a')
      journal.lineCount = lines.length
    }
    return journal
  }

  /** Records a channel's new state; flushed to disk before it resolves when `sync`. */
  async putChannel(channel: PayerChannel, sync: boolean): Promise<void> {
    this.channels.set(channel.channelId, channel)
    await this.write([{ k: 'channel', channel: toWire(channel) }], sync)
  }

  /**
   * Records a spend that no channel carries (an x402 `exact` transfer), flushed to disk before it
   * resolves.
   */
  async putTransferSpend(spend: SpendEntry): Promise<void> {
    this.addSpend(spend)
    this.originTotals.set(spend.origin, (this.originTotals.get(spend.origin) ?? 0n) + spend.amount)
    await this.write(
      [{ k: 'spend', at: spend.at, origin: spend.origin, amount: spend.amount.toString() }],
      true,
    )
  }

  /**
   * Sets a channel's state in memory only: it is written with the channel's next line. For a
   * voucher signed under the channel's reservation, which a replay takes as signed already.
   */
  setChannel(channel: PayerChannel): void {
    this.channels.set(channel.channelId, channel)
  }

  /**
   * Records spends together with the channel state that carries them (a reservation, the release
   * of an earlier one's unused part). Counted at once; flushed to disk before it resolves when
   * `sync` (a spend the payer signs on; a release alone needs no flush: losing it forfeits).
   */
  async putSpends(
    spends: readonly SpendEntry[],
    channel: PayerChannel,
    sync: boolean,
  ): Promise<void> {
    this.channels.set(channel.channelId, channel)
    const lines: Line[] = []
    for (const spend of spends) {
      this.addSpend(spend)
      this.originTotals.set(
        spend.origin,
        (this.originTotals.get(spend.origin) ?? 0n) + spend.amount,
      )
      lines.push({
        k: 'spend',
        at: spend.at,
        origin: spend.origin,
        amount: spend.amount.toString(),
      })
    }
    lines.push({ k: 'channel', channel: toWire(channel) })
    await this.write(lines, sync)
  }

  /** Flushes to disk everything written so far. */
  flush(): Promise<void> {
    const done = this.writing.then(async () => {
      if (!this.file) throw new TollgateError('tollgate_internal', `${this.path} is closed.`)
      await this.file.datasync()
      this.syncs += 1
    })
    this.writing = done.catch(() => {})
    return done
  }

  /** Appended batches of lines and flushes since the journal was opened. */
  stats(): JournalStats {
    return { writes: this.writes, syncs: this.syncs }
  }

  /** The total counted after `since` (Unix milliseconds), later dates included. */
  spentSince(since: number): bigint {
    const { spends, running } = this
    let low = 0
    let high = spends.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if ((spends[mid]?.at ?? 0) > since) high = mid
      else low = mid + 1
    }
    if (low === spends.length) return 0n
    return (running[running.length - 1] ?? 0n) - (low === 0 ? 0n : (running[low - 1] ?? 0n))
  }

  /**
   * Replaces the file by a snapshot of the state (written to a temporary file, flushed, then
   * renamed over it: a crash leaves one or the other, both complete), after dropping the spends
   * past the horizon.
   */
  private async rewrite(): Promise<void> {
    const since = this.now() - SPEND_HORIZON_MS
    const kept = this.spends.filter((spend) => spend.at > since)
    this.spends.length = 0
    this.running.length = 0
    for (const spend of kept) this.addSpend(spend)
    const text = snapshot(this)
    const temp = `${this.path}.tmp`
    const handle = await open(temp, 'w')
    await handle.writeFile(text.join(''))
    await handle.datasync()
    await handle.close()
    renameSync(temp, this.path)
    await this.file?.close()
    this.file = await open(this.path, 'a')
    this.lineCount = text.length
  }

  /** Adds a spend in date order (a reservation is dated at its expiry, ahead of `exact` transfers). */
  private addSpend(spend: SpendEntry): void {
    const { spends, running } = this
    let index = spends.length
    while (index > 0 && (spends[index - 1]?.at ?? 0) > spend.at) index--
    spends.splice(index, 0, spend)
    running.length = index
    for (let i = index; i < spends.length; i++) {
      running.push((running[i - 1] ?? 0n) + (spends[i]?.amount ?? 0n))
    }
  }

  async close(): Promise<void> {
    await this.writing
    await this.file?.close()
    this.file = undefined
  }

  private write(lines: Line[], sync: boolean): Promise<void> {
    const text = lines.map((line) => `${JSON.stringify(line)}\n`).join('')
    const done = this.writing.then(async () => {
      const file = this.file
      if (!file) throw new TollgateError('tollgate_internal', `${this.path} is closed.`)
      // A line reaches the page cache in one short system call, off the thread pool: a process
      // killed after it keeps it; a flush (below, when `sync`) keeps it across a power cut too.
      const bytes = Buffer.from(text)
      for (let at = 0; at < bytes.length; ) at += writeSync(file.fd, bytes, at)
      this.writes += 1
      if (sync) {
        await file.datasync()
        this.syncs += 1
      }
      this.lineCount += lines.length
      if (this.lineCount > JOURNAL_COMPACT_LINES) await this.rewrite()
    })
    this.writing = done.catch(() => {})
    return done
  }
}

interface Replayed {
  readonly channels: ReadonlyMap<Hex, PayerChannel>
  readonly spends: readonly SpendEntry[]
  readonly originTotals: ReadonlyMap<string, bigint>
}

function replay(lines: readonly string[], path: string, now: number): Replayed {
  const state = {
    channels: new Map<Hex, PayerChannel>(),
    spends: [] as SpendEntry[],
    originTotals: new Map<string, bigint>(),
  }
  for (const [index, text] of lines.entries()) {
    if (text === '') continue
    let line: Line
    try {
      line = JSON.parse(text) as Line
    } catch (cause) {
      // A torn last line (a crash mid-append of an unsynced write) is dropped; anything else is not ours.
      if (index === lines.length - 1 || index === lines.length - 2) continue
      throw new TollgateError('tollgate_invalid_config', `${path} is not a payer journal.`, {
        cause,
      })
    }
    if (line.k === 'channel') state.channels.set(line.channel.channelId, fromWire(line.channel))
    else if (line.k === 'origin') state.originTotals.set(line.origin, BigInt(line.total))
    else {
      const amount = BigInt(line.amount)
      if (line.k === 'spend')
        state.originTotals.set(line.origin, (state.originTotals.get(line.origin) ?? 0n) + amount)
      if (line.at > now - SPEND_HORIZON_MS)
        state.spends.push({ at: line.at, origin: line.origin, amount })
    }
  }
  return state
}

/** The journal's state as the fewest lines: totals per origin, recent spends, channels. */
function snapshot(state: Replayed): string[] {
  const lines: Line[] = [
    ...[...state.originTotals].map(
      ([origin, total]): Line => ({
        k: 'origin',
        origin,
        total: total.toString(),
      }),
    ),
    ...[...state.channels.values()].map(
      (channel): Line => ({
        k: 'channel',
        channel: toWire(channel),
      }),
    ),
    ...state.spends.map(
      (spend): Line => ({
        k: 'window',
        at: spend.at,
        origin: spend.origin,
        amount: spend.amount.toString(),
      }),
    ),
  ]
  return lines.map((line) => `${JSON.stringify(line)}\n`)
}
