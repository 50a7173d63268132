import { createHash } from 'node:crypto'
import type { ConnectionOptions } from 'node:tls'
import { Redis } from 'ioredis'
import type { Hex } from 'viem'
import { type ErrorCode, TollgateError } from '../../errors/index.js'
import type { ChainEvent, ChannelRecord } from '../../ledger/types.js'
import type { ChannelConfig } from '../../protocol/types.js'
import { DEFAULT_STORE_MODE, type StoreMode } from '../constants.js'
import type { ChannelStore, StoreStats } from '../types.js'
import {
  APPLY_SCRIPT,
  CREATE_SCRIPT,
  END_SCRIPT,
  HOLD_SCRIPT,
  MERGE_SCRIPT,
  META_CAS_SCRIPT,
  RESERVE_SCRIPT,
} from './scripts.js'
import type { ChannelState, HoldOutcome, HoldRequest, SharedLedger } from './sharedLedger.js'

/** Keys start with this unless told otherwise, so one Redis can serve other applications too. */
export const DEFAULT_REDIS_KEY_PREFIX = 'tollgate:'

/** A Redis command that has not answered after this long fails (the request gets a 503): 2 s. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2000

/** How to reach the Redis that several tollgate instances share. */
export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  readonly url: string
  /** TLS options (a CA, client certificate); a `rediss://` URL alone uses the system's CAs. */
  readonly tls?: ConnectionOptions | undefined
  /** @default DEFAULT_REDIS_KEY_PREFIX */
  readonly keyPrefix?: string | undefined
  /**
   * `durable` (default): Redis must fsync each write before it answers (AOF with `appendfsync
   * always`), so an acknowledged voucher survives a Redis crash. `relaxed`: AOF with `appendfsync
   * everysec` is enough; a Redis crash may lose the last second of writes.
   */
  readonly mode?: StoreMode | undefined
  /** @default DEFAULT_REDIS_COMMAND_TIMEOUT_MS */
  readonly commandTimeoutMs?: number | undefined
  /**
   * How long a request's or session's hold on a channel lasts unless renewed: how long a channel
   * stays busy after the instance holding it died. @default DEFAULT_HOLD_TTL_MS (the payee's)
   */
  readonly holdTtlMs?: number | undefined
  /**
   * Durability through replicas (`WAIT` after each write) instead of the primary's fsync: not
   * built. Setting it is refused with `tollgate_invalid_config`; use `appendfsync always`.
   */
  readonly waitReplicas?: number | undefined
  /** With {@link waitReplicas}: refused likewise. */
  readonly waitTimeoutMs?: number | undefined
}

/** A Lua script and its SHA-1, run by EVALSHA (loaded again after a Redis restart). */
interface Script {
  readonly lua: string
  readonly sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

const SCRIPTS = {
  hold: script(HOLD_SCRIPT),
  end: script(END_SCRIPT),
  reserve: script(RESERVE_SCRIPT),
  create: script(CREATE_SCRIPT),
  merge: script(MERGE_SCRIPT),
  apply: script(APPLY_SCRIPT),
  metaCas: script(META_CAS_SCRIPT),
} as const

/** The hash fields of a channel's state, in the order the scripts reply them. */
const STATE_FIELDS = ['ch', 'cl', 'fl', 'sg', 'bl', 'tc', 'wr', 'rn', 'sy'] as const

/**
 * A {@link ChannelStore} in Redis that several tollgate instances share: each channel is a hash,
 * and each hold, commit and release is one atomic Lua script on it ({@link SharedLedger}), so that
 * no instance decides from a stale copy. Amounts are decimal strings. Metadata (watcher progress,
 * settlement journal, exact-payment nonces) lives in one hash. Opening checks that Redis persists
 * writes as the mode requires. While Redis is unreachable every call fails at once with
 * `tollgate_store_failed`; the client reconnects by itself.
 *
 * @example
 * const store = await RedisStore.open({ url: 'redis://127.0.0.1:6379' })
 * const tg = await createTollgate({ network: 'base', account, store })
 */
export class RedisStore implements ChannelStore, SharedLedger {
  readonly mode: StoreMode
  readonly holdTtlMs: number | undefined
  /** Holds left by an instance that died expire in Redis; nothing to recover at open. */
  readonly recoveredFromCrash = false
  private readonly counters = { batches: 0, records: 0, failedBatches: 0 }
  private readonly prefix: string
  private readonly metaKey: string
  private closed: Promise<void> | undefined

  private constructor(
    private readonly redis: Redis,
    mode: StoreMode,
    prefix: string,
    holdTtlMs: number | undefined,
  ) {
    this.mode = mode
    this.holdTtlMs = holdTtlMs
    this.prefix = prefix
    this.metaKey = `${prefix}meta`
  }

