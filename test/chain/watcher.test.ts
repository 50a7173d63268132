import { connect, createServer, type Server, type Socket } from 'node:net'
import {
  type Account,
  concat,
  createPublicClient,
  custom,
  type Hex,
  http,
  type PublicClient,
  pad,
  toHex,
  zeroAddress,
} from 'viem'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { decodeBatchClaimed } from '../../src/chain/decodeBatchClaimed.js'
import { encodePackedClaim } from '../../src/chain/packedClaim.js'
import {
  type ChainEventSink,
  type ChainWatcher,
  type ChainWatcherOptions,
  createChainWatcher,
  type WatcherMeta,
} from '../../src/chain/watcher.js'
import { TollgateError } from '../../src/errors/index.js'
import { type ChainEvent, Ledger, recordFromChain } from '../../src/ledger/index.js'
import { createVoucherVerifier, domainSeparator, jsBackend } from '../../src/verify/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { type ChannelConfig, randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, payer, stranger, authorizer] = dev.accounts as [
  Account,
  Account,
  Account,
  Account,
  Account,
]
const sessionKey = randomAccount()
const USDC = (n: number) => BigInt(Math.round(n * 1e6))
const WITHDRAW_DELAY = 3600

let salt = 0
function config(): ChannelConfig {
  return {
    payer: payer.address,
    payerAuthorizer: sessionKey.address,
    receiver: receiver.address,
    receiverAuthorizer: authorizer.address,
    token: dev.contracts.usdc,
    withdrawDelay: WITHDRAW_DELAY,
    salt: pad(toHex(++salt + 7_000), { size: 32 }),
  }
}

/** The payee side as the watcher sees it: the real ledger, plus a log of what was applied. */
function ledgerSink() {
  const ledger = new Ledger({
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: dev.contracts.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    verifier: createVoucherVerifier({
      backend: jsBackend,
      domainSeparator: domainSeparator({
        chainId: dev.chainId,
        verifyingContract: dev.contracts.escrow,
      }),
    }),
  })
  const applied: ChainEvent[] = []
  const sink: ChainEventSink = {
    apply(event) {
      applied.push(event)
      return ledger.apply(event)
    },
    isKnown: (channelId) => ledger.get(channelId) !== undefined,
    pendingWithdrawals: () => ledger.pendingWithdrawals(),
  }
  /** The server knows the channel (as if a payer had presented its first voucher). */
  const know = (id: Hex, c: ChannelConfig) =>
    ledger.open(
      recordFromChain(
        id,
        c,
        { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
        0,
      ),
    )
  return { ledger, applied, sink, know }
}

function memoryMeta(): WatcherMeta & { values: Map<string, string> } {
  const values = new Map<string, string>()
  return {
    values,
    getMeta: async (key) => values.get(key),
    putMeta: async (key, value) => {
      values.set(key, value)
    },
  }
}

const watchers: ChainWatcher[] = []
function watch(options: Partial<ChainWatcherOptions> & Pick<ChainWatcherOptions, 'sink'>) {
  const watcher = createChainWatcher({
    client: h.publicClient,
    escrow: dev.contracts.escrow,
    meta: memoryMeta(),
    confirmations: 0,
    pollIntervalMs: 20,
    ...options,
  })
  watchers.push(watcher)
  return watcher
}

async function channel(amount: bigint, know?: (id: Hex, c: ChannelConfig) => unknown) {
  const c = config()
  const id = await h.channelId(c)
  know?.(id, c)
  await h.depositErc3009(payer, stranger, c, amount, 1n)
  return { config: c, id }
}

function claimRow(c: ChannelConfig, signature: Hex, ceiling: bigint, totalClaimed: bigint) {
  return { voucher: { channel: c, maxClaimableAmount: ceiling }, signature, totalClaimed }
}

async function claim(c: ChannelConfig, id: Hex, total: bigint) {
  const sig = await h.signVoucher(sessionKey, id, total)
  return h.write(receiver, 'claim', [[claimRow(c, sig, total, total)]])
}

/** A client on the dev node whose `eth_getLogs` results lack `blockTimestamp`, as many nodes' do. */
function withoutLogTimestamps(): PublicClient {
  return createPublicClient({
    chain: dev.chain,
    transport: custom({
      async request({ method, params }) {
        const result = await h.publicClient.request({ method, params } as never)
        if (method === 'eth_getLogs') {
          for (const log of result as { blockTimestamp?: unknown }[]) delete log.blockTimestamp
        }
        return result
      },
    }),
  })
}

let revert: () => Promise<void>
let startBlock: bigint
beforeEach(async () => {
  revert = await dev.snapshot()
  startBlock = (await h.publicClient.getBlockNumber({ cacheTime: 0 })) + 1n
})
afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.stop()))
  await revert()
})

