/**
 * Property test: random sequences of paid requests (served, failed, charged less than the
 * ceiling), lost client state, deposits, claims, withdrawals and restarts, driven through the
 * payee (ledger + a real LevelDB store), against a model of the chain. The money invariants of
 * DESIGN.md are checked after every step.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import type { ChannelConfig } from '../../src/protocol/types.js'
import { LevelStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, payment } from '../ledger/fixtures.js'

const CHANNELS = 3
const PRICES = [1n, 250n, 1000n] as const

type Op =
  | { kind: 'request'; ch: number; price: number; fraction: number; fails: boolean }
  | { kind: 'forget'; ch: number }
  | { kind: 'deposit'; ch: number; amount: number }
  | { kind: 'claim'; ch: number }
  | { kind: 'withdraw'; ch: number }
  | { kind: 'restart' }

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      ch: fc.nat(CHANNELS - 1),
      price: fc.nat(PRICES.length - 1),
      fraction: fc.integer({ min: 0, max: 100 }),
      fails: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('forget' as const), ch: fc.nat(CHANNELS - 1) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deposit' as const),
      ch: fc.nat(CHANNELS - 1),
      amount: fc.integer({ min: 1, max: 3000 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('claim' as const), ch: fc.nat(CHANNELS - 1) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('withdraw' as const), ch: fc.nat(CHANNELS - 1) }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
)

interface ChainChannel {
  balance: bigint
  totalClaimed: bigint
  withdrawRequestedAt: number
  refundNonce: bigint
}

describe('money invariants under random operations', () => {
  it('hold after every step: charged <= ceiling <= balance, every acknowledged charge counted once, claims within [charged, ceiling]', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const dir = mkdtempSync(join(tmpdir(), 'tollgate-prop-'))
        const chain = new Map<Hex, ChainChannel>()
        const configs: { config: ChannelConfig; id: Hex }[] = []
        for (let i = 0; i < CHANNELS; i++) {
          const config = makeConfig()
          const id = channelId(config, DOMAIN)
          configs.push({ config, id })
          chain.set(id, {
            balance: 2000n,
            totalClaimed: 0n,
            withdrawRequestedAt: 0,
            refundNonce: 0n,
          })
        }
        /** What each client believes it has been charged (from receipts and corrective 402s). */
        const clientCharged = new Map<Hex, bigint>(configs.map((c) => [c.id, 0n]))
        /** Channels whose balance a withdrawal lowered: an unused part of their ceiling is void. */
        const withdrawn = new Set<Hex>()
        /** Sum of the charges the server acknowledged (served requests). */
        const acknowledged = new Map<Hex, bigint>(configs.map((c) => [c.id, 0n]))
        let now = 1_700_000_000

        const open = async (): Promise<Payee> =>
          openPayee({
            chainId: CHAIN_ID,
            escrow: CANONICAL_ADDRESSES.escrow,
            identity: IDENTITY,
            store: await LevelStore.open(dir),
            readChannel: async (id) => {
              const c = chain.get(id)
              if (!c) throw new Error('unknown channel')
              return { ...c }
            },
          })
        let payee = await open()
        try {
          for (const step of ops) {
            if (step.kind === 'restart') {
              const before = [...payee.ledger.records()].map((r) => [r.channelId, r] as const)
              await payee.close()
              payee = await open()
              for (const [id, record] of before) expect(payee.ledger.get(id)).toEqual(record)
              continue
            }
            const { config, id } = configs[step.ch] as { config: ChannelConfig; id: Hex }
            const onChain = chain.get(id) as ChainChannel
            switch (step.kind) {
              case 'request': {
                const price = PRICES[step.price] as bigint
                const max = (clientCharged.get(id) ?? 0n) + price
                const decision = await payee.decide(await payment(config, id, max), {
                  kind: 'exact',
                  price,
                })
                if (decision.ok) {
                  if (step.fails) {
                    payee.release(decision.hold)
                  } else {
                    const actual = (price * BigInt(step.fraction)) / 100n
                    const committed = payee.commit(decision.hold, actual)
                    expect(committed.ok).toBe(true)
                    acknowledged.set(id, (acknowledged.get(id) ?? 0n) + actual)
                    clientCharged.set(id, committed.record?.chargedCumulativeAmount ?? -1n)
                  }
                } else if (
                  decision.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' &&
                  decision.record
                ) {
                  // A stock client adopts the server's figure from a corrective 402.
                  clientCharged.set(id, decision.record.chargedCumulativeAmount)
                } else {
                  expect([
                    'invalid_batch_settlement_evm_cumulative_exceeds_balance',
                    'tollgate_withdrawal_pending',
                    'invalid_batch_settlement_evm_cumulative_below_claimed',
                    // A channel emptied by a withdrawal before the server first saw it.
                    'invalid_batch_settlement_evm_channel_not_found',
                  ]).toContain(decision.code)
                }
                break
              }
              case 'forget':
                clientCharged.set(id, 0n)
                break
              case 'deposit':
                if (onChain.withdrawRequestedAt !== 0) break
                onChain.balance += BigInt(step.amount)
                payee.apply({ type: 'deposited', channelId: id, balance: onChain.balance })
                break
              case 'claim': {
                const record = payee.ledger.get(id)
                if (!record || record.chargedCumulativeAmount <= onChain.totalClaimed) break
                // Invariant 3: a claim lies within [charged, signed ceiling].
                const claim = record.chargedCumulativeAmount
                expect(claim).toBeLessThanOrEqual(record.signedMaxClaimable)
                expect(claim).toBeLessThanOrEqual(onChain.balance)
                onChain.totalClaimed = claim
                payee.apply({ type: 'claimed', channelId: id, totalClaimed: claim })
                break
              }
              case 'withdraw': {
                now += 10
                onChain.withdrawRequestedAt = now
                payee.apply({ type: 'withdrawInitiated', channelId: id, initiatedAt: now })
                // Settlement claims before the delay ends (invariant 4), then the payer finalizes.
                const record = payee.ledger.get(id)
                if (record && record.chargedCumulativeAmount > onChain.totalClaimed) {
                  onChain.totalClaimed = record.chargedCumulativeAmount
                  payee.apply({
                    type: 'claimed',
                    channelId: id,
                    totalClaimed: onChain.totalClaimed,
                  })
                }
                onChain.balance = onChain.totalClaimed
                onChain.withdrawRequestedAt = 0
                withdrawn.add(id)
                payee.apply({ type: 'withdrawFinalized', channelId: id, balance: onChain.balance })
                break
              }
            }
            for (const { id: cid } of configs) {
              const record = payee.ledger.get(cid)
              if (!record) continue
              // Invariant 1. A payer's withdrawal can leave an unused part of the ceiling (a
              // request charged below its price) above the new balance; that part is void.
              expect(record.chargedCumulativeAmount).toBeLessThanOrEqual(record.signedMaxClaimable)
              if (!withdrawn.has(cid))
                expect(record.signedMaxClaimable).toBeLessThanOrEqual(record.balance)
              // Invariant 7: every acknowledged charge is counted, and none twice.
              expect(record.chargedCumulativeAmount).toBe(acknowledged.get(cid))
              // No channel is left held between requests.
              expect(payee.ledger.isHeld(cid)).toBe(false)
              // Money is never lost: what was charged is backed by the escrow.
              expect(record.chargedCumulativeAmount).toBeLessThanOrEqual(
                (chain.get(cid) as ChainChannel).balance,
              )
            }
          }
        } finally {
          await payee.close()
          rmSync(dir, { recursive: true, force: true })
        }
      }),
      { numRuns: 40 },
    )
  })
})
