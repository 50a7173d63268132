/**
 * The settlement engine on a local anvil: gas per claimed channel when the engine claims 1, 10
 * and 100 channels in one transaction (its planner, journal and executor, `claimPacked`), next to
 * the x402 reference escrow's 19 204 per channel at 10; and the wall time for the engine to claim
 * 1 000 channels (10 transactions of 100) and settle them to the receiver, with its journal and
 * lease in a LevelDB store on disk.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Account, Address } from 'viem'
import { startDevChain } from '../src/chain/devChain.js'
import type { ServerIdentity } from '../src/ledger/index.js'
import { LevelStore, MemoryStore } from '../src/store/index.js'
import { EscrowHarness, randomAccount } from '../test/helpers/escrow.js'
import { chargedRecords, depositChannels, openRig, WITHDRAW_DELAY } from '../test/settlement/rig.js'
import type { Log } from './run.js'

/** The x402 reference contract's gas snapshot: claim of 10 channels, per channel. */
const REFERENCE_CLAIM_10_PER_CHANNEL = 19_204

const BATCH_SIZES = [1, 10, 100] as const
const CHANNELS_TIMED = 1_000
const DEPOSIT = 1_000_000n

export async function run(log: Log) {
  const dev = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-settle-'))
  try {
    const [, authorizer, payer] = dev.accounts as [Account, Account, Account]
    const h = EscrowHarness.on(dev)
    const sessionKey = randomAccount()
    const identity: ServerIdentity = {
      receiver: randomAccount().address.toLowerCase() as Address,
      receiverAuthorizer: authorizer.address.toLowerCase() as Address,
      token: dev.contracts.usdc.toLowerCase() as Address,
      withdrawDelay: WITHDRAW_DELAY,
    }
    /** Deposits `n` channels charged 10 000+i each and runs the engine once over them. */
    const settleOnce = async (n: number, store: MemoryStore | LevelStore) => {
      const channels = await depositChannels(h, payer, sessionKey, identity, n, DEPOSIT)
      const records = await chargedRecords(
        h,
        sessionKey,
        channels,
        DEPOSIT,
        (i) => 10_000n + BigInt(i),
      )
      const { settler } = await openRig({
        h,
        store,
        identity,
        sender: authorizer,
        records,
        settler: { maxPerTx: 100 },
      })
      const started = performance.now()
      const report = await settler.run({ sweep: true })
      const seconds = (performance.now() - started) / 1000
      if (!report.ok || report.claimedChannels !== n) {
        throw new Error(`settlement of ${n} channels failed: ${JSON.stringify(report.failures)}`)
      }
      return { report, seconds }
    }

    // The receiver's first claim and settle write fresh storage slots (once per receiver and
    // token); measure after them, in steady state, as benchmarks/gas.ts does.
    const warm = await settleOnce(1, await MemoryStore.open())
    log(
      `first claim of the receiver: ${warm.report.claims[0]?.gasUsed} gas (one-time slot creation)`,
    )

    const perChannel: Record<string, number> = {}
    for (const n of BATCH_SIZES) {
      const { report } = await settleOnce(n, await MemoryStore.open())
      const [claim] = report.claims
      if (!claim) throw new Error('no claim sent')
      perChannel[n] = Math.round(Number(claim.gasUsed) / n)
      log(
        `${n} channels: one ${claim.method} of ${claim.gasUsed} gas, ${perChannel[n]} per channel`,
      )
    }
    log(
      `reference: ${REFERENCE_CLAIM_10_PER_CHANNEL} gas per channel at 10 (x402 escrow); engine at 10: ${perChannel[10]} (${((perChannel[10] ?? 0) / REFERENCE_CLAIM_10_PER_CHANNEL).toFixed(2)}x)`,
    )

    const store = await LevelStore.open(join(dir, 'vouchers'))
    try {
      const timed = await settleOnce(CHANNELS_TIMED, store)
      log(
        `${CHANNELS_TIMED} channels: ${timed.report.claims.length} claims and a settle of ${timed.report.settled?.amount} in ${timed.seconds.toFixed(2)} s`,
      )
      return {
        claim_gas_per_channel: perChannel,
        claim_settle_1000_s: Number(timed.seconds.toFixed(2)),
      }
    } finally {
      await store.close()
    }
  } finally {
    await dev.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}
