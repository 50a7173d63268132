/**
 * watchPriceFeed against the dev chain's MockAggregatorV3 on anvil: the rate it reads, the rounds
 * it refuses (stale, incomplete, below the floor), one read per interval, and a failed read that
 * keeps the last round until it goes stale.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkRound, type PriceFeedClient, watchPriceFeed } from '../../src/chain/priceFeed.js'
import { useDevChain } from '../helpers/devChain.js'
import { mockFeed, nowSeconds } from '../helpers/priceFeed.js'

const dev = useDevChain()
const [setter] = dev.accounts.slice(9) as [(typeof dev.accounts)[number]]
const feed = mockFeed(dev, setter)
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
})
afterAll(async () => {
  await revert?.()
})

/** The dev chain's client, counting latestRoundData reads, and failing them while `down`. */
function countingClient() {
  const real = dev.harness.publicClient
  const counter = { reads: 0, down: false }
  const client: PriceFeedClient = {
    readContract: ((args: Parameters<PriceFeedClient['readContract']>[0]) => {
      if (args.functionName === 'latestRoundData') {
        counter.reads += 1
        if (counter.down) return Promise.reject(new Error('node down'))
      }
      return real.readContract(args)
    }) as PriceFeedClient['readContract'],
  }
  return { client, counter }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('watchPriceFeed', () => {
  it('reads the rate, follows a moved answer within one interval, and reads once per interval', async () => {
    await feed.setAnswer(300_000_000_000n) // $3 000
    const { client, counter } = countingClient()
    const started = Date.now()
    const watched = await watchPriceFeed({
      client,
      address: feed.address,
      maxAgeSeconds: 3600,
      refreshSeconds: 1,
    })
    try {
      expect(watched.decimals).toBe(8)
      const first = watched.current()
      expect(first).toMatchObject({ ok: true, value: { answer: 300_000_000_000n, decimals: 8 } })
      // Many lookups cost no RPC read.
      for (let i = 0; i < 1000; i++) watched.current()
      expect(counter.reads).toBe(1)

      await feed.setAnswer(250_000_000_000n)
      const moved = Date.now()
      const answer = () => {
        const rate = watched.current()
        return rate.ok ? rate.value.answer : undefined
      }
      while (answer() !== 250_000_000_000n && Date.now() - moved < 3000) await sleep(20)
      expect(watched.current()).toMatchObject({ ok: true, value: { answer: 250_000_000_000n } })
      // One read at start, then at most one per elapsed interval.
      expect(counter.reads).toBeLessThanOrEqual(1 + Math.floor((Date.now() - started) / 1000))
    } finally {
      watched.close()
    }
  })

  it('refuses a stale, an incomplete and a below-floor round with their codes', async () => {
    const { client } = countingClient()
    await feed.setAnswer(99_000_000n, nowSeconds() - 7200n) // updated two hours ago
    const stale = await watchPriceFeed({
      client,
      address: feed.address,
      maxAgeSeconds: 3600,
      refreshSeconds: 1,
    })
    expect(stale.current()).toMatchObject({ ok: false, code: 'tollgate_price_stale' })
    stale.close()

    await feed.setRound(7n, 100_000_000n, nowSeconds(), 6n) // answered in an earlier round
    const incomplete = await watchPriceFeed({
      client,
      address: feed.address,
      maxAgeSeconds: 3600,
      refreshSeconds: 1,
    })
    expect(incomplete.current()).toMatchObject({ ok: false, code: 'tollgate_price_stale' })
    incomplete.close()

    await feed.setAnswer(98_000_000n) // $0.98, below a $0.99 floor
    const pegged = await watchPriceFeed({
      client,
      address: feed.address,
      maxAgeSeconds: 3600,
      refreshSeconds: 1,
      minAnswer: 99_000_000n,
    })
    expect(pegged.current()).toMatchObject({ ok: false, code: 'tollgate_price_below_peg' })
    pegged.close()
  })

  it('keeps the last round through failed reads until it is stale on the clock', async () => {
    const updatedAt = nowSeconds() - 2n
    await feed.setAnswer(100_000_000n, updatedAt)
    const { client, counter } = countingClient()
    const errors: unknown[] = []
    const watched = await watchPriceFeed({
      client,
      address: feed.address,
      maxAgeSeconds: 4,
      refreshSeconds: 1,
      onError: (err) => errors.push(err),
    })
    try {
      counter.down = true
      await sleep(1200)
      expect(errors.length).toBeGreaterThan(0)
      expect(watched.current()).toMatchObject({ ok: true, value: { answer: 100_000_000n } })
      // updatedAt + 4 s has passed: the same round now refuses, with no read succeeding.
      const staleAt = Number(updatedAt + 5n) * 1000
      await sleep(Math.max(0, staleAt - Date.now()) + 100)
      expect(watched.current()).toMatchObject({ ok: false, code: 'tollgate_price_stale' })
    } finally {
      watched.close()
    }
  })

  it('fails at start on an address that is no feed', async () => {
    await expect(
      watchPriceFeed({
        client: dev.harness.publicClient,
        address: dev.contracts.escrow,
        maxAgeSeconds: 3600,
        refreshSeconds: 1,
      }),
    ).rejects.toMatchObject({ code: 'tollgate_chain_unavailable' })
  })
})

describe('checkRound', () => {
  const guard = { maxAgeSeconds: 60 }
  const round = { roundId: 5n, answer: 1n, startedAt: 100n, updatedAt: 100n, answeredInRound: 5n }
  it('accepts a round up to maxAgeSeconds old and refuses it one second later', () => {
    expect(checkRound(round, 8, guard, 160).ok).toBe(true)
    expect(checkRound(round, 8, guard, 161)).toMatchObject({ code: 'tollgate_price_stale' })
  })
  it('refuses a round with no answer, never updated, or answered earlier', () => {
    expect(checkRound({ ...round, answer: 0n }, 8, guard, 100).ok).toBe(false)
    expect(checkRound({ ...round, answer: -5n }, 8, guard, 100).ok).toBe(false)
    expect(checkRound({ ...round, updatedAt: 0n }, 8, guard, 100).ok).toBe(false)
    expect(checkRound({ ...round, answeredInRound: 4n }, 8, guard, 100).ok).toBe(false)
  })
})