  /**
   * Connects and checks durability: `durable` needs `appendonly yes` and `appendfsync always`,
   * `relaxed` needs `appendonly yes` and `appendfsync` `always` or `everysec` (read with CONFIG GET).
   *
   * @throws TollgateError `tollgate_invalid_config` on bad options; `tollgate_store_failed` when
   * Redis cannot be reached; `tollgate_store_not_durable` when it does not persist as required.
   */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const { url } = options
    if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `the Redis URL must start with redis:// or rediss://, got ${JSON.stringify(url)}`,
      )
    }
    const mode = options.mode ?? DEFAULT_STORE_MODE
    if (mode !== 'durable' && mode !== 'relaxed') {
      throw new TollgateError(
        'tollgate_invalid_config',
        `store mode must be "durable" or "relaxed", not ${JSON.stringify(mode)}.`,
      )
    }
    const prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX
    if (typeof prefix !== 'string') {
      throw new TollgateError('tollgate_invalid_config', 'the Redis keyPrefix must be a string')
    }
    if (options.waitReplicas !== undefined || options.waitTimeoutMs !== undefined) {
      throw new TollgateError(
        'tollgate_invalid_config',
        'durability through replica WAIT (waitReplicas, waitTimeoutMs) is not supported: run the ' +
          'Redis primary with appendonly yes and appendfsync always, and leave them out.',
      )
    }
    const { holdTtlMs } = options
    if (holdTtlMs !== undefined && !(Number.isInteger(holdTtlMs) && holdTtlMs >= 100)) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `the Redis holdTtlMs must be an integer of at least 100 ms, got ${JSON.stringify(holdTtlMs)}`,
      )
    }
    const redis = new Redis(url, {
      lazyConnect: true,
      // Fail at once while disconnected (a 503), never queue a payment behind a reconnect, and
      // never send a script twice: a lost reply is a hold that expires.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
      ...(options.tls ? { tls: options.tls } : {}),
    })
    // Errors surface on the commands; the client keeps reconnecting meanwhile.
    redis.on('error', () => {})
    try {
      await redis.connect()
    } catch (err) {
      redis.disconnect()
      throw failure(`Cannot reach Redis at ${redactedUrl(url)}.`, err)
    }
    try {
      await checkDurability(redis, mode)
    } catch (err) {
      redis.disconnect()
      throw err instanceof TollgateError ? err : failure('Cannot read the Redis config.', err)
    }
    return new RedisStore(redis, mode, prefix, holdTtlMs)
  }

  get stats(): StoreStats {
    return this.counters
  }

  async hold(request: HoldRequest): Promise<HoldOutcome> {
    const { rule } = request
    const kind = rule.kind === 'exact' ? 'e' : rule.kind === 'credit' ? 'c' : 'r'
    const price = rule.kind === 'refund' ? 0n : rule.price
    const inFlight =
      rule.kind === 'exact'
        ? rule.price
        : rule.kind === 'credit'
          ? (rule.reserve ?? request.maxClaimableAmount)
          : 0n
    const limit = request.payerLimit
    const keys = [
      this.channelKey(request.channelId),
      limit
        ? `${this.prefix}rate:payer:${limit.payer.toLowerCase()}`
        : this.channelKey(request.channelId),
    ]
    const reply = (await this.run(SCRIPTS.hold, keys, [
      request.holder,
      String(request.ttlMs),
      request.maxClaimableAmount.toString(),
      kind,
      price.toString(),
      inFlight.toString(),
      request.signature,
      request.exposureCap.toString(),
      request.extend ? '1' : '0',
      String(limit?.max ?? 0),
      String(limit?.windowMs ?? 0),
    ])) as string[]
    const status = reply[0]
    if (status === 'limited') {
      return { status, retryAfterMs: Math.max(0, Number(reply[1])) }
    }
    if (status === 'held') {
      return {
        status,
        state: stateOf(reply.slice(1, 10)),
        previous: { signedMaxClaimable: BigInt(reply[10] as string), signature: reply[11] as Hex },
      }
    }
    if (status === 'refused') {
      return { status, code: reply[1] as ErrorCode, state: stateOf(reply.slice(2, 11)) }
    }
    return { status: status as 'unknown' | 'busy' | 'lost' }
  }

  async end(channelId: Hex, holder: string, charged: bigint, restore: boolean): Promise<boolean> {
    const reply = await this.run(SCRIPTS.end, this.channelKey(channelId), [
      holder,
      charged.toString(),
      restore ? '1' : '0',
    ])
    if (reply === -1) {
      throw new TollgateError(
        'tollgate_internal',
        `channel ${channelId}: charged ${charged} beyond what was in flight`,
      )
    }
    return reply === 1 || reply === 2
  }

  async reserve(
    channelId: Hex,
    holder: string,
    charged: bigint,
    reserve: bigint,
    ttlMs: number,
  ): Promise<{ chargedCumulativeAmount: bigint; inFlightCumulativeAmount: bigint } | undefined> {
    const reply = await this.run(SCRIPTS.reserve, this.channelKey(channelId), [
      holder,
      charged.toString(),
      reserve.toString(),
      String(ttlMs),
    ])
    if (!Array.isArray(reply)) return undefined
    return {
      chargedCumulativeAmount: BigInt(reply[0] as string),
      inFlightCumulativeAmount: BigInt(reply[1] as string),
    }
  }

  async create(record: ChannelRecord): Promise<void> {
    await this.run(SCRIPTS.create, this.channelKey(record.channelId), recordArgs(record))
  }

  /** Keeps `record` as its channel's: fields only the server moves never go backwards (see MERGE_SCRIPT). */
  async put(record: ChannelRecord): Promise<void> {
    await this.run(SCRIPTS.merge, this.channelKey(record.channelId), recordArgs(record))
  }

  async apply(event: ChainEvent): Promise<ChannelState | undefined> {
    const [a, b] = eventArgs(event)
    const reply = await this.run(SCRIPTS.apply, this.channelKey(event.channelId), [
      event.type,
      a,
      b,
    ])
    return Array.isArray(reply) ? stateOf(reply as string[]) : undefined
  }

  async load(channelId: Hex): Promise<ChannelRecord | undefined> {
    const values = await this.call(() =>
      this.redis.hmget(this.channelKey(channelId), 'cfg', ...STATE_FIELDS),
    )
    return recordOf(channelId, values)
  }

  async existing(channelIds: readonly Hex[]): Promise<Set<Hex>> {
    if (channelIds.length === 0) return new Set()
    const pipeline = this.redis.pipeline()
    for (const id of channelIds) pipeline.exists(this.channelKey(id))
    const replies = (await this.call(() => pipeline.exec())) ?? []
    const found = new Set<Hex>()
    replies.forEach(([err, count], at) => {
      if (err) throw failure('Cannot read a channel from Redis.', err)
      if (count === 1) found.add(channelIds[at] as Hex)
    })
    return found
  }

  async loadAll(): Promise<ChannelRecord[]> {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await this.call(() =>
        this.redis.scan(cursor, 'MATCH', `${escapeGlob(this.prefix)}c:*`, 'COUNT', 1000),
      )
      keys.push(...found)
      cursor = next
    } while (cursor !== '0')
    keys.sort()
    const records: ChannelRecord[] = []
    for (let i = 0; i < keys.length; i += 1000) {
      const slice = keys.slice(i, i + 1000)
      const pipeline = this.redis.pipeline()
      for (const key of slice) pipeline.hmget(key, 'cfg', ...STATE_FIELDS)
      const replies = (await this.call(() => pipeline.exec())) ?? []
      replies.forEach(([err, values], at) => {
        if (err) throw failure('Cannot read a channel from Redis.', err)
        const id = (slice[at] as string).slice(this.prefix.length + 2) as Hex
        const record = recordOf(id, values as (string | null)[])
        if (record) records.push(record)
      })
    }
    return records
  }

  /** The ioredis client, for what else the instances share through it (the rate limits). */
  get client(): Redis {
    return this.redis
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (await this.call(() => this.redis.hget(this.metaKey, key))) ?? undefined
  }

  async putMeta(key: string, value: string): Promise<void> {
    await this.call(() => this.redis.hset(this.metaKey, key, value))
  }

  async deleteMeta(key: string): Promise<void> {
    await this.call(() => this.redis.hdel(this.metaKey, key))
  }

  /**
   * Sets a metadata value only if it is `expected` now (`undefined`: absent; `next` undefined
   * deletes it), in one atomic script: how settlers on several instances share one lease.
   */
  async compareAndSetMeta(
    key: string,
    expected: string | undefined,
    next: string | undefined,
  ): Promise<boolean> {
    const reply = await this.run(SCRIPTS.metaCas, this.metaKey, [
      key,
      expected === undefined ? '0' : '1',
      expected ?? '',
      next === undefined ? '0' : '1',
      next ?? '',
    ])
    return reply === 1
  }

  async listMeta(prefix: string): Promise<[key: string, value: string][]> {
    const all = await this.call(() => this.redis.hgetall(this.metaKey))
    return Object.entries(all)
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  }

  /** Every write is acknowledged once Redis has it (on disk in durable mode): nothing waits. */
  async flush(): Promise<void> {}

  /** Closes the connection. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.redis.quit().then(
      () => {},
      () => this.redis.disconnect(),
    )
    return this.closed
  }

  /** The same as {@link close}: Redis keeps no clean-close mark (holds expire by themselves). */
  closeAsFound(): Promise<void> {
    return this.close()
  }

  private channelKey(channelId: Hex): string {
    return `${this.prefix}c:${channelId.toLowerCase()}`
  }

  /** One round trip: EVALSHA, or EVAL when Redis lost its script cache (a restart). */
  private async run(s: Script, key: string | readonly string[], args: string[]): Promise<unknown> {
    const keys = typeof key === 'string' ? [key] : key
    const reply = await this.call(async () => {
      try {
        return await this.redis.evalsha(s.sha, keys.length, ...keys, ...args)
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
        return await this.redis.eval(s.lua, keys.length, ...keys, ...args)
      }
    })
    return reply
  }

  private async call<T>(command: () => Promise<T>): Promise<T> {
    if (this.closed) throw new TollgateError('tollgate_store_failed', 'The store is closed.')
    try {
      const result = await command()
      this.counters.batches++
      this.counters.records++
      return result
    } catch (err) {
      this.counters.failedBatches++
      if (err instanceof TollgateError) throw err
      throw failure('Redis did not answer.', err)
    }
  }
}

