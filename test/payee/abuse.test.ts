/**
 * A property test of what payers can make the operator pay for. Over random interleavings of
 * deposits, vouchers and refunds (honest, forged, too small, too large), withdrawals and a chain
 * reader that fails at random, the payee never sends an on-chain transaction for a payload it
 * then refuses (only the transaction's own failure may follow one), never reads the chain for a
 * forged voucher, and keeps `charged <= ceiling <= balance` throughout.
 *
 * The chain is a model (balances per channel) behind the payee's two edges, the channel reader
 * and the escrow writer: the writer counts what would be sent, and fails when told to, which are
 * the faults under test. Signatures are real.
 */
import fc from 'fast-check'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import type { EscrowWriter } from '../../src/chain/escrowWriter.js'
import { accept, reject } from '../../src/errors/index.js'
import type { OnChainChannel } from '../../src/ledger/index.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import type { ChannelConfig, DepositPayload, RefundPayload } from '../../src/protocol/types.js'
import { MemoryStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import {
  CHAIN_ID,
  DOMAIN,
  IDENTITY,
  makeConfig,
  otherKey,
  sessionKey,
  sign,
} from '../ledger/fixtures.js'

const PRICE = 1_000n
const MIN_DEPOSIT = 10_000n
const exact = { kind: 'exact', price: PRICE } as const

type Action =
  | { kind: 'voucher'; channel: number; forged: boolean; offset: bigint }
  | { kind: 'deposit'; channel: number; forged: boolean; amount: bigint; offset: bigint }
  | { kind: 'refund'; channel: number; forged: boolean }
  | { kind: 'withdraw'; channel: number }
  | { kind: 'rpc'; down: boolean }
  | { kind: 'writer'; failing: boolean }

const channelIndex = fc.nat({ max: 2 })
/** Ceiling offsets around what is due: exact, off by one price, far above. */
const offset = fc.constantFrom(0n, 0n, 0n, PRICE, -PRICE, 1n, 1_000_000n)
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('voucher' as const),
      channel: channelIndex,
      forged: fc.boolean(),
      offset,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('deposit' as const),
      channel: channelIndex,
      forged: fc.boolean(),
      amount: fc.constantFrom(1n, PRICE, MIN_DEPOSIT - 1n, MIN_DEPOSIT, 5n * MIN_DEPOSIT),
      offset,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      channel: channelIndex,
      forged: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('withdraw' as const), channel: channelIndex }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rpc' as const), down: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('writer' as const), failing: fc.boolean() }),
  },
)

/** Failures only the writer's transaction can cause (it was sent, or tried to be). */
const WRITER_FAILURES = new Set([
  'invalid_batch_settlement_evm_deposit_transaction_failed',
  'invalid_batch_settlement_evm_refund_transaction_failed',
])

interface World {
  payee: Payee
  chain: Map<Hex, OnChainChannel>
  configs: { config: ChannelConfig; id: Hex }[]
  sent: number
  reads: number
  rpcDown: boolean
  writerFailing: boolean
}

async function world(): Promise<World> {
  const configs = [0, 1, 2].map(() => {
    const config = makeConfig()
    return { config, id: channelId(config, DOMAIN) }
  })
  const chain = new Map<Hex, OnChainChannel>()
  for (const { id } of configs) {
    chain.set(id, { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n })
  }
  const w = { chain, configs, sent: 0, reads: 0, rpcDown: false, writerFailing: false } as World
  w.payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: CANONICAL_ADDRESSES.escrow,
    identity: IDENTITY,
    store: await MemoryStore.open(),
    readChannel: async (id) => {
      w.reads++
      if (w.rpcDown) throw new Error('ECONNREFUSED')
      const state = chain.get(id)
      if (!state) throw new Error('no such channel')
      return state
    },
    onChainLimits: { perPayer: false, perRequester: false, gasBudget: false },
  })
  return w
}

/** The escrow writer of the model chain: counts what it sends; fails when told to. */
function writer(w: World): EscrowWriter {
  const receipt = (amount: bigint, balance: bigint) => ({
    transaction: `0x${'ab'.repeat(32)}` as Hex,
    blockNumber: 1n,
    amount,
    balance,
    fee: 1n,
    gasUsed: 1n,
  })
  return {
    async deposit(payload: DepositPayload) {
      w.sent++
      if (w.writerFailing) return reject('invalid_batch_settlement_evm_deposit_transaction_failed')
      const state = w.chain.get(payload.voucher.channelId) as OnChainChannel
      const balance = state.balance + payload.deposit.amount
      w.chain.set(payload.voucher.channelId, { ...state, balance })
      return accept(receipt(payload.deposit.amount, balance))
    },
    async refund(payload: RefundPayload, charged: bigint) {
      w.sent++
      if (w.writerFailing) return reject('invalid_batch_settlement_evm_refund_transaction_failed')
      const state = w.chain.get(payload.voucher.channelId) as OnChainChannel
      const refunded = state.balance - charged
      w.chain.set(payload.voucher.channelId, {
        ...state,
        balance: charged,
        totalClaimed: charged,
        refundNonce: state.refundNonce + 1n,
      })
      return accept(receipt(refunded, charged))
    },
  }
}

