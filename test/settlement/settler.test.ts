/**
 * The settlement engine against a real anvil: threshold and sweep claims, 250 channels in a few
 * batches, the settle sweep, the x402 `claim` and relayed `claimWithSignature` paths, the lease,
 * a dry run, and a sender out of gas.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Address, Hex, PrivateKeyAccount } from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ServerIdentity } from '../../src/ledger/index.js'
import {
  acquireLease,
  createSettlementSchedule,
  NUDGE_INTERVAL_MS,
  type SettlementReport,
} from '../../src/settlement/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import { chargedRecords, depositChannels, openRig, WITHDRAW_DELAY } from './rig.js'

const dev = useDevChain()
const h = dev.harness
const accounts = dev.accounts as PrivateKeyAccount[]
const payer = accounts[2] as PrivateKeyAccount
const authorizer = accounts[5] as PrivateKeyAccount
const sessionKey = randomAccount()
const DEPOSIT = 1_000_000n

let revert: () => Promise<void>
let identity: ServerIdentity
beforeEach(async () => {
  revert = await dev.snapshot()
  identity = {
    receiver: randomAccount().address.toLowerCase() as Address,
    receiverAuthorizer: authorizer.address.toLowerCase() as Address,
    token: dev.contracts.usdc.toLowerCase() as Address,
    withdrawDelay: WITHDRAW_DELAY,
  }
})
afterEach(async () => {
  await revert()
})

async function rig(
  count: number,
  charged: (i: number) => bigint,
  extra: Partial<Parameters<typeof openRig>[0]> = {},
) {
  const channels = await depositChannels(h, payer, sessionKey, identity, count, DEPOSIT)
  const records = await chargedRecords(h, sessionKey, channels, DEPOSIT, charged)
  const store = await MemoryStore.open()
  const opened = await openRig({ h, store, identity, sender: authorizer, records, ...extra })
  return { ...opened, store, records, ids: channels.map((c) => c.id) }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(25)
  expect(check()).toBe(true)
}

async function onChainClaimed(ids: readonly Hex[]): Promise<bigint[]> {
  return Promise.all(ids.map(async (id) => (await h.channel(id)).totalClaimed))
}

describe('settler', () => {
  it('claims channels past the threshold, sweeps the rest later, and settles to the receiver', async () => {
    const charged = (i: number) => (i < 3 ? 600_000n : 1_000n + BigInt(i))
    const { settler, payee, ids } = await rig(6, charged, {
      settler: { threshold: 500_000n },
    })

    const first = await settler.run()
    expect(first.ok).toBe(true)
    expect(first.claimedChannels).toBe(3)
    expect(await onChainClaimed(ids)).toEqual([600_000n, 600_000n, 600_000n, 0n, 0n, 0n])
    expect(first.settled?.amount).toBe(1_800_000n)
    expect(await h.usdcBalance(identity.receiver)).toBe(1_800_000n)
    expect(payee.ledger.get(ids[0] as Hex)?.totalClaimed).toBe(600_000n)

    expect((await settler.run()).claimedChannels).toBe(0)

    const sweep = await settler.run({ sweep: true })
    expect(sweep.claimedChannels).toBe(3)
    expect(await onChainClaimed(ids)).toEqual(ids.map((_, i) => charged(i)))
    const total = ids.reduce((sum, _, i) => sum + charged(i), 0n)
    expect(await h.usdcBalance(identity.receiver)).toBe(total)
    expect(payee.claimable()).toEqual([])
  })

  it('looks at most once a second when nudged from the request path, and runs only when a claim is due', async () => {
    const charged = (i: number) => (i === 0 ? 600_000n : 1_000n)
    const { settler, ids } = await rig(2, charged, { settler: { threshold: 500_000n } })
    const reports: SettlementReport[] = []
    const schedule = createSettlementSchedule({
      settler,
      checkIntervalMs: 3_600_000,
      onReport: (report) => reports.push(report),
    })
    schedule.start()
    try {
      for (let i = 0; i < 200; i++) schedule.nudge('exposure')
      await until(() => reports.length === 1)
      expect(reports[0]?.claimedChannels).toBe(1)
      expect(await onChainClaimed(ids)).toEqual([600_000n, 0n])

      for (let i = 0; i < 200; i++) schedule.nudge('exposure')
      await sleep(NUDGE_INTERVAL_MS * 2)
      expect(reports).toHaveLength(1)
    } finally {
      await schedule.stop()
    }
  })

  it('claims 250 channels in three batches: on chain equals the stored ceilings', async () => {
    const charged = (i: number) => 10_000n + BigInt(i)
    const { settler, ids, records } = await rig(250, charged, { settler: { maxPerTx: 100 } })
    const progress: number[] = []
    const report = await settler.run({ sweep: true, onProgress: (done) => progress.push(done) })
    expect(report.failures).toEqual([])
    expect(report.claims.map((c) => [c.method, c.channels])).toEqual([
      ['claimPacked', 100],
      ['claimPacked', 100],
      ['claimPacked', 50],
    ])
    expect(progress).toEqual([100, 200, 250])
    expect(await onChainClaimed(ids)).toEqual(records.map((r) => r.signedMaxClaimable))
    const total = records.reduce((sum, r) => sum + r.chargedCumulativeAmount, 0n)
    expect(report.claimedAmount).toBe(total)
    expect(await h.usdcBalance(identity.receiver)).toBe(total)
  })

  it('claims through the x402 claim, and relays claimWithSignature from another sender', async () => {
    const plain = await rig(2, () => 5_000n, { executor: { packed: false } })
    const report = await plain.settler.run({ sweep: true })
    expect(report.claims.map((c) => c.method)).toEqual(['claim'])
    expect(await onChainClaimed(plain.ids)).toEqual([5_000n, 5_000n])

    const relayer = randomAccount()
    await dev.testClient.setBalance({ address: relayer.address, value: 10n ** 18n })
    const relayed = await rig(2, () => 7_000n, {
      sender: relayer,
      executor: { authorizer },
    })
    const sent = await relayed.settler.run({ sweep: true })
    expect(sent.failures).toEqual([])
    expect(await onChainClaimed(relayed.ids)).toEqual([7_000n, 7_000n])
  })

  it('plans without sending on a dry run', async () => {
    const { settler, ids } = await rig(3, () => 2_000n)
    const report = await settler.run({ sweep: true, dryRun: true })
    expect(report.plan?.batches.flatMap((b) => b.claims.map((c) => c.channelId))).toEqual(
      expect.arrayContaining(ids),
    )
    expect(report.claims).toEqual([])
    expect(await onChainClaimed(ids)).toEqual([0n, 0n, 0n])
  })

  it('does not run while another settler holds the lease', async () => {
    const { settler, store, ids } = await rig(1, () => 2_000n)
    const other = await acquireLease(store, 'other-host:1')
    if ('ok' in other) throw new Error('lease not taken')
    const report = await settler.run({ sweep: true })
    expect(report.ok).toBe(false)
    expect(report.failures.map((f) => f.code)).toEqual(['tollgate_settlement_busy'])
    await other.release()
    expect((await settler.run({ sweep: true })).claimedChannels).toBe(1)
    expect(await onChainClaimed(ids)).toEqual([2_000n])
  })

  it('reports a sender out of gas with a stable code, and claims once it is funded', async () => {
    const sender = randomAccount()
    const relayedIdentity = () => ({ sender, executor: { authorizer } })
    const { settler, ids, payee } = await rig(2, () => 3_000n, relayedIdentity())
    await dev.testClient.setBalance({ address: sender.address, value: 0n })
    const broke = await settler.run({ sweep: true })
    expect(broke.ok).toBe(false)
    expect(broke.failures.map((f) => f.code)).toEqual(['tollgate_settlement_insufficient_gas'])
    expect(broke.failures[0]?.channels).toBe(2)
    expect(payee.claimable()).toHaveLength(2)

    await dev.testClient.setBalance({ address: sender.address, value: 10n ** 18n })
    const funded = await settler.run({ sweep: true })
    expect(funded.ok).toBe(true)
    expect(await onChainClaimed(ids)).toEqual([3_000n, 3_000n])
    expect(payee.claimable()).toEqual([])
  })
})
