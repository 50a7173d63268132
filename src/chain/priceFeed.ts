import { type Address, isAddress, type PublicClient, parseAbi } from 'viem'
import { accept, type Result, reject, TollgateError } from '../errors/index.js'
import type { TokenRate } from '../payee/index.js'

/**
 * The read side of Chainlink's `AggregatorV3Interface` that tollgate calls (Chainlink
 * `contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol`).
 */
export const AGGREGATOR_V3_ABI = parseAbi([
  'function decimals() view returns (uint8)',
  'function latestRoundData() view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)',
])

/** A feed's `latestRoundData()`, as it answered. */
export interface FeedRound {
  readonly roundId: bigint
  readonly answer: bigint
  readonly startedAt: bigint
  readonly updatedAt: bigint
  readonly answeredInRound: bigint
}

/** A round that passed the checks: dollars per whole token, and when the feed last updated it. */
export interface FeedRate extends TokenRate {
  readonly roundId: bigint
  /** Seconds since the epoch. */
  readonly updatedAt: number
}

/** What makes a round usable. */
export interface FeedGuard {
  /** The oldest `updatedAt` accepted, in seconds before now (the feed's heartbeat plus a margin). */
  readonly maxAgeSeconds: number
  /**
   * The smallest answer accepted, in the feed's units (a USDC / USD feed with 8 decimals:
   * `99_000_000n` refuses below $0.99): a peg guard for a dollar stablecoin. Unset: no floor.
   */
  readonly minAnswer?: bigint | undefined
}

/**
 * Checks a round (pure): an answer that is not positive, a round never updated
 * (`updatedAt` 0) or answered in an earlier round (`answeredInRound < roundId`) is incomplete,
 * one updated more than `maxAgeSeconds` before `nowSeconds` is stale: both
 * `tollgate_price_stale`; an answer below `minAnswer` is `tollgate_price_below_peg`.
 *
 * @returns The rate, or the rejection that refuses payment while the round is the latest.
 */
export function checkRound(
  round: FeedRound,
  decimals: number,
  guard: FeedGuard,
  nowSeconds: number,
): Result<FeedRate> {
  const { roundId, answer, updatedAt, answeredInRound } = round
  if (answer <= 0n) return reject('tollgate_price_stale', `Round ${roundId} answers ${answer}.`)
  if (updatedAt === 0n || answeredInRound < roundId) {
    return reject(
      'tollgate_price_stale',
      `Round ${roundId} is incomplete (updatedAt ${updatedAt}, answeredInRound ${answeredInRound}).`,
    )
  }
  const age = BigInt(Math.floor(nowSeconds)) - updatedAt
  if (age > BigInt(guard.maxAgeSeconds)) {
    return reject(
      'tollgate_price_stale',
      `Round ${roundId} was updated ${age} s ago; at most ${guard.maxAgeSeconds} s is accepted.`,
    )
  }
  if (guard.minAnswer !== undefined && answer < guard.minAnswer) {
    return reject(
      'tollgate_price_below_peg',
      `The feed answers ${answer} (${decimals} decimals); at least ${guard.minAnswer} is accepted.`,
    )
  }
  return accept({ answer, decimals, roundId, updatedAt: Number(updatedAt) })
}

/** What a price feed is read through: a viem `PublicClient` of any chain has it. */
export type PriceFeedClient = Pick<PublicClient, 'readContract'>

/** Options of {@link watchPriceFeed}. */
export interface PriceFeedOptions extends FeedGuard {
  readonly client: PriceFeedClient
  /** The `AggregatorV3Interface` feed: dollars per whole token (e.g. Chainlink's ETH / USD). */
  readonly address: Address
  /** Seconds between reads of `latestRoundData()`, at least 1. @default DEFAULT_FEED_REFRESH_SECONDS */
  readonly refreshSeconds?: number
  /** Called with each failed read; the last round read stays in force until it is stale. */
  readonly onError?: ((err: unknown) => void) | undefined
  /** The clock, in milliseconds since the epoch. @default Date.now */
  readonly now?: () => number
}

/** Seconds between two reads of a price feed when none is configured. */
export const DEFAULT_FEED_REFRESH_SECONDS = 30

/** A price feed read on an interval: its latest round, checked against the clock on each call. */
export interface PriceFeed {
  readonly address: Address
  /** The feed's `decimals()`, read once at start. */
  readonly decimals: number
  /** Seconds between reads. */
  readonly refreshSeconds: number
  /**
   * The latest round read, checked now (no RPC): a round goes stale on the clock even when no
   * read succeeds any more.
   */
  current(): Result<FeedRate>
  /**
   * Calls `listener` after every successful read, off the hot path (the HTTP plugin re-prices
   * its routes there); returns the function that unsubscribes it.
   */
  subscribe(listener: () => void): () => void
  /** Stops the reads; idempotent. */
  close(): void
}

