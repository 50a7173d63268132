import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Hex } from 'viem'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ChannelReader } from '../../src/chain/readChannel.js'
import type { ChannelRecord } from '../../src/ledger/index.js'
import { openPayee, type PayeeOptions } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import { type ChannelStore, LevelStore, MemoryStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, otherKey, payment } from '../ledger/fixtures.js'

const exact = (price: bigint) => ({ kind: 'exact', price }) as const
const onChain = (balance: bigint) => ({
  balance,
  totalClaimed: 0n,
  withdrawRequestedAt: 0,
  refundNonce: 0n,
})

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function payeeWith(
  store: ChannelStore,
  readChannel: ChannelReader,
  extra: Partial<PayeeOptions> = {},
) {
  const payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: CANONICAL_ADDRESSES.escrow,
    identity: IDENTITY,
    store,
    readChannel,
    ...extra,
  })
  return payee
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-payee-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('first sight of a channel', () => {
  it('reads the chain once, even for simultaneous first requests, then serves from memory', async () => {
    const store = await MemoryStore.open()
    const read = vi.fn(async () => onChain(10_000n))
    const payee = await payeeWith(store, read)
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const results = await Promise.all(
      Array.from({ length: 5 }, async () =>
        payee.decide(await payment(config, id, 1000n), exact(1000n)),
      ),
    )
    expect(read).toHaveBeenCalledTimes(1)
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    const winner = results.find((r) => r.ok)
    if (!winner?.ok) throw new Error('no request won')
    payee.commit(winner.hold, 1000n)
    const next = await payee.decide(await payment(config, id, 2000n), exact(1000n))
    expect(next.ok).toBe(true)
    expect(read).toHaveBeenCalledTimes(1)
  })

  it('takes a voucher above the mirrored balance once the chain shows the deposit behind it, else refuses it', async () => {
    let balance = 10_000n
    const read = vi.fn(async () => onChain(balance))
    const payee = await payeeWith(await MemoryStore.open(), read)
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.code)
    payee.commit(first.hold, 1000n)

    const over = await payee.decide(await payment(config, id, 15_000n), exact(14_000n))
    expect(over.ok ? 'ok' : over.code).toBe(
      'invalid_batch_settlement_evm_cumulative_exceeds_balance',
    )
    expect(read).toHaveBeenCalledTimes(2)

    balance = 20_000n
    const afterDeposit = await Promise.all([
      payee.decide(await payment(config, id, 15_000n), exact(14_000n)),
      payee.decide(await payment(config, id, 15_000n), exact(14_000n)),
    ])
    expect(read).toHaveBeenCalledTimes(3)
    const accepted = afterDeposit.find((d) => d.ok)
    if (!accepted?.ok) throw new Error('the voucher was refused after the deposit')
    expect(accepted.hold.record.balance).toBe(20_000n)
    expect(accepted.hold.record.signedMaxClaimable).toBe(15_000n)
  })

  it("refuses channels that are not this server's, do not match their id, have no deposit or cannot be read", async () => {
    const store = await MemoryStore.open()
    const read = vi.fn<ChannelReader>(async () => onChain(0n))
    const payee = await payeeWith(store, read)

    const foreign = makeConfig({ receiver: '0x0000000000000000000000000000000000000001' })
    const r1 = await payee.decide(
      await payment(foreign, channelId(foreign, DOMAIN), 1000n),
      exact(1000n),
    )
    expect(!r1.ok && r1.code).toBe('invalid_batch_settlement_evm_receiver_mismatch')
    expect(read).not.toHaveBeenCalled()

    const config = makeConfig()
    const wrongId = `0x${'12'.repeat(32)}` as Hex
    const r2 = await payee.decide(await payment(config, wrongId, 1000n), exact(1000n))
    expect(!r2.ok && r2.code).toBe('invalid_batch_settlement_evm_channel_id_mismatch')
    expect(read).not.toHaveBeenCalled()

    const id = channelId(config, DOMAIN)
    const r3 = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    expect(!r3.ok && r3.code).toBe('invalid_batch_settlement_evm_channel_not_found')

    read.mockRejectedValueOnce(new Error('connection refused'))
    const r4 = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    expect(!r4.ok && r4.code).toBe('invalid_batch_settlement_evm_channel_state_read_failed')
  })
})

