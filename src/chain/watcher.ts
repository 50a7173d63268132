import { type Address, getAbiItem, type Hex, isAddress, type PublicClient } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { ChainEvent } from '../ledger/index.js'
import { BatchSettlement } from './contracts.generated.js'
import { decodeBatchClaimed } from './decodeBatchClaimed.js'

/**
 * Blocks an event must be buried under before it is applied: a reorg shallower than this
 * cannot make the mirror show money that is not there. Base reorgs are rare and shallow.
 */
export const DEFAULT_CONFIRMATIONS = 2

/** Time between polls when all is well: about one Base block. */
export const DEFAULT_POLL_INTERVAL_MS = 2_000

/** Most blocks asked of one `eth_getLogs` call; many hosted nodes refuse wider ranges. */
export const DEFAULT_MAX_BLOCK_RANGE = 2_000

/** Longest wait between two polls after repeated failures (the backoff doubles up to this). */
export const DEFAULT_MAX_BACKOFF_MS = 60_000

/** The meta key under which the last fully processed block is stored (a decimal string). */
export const DEFAULT_WATCHER_META_KEY = 'chain.watcher.lastProcessedBlock'

const abi = BatchSettlement.abi

/** The escrow events the ledger mirrors, in one `eth_getLogs` filter. */
const ESCROW_EVENTS = [
  getAbiItem({ abi, name: 'Deposited' }),
  getAbiItem({ abi, name: 'Claimed' }),
  getAbiItem({ abi, name: 'BatchClaimed' }),
  getAbiItem({ abi, name: 'Refunded' }),
  getAbiItem({ abi, name: 'WithdrawInitiated' }),
  getAbiItem({ abi, name: 'WithdrawFinalized' }),
] as const

const WITHDRAW_INITIATED = getAbiItem({ abi, name: 'WithdrawInitiated' })

/** Where an applied event came from on chain. */
export interface ChainEventSource {
  readonly blockNumber: bigint
  readonly transactionHash: Hex
  readonly logIndex: number
}

/**
 * What the watcher feeds: the payee (or a bare ledger). Only channels it knows are applied;
 * the others are not this server's concern. `apply` may be called again with an event it has
 * seen (after a restart, or by another instance watching too): events carry absolute values, so
 * that is harmless.
 */
export interface ChainEventSink {
  apply(event: ChainEvent, source: ChainEventSource): unknown
  isKnown(channelId: Hex): boolean
  /**
   * The withdrawals the sink holds as pending. After a restart the watcher checks each against
   * the chain once: one seen before confirmation and reorged out while the server was down is
   * dropped (the channel takes vouchers again). Without it, such a channel waits for a sync.
   */
  pendingWithdrawals?(): Iterable<{ readonly channelId: Hex; readonly finalizeAfter: number }>
  /**
   * Of `channelIds`, those known to a store several instances share (a channel another instance
   * opened counts): asked once per range of blocks, before {@link isKnown}.
   */
  knownOf?(channelIds: readonly Hex[]): Promise<ReadonlySet<Hex>>
}

/** Where the watcher keeps its progress; the channel store satisfies it. */
export interface WatcherMeta {
  getMeta(key: string): Promise<string | undefined>
  putMeta(key: string, value: string): Promise<void>
}

/**
 * What the watcher reads through: logs, the block number, state at past blocks (through
 * Multicall3) and block timestamps. A viem `PublicClient` of any chain has it; `getBlock` is
 * narrowed to the timestamp read, since the block types of chains with their own transaction
 * types (the OP stack's deposits on Base) differ.
 */
export type ChainWatcherClient = Pick<
  PublicClient,
  'chain' | 'getBlockNumber' | 'getLogs' | 'multicall'
> & {
  getBlock(parameters: { blockNumber: bigint }): Promise<{ timestamp: bigint }>
}