describe('chain watcher: mirroring', () => {
  it('mirrors a deposit and a top-up as absolute balances', async () => {
    const { ledger, applied, sink, know } = ledgerSink()
    const watcher = watch({ sink, fromBlock: startBlock })
    const { config: c, id } = await channel(USDC(5), know)
    await h.depositErc3009(payer, stranger, c, USDC(2), 2n)

    const result = await watcher.pollOnce()
    expect(applied).toEqual([
      { type: 'deposited', channelId: id, balance: USDC(5) },
      { type: 'deposited', channelId: id, balance: USDC(7) },
    ])
    expect(ledger.get(id)?.balance).toBe((await h.channel(id)).balance)
    expect(result.lastProcessedBlock).toBe(await h.publicClient.getBlockNumber({ cacheTime: 0 }))
    expect(watcher.status).toMatchObject({ lag: 0n, failures: 0 })
  })

  it('mirrors claim and every known row of claimPacked, and ignores channels it does not know', async () => {
    const { ledger, applied, sink, know } = ledgerSink()
    const watcher = watch({ sink, fromBlock: startBlock })
    const a = await channel(USDC(5), know)
    const b = await channel(USDC(5), know)
    const stranger_ = await channel(USDC(5))
    await claim(a.config, a.id, USDC(1))
    const rows = []
    for (const [ch, total] of [
      [a, USDC(2)],
      [b, USDC(1.5)],
      [stranger_, USDC(1)],
    ] as const) {
      const signature = await h.signVoucher(sessionKey, ch.id, total)
      rows.push({ ...ch.config, maxClaimableAmount: total, totalClaimed: total, signature })
    }
    const header = {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: dev.contracts.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    }
    await h.write(receiver, 'claimPacked', [encodePackedClaim(header, rows)])

    await watcher.pollOnce()
    expect(applied.filter((e) => e.type === 'claimed')).toEqual([
      { type: 'claimed', channelId: a.id, totalClaimed: USDC(1) },
      { type: 'claimed', channelId: a.id, totalClaimed: USDC(2) },
      { type: 'claimed', channelId: b.id, totalClaimed: USDC(1.5) },
    ])
    for (const { id } of [a, b]) {
      expect(ledger.get(id)).toMatchObject(await h.channel(id))
    }
    expect(applied.some((e) => e.channelId === stranger_.id)).toBe(false)
    expect(ledger.get(stranger_.id)).toBeUndefined()
    expect((await h.channel(stranger_.id)).totalClaimed).toBe(USDC(1))
  })

  it('mirrors each refund with the balance and refund nonce of its own block', async () => {
    const { ledger, applied, sink, know } = ledgerSink()
    const watcher = watch({ sink, fromBlock: startBlock })
    const { config: c, id } = await channel(USDC(10), know)
    await claim(c, id, USDC(3))
    await h.write(receiver, 'refund', [c, USDC(2)])
    const sig = await h.signRefund(authorizer, id, 1n, USDC(1))
    await h.write(stranger, 'refundWithSignature', [c, USDC(1), 1n, sig])

    await watcher.pollOnce()
    expect(applied.filter((e) => e.type === 'refunded')).toEqual([
      { type: 'refunded', channelId: id, balance: USDC(8), refundNonce: 1n },
      { type: 'refunded', channelId: id, balance: USDC(7), refundNonce: 2n },
    ])
    expect(ledger.get(id)).toMatchObject({
      balance: USDC(7),
      totalClaimed: USDC(3),
      refundNonce: 2n,
    })
  })

  it.each([
    ['logs that carry their block timestamp', () => h.publicClient],
    ['logs without a block timestamp (older nodes)', withoutLogTimestamps],
  ])(
    'alerts a withdrawal once with its deadline, and mirrors its start and finalization, from %s',
    async (_, client) => {
      const { ledger, sink, know } = ledgerSink()
      const onWithdrawInitiated = vi.fn()
      const watcher = watch({ client: client(), sink, fromBlock: startBlock, onWithdrawInitiated })
      const { config: c, id } = await channel(USDC(10), know)
      await claim(c, id, USDC(4))
      const initiated = await h.write(payer, 'initiateWithdraw', [c, USDC(10)])
      const startedAt = Number(
        (await h.publicClient.getBlock({ blockNumber: initiated.blockNumber })).timestamp,
      )

      await watcher.pollOnce()
      expect(onWithdrawInitiated.mock.calls).toEqual([[id, startedAt + WITHDRAW_DELAY]])
      expect(ledger.get(id)?.withdrawRequestedAt).toBe(startedAt)
      expect(ledger.claimable()).toEqual([]) // nothing charged off chain in this test

      await dev.advance(WITHDRAW_DELAY)
      await h.write(payer, 'finalizeWithdraw', [c])
      await watcher.pollOnce()
      expect(ledger.get(id)).toMatchObject({
        balance: USDC(4),
        totalClaimed: USDC(4),
        withdrawRequestedAt: 0,
      })
      expect(await h.channel(id)).toEqual({ balance: USDC(4), totalClaimed: USDC(4) })
      expect(onWithdrawInitiated).toHaveBeenCalledTimes(1)
    },
  )
})

