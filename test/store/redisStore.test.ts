/**
 * The Redis store against a real redis-server (AOF, appendfsync always): the money rules of the
 * ledger enforced by its scripts across several payees sharing one Redis, the durability check
 * at open, a dead instance's hold expiring under the crash rule, and Redis going away and back.
 */
import Fastify from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChannelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import { decodePaymentRequired, type PaymentRequirements } from '../../src/protocol/index.js'
import { acquireLease, type Lease } from '../../src/settlement/index.js'
import { RedisStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { channelId } from '../../src/verify/index.js'
import { type RedisServer, startRedis } from '../helpers/redisServer.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, payment } from '../ledger/fixtures.js'
import { ASSET, NETWORK, PRICE, voucherHeader } from '../transports/http/fixtures.js'

const exact = (price: bigint) => ({ kind: 'exact', price }) as const
const onChain = (balance: bigint) => ({
  balance,
  totalClaimed: 0n,
  withdrawRequestedAt: 0,
  refundNonce: 0n,
})

let redis: RedisServer
let prefixCount = 0
const opened: { close(): Promise<void> }[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const item of opened.splice(0)) await item.close().catch(() => {})
  await redis.stop()
})

/** `count` payees (instances) sharing one key prefix of the Redis. */
async function instances(
  count: number,
  readChannel: ChannelReader = async () => onChain(1_000_000_000n),
  holdTtlMs?: number,
  onWarning?: (message: string) => void,
): Promise<{ payees: Payee[]; store: RedisStore }> {
  const keyPrefix = `t${++prefixCount}:`
  const payees: Payee[] = []
  for (let i = 0; i < count; i++) {
    const store = await RedisStore.open({ url: redis.url, keyPrefix })
    const payee = await openPayee({
      chainId: CHAIN_ID,
      escrow: CANONICAL_ADDRESSES.escrow,
      identity: IDENTITY,
      store,
      readChannel,
      ...(holdTtlMs === undefined ? {} : { holdTtlMs }),
      ...(onWarning ? { onWarning } : {}),
    })
    opened.push(payee)
    payees.push(payee)
  }
  const store = await RedisStore.open({ url: redis.url, keyPrefix })
  opened.push(store)
  return { payees, store }
}

describe('durability check at open', () => {
  it('refuses a Redis without appendfsync always in durable mode, and accepts it relaxed', async () => {
    const lax = await startRedis({ appendfsync: 'everysec' })
    try {
      await expect(RedisStore.open({ url: lax.url })).rejects.toMatchObject({
        code: 'tollgate_store_not_durable',
      })
      const relaxed = await RedisStore.open({ url: lax.url, mode: 'relaxed' })
      expect(relaxed.mode).toBe('relaxed')
      await relaxed.close()
    } finally {
      await lax.stop()
    }
  })

  it('fails with tollgate_store_failed when Redis is not there', async () => {
    await expect(RedisStore.open({ url: 'redis://127.0.0.1:1' })).rejects.toMatchObject({
      code: 'tollgate_store_failed',
    })
  })
})

