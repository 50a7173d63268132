import type { Hex } from 'viem'
import { describe, expect, it, vi } from 'vitest'
import type { ErrorCode } from '../../src/errors/index.js'
import type { BeginResult, Hold } from '../../src/ledger/index.js'
import { IDENTITY, makeConfig, makeLedger, openChannel, otherKey, payment } from './fixtures.js'

const exact = (price: bigint) => ({ kind: 'exact', price }) as const

function held(result: BeginResult): Hold {
  if (!result.ok) throw new Error(`expected a hold, got ${result.code}: ${result.message}`)
  return result.hold
}
function code(result: BeginResult | { ok: boolean; code?: ErrorCode }): ErrorCode | 'ok' {
  return result.ok ? 'ok' : (result as { code: ErrorCode }).code
}

describe('a paid request', () => {
  it('holds the channel, keeps the voucher, charges the actual price on commit', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const hold = held(await ledger.begin(await payment(config, id, 1000n), exact(1000n)))
    expect(hold.record.signedMaxClaimable).toBe(1000n)
    expect(hold.record.chargedCumulativeAmount).toBe(0n)
    expect(ledger.isHeld(id)).toBe(true)

    const committed = ledger.commit(hold, 600n)
    expect(committed.ok && committed.record.chargedCumulativeAmount).toBe(600n)
    expect(ledger.isHeld(id)).toBe(false)

    // The next voucher must be charged-so-far plus the price: 600 + 1000.
    expect(code(await ledger.begin(await payment(config, id, 2000n), exact(1000n)))).toBe(
      'invalid_batch_settlement_evm_cumulative_amount_mismatch',
    )
    const next = held(await ledger.begin(await payment(config, id, 1600n), exact(1000n)))
    ledger.commit(next, 1000n)
    expect(ledger.get(id)).toMatchObject({
      chargedCumulativeAmount: 1600n,
      signedMaxClaimable: 1600n,
    })
  })

  it('leaves the charge unchanged when the handler fails, and the same voucher can be retried', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const pay = await payment(config, id, 1000n)
    const restored = ledger.release(held(await ledger.begin(pay, exact(1000n))))
    expect(restored).toMatchObject({
      chargedCumulativeAmount: 0n,
      signedMaxClaimable: 0n,
      signature: '0x',
    })
    expect(ledger.get(id)).toEqual(restored)
    const retry = held(await ledger.begin(pay, exact(1000n)))
    expect(ledger.commit(retry, 1000n).ok).toBe(true)
    expect(ledger.get(id)?.chargedCumulativeAmount).toBe(1000n)
  })

  it('refuses to charge more than the voucher covers, and releases the channel', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const hold = held(await ledger.begin(await payment(config, id, 1000n), exact(1000n)))
    expect(code(ledger.commit(hold, 1001n))).toBe(
      'invalid_batch_settlement_evm_charge_exceeds_signed_cumulative',
    )
    expect(ledger.get(id)?.chargedCumulativeAmount).toBe(0n)
    expect(ledger.isHeld(id)).toBe(false)
    expect(() => ledger.commit(hold, 1n)).toThrow(/not held/)
  })

  it('attaches the channel state to a mismatch, for a corrective 402', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    ledger.commit(held(await ledger.begin(await payment(config, id, 1000n), exact(1000n))), 1000n)
    const lost = await ledger.begin(await payment(config, id, 1000n), exact(1000n))
    expect(lost.ok).toBe(false)
    if (!lost.ok) {
      expect(lost.code).toBe('invalid_batch_settlement_evm_cumulative_amount_mismatch')
      expect(lost.record).toMatchObject({
        chargedCumulativeAmount: 1000n,
        signedMaxClaimable: 1000n,
      })
      expect(lost.record?.signature).toMatch(/^0x[0-9a-f]{130}$/)
    }
  })
})