describe('chain watcher: confirmations', () => {
  it('holds events back until buried under enough blocks, but stops a withdrawing channel on first sight', async () => {
    const { ledger, sink, know } = ledgerSink()
    const onWithdrawInitiated = vi.fn()
    const watcher = watch({ sink, fromBlock: startBlock, confirmations: 2, onWithdrawInitiated })
    const { config: c, id } = await channel(USDC(5), know)
    await h.write(payer, 'initiateWithdraw', [c, USDC(5)])

    await watcher.pollOnce()
    // The deposit is not confirmed yet, the withdrawal is already seen: no new vouchers.
    const seen = ledger.get(id)?.withdrawRequestedAt ?? 0
    expect(ledger.get(id)?.balance).toBe(0n)
    expect(seen).toBeGreaterThan(0)
    expect(onWithdrawInitiated).toHaveBeenCalledTimes(1)
    const [, finalizeAfter] = onWithdrawInitiated.mock.calls[0] as [Hex, number]
    expect(seen + c.withdrawDelay).toBe(finalizeAfter)
    expect(watcher.status.lag).toBe(2n)

    await dev.testClient.mine({ blocks: 1 })
    await watcher.pollOnce()
    expect(ledger.get(id)).toMatchObject({ balance: USDC(5), withdrawRequestedAt: seen })

    await dev.testClient.mine({ blocks: 1 })
    await watcher.pollOnce()
    // Confirmed: the escrow's own initiatedAt, the same second.
    expect(ledger.get(id)?.withdrawRequestedAt).toBe(seen)
    expect(onWithdrawInitiated).toHaveBeenCalledTimes(1)
  })

  it('takes vouchers again when a withdrawal seen before confirmation is reorged out', async () => {
    const { ledger, sink, know } = ledgerSink()
    const watcher = watch({ sink, fromBlock: startBlock, confirmations: 2 })
    const { config: c, id } = await channel(USDC(5), know)
    await dev.testClient.mine({ blocks: 2 })
    await watcher.pollOnce()
    const beforeWithdraw = await dev.testClient.snapshot()
    await h.write(payer, 'initiateWithdraw', [c, USDC(5)])
    await watcher.pollOnce()
    expect(ledger.get(id)?.withdrawRequestedAt).toBeGreaterThan(0)

    // The block with the withdrawal is replaced by empty ones.
    await dev.testClient.revert({ id: beforeWithdraw })
    await dev.testClient.mine({ blocks: 3 })
    await watcher.pollOnce()
    expect(ledger.get(id)).toMatchObject({ balance: USDC(5), withdrawRequestedAt: 0 })
  })
  it('takes vouchers again when such a withdrawal is reorged out while the server is down', async () => {
    const { ledger, sink, know } = ledgerSink()
    const meta = memoryMeta()
    const first = watch({ sink, meta, fromBlock: startBlock, confirmations: 2 })
    const { config: c, id } = await channel(USDC(5), know)
    await dev.testClient.mine({ blocks: 2 })
    await first.pollOnce()
    const beforeWithdraw = await dev.testClient.snapshot()
    await h.write(payer, 'initiateWithdraw', [c, USDC(5)])
    await first.pollOnce()
    await first.stop()
    expect(ledger.get(id)?.withdrawRequestedAt).toBeGreaterThan(0)

    await dev.testClient.revert({ id: beforeWithdraw })
    await dev.testClient.mine({ blocks: 3 })
    // A new process: the stored record still has the withdrawal, the watcher's memory does not.
    const second = watch({ sink, meta, confirmations: 2 })
    await second.pollOnce()
    expect(ledger.get(id)).toMatchObject({ balance: USDC(5), withdrawRequestedAt: 0 })
  })

  it('keeps a withdrawal still pending on chain after a restart', async () => {
    const { ledger, sink, know } = ledgerSink()
    const meta = memoryMeta()
    const first = watch({ sink, meta, fromBlock: startBlock, confirmations: 2 })
    const { config: c, id } = await channel(USDC(5), know)
    await h.write(payer, 'initiateWithdraw', [c, USDC(5)])
    await dev.testClient.mine({ blocks: 2 })
    await first.pollOnce()
    await first.stop()
    const seen = ledger.get(id)?.withdrawRequestedAt
    expect(seen).toBeGreaterThan(0)

    const second = watch({ sink, meta, confirmations: 2 })
    await dev.testClient.mine({ blocks: 1 })
    await second.pollOnce()
    expect(ledger.get(id)?.withdrawRequestedAt).toBe(seen)
  })
})