describe('durability', () => {
  it('has the voucher in the store before it hands out the hold', async () => {
    const store = await MemoryStore.open()
    const payee = await payeeWith(store, async () => onChain(10_000n))
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const decision = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    expect(decision.ok).toBe(true)
    const stored = (await store.loadAll()).find((r) => r.channelId === id)
    expect(stored?.signedMaxClaimable).toBe(1000n)
    expect(stored?.signature).toMatch(/^0x[0-9a-f]{130}$/)
  })

  it('refuses to serve when the voucher cannot be stored, and releases the channel', async () => {
    const store = await MemoryStore.open()
    const payee = await payeeWith(store, async () => onChain(10_000n))
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    store.failWrites(new Error('disk full'))
    const failed = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    expect(!failed.ok && failed.code).toBe('tollgate_store_failed')
    expect(payee.ledger.isHeld(id)).toBe(false)
    expect(payee.ledger.get(id)?.signedMaxClaimable).toBe(0n)
    store.failWrites(undefined)
    expect((await payee.decide(await payment(config, id, 1000n), exact(1000n))).ok).toBe(true)
  })

  it('reloads every channel after a clean restart, exactly as it was', async () => {
    const dir = tempDir()
    const read = async () => onChain(10_000n)
    const first = await payeeWith(await LevelStore.open(dir), read)
    const configs = [makeConfig(), makeConfig(), makeConfig()]
    for (const config of configs) {
      const id = channelId(config, DOMAIN)
      for (let k = 1n; k <= 3n; k++) {
        const d = await first.decide(await payment(config, id, 300n * k), exact(300n))
        if (!d.ok) throw new Error(d.message)
        first.commit(d.hold, 300n)
      }
    }
    const before = [...first.ledger.records()].sort(byId)
    await first.close()
    const second = await payeeWith(await LevelStore.open(dir), read)
    cleanups.push(() => second.close())
    expect(second.recovery).toEqual({ channels: 3, fromCrash: false, corrected: 0 })
    expect([...second.ledger.records()].sort(byId)).toEqual(before)
  })

  it("after a crash, takes each channel's charge to be its stored ceiling, and writes the correction back", async () => {
    const dir = tempDir()
    // A real process writes a voucher ahead of its charge, then exits without closing the store.
    const script = join(import.meta.dirname, 'crashedServer.ts')
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, dir], {
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(child.stderr).toBe('')
    expect(child.stdout.trim()).toMatch(/^stored 0x[0-9a-f]{64}$/)
    const id = child.stdout.trim().split(' ')[1] as Hex

    const warnings: string[] = []
    const store = await LevelStore.open(dir)
    const payee = await payeeWith(store, async () => onChain(10_000n), {
      onWarning: (m) => warnings.push(m),
    })
    cleanups.push(() => payee.close())
    expect(payee.recovery).toEqual({ channels: 1, fromCrash: true, corrected: 1 })
    expect(payee.ledger.get(id)).toMatchObject({
      chargedCumulativeAmount: 2000n,
      signedMaxClaimable: 2000n,
    })
    expect(warnings.join()).toMatch(/not closed cleanly/)
    expect((await store.loadAll())[0]?.chargedCumulativeAmount).toBe(2000n)
  })
})

describe('one store write per request', () => {
  it('does not write a commit at the full price again: the record admitted reloads as it', async () => {
    const store = await MemoryStore.open()
    const payee = await payeeWith(store, async () => onChain(10_000n))
    cleanups.push(() => payee.close())
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.message)
    payee.commit(first.hold, 1000n)
    const put = vi.spyOn(store, 'put')
    for (let k = 2n; k <= 4n; k++) {
      const d = await payee.decide(await payment(config, id, 1000n * k), exact(1000n))
      if (!d.ok) throw new Error(d.message)
      expect(payee.commit(d.hold, 1000n).ok).toBe(true)
    }
    expect(put).toHaveBeenCalledTimes(3)
    const lower = await payee.decide(await payment(config, id, 5000n), exact(1000n))
    if (!lower.ok) throw new Error(lower.message)
    payee.commit(lower.hold, 400n)
    // A charge below the price is not what the admitted record holds in flight: written again.
    expect(put).toHaveBeenCalledTimes(5)
    expect(put.mock.calls[4]?.[0]).toMatchObject({
      chargedCumulativeAmount: 4400n,
      inFlightCumulativeAmount: 4400n,
    })
  })

  it('after a crash, reloads every acknowledged commit as charged, and no more', async () => {
    const dir = tempDir()
    const script = join(import.meta.dirname, 'committedServer.ts')
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, dir], {
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(child.stderr).toBe('')
    const [full, lower] = child.stdout.trim().split(' ') as [Hex, Hex]
    const payee = await payeeWith(await LevelStore.open(dir), async () => onChain(10_000n))
    cleanups.push(() => payee.close())
    expect(payee.recovery.fromCrash).toBe(true)
    expect(payee.ledger.get(full)).toMatchObject({
      chargedCumulativeAmount: 3000n,
      inFlightCumulativeAmount: 3000n,
      signedMaxClaimable: 3000n,
    })
    expect(payee.ledger.get(lower)).toMatchObject({
      chargedCumulativeAmount: 400n,
      signedMaxClaimable: 1000n,
    })
  })
})