async function voucherOf(w: World, channel: number, forged: boolean, ceiling: bigint) {
  const { config, id } = w.configs[channel] as { config: ChannelConfig; id: Hex }
  const max = ceiling < 0n ? 0n : ceiling
  return {
    channelConfig: config,
    voucher: {
      channelId: id,
      maxClaimableAmount: max,
      signature: await sign(forged ? otherKey : sessionKey, id, max),
    },
  }
}

/** What is due next on a channel: its charged total plus the price. */
function due(w: World, channel: number): bigint {
  const { id } = w.configs[channel] as { id: Hex }
  return (w.payee.ledger.get(id)?.chargedCumulativeAmount ?? 0n) + PRICE
}

async function step(w: World, a: Action, escrow: EscrowWriter): Promise<void> {
  const sentBefore = w.sent
  const readsBefore = w.reads
  let outcome: { ok: boolean; code?: string } = { ok: true }
  switch (a.kind) {
    case 'rpc':
      w.rpcDown = a.down
      return
    case 'writer':
      w.writerFailing = a.failing
      return
    case 'withdraw': {
      const { id, config } = w.configs[a.channel] as { id: Hex; config: ChannelConfig }
      const state = w.chain.get(id) as OnChainChannel
      if (state.withdrawRequestedAt !== 0) return
      const now = Math.floor(Date.now() / 1000)
      w.chain.set(id, { ...state, withdrawRequestedAt: now })
      w.payee.apply({
        type: 'withdrawSeen',
        channelId: id,
        finalizeAfter: now + config.withdrawDelay,
      })
      return
    }
    case 'voucher': {
      const payment = await voucherOf(w, a.channel, a.forged, due(w, a.channel) + a.offset)
      const decision = await w.payee.decide(payment, exact)
      if (decision.ok) w.payee.commit(decision.hold, PRICE)
      outcome = decision
      break
    }
    case 'deposit': {
      const payment = await voucherOf(w, a.channel, a.forged, due(w, a.channel) + a.offset)
      const payload: DepositPayload = {
        type: 'deposit',
        ...payment,
        deposit: {
          amount: a.amount,
          erc3009Authorization: {
            validAfter: 0n,
            validBefore: 2n ** 40n,
            salt: `0x${'01'.repeat(32)}`,
            signature: '0x',
          },
        },
      }
      const decision = await w.payee.decideDeposit(payload, exact, escrow, {
        minDeposit: MIN_DEPOSIT,
      })
      if (decision.ok) w.payee.commit(decision.hold, PRICE)
      outcome = decision
      break
    }
    case 'refund': {
      const { id } = w.configs[a.channel] as { id: Hex }
      const charged = w.payee.ledger.get(id)?.chargedCumulativeAmount ?? 0n
      const payment = await voucherOf(w, a.channel, a.forged, charged)
      const result = await w.payee.refund({ type: 'refund', ...payment }, escrow)
      outcome = result
      break
    }
  }
  const sent = w.sent - sentBefore
  expect(sent).toBeLessThanOrEqual(1)
  if (sent === 1 && !outcome.ok) expect(WRITER_FAILURES).toContain(outcome.code)
  if ('forged' in a && a.forged) {
    expect(sent).toBe(0)
    expect(w.reads).toBe(readsBefore)
  }
  for (const record of w.payee.ledger.records()) {
    expect(record.chargedCumulativeAmount).toBeLessThanOrEqual(record.signedMaxClaimable)
    expect(record.chargedCumulativeAmount).toBeLessThanOrEqual(record.balance)
  }
}

describe('what payers can make the operator pay for', () => {
  it('never a transaction for a refused payload, never a chain read for a forged one', async () => {
    let sends = 0
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 40 }), async (actions) => {
        const w = await world()
        const escrow = writer(w)
        for (const a of actions) await step(w, a, escrow)
        sends += w.sent
        await w.payee.close()
      }),
      { numRuns: 200, seed: Number(process.env.FUZZ_SEED ?? 20_261_201) },
    )
    // Not vacuous: honest deposits were sent.
    expect(sends).toBeGreaterThan(0)
  }, 120_000)
})
