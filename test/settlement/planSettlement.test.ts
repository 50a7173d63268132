import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import type { ChannelRecord } from '../../src/ledger/index.js'
import { type PlanInput, planSettlement } from '../../src/settlement/index.js'
import { IDENTITY, makeConfig } from '../ledger/fixtures.js'

const ZERO: Address = '0x0000000000000000000000000000000000000000'
let next = 0

function record(overrides: Partial<ChannelRecord> = {}): ChannelRecord {
  const id = `0x${(++next).toString(16).padStart(64, '0')}` as Hex
  return {
    channelId: id,
    config: makeConfig(),
    chargedCumulativeAmount: 5_000n,
    signedMaxClaimable: 6_000n,
    inFlightCumulativeAmount: 5_000n,
    signature: `0x${'11'.repeat(65)}`,
    balance: 1_000_000n,
    totalClaimed: 0n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
    syncedAt: 0,
    ...overrides,
  }
}

function plan(records: ChannelRecord[], overrides: Partial<PlanInput> = {}) {
  return planSettlement({
    records,
    receiver: IDENTITY.receiver,
    token: IDENTITY.token,
    unsettled: 0n,
    packed: true,
    sweep: false,
    threshold: 10_000n,
    exposureCap: 100_000n,
    gasPrice: 1_000_000_000n,
    ...overrides,
  })
}

describe('planSettlement', () => {
  it('claims exactly the stored voucher up to what was charged, never above the ceiling', () => {
    const r = record({ chargedCumulativeAmount: 12_000n, signedMaxClaimable: 13_000n })
    const [batch] = plan([r]).batches
    expect(batch?.claims).toEqual([
      expect.objectContaining({
        channelId: r.channelId,
        maxClaimableAmount: 13_000n,
        signature: r.signature,
        totalClaimed: 12_000n,
        amount: 12_000n,
        reason: 'threshold',
      }),
    ])
  })

  it('picks withdrawals, then channels near the exposure cap or past the threshold; a sweep takes the rest', () => {
    const small = record({ chargedCumulativeAmount: 100n })
    const threshold = record({ chargedCumulativeAmount: 20_000n })
    const nearCap = record({ chargedCumulativeAmount: 85_000n })
    const late = record({ chargedCumulativeAmount: 50n, withdrawRequestedAt: 2_000 })
    const early = record({ chargedCumulativeAmount: 50n, withdrawRequestedAt: 1_000 })
    const claimed = record({ chargedCumulativeAmount: 300n, totalClaimed: 300n })
    const records = [small, threshold, nearCap, late, early, claimed]

    const due = plan(records).batches.flatMap((b) => b.claims)
    expect(due.map((c) => [c.channelId, c.reason])).toEqual([
      [early.channelId, 'withdrawal'],
      [late.channelId, 'withdrawal'],
      [nearCap.channelId, 'exposure'],
      [threshold.channelId, 'threshold'],
    ])
    expect(due[0]?.deadline).toBe(1_000 + early.config.withdrawDelay)

    const swept = plan(records, { sweep: true }).batches.flatMap((b) => b.claims)
    expect(swept.map((c) => c.channelId)).toContain(small.channelId)
    expect(swept.map((c) => c.channelId)).not.toContain(claimed.channelId)
  })

  it('batches at most maxPerTx channels, EOA channels packed, EIP-1271 channels through claim', () => {
    const eoa = Array.from({ length: 7 }, () => record({ chargedCumulativeAmount: 20_000n }))
    const contract = record({
      chargedCumulativeAmount: 20_000n,
      config: makeConfig({ payerAuthorizer: ZERO }),
    })
    const result = plan([...eoa, contract], { maxPerTx: 3 })
    expect(result.batches.map((b) => [b.method, b.claims.length])).toEqual([
      ['claimPacked', 3],
      ['claimPacked', 3],
      ['claimPacked', 1],
      ['claim', 1],
    ])
    expect(result.claimTotal).toBe(8n * 20_000n)
    expect(plan([...eoa], { packed: false }).batches.every((b) => b.method === 'claim')).toBe(true)
  })

  it('packs each channel under its own receiver authorizer, never one for all', () => {
    const other = '0x00000000000000000000000000000000000000a1' as const
    const mine = [
      record({ chargedCumulativeAmount: 20_000n }),
      record({ chargedCumulativeAmount: 20_000n }),
    ]
    const old = record({
      chargedCumulativeAmount: 20_000n,
      config: { ...makeConfig(), receiverAuthorizer: other },
    })
    const { batches } = plan([mine[0] as ChannelRecord, old, mine[1] as ChannelRecord])
    expect(batches.map((b) => b.method)).toEqual(['claimPacked', 'claimPacked'])
    for (const batch of batches) {
      const authorizers = new Set(batch.claims.map((c) => c.config.receiverAuthorizer))
      expect(authorizers.size).toBe(1)
    }
    const oldBatch = batches.find((b) => b.claims[0]?.config.receiverAuthorizer === other)
    expect(oldBatch?.claims.map((c) => c.channelId)).toEqual([old.channelId])
  })

  it('skips claims whose gas costs more than they bring, unless a withdrawal forces them', () => {
    // 0.1 gwei and 3 000 USDC per ETH: a packed row's share of gas (~22 k in a batch of 3) costs ~6 700 units.
    const cheap = record({ chargedCumulativeAmount: 1_000n })
    const worth = record({ chargedCumulativeAmount: 50_000n })
    const forced = record({ chargedCumulativeAmount: 1_000n, withdrawRequestedAt: 10 })
    const result = plan([cheap, worth, forced], {
      sweep: true,
      gasPrice: 100_000_000n,
      tokenPerNative: 3_000_000_000n,
    })
    const ids = result.batches.flatMap((b) => b.claims.map((c) => c.channelId))
    expect(ids).toEqual([forced.channelId, worth.channelId])
    expect(result.skipped).toEqual([
      { channelId: cheap.channelId, unclaimed: 1_000n, reason: 'gas_exceeds_value' },
    ])
    // With no price (a development chain), gas is not weighed.
    expect(plan([cheap], { sweep: true }).batches).toHaveLength(1)
  })

  it('leaves out channels in flight and those charged above their balance', () => {
    const flying = record({ chargedCumulativeAmount: 20_000n })
    const over = record({ chargedCumulativeAmount: 20_000n, balance: 10_000n })
    const result = plan([flying, over], { inFlight: new Set([flying.channelId]) })
    expect(result.batches).toEqual([])
    expect(result.skipped.map((s) => s.reason)).toEqual(['in_flight', 'exceeds_balance'])
  })

  it('settles when claiming or when something is already claimed, and reports the next deadline', () => {
    expect(plan([]).settle).toBeUndefined()
    expect(plan([], { unsettled: 5n }).settle).toEqual({
      receiver: IDENTITY.receiver,
      token: IDENTITY.token,
    })
    const w = record({ chargedCumulativeAmount: 10n, withdrawRequestedAt: 500 })
    const result = plan([w], { safetyMarginSeconds: 60 })
    expect(result.settle).toBeDefined()
    expect(result.nextDeadline).toBe(500 + w.config.withdrawDelay)
    expect(result.runBy).toBe(500 + w.config.withdrawDelay - 60)
  })
})