function byId(a: ChannelRecord, b: ChannelRecord): number {
  return a.channelId < b.channelId ? -1 : 1
}

describe('what an unsigned voucher may cost', () => {
  it('reads nothing from chain for a forged voucher of an unknown channel', async () => {
    const read = vi.fn(async () => onChain(10_000n))
    const payee = await payeeWith(await MemoryStore.open(), read)
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const forged = await payment(config, id, 1000n, otherKey)
    const decision = await payee.decide(forged, exact(1000n))
    expect(decision).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_voucher_signature',
    })
    expect(read).not.toHaveBeenCalled()
    expect(payee.isKnown(id)).toBe(false)
  })

  it('reads nothing from chain for a forged voucher above a known channel balance', async () => {
    const read = vi.fn(async () => onChain(10_000n))
    const payee = await payeeWith(await MemoryStore.open(), read)
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.message)
    payee.commit(first.hold, 1000n)
    expect(read).toHaveBeenCalledTimes(1)
    const forged = await payee.decide(
      await payment(config, id, 2_000_000n, otherKey),
      exact(1_999_000n),
    )
    expect(forged.ok).toBe(false)
    expect(read).toHaveBeenCalledTimes(1)
    // Signed by the channel's signer, the same voucher is worth a look at the chain.
    const signed = await payee.decide(await payment(config, id, 2_000_000n), exact(1_999_000n))
    expect(signed).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_cumulative_exceeds_balance',
    })
    expect(read).toHaveBeenCalledTimes(2)
  })

  it("shows a channel's state (a corrective) only to a voucher its signer signed", async () => {
    const payee = await payeeWith(await MemoryStore.open(), async () => onChain(10_000n))
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const first = await payee.decide(await payment(config, id, 1000n), exact(1000n))
    if (!first.ok) throw new Error(first.message)
    payee.commit(first.hold, 1000n)
    const mismatch = 'invalid_batch_settlement_evm_cumulative_amount_mismatch'
    const forged = await payee.decide(await payment(config, id, 5000n, otherKey), exact(1000n))
    expect(forged).toMatchObject({ ok: false, code: mismatch })
    expect('record' in forged && forged.record).toBeFalsy()
    const signed = await payee.decide(await payment(config, id, 5000n), exact(1000n))
    expect(signed).toMatchObject({
      ok: false,
      code: mismatch,
      record: { chargedCumulativeAmount: 1000n },
    })
  })
})

describe('contract payers (EIP-1271)', () => {
  it('have their own limit of signature checks, each an RPC call, refused with a code past it', async () => {
    const check = vi.fn(async () => false)
    const payee = await payeeWith(await MemoryStore.open(), async () => onChain(10_000n), {
      contractSignatureCheck: check,
      contractChecks: { max: 2, timeWindowMs: 60_000 },
    })
    const config = makeConfig({ payerAuthorizer: '0x0000000000000000000000000000000000000000' })
    const id = channelId(config, DOMAIN)
    const codes: string[] = []
    for (let i = 0; i < 4; i++) {
      const decision = await payee.decide(await payment(config, id, 1000n), exact(1000n))
      codes.push(decision.ok ? 'ok' : decision.code)
    }
    expect(codes).toEqual([
      'invalid_batch_settlement_evm_voucher_signature',
      'invalid_batch_settlement_evm_voucher_signature',
      'tollgate_rate_limited',
      'tollgate_rate_limited',
    ])
    const calls = check.mock.calls.length
    expect(calls).toBeGreaterThan(0)
    expect(calls).toBeLessThanOrEqual(2)
  })
})

describe('a credit top-up that cannot be stored', () => {
  it('serves nothing on it: the session keeps the voucher before, in memory and in the store', async () => {
    const store = await MemoryStore.open()
    const payee = await payeeWith(store, async () => onChain(100_000n))
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const credit = { kind: 'credit', price: 10n, reserve: 640n } as const
    const opened = await payee.decide(await payment(config, id, 1000n), credit)
    if (!opened.ok) throw new Error(opened.message)
    store.failWrites(new Error('disk full'))
    const topUp = await payee.extend(opened.hold, await payment(config, id, 5000n), credit)
    expect(topUp).toMatchObject({ ok: false, code: 'tollgate_store_failed' })
    expect(payee.ledger.get(id)?.signedMaxClaimable).toBe(1000n)
    // Charges stop where the stored voucher ends.
    let charged = 0n
    while (
      payee.coverFor(opened.hold, 10n) === undefined &&
      payee.chargeHeld(opened.hold, 10n).ok
    ) {
      charged += 10n
      if (charged > 2000n) break
    }
    expect(charged).toBeLessThanOrEqual(1000n)
    store.failWrites(undefined)
    payee.release(opened.hold)
  })
})