describe('chain watcher: restarts', () => {
  it('resumes from the stored block, in small chunks, without missing or double counting', async () => {
    const { ledger, applied, sink, know } = ledgerSink()
    const meta = memoryMeta()
    const first = watch({ sink, meta, fromBlock: startBlock, maxBlockRange: 1 })
    const { config: c, id } = await channel(USDC(5), know)
    await first.pollOnce()
    await first.stop()
    const stored = meta.values.get('chain.watcher.lastProcessedBlock')
    expect(stored).toBe(String(await h.publicClient.getBlockNumber({ cacheTime: 0 })))

    // While the server is down.
    await h.depositErc3009(payer, stranger, c, USDC(3), 2n)
    await claim(c, id, USDC(2))
    await h.write(receiver, 'refund', [c, USDC(1)])

    const second = watch({ sink, meta, fromBlock: 0n, maxBlockRange: 2 })
    await second.pollOnce()
    expect(applied.map((e) => e.type)).toEqual(['deposited', 'deposited', 'claimed', 'refunded'])
    const mirrored = { balance: USDC(7), totalClaimed: USDC(2), refundNonce: 1n }
    expect(ledger.get(id)).toMatchObject(mirrored)
    expect(await h.channel(id)).toEqual({ balance: USDC(7), totalClaimed: USDC(2) })

    // A crash after applying but before storing progress: the same events come again.
    meta.values.set('chain.watcher.lastProcessedBlock', String(startBlock - 1n))
    const third = watch({ sink, meta })
    await third.pollOnce()
    expect(applied).toHaveLength(8)
    expect(ledger.get(id)).toMatchObject(mirrored)
  })
})