/**
 * Starts reading a Chainlink-style feed: `decimals()` and `latestRoundData()` once before it
 * resolves, then `latestRoundData()` every `refreshSeconds` (one RPC read per interval, never
 * per request; a read still in flight skips the next tick). A failed read keeps the last round
 * read, which then refuses payment once it is older than `maxAgeSeconds`.
 *
 * @throws TollgateError `tollgate_invalid_config` for invalid options, `tollgate_chain_unavailable`
 *   when the feed cannot be read at start (no node, no feed at the address).
 * @example
 * const feed = await watchPriceFeed({ client, address: ETH_USD, maxAgeSeconds: 3600, refreshSeconds: 30 })
 * const rate = feed.current() // { ok: true, value: { answer: 300000000000n, decimals: 8, ... } }
 * feed.close()
 */
export async function watchPriceFeed(options: PriceFeedOptions): Promise<PriceFeed> {
  const { client, address, maxAgeSeconds, minAnswer, onError } = options
  const refreshSeconds = options.refreshSeconds ?? DEFAULT_FEED_REFRESH_SECONDS
  const now = options.now ?? Date.now
  if (typeof client?.readContract !== 'function') invalid('client must be a viem PublicClient.')
  if (typeof address !== 'string' || !isAddress(address, { strict: false })) {
    invalid(`address ${String(address)} is not an address.`)
  }
  if (!Number.isSafeInteger(maxAgeSeconds) || maxAgeSeconds <= 0) {
    invalid(`maxAgeSeconds ${String(maxAgeSeconds)} is not a positive integer.`)
  }
  if (!Number.isSafeInteger(refreshSeconds) || refreshSeconds <= 0) {
    invalid(`refreshSeconds ${String(refreshSeconds)} is not a positive integer.`)
  }
  if (refreshSeconds >= maxAgeSeconds) {
    invalid(`refreshSeconds ${refreshSeconds} must be below maxAgeSeconds ${maxAgeSeconds}.`)
  }
  if (minAnswer !== undefined && (typeof minAnswer !== 'bigint' || minAnswer <= 0n)) {
    invalid(`minAnswer ${String(minAnswer)} is not a positive bigint.`)
  }
  const guard: FeedGuard = { maxAgeSeconds, minAnswer }
  const readRound = async (): Promise<FeedRound> => {
    const [roundId, answer, startedAt, updatedAt, answeredInRound] = await client.readContract({
      address,
      abi: AGGREGATOR_V3_ABI,
      functionName: 'latestRoundData',
    })
    return { roundId, answer, startedAt, updatedAt, answeredInRound }
  }
  let decimals: number
  let round: FeedRound
  try {
    decimals = await client.readContract({
      address,
      abi: AGGREGATOR_V3_ABI,
      functionName: 'decimals',
    })
    round = await readRound()
  } catch (err) {
    throw new TollgateError(
      'tollgate_chain_unavailable',
      `The price feed ${address} could not be read (decimals, latestRoundData).`,
      { cause: err },
    )
  }

  /** The latest round checked once, and until when (ms) that check holds. */
  let checked = checkRound(round, decimals, guard, now() / 1000)
  let freshUntil = checked.ok ? (checked.value.updatedAt + maxAgeSeconds + 1) * 1000 : Infinity
  const record = (next: FeedRound) => {
    round = next
    checked = checkRound(round, decimals, guard, now() / 1000)
    freshUntil = checked.ok ? (checked.value.updatedAt + maxAgeSeconds + 1) * 1000 : Infinity
  }

  const listeners = new Set<() => void>()
  let reading = false
  let closed = false
  const tick = async () => {
    let next: FeedRound
    try {
      next = await readRound()
    } catch (err) {
      onError?.(err)
      return
    }
    if (closed) return
    record(next)
    for (const listener of listeners) {
      try {
        listener()
      } catch (err) {
        onError?.(err)
      }
    }
  }
  const timer = setInterval(() => {
    if (reading) return
    reading = true
    void tick().finally(() => {
      reading = false
    })
  }, refreshSeconds * 1000)
  timer.unref()

  return Object.freeze({
    address,
    decimals,
    refreshSeconds,
    current(): Result<FeedRate> {
      if (now() < freshUntil) return checked
      return checkRound(round, decimals, guard, now() / 1000)
    },
    subscribe(listener: () => void): () => void {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    close(): void {
      closed = true
      clearInterval(timer)
    },
  })
}

function invalid(detail: string): never {
  throw new TollgateError('tollgate_invalid_config', `price feed: ${detail}`)
}