export interface ChainWatcherOptions {
  /** Reads logs, the block number, and state at past blocks (through Multicall3). */
  client: ChainWatcherClient
  /** The escrow contract. */
  escrow: Address
  sink: ChainEventSink
  /** Progress store: the last fully processed block is kept under {@link metaKey}. */
  meta: WatcherMeta
  /** @default DEFAULT_WATCHER_META_KEY */
  metaKey?: string
  /** Blocks mined on top of an event's block before it is applied; 0 applies at once (development). @default DEFAULT_CONFIRMATIONS */
  confirmations?: number
  /** @default DEFAULT_POLL_INTERVAL_MS */
  pollIntervalMs?: number
  /** Upper bound of the backoff after failed polls. @default DEFAULT_MAX_BACKOFF_MS */
  maxBackoffMs?: number
  /** Where to start when nothing is stored under {@link metaKey}; a stored block always wins. @default 'latest' (the head at the first poll) */
  fromBlock?: bigint | 'latest'
  /** @default DEFAULT_MAX_BLOCK_RANGE */
  maxBlockRange?: number
  /** Multicall3 for the reads at past blocks. @default client.chain.contracts.multicall3 */
  multicallAddress?: Address
  /**
   * A withdrawal started on a known channel: its vouchers must be claimed before
   * `finalizeAfter` (unix seconds). Called on first sight, before confirmations (a false alarm
   * from a reorg only makes settlement claim early), at least once per withdrawal (again after
   * a restart). Errors it throws or rejects with go to {@link onError}.
   */
  onWithdrawInitiated?: (channelId: Hex, finalizeAfter: number) => unknown
  /** A poll failed (RPC down, store down); it is retried with backoff. @default ignore (see {@link ChainWatcher.status}) */
  onError?: (err: unknown) => void
  /** Unix milliseconds. @default Date.now */
  now?: () => number
}

/** A withdrawal seen before its confirmation, until its event is confirmed or reorged out. */
interface Alerted {
  readonly channelId: Hex
  readonly finalizeAfter: number
  readonly blockNumber: bigint
}

/** A read-only view of the watcher's progress, for health checks and metrics. */
export interface ChainWatcherStatus {
  readonly running: boolean
  /** Every event up to this block is applied; `undefined` before the first block. */
  readonly lastProcessedBlock: bigint | undefined
  /** The node's block number at the last poll. */
  readonly headSeen: bigint | undefined
  /** `headSeen - lastProcessedBlock`: at least {@link ChainWatcherOptions.confirmations} when idle; negative if the node is behind the stored block. */
  readonly lag: bigint | undefined
  /** Failed polls since construction. */
  readonly failures: number
  /** Failed polls since the last success (drives the backoff). */
  readonly consecutiveFailures: number
  readonly lastError: unknown
  /** When the last poll succeeded (unix milliseconds). */
  readonly lastSuccessAt: number | undefined
}

/** What one poll did. */
export interface PollResult {
  readonly head: bigint
  /** Last block processed after this poll; `undefined` while none is confirmed yet. */
  readonly lastProcessedBlock: bigint | undefined
  /** Events handed to the sink. */
  readonly applied: number
}

export interface ChainWatcher {
  /** Polls at once, then every `pollIntervalMs` (backing off after failures). Idempotent. The timer does not keep the process alive. */
  start(): void
  /** Stops polling and waits for a poll in flight. Idempotent. */
  stop(): Promise<void>
  /**
   * One poll up to the confirmed head, serialized with the timer's polls. Rejects when it
   * fails (nothing after the last stored block is lost; the next poll resumes there).
   */
  pollOnce(): Promise<PollResult>
  readonly status: ChainWatcherStatus
}