describe('rejections', () => {
  it.each([
    [
      'receiver',
      { receiver: '0x0000000000000000000000000000000000000001' },
      'invalid_batch_settlement_evm_receiver_mismatch',
    ],
    [
      'receiverAuthorizer',
      { receiverAuthorizer: '0x0000000000000000000000000000000000000001' },
      'invalid_batch_settlement_evm_receiver_authorizer_mismatch',
    ],
    [
      'token',
      { token: '0x0000000000000000000000000000000000000001' },
      'invalid_batch_settlement_evm_token_mismatch',
    ],
    [
      'withdrawDelay',
      { withdrawDelay: 900 },
      'invalid_batch_settlement_evm_withdraw_delay_mismatch',
    ],
  ] as const)(
    "refuses a channel whose %s is not this server's",
    async (_field, overrides, expected) => {
      const ledger = makeLedger()
      const { config, id } = openChannel(ledger, 10_000n, overrides)
      expect(code(await ledger.begin(await payment(config, id, 1000n), exact(1000n)))).toBe(
        expected,
      )
    },
  )

  it('reports an unknown channel so the caller reads it from chain', async () => {
    const ledger = makeLedger()
    const config = makeConfig()
    const result = await ledger.begin(
      await payment(config, `0x${'ab'.repeat(32)}`, 1000n),
      exact(1000n),
    )
    expect(code(result)).toBe('invalid_batch_settlement_evm_channel_not_found')
    expect(!result.ok && result.unknownChannel).toBe(true)
  })

  it('refuses a config that does not hash to the channel id it names', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const forged = { ...config, payer: '0x0000000000000000000000000000000000000bad' as const }
    expect(code(await ledger.begin(await payment(forged, id, 1000n), exact(1000n)))).toBe(
      'invalid_batch_settlement_evm_channel_id_mismatch',
    )
  })

  it('refuses a ceiling above the balance, at or below what was claimed, or past the exposure cap', async () => {
    const onClaimNeeded = vi.fn()
    const ledger = makeLedger({ exposureCap: 5000n, onClaimNeeded })
    const { config, id } = openChannel(ledger, 3000n)
    ledger.commit(held(await ledger.begin(await payment(config, id, 1000n), exact(1000n))), 1000n)
    ledger.commit(held(await ledger.begin(await payment(config, id, 2000n), exact(1000n))), 1000n)
    expect(code(await ledger.begin(await payment(config, id, 4000n), exact(2000n)))).toBe(
      'invalid_batch_settlement_evm_cumulative_exceeds_balance',
    )
    ledger.apply({ type: 'claimed', channelId: id, totalClaimed: 2000n })
    expect(code(await ledger.begin(await payment(config, id, 2000n), exact(0n)))).toBe(
      'invalid_batch_settlement_evm_cumulative_below_claimed',
    )
    const big = openChannel(ledger, 100_000n)
    expect(code(await ledger.begin(await payment(big.config, big.id, 5001n), exact(5001n)))).toBe(
      'tollgate_exposure_cap',
    )
    expect(onClaimNeeded).toHaveBeenCalledWith(expect.objectContaining({ channelId: big.id }))
  })

  it('refuses a voucher signed by another key, or for another amount', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    expect(code(await ledger.begin(await payment(config, id, 1000n, otherKey), exact(1000n)))).toBe(
      'invalid_batch_settlement_evm_voucher_signature',
    )
    const pay = await payment(config, id, 1000n)
    const tampered = { ...pay, voucher: { ...pay.voucher, maxClaimableAmount: 1000n } }
    const other = await payment(config, id, 999n)
    const swapped = {
      ...tampered,
      voucher: { ...tampered.voucher, signature: other.voucher.signature },
    }
    expect(code(await ledger.begin(swapped, exact(1000n)))).toBe(
      'invalid_batch_settlement_evm_voucher_signature',
    )
    expect(ledger.isHeld(id)).toBe(false)
  })

  it('refuses new vouchers once a withdrawal is pending, and asks for a claim', async () => {
    const onClaimNeeded = vi.fn()
    const ledger = makeLedger({ onClaimNeeded })
    const { config, id } = openChannel(ledger, 10_000n)
    ledger.apply({ type: 'withdrawInitiated', channelId: id, initiatedAt: 1_700_000_000 })
    expect(onClaimNeeded).toHaveBeenCalledOnce()
    expect(code(await ledger.begin(await payment(config, id, 1000n), exact(1000n)))).toBe(
      'tollgate_withdrawal_pending',
    )
  })

  it('checks contract payers through the injected EIP-1271 check, and refuses them without one', async () => {
    const zero = '0x0000000000000000000000000000000000000000' as const
    const plain = makeLedger()
    const a = openChannel(plain, 10_000n, { payerAuthorizer: zero })
    expect(code(await plain.begin(await payment(a.config, a.id, 1000n), exact(1000n)))).toBe(
      'invalid_batch_settlement_evm_voucher_signature',
    )
    const seen: Hex[] = []
    const check = vi.fn(async (_account: string, digest: Hex) => {
      seen.push(digest)
      return true
    })
    const ledger = makeLedger({ contractSignatureCheck: check })
    const b = openChannel(ledger, 10_000n, { payerAuthorizer: zero })
    const hold = held(await ledger.begin(await payment(b.config, b.id, 1000n), exact(1000n)))
    expect(check).toHaveBeenCalledWith(
      b.config.payer,
      expect.stringMatching(/^0x[0-9a-f]{64}$/),
      expect.any(String),
    )
    ledger.commit(hold, 1000n)
  })
})