describe('money rules across instances', () => {
  it('charges a voucher once, answers a mismatch with the stored state, and sees every instance’s charges', async () => {
    const { payees, store } = await instances(2)
    const [a, b] = payees as [Payee, Payee]
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await a.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.code)
    // B sees A's hold: one request at a time per channel, whichever instance gets it.
    const meanwhile = await b.decide(await payment(config, id, 1000n), exact(1000n))
    expect(meanwhile).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_channel_busy',
    })
    a.commit(first.hold, 700n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === 700n)
    // B decides from Redis, not from a copy: the next voucher must be 700 + 1000.
    const stale = await b.decide(await payment(config, id, 2000n), exact(1000n))
    expect(stale).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
      record: { chargedCumulativeAmount: 700n, signedMaxClaimable: 1000n },
    })
    const second = await b.decide(await payment(config, id, 1700n), exact(1000n))
    if (!second.ok) throw new Error(second.code)
    b.commit(second.hold, 1000n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === 1700n)
    expect(await store.load(id)).toMatchObject({
      chargedCumulativeAmount: 1700n,
      signedMaxClaimable: 1700n,
      inFlightCumulativeAmount: 1700n,
    })
  })

  it('refuses a voucher above the balance and any voucher once a withdrawal is pending', async () => {
    const { payees, store } = await instances(2, async () => onChain(5000n))
    const [a, b] = payees as [Payee, Payee]
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const over = await a.decide(await payment(config, id, 6000n), exact(6000n))
    expect(over).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_cumulative_exceeds_balance',
    })
    // A withdrawal seen by A's watcher stops vouchers on B.
    a.apply({ type: 'withdrawSeen', channelId: id, finalizeAfter: 10_000 + IDENTITY.withdrawDelay })
    await waitFor(async () => (await store.load(id))?.withdrawRequestedAt === 10_000)
    const refused = await b.decide(await payment(config, id, 1000n), exact(1000n))
    expect(refused).toMatchObject({ ok: false, code: 'tollgate_withdrawal_pending' })
    // Applying it twice changes nothing; a dropped one re-opens the channel.
    a.apply({ type: 'withdrawSeen', channelId: id, finalizeAfter: 99_999 })
    a.apply({
      type: 'withdrawDropped',
      channelId: id,
      finalizeAfter: 10_000 + IDENTITY.withdrawDelay,
    })
    await waitFor(async () => (await store.load(id))?.withdrawRequestedAt === 0)
    expect((await b.decide(await payment(config, id, 1000n), exact(1000n))).ok).toBe(true)
  })

  it('keeps amounts above 2^53 exact', async () => {
    // 2^100 + 999 and 2^100 + 1000 are the same double: the scripts must not use Lua numbers.
    const big = 2n ** 100n
    const { payees, store } = await instances(1, async () => ({
      ...onChain(big * 2n),
      totalClaimed: big,
    }))
    const payee = payees[0] as Payee
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const off = await payee.decide(await payment(config, id, big + 999n), exact(1000n))
    expect(off).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
      record: { chargedCumulativeAmount: big },
    })
    const held = await payee.decide(await payment(config, id, big + 1000n), exact(1000n))
    if (!held.ok) throw new Error(held.code)
    payee.commit(held.hold, 999n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === big + 999n)
    expect((await store.load(id))?.signedMaxClaimable).toBe(big + 1000n)
  })
})

describe('a dead instance', () => {
  it('holds a channel only until its hold expires; what it had in flight is then charged', async () => {
    const { payees, store } = await instances(2, undefined, 300)
    const [a, b] = payees as [Payee, Payee]
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const held = await a.decide(await payment(config, id, 1000n), exact(1000n))
    expect(held.ok).toBe(true)
    // A dies here: it never commits nor releases, and the payer, with no answer, tries again.
    expect(await b.decide(await payment(config, id, 1000n), exact(1000n))).toMatchObject({
      code: 'invalid_batch_settlement_evm_channel_busy',
    })
    await new Promise((resolve) => setTimeout(resolve, 350))
    // A may have served its request: it is charged, and B's next voucher starts after it.
    expect(await b.decide(await payment(config, id, 1000n), exact(1000n))).toMatchObject({
      code: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
      record: { chargedCumulativeAmount: 1000n },
    })
    const next = await b.decide(await payment(config, id, 2000n), exact(1000n))
    if (!next.ok) throw new Error(next.code)
    expect(next.hold.record.chargedCumulativeAmount).toBe(1000n)
    b.commit(next.hold, 1000n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === 2000n)
  })
})

describe('a hold whose end has not landed', () => {
  it('is ended as committed by the payer’s next voucher, signed on from its whole in-flight amount', async () => {
    const warnings: string[] = []
    const { payees, store } = await instances(2, undefined, undefined, (m) => warnings.push(m))
    const [a, b] = payees as [Payee, Payee]
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await a.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.code)
    // A served and answered; its end is still on its way when the payer's next request reaches B.
    // A voucher that does not cover A's in-flight amount plus the price finds the channel busy.
    for (const short of [1500n, 2500n]) {
      expect(await b.decide(await payment(config, id, short), exact(1000n))).toMatchObject({
        code: 'invalid_batch_settlement_evm_channel_busy',
      })
    }
    const second = await b.decide(await payment(config, id, 2000n), exact(1000n))
    if (!second.ok) throw new Error(second.code)
    expect(second.hold.record.chargedCumulativeAmount).toBe(1000n)
    // A's end lands late: the hold was ended already, nothing changes and nothing is warned of.
    a.commit(first.hold, 1000n)
    await a.ended(id)
    b.commit(second.hold, 1000n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === 2000n)
    expect(await store.load(id)).toMatchObject({
      inFlightCumulativeAmount: 2000n,
      signedMaxClaimable: 2000n,
    })
    expect(warnings).toEqual([])
  })

  it('of a WebSocket session is never ended so: the channel stays busy', async () => {
    const { payees } = await instances(2)
    const [a, b] = payees as [Payee, Payee]
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const session = await a.decide(await payment(config, id, 5000n), {
      kind: 'credit',
      price: 1000n,
    })
    if (!session.ok) throw new Error(session.code)
    for (const next of [6000n, 1000n]) {
      expect(await b.decide(await payment(config, id, next), exact(1000n))).toMatchObject({
        code: 'invalid_batch_settlement_evm_channel_busy',
      })
    }
    a.release(session.hold)
  })
})