/**
 * Mirrors the escrow's events into the ledger by polling `eth_getLogs` over
 * `[next, head - confirmations]` in chunks of `maxBlockRange`, and stores the last fully
 * processed block after each chunk, so a restart resumes there (an interrupted chunk is
 * replayed, harmlessly: events are absolute).
 *
 * Event → {@link ChainEvent}: `Deposited` → `deposited` (newBalance); `Claimed` and each
 * `BatchClaimed` row → `claimed` (newTotalClaimed); `Refunded` → `refunded` and
 * `WithdrawFinalized` → `withdrawFinalized`, with `channels(id).balance` and
 * `refundNonce(id)` read at the event's block (one Multicall3 call per block); and
 * `WithdrawInitiated` → `withdrawInitiated` whose `initiatedAt` is the event block's timestamp,
 * which is exactly what the escrow stores (`initiatedAt = block.timestamp`) and needs no state
 * read. Values read at a block are that block's final state: within one block the mirror may
 * pass through an intermediate value, but it is exact at every block boundary.
 *
 * @throws TollgateError `tollgate_invalid_config` on invalid options
 *
 * @example
 * const watcher = createChainWatcher({ client, escrow, sink: payee, meta: store,
 *   onWithdrawInitiated: (id, deadline) => settlement.claimBefore(id, deadline) })
 * watcher.start()
 * // ...
 * await watcher.stop()
 */
export function createChainWatcher(options: ChainWatcherOptions): ChainWatcher {
  return new Watcher(validate(options))
}

type Resolved = Required<Omit<ChainWatcherOptions, 'onWithdrawInitiated'>> &
  Pick<ChainWatcherOptions, 'onWithdrawInitiated'>