describe('serialization', () => {
  it('serves 100 simultaneous requests on one channel one at a time: none charged twice, none unpaid', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 1_000_000n)
    const price = 10n
    // Each client retries on busy or on a stale ceiling, re-reading the charged total as a client
    // does from a corrective 402, until its one request has been served.
    let served = 0
    const client = async () => {
      for (;;) {
        const charged = ledger.get(id)?.chargedCumulativeAmount ?? 0n
        const result = await ledger.begin(await payment(config, id, charged + price), exact(price))
        if (result.ok) {
          await new Promise((r) => setTimeout(r, 0))
          served += 1
          expect(ledger.commit(result.hold, price).ok).toBe(true)
          return
        }
        expect([
          'invalid_batch_settlement_evm_channel_busy',
          'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        ]).toContain(result.code)
        await new Promise((r) => setTimeout(r, Math.random() * 2))
      }
    }
    await Promise.all(Array.from({ length: 100 }, client))
    expect(served).toBe(100)
    expect(ledger.get(id)).toMatchObject({
      chargedCumulativeAmount: 1000n,
      signedMaxClaimable: 1000n,
    })
  })

  it('lets exactly one of many simultaneous identical vouchers through', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const pay = await payment(config, id, 1000n)
    const results = await Promise.all(
      Array.from({ length: 20 }, () => ledger.begin(pay, exact(1000n))),
    )
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(
      results
        .filter((r) => !r.ok)
        .every((r) => code(r) === 'invalid_batch_settlement_evm_channel_busy'),
    ).toBe(true)
  })
})

describe('credit windows (WebSocket)', () => {
  it('accepts a voucher covering several messages, charges each, tops up under the same hold', async () => {
    const ledger = makeLedger()
    const { config, id } = openChannel(ledger, 10_000n)
    const credit = { kind: 'credit', price: 100n } as const
    const hold = held(await ledger.begin(await payment(config, id, 500n), credit))
    for (let i = 0; i < 5; i++) expect(ledger.chargeHeld(hold, 100n).ok).toBe(true)
    expect(code(ledger.chargeHeld(hold, 100n))).toBe(
      'invalid_batch_settlement_evm_charge_exceeds_signed_cumulative',
    )
    const top = await payment(config, id, 1000n)
    expect((await ledger.extend(hold, top.voucher, credit)).ok).toBe(true)
    expect(ledger.chargeHeld(hold, 100n).ok).toBe(true)
    // The session ends: the top-up voucher is kept, since charges rely on it.
    ledger.release(hold)
    expect(ledger.get(id)).toMatchObject({
      chargedCumulativeAmount: 600n,
      signedMaxClaimable: 1000n,
    })
  })
})

describe('chain events and claims', () => {
  it('mirrors events idempotently and never moves claimed or the refund nonce backwards', async () => {
    const ledger = makeLedger()
    const { id } = openChannel(ledger, 1000n)
    ledger.apply({ type: 'deposited', channelId: id, balance: 3000n })
    ledger.apply({ type: 'deposited', channelId: id, balance: 3000n })
    ledger.apply({ type: 'claimed', channelId: id, totalClaimed: 500n })
    ledger.apply({ type: 'claimed', channelId: id, totalClaimed: 400n })
    ledger.apply({ type: 'refunded', channelId: id, balance: 2500n, refundNonce: 1n })
    ledger.apply({ type: 'refunded', channelId: id, balance: 2500n, refundNonce: 1n })
    expect(ledger.get(id)).toMatchObject({ balance: 2500n, totalClaimed: 500n, refundNonce: 1n })
    expect(
      ledger.apply({ type: 'claimed', channelId: `0x${'00'.repeat(32)}`, totalClaimed: 1n }),
    ).toBeUndefined()
  })

  it('lists claimable channels, pending withdrawals first by deadline', async () => {
    const ledger = makeLedger()
    const chans = [
      openChannel(ledger, 10_000n),
      openChannel(ledger, 10_000n),
      openChannel(ledger, 10_000n),
    ]
    const amounts = [300n, 700n, 500n]
    for (const [i, ch] of chans.entries()) {
      const amount = amounts[i] as bigint
      ledger.commit(
        held(await ledger.begin(await payment(ch.config, ch.id, amount), exact(amount))),
        amount,
      )
    }
    ledger.apply({ type: 'withdrawInitiated', channelId: chans[0]?.id as Hex, initiatedAt: 1000 })
    const list = ledger.claimable()
    expect(list.map((c) => c.record.channelId)).toEqual([chans[0]?.id, chans[1]?.id, chans[2]?.id])
    expect(list[0]?.deadline).toBe(1000 + IDENTITY.withdrawDelay)
    ledger.apply({ type: 'claimed', channelId: chans[1]?.id as Hex, totalClaimed: 700n })
    expect(ledger.claimable().map((c) => c.unclaimed)).toEqual([300n, 500n])
  })

  it('keeps the higher voucher when a channel is opened twice', () => {
    const ledger = makeLedger()
    const { id } = openChannel(ledger, 1000n)
    const record = ledger.get(id)
    if (!record) throw new Error('missing')
    ledger.open({
      ...record,
      signedMaxClaimable: 800n,
      chargedCumulativeAmount: 800n,
      signature: '0x01',
    })
    ledger.open({ ...record, signedMaxClaimable: 500n })
    expect(ledger.get(id)?.signedMaxClaimable).toBe(800n)
  })
})