/** A TCP proxy to the dev node that can be cut, standing for a flaky RPC provider. */
async function startProxy(target: URL) {
  const sockets = new Set<Socket>()
  let down = false
  const server: Server = createServer((client) => {
    if (down) return client.destroy()
    const upstream = connect(Number(target.port), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    setDown(value: boolean) {
      down = value
      if (value) for (const s of sockets) s.destroy()
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

describe('chain watcher: RPC failures', () => {
  it('reports an outage through onError, backs off, and catches up without skipping blocks', async () => {
    const proxy = await startProxy(new URL(dev.rpcUrl))
    try {
      const client: PublicClient = createPublicClient({
        chain: dev.chain,
        transport: http(proxy.url, { retryCount: 0, timeout: 2_000 }),
      })
      const { ledger, applied, sink, know } = ledgerSink()
      const errors: unknown[] = []
      const watcher = watch({
        client,
        sink,
        fromBlock: startBlock,
        pollIntervalMs: 10,
        maxBackoffMs: 80,
        onError: (err) => errors.push(err),
      })
      proxy.setDown(true)
      watcher.start()
      const c = config()
      const id = await h.channelId(c)
      know(id, c)
      await h.depositErc3009(payer, stranger, c, USDC(5), 1n)
      await h.depositErc3009(payer, stranger, c, USDC(2), 2n)
      await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(3), { timeout: 5_000 })
      expect(errors[0]).toBeInstanceOf(TollgateError)
      expect(errors[0]).toMatchObject({ code: 'tollgate_chain_unavailable' })
      expect(watcher.status.consecutiveFailures).toBeGreaterThanOrEqual(3)
      expect(ledger.get(id)?.balance).toBe(0n)

      proxy.setDown(false)
      const head = await h.publicClient.getBlockNumber({ cacheTime: 0 })
      await vi.waitFor(() => expect(watcher.status.lastProcessedBlock).toBe(head), {
        timeout: 5_000,
      })
      expect(applied).toEqual([
        { type: 'deposited', channelId: id, balance: USDC(5) },
        { type: 'deposited', channelId: id, balance: USDC(2 + 5) },
      ])
      expect(watcher.status).toMatchObject({ running: true, consecutiveFailures: 0 })
      expect(watcher.status.failures).toBe(errors.length)

      // Stopped, it polls no more (and stop is idempotent).
      proxy.setDown(true)
      await watcher.stop()
      await watcher.stop()
      const reported = errors.length
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(errors.length).toBe(reported)
      expect(watcher.status.running).toBe(false)
    } finally {
      await proxy.close()
    }
  })

  it('leaves a failed pollOnce resumable: nothing after the stored block is lost', async () => {
    const { ledger, sink, know } = ledgerSink()
    const meta = memoryMeta()
    let failPut = true
    const flaky: WatcherMeta = {
      getMeta: meta.getMeta,
      putMeta: async (key, value) => {
        if (failPut && value !== String(startBlock - 1n)) throw new Error('disk full')
        return meta.putMeta(key, value)
      },
    }
    const watcher = watch({ sink, meta: flaky, fromBlock: startBlock })
    const { id } = await channel(USDC(5), know)
    await expect(watcher.pollOnce()).rejects.toThrow('disk full')
    expect(watcher.status).toMatchObject({ failures: 1, lastProcessedBlock: startBlock - 1n })
    failPut = false
    await watcher.pollOnce()
    expect(ledger.get(id)?.balance).toBe(USDC(5))
    expect(watcher.status.consecutiveFailures).toBe(0)
  })
})

describe('chain watcher: options', () => {
  const { sink } = ledgerSink()
  const base = (): ChainWatcherOptions => ({
    client: h.publicClient,
    escrow: dev.contracts.escrow,
    sink,
    meta: memoryMeta(),
  })

  it.each([
    ['a negative confirmation count', { confirmations: -1 }],
    ['a fractional poll interval', { pollIntervalMs: 1.5 }],
    ['a zero block range', { maxBlockRange: 0 }],
    ['a backoff shorter than the poll interval', { pollIntervalMs: 1000, maxBackoffMs: 10 }],
    ['a negative start block', { fromBlock: -1n }],
    ['an escrow that is no address', { escrow: '0x1234' as Hex }],
    ['a sink without isKnown', { sink: { apply: () => undefined } as never }],
    ['a meta store without putMeta', { meta: { getMeta: async () => undefined } as never }],
    ['a Multicall3 that is no address', { multicallAddress: zeroAddress.slice(0, 10) as Hex }],
    [
      'a client whose chain has no Multicall3',
      { client: createPublicClient({ transport: http(dev.rpcUrl) }) },
    ],
  ])('rejects %s as tollgate_invalid_config', (_, bad) => {
    expect(() => createChainWatcher({ ...base(), ...bad })).toThrow(
      expect.objectContaining({ code: 'tollgate_invalid_config' }),
    )
  })

  it('accepts confirmations 0 for development and defaults the rest', () => {
    const watcher = createChainWatcher({ ...base(), confirmations: 0 })
    expect(watcher.status).toMatchObject({
      running: false,
      failures: 0,
      lastProcessedBlock: undefined,
    })
  })
})

describe('decodeBatchClaimed', () => {
  it('reads 48-byte rows and refuses a length that is not a whole number of rows', () => {
    const id = pad('0xab', { size: 32 })
    const rows = concat([id, pad(toHex(USDC(1.25)), { size: 16 })])
    expect(decodeBatchClaimed(rows)).toEqual([{ channelId: id, totalClaimed: USDC(1.25) }])
    expect(decodeBatchClaimed('0x')).toEqual([])
    expect(() => decodeBatchClaimed(concat([rows, '0x00']))).toThrow(TollgateError)
  })
})
