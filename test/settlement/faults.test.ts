/**
 * The settlement engine when things go wrong on the way to the chain: RPC calls failing before
 * or after the node acted, a claim that reverts on chain, and a transaction stuck unmined that
 * is replaced with higher fees. Each is retried and reported, and every claim lands once.
 */
import { type Address, createPublicClient, type Hex, http, type PrivateKeyAccount } from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import type { ServerIdentity } from '../../src/ledger/index.js'
import { JOURNAL_PREFIX } from '../../src/settlement/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import { type FaultyRpc, startFaultyRpc } from './faultyRpc.js'
import { chargedRecords, depositChannels, openRig, WITHDRAW_DELAY } from './rig.js'

const dev = useDevChain()
const h = dev.harness
const accounts = dev.accounts as PrivateKeyAccount[]
const payer = accounts[2] as PrivateKeyAccount
const authorizer = accounts[6] as PrivateKeyAccount
const sessionKey = randomAccount()
const DEPOSIT = 1_000_000n

let revert: () => Promise<void>
let identity: ServerIdentity
let proxy: FaultyRpc
beforeEach(async () => {
  revert = await dev.snapshot()
  proxy = await startFaultyRpc(dev.rpcUrl)
  identity = {
    receiver: randomAccount().address.toLowerCase() as Address,
    receiverAuthorizer: authorizer.address.toLowerCase() as Address,
    token: dev.contracts.usdc.toLowerCase() as Address,
    withdrawDelay: WITHDRAW_DELAY,
  }
})
afterEach(async () => {
  await dev.testClient.setAutomine(true)
  await proxy.close()
  await revert()
})

/** Channels charged 4 000 each, and a settler whose every RPC call goes through the proxy. */
async function rig(count: number, executor: Parameters<typeof openRig>[0]['executor'] = {}) {
  const channels = await depositChannels(h, payer, sessionKey, identity, count, DEPOSIT)
  const records = await chargedRecords(h, sessionKey, channels, DEPOSIT, () => 4_000n)
  const store = await MemoryStore.open()
  const publicClient = createPublicClient({
    chain: dev.chain,
    transport: http(proxy.url, { retryCount: 0 }),
    pollingInterval: LOCAL_POLLING_MS,
  })
  const opened = await openRig({
    h,
    store,
    identity,
    sender: authorizer,
    records,
    publicClient,
    rpcUrl: proxy.url,
    executor,
  })
  return { ...opened, store, ids: channels.map((c) => c.id) }
}

const sentBy = (address: Address) => h.publicClient.getTransactionCount({ address })
const claimed = (ids: readonly Hex[]) =>
  Promise.all(ids.map(async (id) => (await h.channel(id)).totalClaimed))

describe('settlement faults', () => {
  it('retries RPC failures before and after the node acted, and claims once', async () => {
    const { settler, ids, payee } = await rig(5)
    const before = await sentBy(authorizer.address)
    proxy.inject('eth_sendRawTransaction', 'failBefore', 'failAfter')
    const report = await settler.run({ sweep: true })
    expect(report.ok).toBe(true)
    expect(report.retried.map((f) => f.code)).toEqual([
      'tollgate_chain_unavailable',
      'tollgate_chain_unavailable',
    ])
    expect(await claimed(ids)).toEqual(ids.map(() => 4_000n))
    expect(payee.claimable()).toEqual([])
    // One claim (the one whose answer was lost) and one settle: nothing sent twice.
    expect((await sentBy(authorizer.address)) - before).toBe(2)
    expect(await h.usdcBalance(identity.receiver)).toBe(5n * 4_000n)
    expect(settler.stats.failures.get('tollgate_chain_unavailable')).toBe(2)
  })

  it('waits for a claim whose answer was lost while it is still unmined, and sends it once', async () => {
    const { settler, ids } = await rig(3)
    const before = await sentBy(authorizer.address)
    // A chain that mines every second, like a real one: the lost claim sits in the pool a while.
    await dev.testClient.setIntervalMining({ interval: 1 })
    try {
      proxy.inject('eth_sendRawTransaction', 'failAfter')
      const report = await settler.run({ sweep: true })
      expect(report.ok).toBe(true)
      expect(report.retried.map((f) => f.code)).toEqual(['tollgate_chain_unavailable'])
      expect(await claimed(ids)).toEqual(ids.map(() => 4_000n))
      // The claim whose answer was lost, then the settle: no second claim.
      expect((await sentBy(authorizer.address)) - before).toBe(2)
    } finally {
      await dev.testClient.setIntervalMining({ interval: 0 })
    }
  })

  it('reports a reverted claim and lands it on the retry', async () => {
    const { settler, ids } = await rig(10)
    // viem estimates gas through eth_fillTransaction where the node has it (anvil does).
    proxy.inject('eth_fillTransaction', { scaleEstimate: 0.6 })
    const report = await settler.run({ sweep: true })
    expect(report.retried.map((f) => f.code)).toEqual([
      'invalid_batch_settlement_evm_transaction_reverted',
    ])
    expect(report.ok).toBe(true)
    expect(report.claimedChannels).toBe(10)
    expect(await claimed(ids)).toEqual(ids.map(() => 4_000n))
  })

  it('replaces a claim stuck unmined with a higher fee, and mirrors the one that lands', async () => {
    const { settler, ids, store } = await rig(3, { replaceAfterMs: 300 })
    await dev.testClient.setAutomine(false)
    const running = settler.run({ sweep: true })
    // Mine once the journal shows the replacement: the first transaction was stuck.
    let entry: { txs: Hex[] } | undefined
    while (!entry || entry.txs.length < 2) {
      const [row] = await store.listMeta(JOURNAL_PREFIX)
      entry = row ? (JSON.parse(row[1]) as { txs: Hex[] }) : undefined
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await dev.testClient.setAutomine(true)
    await dev.testClient.mine({ blocks: 1 })
    const report = await running
    expect(report.ok).toBe(true)
    const [first, replacement] = entry.txs as [Hex, Hex]
    expect(report.claims.map((c) => c.hash)).toEqual([replacement])
    const [a, b] = await Promise.all([
      h.publicClient.getTransaction({ hash: first }).catch(() => null),
      h.publicClient.getTransaction({ hash: replacement }),
    ])
    expect(a?.blockNumber ?? null).toBeNull()
    expect(b.maxFeePerGas).toBeGreaterThan(0n)
    expect(await claimed(ids)).toEqual(ids.map(() => 4_000n))
  })

  it('gives up waiting for confirmations that never come, and the next run lands the claim once', async () => {
    const { settler, ids } = await rig(2, { confirmations: 3, confirmTimeoutMs: 300 })
    const before = await sentBy(authorizer.address)
    // The claim is mined at once (automine), but no block follows: its confirmations never come.
    const stalled = await settler.run({ sweep: true })
    // The run ends (it used to wait forever) and says why it did not settle.
    expect(stalled.retried.map((f) => f.code)).toContain(
      'invalid_batch_settlement_evm_wait_for_receipt_failed',
    )
    expect(stalled.settled).toBeUndefined()
    expect(await claimed(ids)).toEqual(ids.map(() => 4_000n))
    await dev.testClient.mine({ blocks: 3 })
    const next = await settler.run({ sweep: true })
    expect(next.ok).toBe(true)
    // The claim of the stalled run, then the settle: no claim sent twice.
    expect((await sentBy(authorizer.address)) - before).toBe(2)
    expect(await h.usdcBalance(identity.receiver)).toBe(2n * 4_000n)
  })
})
