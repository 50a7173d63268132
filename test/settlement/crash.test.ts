/**
 * A settler child process is SIGKILLed between sending a claim and its confirmation (the node
 * does not mine meanwhile), then a settler restarts on the same LevelDB store. Whether the claim
 * is still pending, or was dropped by the node, the restart neither claims twice nor forgets a
 * claim: on chain, every channel's totalClaimed is its stored ceiling, reached once.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Address, Hex, PrivateKeyAccount } from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ServerIdentity } from '../../src/ledger/index.js'
import { LevelStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import { chargedRecords, depositChannels, openRig, WITHDRAW_DELAY } from './rig.js'

const CHILD = join(import.meta.dirname, 'settlerChild.ts')
const dev = useDevChain()
const h = dev.harness
const accounts = dev.accounts as PrivateKeyAccount[]
const payer = accounts[2] as PrivateKeyAccount
const authorizer = accounts[7] as PrivateKeyAccount
const authorizerKey = dev.privateKeys[7] as Hex
const sessionKey = randomAccount()
const DEPOSIT = 1_000_000n
const CHARGED = 6_000n
const COUNT = 5

let revert: () => Promise<void>
let identity: ServerIdentity
let dir: string
beforeEach(async () => {
  revert = await dev.snapshot()
  dir = mkdtempSync(join(tmpdir(), 'tollgate-settle-crash-'))
  identity = {
    receiver: randomAccount().address.toLowerCase() as Address,
    receiverAuthorizer: authorizer.address.toLowerCase() as Address,
    token: dev.contracts.usdc.toLowerCase() as Address,
    withdrawDelay: WITHDRAW_DELAY,
  }
})
afterEach(async () => {
  await dev.testClient.setAutomine(true)
  await revert()
  rmSync(dir, { recursive: true, force: true })
})

/** Stores charged channels, then runs a settler child until it has sent its claim, and kills it. */
async function crashAfterSend(): Promise<{ ids: Hex[]; hash: Hex }> {
  const channels = await depositChannels(h, payer, sessionKey, identity, COUNT, DEPOSIT)
  const records = await chargedRecords(h, sessionKey, channels, DEPOSIT, () => CHARGED)
  const store = await LevelStore.open(dir)
  for (const record of records) await store.put(record)
  await store.close()

  await dev.testClient.setAutomine(false)
  const params = { rpcUrl: dev.rpcUrl, chainId: dev.chainId, contracts: dev.contracts, identity }
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, JSON.stringify(params)], {
    env: { ...process.env, SETTLER_KEY: authorizerKey },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_code, signal) => resolve(signal)),
  )
  let hash: Hex | undefined
  for await (const line of createInterface({ input: child.stdout })) {
    const event = JSON.parse(line) as { msg: string; hash?: Hex }
    if (event.msg === 'tollgate: claim sent') {
      hash = event.hash
      child.kill('SIGKILL')
      break
    }
  }
  expect(await exited).toBe('SIGKILL')
  if (!hash) throw new Error('the child never sent its claim')
  return { ids: channels.map((c) => c.id), hash }
}

async function restart() {
  const store = await LevelStore.open(dir)
  expect(store.recoveredFromCrash).toBe(true)
  const rig = await openRig({ h, store, identity, sender: authorizer })
  return { ...rig, store }
}

const claimed = (ids: readonly Hex[]) =>
  Promise.all(ids.map(async (id) => (await h.channel(id)).totalClaimed))

describe('settler killed between send and confirm', () => {
  it('waits for the claim still pending after the restart and sends no second one', async () => {
    const before = await h.publicClient.getTransactionCount({ address: authorizer.address })
    const { ids, hash } = await crashAfterSend()
    const { settler, store, payee } = await restart()
    const running = settler.run({ sweep: true })
    await dev.testClient.setAutomine(true)
    await dev.testClient.mine({ blocks: 1 })
    const report = await running
    expect(report.ok).toBe(true)
    expect(report.recovered).toBe(1)
    expect(report.claimedChannels).toBe(0)
    expect(await claimed(ids)).toEqual(ids.map(() => CHARGED))
    expect((await h.publicClient.getTransactionReceipt({ hash })).status).toBe('success')
    // The crashed run's claim and this run's settle: nothing claimed twice.
    const after = await h.publicClient.getTransactionCount({ address: authorizer.address })
    expect(after - before).toBe(2)
    expect(await h.usdcBalance(identity.receiver)).toBe(BigInt(COUNT) * CHARGED)
    expect(payee.claimable()).toEqual([])
    await store.close()
  })

  it('claims again what the node dropped, so no claim is lost', async () => {
    const { ids, hash } = await crashAfterSend()
    await dev.testClient.dropTransaction({ hash })
    await dev.testClient.setAutomine(true)
    const { settler, store } = await restart()
    const report = await settler.run({ sweep: true })
    expect(report.ok).toBe(true)
    expect(report.recovered).toBe(1)
    expect(report.claimedChannels).toBe(COUNT)
    expect(await claimed(ids)).toEqual(ids.map(() => CHARGED))
    expect(await h.usdcBalance(identity.receiver)).toBe(BigInt(COUNT) * CHARGED)
    await store.close()
  })
})