describe('three instances under load', () => {
  it('charges every request exactly once when each goes to a random instance', async () => {
    const { payees, store } = await instances(3)
    const payers = Array.from({ length: 6 }, () => {
      const config = makeConfig()
      return { config, id: channelId(config, DOMAIN), charged: 0n, served: 0 }
    })
    const price = 1000n
    const perPayer = 25
    await Promise.all(
      payers.map(async (payer) => {
        while (payer.served < perPayer) {
          const payee = payees[Math.floor(Math.random() * payees.length)] as Payee
          const decision = await payee.decide(
            await payment(payer.config, payer.id, payer.charged + price),
            exact(price),
          )
          if (!decision.ok) {
            // The previous commit may still be on its way to Redis: the channel is busy a moment.
            expect(decision.code).toBe('invalid_batch_settlement_evm_channel_busy')
            continue
          }
          const charge = BigInt(1 + Math.floor(Math.random() * 1000))
          const committed = payee.commit(decision.hold, charge)
          expect(committed.ok).toBe(true)
          payer.charged += charge
          payer.served++
        }
      }),
    )
    for (const payer of payers) {
      await waitFor(
        async () => (await store.load(payer.id))?.chargedCumulativeAmount === payer.charged,
      )
      const record = await store.load(payer.id)
      expect(record?.inFlightCumulativeAmount).toBe(payer.charged)
      expect(record?.signedMaxClaimable).toBeGreaterThanOrEqual(payer.charged)
      expect(record?.signedMaxClaimable).toBeLessThanOrEqual(record?.balance ?? 0n)
    }
  })
})

describe('Redis going away', () => {
  it('refuses with tollgate_store_failed while Redis is down, then serves again with nothing acknowledged lost', async () => {
    const { payees, store } = await instances(1)
    const payee = payees[0] as Payee
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.code)
    payee.commit(first.hold, 1000n)
    await waitFor(async () => (await store.load(id))?.chargedCumulativeAmount === 1000n)
    await redis.kill()
    const down = await payee.decide(await payment(config, id, 2000n), exact(1000n))
    expect(down).toMatchObject({ ok: false, code: 'tollgate_store_failed' })
    await redis.start()
    // The client reconnects by itself; the AOF kept the acknowledged charge.
    await waitFor(async () => {
      const again = await payee.decide(await payment(config, id, 2000n), exact(1000n))
      if (!again.ok) return false
      payee.commit(again.hold, 1000n)
      return true
    })
    await waitFor(
      async () => (await store.load(id).catch(() => undefined))?.chargedCumulativeAmount === 2000n,
    )
  })
})

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('the settlement lease, shared', () => {
  it('is held by exactly one of many settlers racing for it, on separate connections', async () => {
    const keyPrefix = `lease${++prefixCount}:`
    const stores = await Promise.all(
      Array.from({ length: 6 }, () => RedisStore.open({ url: redis.url, keyPrefix })),
    )
    opened.push(...stores)
    const results = await Promise.all(
      stores.map((store, i) => acquireLease(store, `host${i}:${1000 + i}`, { durationMs: 60_000 })),
    )
    const held = results.filter((r): r is Lease => !('ok' in r))
    expect(held).toHaveLength(1)
    expect(results.filter((r) => 'ok' in r && r.code === 'tollgate_settlement_busy')).toHaveLength(
      5,
    )
    // Only its holder renews it; once released, another settler takes it.
    const winner = held[0] as Lease
    const loser = stores[results.indexOf(winner) === 0 ? 1 : 0] as RedisStore
    expect(await winner.renew()).toBe(true)
    await winner.release()
    const next = await acquireLease(loser, 'hostB:2', { durationMs: 60_000 })
    expect('ok' in next).toBe(false)
    expect(await winner.renew()).toBe(false)
  })
})

