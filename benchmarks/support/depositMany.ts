/**
 * Opens many channels on a local dev chain quickly: one `approve`, then one plain `deposit`
 * transaction per channel from one funder, signed here with consecutive nonces and a fixed gas
 * limit (estimated once), sent as JSON-RPC batches of raw transactions in nonce order, each batch
 * mined as one block (anvil's automine is off meanwhile, then on again); every receipt is
 * fetched and checked. Each channel gets a fresh
 * session key as its payer and payer authorizer, as `openChannels` (loadgen.ts) does.
 */
import { randomBytes } from 'node:crypto'
import { type Address, encodeFunctionData, type Hex, type LocalAccount, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { BatchSettlement } from '../../src/chain/contracts.generated.js'
import { type DevChain, devPublicClient } from '../../src/chain/devChain.js'
import type { ChannelConfig } from '../../src/protocol/index.js'
import { bytesToHex, channelId, domainSeparator } from '../../src/verify/index.js'
import { EscrowHarness } from '../../test/helpers/escrow.js'
import type { LoadChannel } from './loadgen.js'

/** Raw transactions per JSON-RPC batch. */
const BATCH = 100
/** How long to wait for every receipt. */
const RECEIPTS_TIMEOUT_MS = 60_000

type DevChainLike = Pick<DevChain, 'rpcUrl' | 'chain' | 'contracts'>

type Identity = Pick<ChannelConfig, 'receiver' | 'receiverAuthorizer' | 'token' | 'withdrawDelay'>

/**
 * Deposits `deposit` into each of `count` fresh channels of `identity`, paid by `funder`.
 *
 * @example
 * const channels = await depositMany(dev, funder, identity, 1000, 1_000_000n)
 */
export async function depositMany(
  dev: DevChainLike,
  funder: LocalAccount,
  identity: Identity,
  count: number,
  deposit: bigint,
): Promise<LoadChannel[]> {
  const client = devPublicClient(dev)
  await EscrowHarness.on(dev).approve(funder, deposit * BigInt(count))
  const domain = domainSeparator({ chainId: dev.chain.id, verifyingContract: dev.contracts.escrow })
  const channels: LoadChannel[] = []
  const calls: Hex[] = []
  for (let i = 0; i < count; i++) {
    const sessionKey = bytesToHex(randomBytes(32))
    const payer = privateKeyToAccount(sessionKey).address.toLowerCase() as Address
    const config: ChannelConfig = {
      payer,
      payerAuthorizer: payer,
      ...identity,
      salt: bytesToHex(randomBytes(32)),
    }
    calls.push(
      encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'deposit',
        args: [config, deposit, zeroAddress, '0x'],
      }),
    )
    channels.push({ config, channelId: channelId(config, domain), sessionKey, charged: 0n })
  }
  const [nonce, fees, estimated] = await Promise.all([
    client.getTransactionCount({ address: funder.address, blockTag: 'pending' }),
    client.estimateFeesPerGas(),
    client.estimateGas({ account: funder, to: dev.contracts.escrow, data: calls[0] }),
  ])
  const gas = (estimated * 3n) / 2n
  const raw = await Promise.all(
    calls.map((data, i) =>
      funder.signTransaction({
        type: 'eip1559',
        chainId: dev.chain.id,
        nonce: nonce + i,
        to: dev.contracts.escrow,
        data,
        gas,
        maxFeePerGas: fees.maxFeePerGas * 2n,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      }),
    ),
  )
  const hashes: Hex[] = []
  await rpcBatch(dev.rpcUrl, [{ method: 'evm_setAutomine', params: [false] }])
  try {
    for (let i = 0; i < raw.length; i += BATCH) {
      const answers = await rpcBatch<Hex>(
        dev.rpcUrl,
        raw.slice(i, i + BATCH).map((tx) => ({ method: 'eth_sendRawTransaction', params: [tx] })),
      )
      hashes.push(...answers)
      await rpcBatch(dev.rpcUrl, [{ method: 'evm_mine', params: [] }])
    }
  } finally {
    await rpcBatch(dev.rpcUrl, [{ method: 'evm_setAutomine', params: [true] }])
  }
  const deadline = Date.now() + RECEIPTS_TIMEOUT_MS
  let pending = hashes
  while (pending.length > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.length} deposits were not mined`)
    const next: Hex[] = []
    for (let i = 0; i < pending.length; i += BATCH) {
      const slice = pending.slice(i, i + BATCH)
      const receipts = await rpcBatch<{ status: Hex } | null>(
        dev.rpcUrl,
        slice.map((hash) => ({ method: 'eth_getTransactionReceipt', params: [hash] })),
      )
      receipts.forEach((receipt, k) => {
        if (receipt === null) next.push(slice[k] as Hex)
        else if (receipt.status !== '0x1') throw new Error(`deposit ${slice[k]} reverted`)
      })
    }
    pending = next
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return channels
}

/** One JSON-RPC batch; the answers in the order of the calls, any error thrown. */
async function rpcBatch<T>(
  url: string,
  calls: { method: string; params: unknown[] }[],
): Promise<T[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(calls.map((call, id) => ({ jsonrpc: '2.0', id, ...call }))),
  })
  const answers = (await response.json()) as { id: number; result?: T; error?: unknown }[]
  const out: T[] = new Array(calls.length)
  for (const answer of answers) {
    if (answer.error !== undefined) throw new Error(`RPC: ${JSON.stringify(answer.error)}`)
    out[answer.id] = answer.result as T
  }
  return out
}