/**
 * Refuses a Redis that would lose acknowledged writes in this mode.
 *
 * @throws TollgateError `tollgate_store_not_durable`.
 */
async function checkDurability(redis: Redis, mode: StoreMode): Promise<void> {
  const read = async (name: string) => {
    const reply = (await redis.config('GET', name)) as string[]
    return reply[1]
  }
  const appendonly = await read('appendonly')
  const appendfsync = await read('appendfsync')
  const ok =
    appendonly === 'yes' &&
    (appendfsync === 'always' || (mode === 'relaxed' && appendfsync === 'everysec'))
  if (ok) return
  throw new TollgateError(
    'tollgate_store_not_durable',
    `Redis has appendonly ${appendonly} and appendfsync ${appendfsync}; the ${mode} mode needs ` +
      `appendonly yes and appendfsync ${mode === 'durable' ? 'always' : 'always or everysec'} ` +
      '(CONFIG SET appendonly yes, CONFIG SET appendfsync always, CONFIG REWRITE).',
  )
}

function failure(message: string, cause: unknown): TollgateError {
  const detail = cause instanceof Error ? `${message} ${cause.message}` : message
  return new TollgateError('tollgate_store_failed', detail, { cause })
}

function redactedUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

function stateOf(values: readonly string[]): ChannelState {
  const [ch, cl, fl, sg, bl, tc, wr, rn, sy] = values as string[]
  return {
    chargedCumulativeAmount: BigInt(ch as string),
    signedMaxClaimable: BigInt(cl as string),
    inFlightCumulativeAmount: BigInt(fl as string),
    signature: sg as Hex,
    balance: BigInt(bl as string),
    totalClaimed: BigInt(tc as string),
    withdrawRequestedAt: Number(wr),
    refundNonce: BigInt(rn as string),
    syncedAt: Number(sy),
  }
}