function validate(options: ChainWatcherOptions): Resolved {
  const fail = (details: string): never => {
    throw new TollgateError('tollgate_invalid_config', `chain watcher: ${details}`)
  }
  if (!options || typeof options !== 'object') fail('options are required')
  const { client, escrow, sink, meta } = options
  if (typeof client?.getLogs !== 'function' || typeof client.multicall !== 'function') {
    fail('client must be a viem PublicClient')
  }
  if (typeof escrow !== 'string' || !isAddress(escrow, { strict: false }))
    fail(`escrow "${escrow}" is not an address`)
  if (typeof sink?.apply !== 'function' || typeof sink.isKnown !== 'function') {
    fail('sink needs apply(event) and isKnown(channelId)')
  }
  if (typeof meta?.getMeta !== 'function' || typeof meta.putMeta !== 'function') {
    fail('meta needs getMeta(key) and putMeta(key, value)')
  }
  const integer = (name: string, value: number, min: number) => {
    if (!Number.isSafeInteger(value) || value < min)
      fail(`${name} must be an integer >= ${min}, not ${value}`)
    return value
  }
  const confirmations = integer('confirmations', options.confirmations ?? DEFAULT_CONFIRMATIONS, 0)
  const pollIntervalMs = integer(
    'pollIntervalMs',
    options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    1,
  )
  const maxBackoffMs = integer(
    'maxBackoffMs',
    options.maxBackoffMs ?? Math.max(DEFAULT_MAX_BACKOFF_MS, pollIntervalMs),
    pollIntervalMs,
  )
  const maxBlockRange = integer(
    'maxBlockRange',
    options.maxBlockRange ?? DEFAULT_MAX_BLOCK_RANGE,
    1,
  )
  const fromBlock = options.fromBlock ?? 'latest'
  if (fromBlock !== 'latest' && !(typeof fromBlock === 'bigint' && fromBlock >= 0n)) {
    fail(`fromBlock must be 'latest' or a block number >= 0n, not ${String(fromBlock)}`)
  }
  const metaKey = options.metaKey ?? DEFAULT_WATCHER_META_KEY
  if (typeof metaKey !== 'string' || metaKey === '') fail('metaKey must be a non-empty string')
  const multicallAddress = options.multicallAddress ?? client.chain?.contracts?.multicall3?.address
  if (!multicallAddress || !isAddress(multicallAddress, { strict: false })) {
    fail('no Multicall3: give multicallAddress or a client whose chain has contracts.multicall3')
  }
  for (const name of ['onWithdrawInitiated', 'onError', 'now'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function')
      fail(`${name} must be a function`)
  }
  return {
    client,
    escrow,
    sink,
    meta,
    metaKey,
    confirmations,
    pollIntervalMs,
    maxBackoffMs,
    fromBlock,
    maxBlockRange,
    multicallAddress: multicallAddress as Address,
    onWithdrawInitiated: options.onWithdrawInitiated,
    onError: options.onError ?? (() => {}),
    now: options.now ?? Date.now,
  }
}

/** A decoded event of a known channel, before the reads it needs. */
type Step =
  | { kind: 'ready'; event: ChainEvent; source: ChainEventSource }
  | {
      kind: 'balanceAt'
      type: 'refunded' | 'withdrawFinalized'
      channelId: Hex
      source: ChainEventSource
    }
  | {
      kind: 'withdraw'
      channelId: Hex
      finalizeAfter: number
      source: ChainEventSource
      blockTimestamp?: bigint
    }

interface ChannelAt {
  balance: bigint
  refundNonce: bigint
}

class Watcher implements ChainWatcher {
  private readonly o: Resolved
  /** The first block not yet processed; resolved at the first poll. */
  private next: bigint | undefined
  private headSeen: bigint | undefined
  private failures = 0
  private consecutiveFailures = 0
  private lastError: unknown
  private lastSuccessAt: number | undefined
  private running = false
  private timer: NodeJS.Timeout | undefined
  private inFlight: Promise<unknown> = Promise.resolve()
  /** Set by stop(): a long catch-up ends after the chunk in progress. */
  private stopping = false
  /** Withdrawals already seen before confirmation, keyed `channelId:finalizeAfter`. */
  private readonly alerted = new Map<string, Alerted>()
  /** Whether the sink's pending withdrawals were checked against the chain since construction. */
  private withdrawalsChecked = false

  constructor(options: Resolved) {
    this.o = options
  }

  get status(): ChainWatcherStatus {
    const last = this.lastProcessed()
    return {
      running: this.running,
      lastProcessedBlock: last,
      headSeen: this.headSeen,
      lag: last !== undefined && this.headSeen !== undefined ? this.headSeen - last : undefined,
      failures: this.failures,
      consecutiveFailures: this.consecutiveFailures,
      lastError: this.lastError,
      lastSuccessAt: this.lastSuccessAt,
    }
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.schedule(0)
  }

  async stop(): Promise<void> {
    this.running = false
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.stopping = true
    try {
      await this.inFlight
    } finally {
      this.stopping = false
    }
  }

  pollOnce(): Promise<PollResult> {
    const run = this.inFlight.then(() => this.poll())
    this.inFlight = run.catch(() => {})
    return run
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.tick(), delayMs)
    this.timer.unref()
  }

  private async tick(): Promise<void> {
    this.timer = undefined
    if (!this.running) return
    try {
      await this.pollOnce()
    } catch (err) {
      this.report(err)
    }
    if (!this.running || this.timer) return
    const { pollIntervalMs, maxBackoffMs } = this.o
    const backoff = pollIntervalMs * 2 ** Math.min(this.consecutiveFailures, 30)
    this.schedule(this.consecutiveFailures === 0 ? pollIntervalMs : Math.min(backoff, maxBackoffMs))
  }

  private report(err: unknown): void {
    try {
      this.o.onError(err)
    } catch {
      // A failing error handler must not stop the watcher.
    }
  }

  private lastProcessed(): bigint | undefined {
    return this.next === undefined || this.next === 0n ? undefined : this.next - 1n
  }

  private async poll(): Promise<PollResult> {
    try {
      const result = await this.catchUp()
      this.consecutiveFailures = 0
      this.lastSuccessAt = this.o.now()
      return result
    } catch (err) {
      this.failures++
      this.consecutiveFailures++
      this.lastError = err
      throw err
    }
  }

  private async catchUp(): Promise<PollResult> {
    const { client, confirmations, maxBlockRange } = this.o
    const head = await rpc('eth_blockNumber', () => client.getBlockNumber({ cacheTime: 0 }))
    this.headSeen = head
    let next = this.next ?? (await this.resolveStart(head))
    const target = head - BigInt(confirmations)

    // Withdrawals first, and before confirmation: they come with a deadline.
    const tailFrom = next > target ? next : target + 1n
    if (tailFrom <= head) await this.alertTail(tailFrom, head)

    let applied = 0
    while (next <= target && !this.stopping) {
      const span = BigInt(maxBlockRange) - 1n
      const to = next + span < target ? next + span : target
      applied += await this.processRange(next, to)
      this.dropReorged(to)
      await this.o.meta.putMeta(this.o.metaKey, to.toString())
      next = to + 1n
      this.next = next
    }
    if (!this.withdrawalsChecked && next > target) await this.dropVanishedWithdrawals()
    this.pruneAlerted()
    return { head, lastProcessedBlock: this.lastProcessed(), applied }
  }

  /** The first block to process: after the stored one, else `fromBlock` (stored at once, so a restart before its confirmation does not move it). */
  private async resolveStart(head: bigint): Promise<bigint> {
    const { meta, metaKey, fromBlock } = this.o
    const stored = await meta.getMeta(metaKey)
    if (stored !== undefined) {
      if (!/^\d+$/.test(stored)) {
        throw new TollgateError(
          'tollgate_invalid_config',
          `chain watcher: stored ${metaKey} "${stored}" is not a block number`,
        )
      }
      this.next = BigInt(stored) + 1n
      return this.next
    }
    const start = fromBlock === 'latest' ? head : fromBlock
    if (start > 0n) await meta.putMeta(metaKey, (start - 1n).toString())
    this.next = start
    return start
  }

  private async alertTail(fromBlock: bigint, toBlock: bigint): Promise<void> {
    const { client, escrow, sink } = this.o
    const logs = await rpc('eth_getLogs', () =>
      client.getLogs({
        address: escrow,
        event: WITHDRAW_INITIATED,
        fromBlock,
        toBlock,
        strict: true,
      }),
    )
    const known = await this.knownIn(logs.map((log) => log.args.channelId))
    for (const log of logs) {
      const { channelId, finalizeAfter } = log.args
      if (!known(channelId)) continue
      const key = `${channelId}:${finalizeAfter}`
      if (this.alerted.has(key)) continue
      this.alerted.set(key, { channelId, finalizeAfter, blockNumber: log.blockNumber })
      // The channel stops taking vouchers now, not once the event is confirmed.
      sink.apply(
        { type: 'withdrawSeen', channelId, finalizeAfter },
        {
          blockNumber: log.blockNumber,
          transactionHash: log.transactionHash,
          logIndex: log.logIndex,
        },
      )
      this.alert(channelId, finalizeAfter)
    }
  }

  /**
   * Withdrawals seen before confirmation whose block is now confirmed without their event were
   * reorged out: the channel takes vouchers again.
   */
  private dropReorged(confirmedTo: bigint): void {
    for (const [key, seen] of this.alerted) {
      if (seen.blockNumber > confirmedTo) continue
      this.alerted.delete(key)
      this.o.sink.apply(
        { type: 'withdrawDropped', channelId: seen.channelId, finalizeAfter: seen.finalizeAfter },
        { blockNumber: confirmedTo, transactionHash: '0x', logIndex: -1 },
      )
    }
  }

  /**
   * Once, when first caught up: a withdrawal the sink holds as pending that is neither in the
   * unconfirmed tail nor pending on chain was seen before confirmation and reorged out before a
   * restart (the watcher's memory of it is gone): the channel takes vouchers again. One whose
   * deadline passed may have been finalized in the tail: it stays, for the confirmed events.
   */
  private async dropVanishedWithdrawals(): Promise<void> {
    const { sink, client, escrow, multicallAddress } = this.o
    const nowSeconds = Math.floor(this.o.now() / 1000)
    const suspects = [...(sink.pendingWithdrawals?.() ?? [])].filter(
      (w) => w.finalizeAfter > nowSeconds && !this.alerted.has(`${w.channelId}:${w.finalizeAfter}`),
    )
    if (suspects.length > 0) {
      const head = this.headSeen ?? 0n
      const contracts = suspects.map(
        (w) =>
          ({
            address: escrow,
            abi,
            functionName: 'pendingWithdrawals',
            args: [w.channelId],
          }) as const,
      )
      const pending = await rpc('eth_call', () =>
        client.multicall({ contracts, allowFailure: false, blockNumber: head, multicallAddress }),
      )
      suspects.forEach((w, i) => {
        if ((pending[i]?.[1] ?? 0) !== 0) return
        sink.apply(
          { type: 'withdrawDropped', channelId: w.channelId, finalizeAfter: w.finalizeAfter },
          { blockNumber: head, transactionHash: '0x', logIndex: -1 },
        )
      })
    }
    this.withdrawalsChecked = true
  }

  private alert(channelId: Hex, finalizeAfter: number): void {
    const callback = this.o.onWithdrawInitiated
    if (!callback) return
    try {
      const result = callback(channelId, finalizeAfter)
      if (result instanceof Promise) result.catch((err) => this.report(err))
    } catch (err) {
      this.report(err)
    }
  }

  /** Forgets alerts of withdrawals whose deadline passed (reorged out, never confirmed). */
  private pruneAlerted(): void {
    const nowSeconds = Math.floor(this.o.now() / 1000)
    for (const [key, { finalizeAfter }] of this.alerted) {
      if (finalizeAfter < nowSeconds) this.alerted.delete(key)
    }
  }

  /** Applies every event of known channels in `[fromBlock, toBlock]`, in chain order. */
  private async processRange(fromBlock: bigint, toBlock: bigint): Promise<number> {
    const { client, escrow, sink } = this.o
    const logs = await rpc('eth_getLogs', () =>
      client.getLogs({ address: escrow, events: ESCROW_EVENTS, fromBlock, toBlock, strict: true }),
    )
    const known = await this.knownIn(
      logs.flatMap((log) =>
        log.eventName === 'BatchClaimed'
          ? decodeBatchClaimed(log.args.claims).map((claim) => claim.channelId)
          : [log.args.channelId],
      ),
    )
    const steps: Step[] = []
    for (const log of logs) {
      if (log.removed) continue
      const source: ChainEventSource = {
        blockNumber: log.blockNumber,
        transactionHash: log.transactionHash,
        logIndex: log.logIndex,
      }
      switch (log.eventName) {
        case 'Deposited': {
          const { channelId, newBalance } = log.args
          if (known(channelId))
            steps.push({
              kind: 'ready',
              event: { type: 'deposited', channelId, balance: newBalance },
              source,
            })
          break
        }
        case 'Claimed': {
          const { channelId, newTotalClaimed } = log.args
          if (known(channelId)) {
            const event: ChainEvent = { type: 'claimed', channelId, totalClaimed: newTotalClaimed }
            steps.push({ kind: 'ready', event, source })
          }
          break
        }
        case 'BatchClaimed':
          for (const { channelId, totalClaimed } of decodeBatchClaimed(log.args.claims)) {
            if (known(channelId))
              steps.push({
                kind: 'ready',
                event: { type: 'claimed', channelId, totalClaimed },
                source,
              })
          }
          break
        case 'Refunded':
        case 'WithdrawFinalized': {
          const { channelId } = log.args
          const type = log.eventName === 'Refunded' ? 'refunded' : 'withdrawFinalized'
          if (known(channelId)) steps.push({ kind: 'balanceAt', type, channelId, source })
          break
        }
        case 'WithdrawInitiated': {
          const { channelId, finalizeAfter } = log.args
          if (known(channelId)) {
            const step: Step = { kind: 'withdraw', channelId, finalizeAfter, source }
            if (typeof log.blockTimestamp === 'bigint') step.blockTimestamp = log.blockTimestamp
            steps.push(step)
          }
          break
        }
      }
    }
    const states = await this.readChannelsAt(steps)
    const timestamps = await this.readTimestamps(steps)

    for (const step of steps) {
      if (step.kind === 'ready') {
        sink.apply(step.event, step.source)
      } else if (step.kind === 'balanceAt') {
        const state = states.get(stateKey(step.source.blockNumber, step.channelId))
        if (!state) throw new TollgateError('tollgate_internal', 'channel state read is missing')
        const event: ChainEvent =
          step.type === 'refunded'
            ? {
                type: 'refunded',
                channelId: step.channelId,
                balance: state.balance,
                refundNonce: state.refundNonce,
              }
            : { type: 'withdrawFinalized', channelId: step.channelId, balance: state.balance }
        sink.apply(event, step.source)
      } else {
        const timestamp = step.blockTimestamp ?? timestamps.get(step.source.blockNumber)
        if (timestamp === undefined)
          throw new TollgateError('tollgate_internal', 'block timestamp read is missing')
        const initiatedAt = Number(timestamp)
        sink.apply(
          { type: 'withdrawInitiated', channelId: step.channelId, initiatedAt },
          step.source,
        )
        const key = `${step.channelId}:${step.finalizeAfter}`
        if (this.alerted.has(key)) this.alerted.delete(key)
        else this.alert(step.channelId, step.finalizeAfter)
      }
    }
    return steps.length
  }

  /** Whether a channel is the sink's: known locally, or to the store it shares (one question per batch of logs). */
  private async knownIn(channelIds: readonly Hex[]): Promise<(channelId: Hex) => boolean> {
    const { sink } = this.o
    const unknown = [...new Set(channelIds)].filter((id) => !sink.isKnown(id))
    if (!sink.knownOf || unknown.length === 0) return (id) => sink.isKnown(id)
    const shared = await sink.knownOf(unknown)
    return (id) => sink.isKnown(id) || shared.has(id)
  }

  /** `channels(id)` and `refundNonce(id)` at each block with a refund or finalized withdrawal: one Multicall3 call per block. */
  private async readChannelsAt(steps: readonly Step[]): Promise<Map<string, ChannelAt>> {
    const byBlock = new Map<bigint, Set<Hex>>()
    for (const step of steps) {
      if (step.kind !== 'balanceAt') continue
      const ids = byBlock.get(step.source.blockNumber) ?? new Set<Hex>()
      ids.add(step.channelId)
      byBlock.set(step.source.blockNumber, ids)
    }
    const { client, escrow, multicallAddress } = this.o
    const out = new Map<string, ChannelAt>()
    for (const [blockNumber, idSet] of byBlock) {
      const ids = [...idSet]
      const contracts = ids.flatMap((id) => [
        { address: escrow, abi, functionName: 'channels', args: [id] } as const,
        { address: escrow, abi, functionName: 'refundNonce', args: [id] } as const,
      ])
      const results = await rpc('eth_call', () =>
        client.multicall({ contracts, allowFailure: false, blockNumber, multicallAddress }),
      )
      ids.forEach((id, i) => {
        const channel = results[2 * i] as readonly [bigint, bigint]
        const refundNonce = results[2 * i + 1] as bigint
        out.set(stateKey(blockNumber, id), { balance: channel[0], refundNonce })
      })
    }
    return out
  }

  /** Timestamps of blocks with a withdrawal whose log did not carry one. */
  private async readTimestamps(steps: readonly Step[]): Promise<Map<bigint, bigint>> {
    const out = new Map<bigint, bigint>()
    for (const step of steps) {
      if (step.kind !== 'withdraw' || step.blockTimestamp !== undefined) continue
      const blockNumber = step.source.blockNumber
      if (out.has(blockNumber)) continue
      const block = await rpc('eth_getBlockByNumber', () => this.o.client.getBlock({ blockNumber }))
      out.set(blockNumber, block.timestamp)
    }
    return out
  }
}

function stateKey(blockNumber: bigint, channelId: Hex): string {
  return `${blockNumber}:${channelId}`
}

/** Runs one RPC call; its failure becomes `tollgate_chain_unavailable` with the cause kept. */
async function rpc<T>(method: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    const reason =
      err instanceof Error
        ? ((err as { shortMessage?: string }).shortMessage ?? err.message)
        : String(err)
    throw new TollgateError('tollgate_chain_unavailable', `${method} failed: ${reason}`, {
      cause: err,
    })
  }
}