describe('rate limits, shared', () => {
  it('count a payer in the hold script, across instances: accepted vouchers only', async () => {
    const { payees, store } = await instances(2)
    const [a, b] = payees as [Payee, Payee]
    const limit = { max: 2, windowMs: 60_000 }
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const charged = (amount: bigint) => async () =>
      (await store.load(id))?.chargedCumulativeAmount === amount

    const first = await a.decide(await payment(config, id, 1000n), exact(1000n), limit)
    if (!first.ok) throw new Error(first.code)
    a.commit(first.hold, 1000n)
    await waitFor(charged(1000n))
    // Refused by the script (the wrong amount), so not counted.
    const wrong = await b.decide(await payment(config, id, 5000n), exact(1000n), limit)
    expect(wrong).toMatchObject({ code: 'invalid_batch_settlement_evm_cumulative_amount_mismatch' })
    const second = await b.decide(await payment(config, id, 2000n), exact(1000n), limit)
    if (!second.ok) throw new Error(second.code)
    b.commit(second.hold, 1000n)
    await waitFor(charged(2000n))

    // The third on either instance is over the payer's limit, and nothing of it is stored.
    const third = await a.decide(await payment(config, id, 3000n), exact(1000n), limit)
    expect(third).toMatchObject({ ok: false, code: 'tollgate_rate_limited' })
    const retryAfter = third.ok ? 0 : (third.retryAfter ?? 0)
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(60)
    expect(await store.load(id)).toMatchObject({ signedMaxClaimable: 2000n })
    // Another payer has a count of its own.
    const other = makeConfig({ payer: '0x90f79bf6eb2c4f870365e785982e1f101e93b906' })
    const otherId = channelId(other, DOMAIN)
    const theirs = await b.decide(await payment(other, otherId, 1000n), exact(1000n), limit)
    expect(theirs.ok).toBe(true)
  })

  it('per payer over HTTP: the hold counts it, and the payer over it gets 429 with Retry-After', async () => {
    const { payees } = await instances(2)
    const apps = await Promise.all(
      payees.map(async (payee) => {
        const app = Fastify()
        await app.register(tollgate, {
          payee,
          network: NETWORK,
          asset: ASSET,
          payTo: IDENTITY.receiver,
          receiverAuthorizer: IDENTITY.receiverAuthorizer,
          withdrawDelay: IDENTITY.withdrawDelay,
          rateLimit: { perIp: false, perPayer: { max: 2, timeWindowMs: 60_000 } },
        })
        app.get('/paid', { config: { price: PRICE } }, async () => 'ok')
        await app.ready()
        opened.push(app)
        return app
      }),
    )
    const [a, b] = apps as [(typeof apps)[number], (typeof apps)[number]]
    const required = decodePaymentRequired(
      (await a.inject({ url: '/paid' })).headers['payment-required'] as string,
    )
    if (!required.ok) throw new Error(required.message)
    const accepted = required.value.accepts[0] as PaymentRequirements
    const config = makeConfig()
    const channel = { config, id: channelId(config, DOMAIN) }
    const responses = []
    for (const [i, app] of [a, b, a].entries()) {
      const header = await voucherHeader(accepted, channel, BigInt(i + 1) * PRICE)
      responses.push(await app.inject({ url: '/paid', headers: { 'payment-signature': header } }))
    }
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 429])
    expect(responses[2]?.json()).toMatchObject({ error: 'tollgate_rate_limited' })
    expect(Number(responses[2]?.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('are counted in Redis across instances: a client cannot spread its requests to get more', async () => {
    const { payees } = await instances(2)
    const apps = await Promise.all(
      payees.map(async (payee) => {
        const app = Fastify()
        const store = await RedisStore.open({ url: redis.url, keyPrefix: `rl${prefixCount}:` })
        opened.push(store)
        await app.register(tollgate, {
          payee,
          network: `eip155:${CHAIN_ID}`,
          asset: { address: IDENTITY.token, name: 'USDC', version: '2', decimals: 6 },
          payTo: IDENTITY.receiver,
          receiverAuthorizer: IDENTITY.receiverAuthorizer,
          withdrawDelay: IDENTITY.withdrawDelay,
          rateLimit: {
            unpaidPerIp: { max: 3, timeWindowMs: 60_000 },
            perIp: false,
            perPayer: false,
          },
          rateLimitRedis: store.client,
        })
        app.get('/paid', { config: { price: 1000n } }, async () => 'ok')
        await app.ready()
        opened.push(app)
        return app
      }),
    )
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const app = apps[i % 2] as (typeof apps)[number]
      statuses.push((await app.inject({ url: '/paid', remoteAddress: '203.0.113.9' })).statusCode)
    }
    expect(statuses).toEqual([402, 402, 402, 429])
  })
})