function recordOf(channelId: Hex, values: readonly (string | null)[]): ChannelRecord | undefined {
  const [cfg, ...state] = values
  if (cfg === null || cfg === undefined) return undefined
  return { channelId, config: JSON.parse(cfg) as ChannelConfig, ...stateOf(state as string[]) }
}

function recordArgs(record: ChannelRecord): string[] {
  return [
    JSON.stringify(record.config),
    record.chargedCumulativeAmount.toString(),
    record.signedMaxClaimable.toString(),
    record.inFlightCumulativeAmount.toString(),
    record.signature,
    record.balance.toString(),
    record.totalClaimed.toString(),
    String(record.withdrawRequestedAt),
    record.refundNonce.toString(),
    String(record.syncedAt),
  ]
}

function eventArgs(event: ChainEvent): [string, string] {
  switch (event.type) {
    case 'deposited':
    case 'withdrawFinalized':
      return [event.balance.toString(), '']
    case 'claimed':
      return [event.totalClaimed.toString(), '']
    case 'refunded':
      return [event.balance.toString(), event.refundNonce.toString()]
    case 'withdrawInitiated':
      return [String(event.initiatedAt), '']
    case 'withdrawSeen':
    case 'withdrawDropped':
      return [String(event.finalizeAfter), '']
  }
}
