/**
 * A settlement rig on the dev chain, for the settlement tests and benchmarks/settle.ts: channels
 * deposited on chain (many per transaction, through the escrow's multicall), their vouchers
 * signed by a session key and held by a payee over a real store, and a settler whose sender is
 * the receiver authorizer.
 */
import {
  type Account,
  type Address,
  type Chain,
  createWalletClient,
  encodeFunctionData,
  type Hex,
  http,
  type PublicClient,
  pad,
  type Transport,
  toHex,
  type WalletClient,
  zeroAddress,
} from 'viem'
import { BatchSettlement } from '../../src/chain/contracts.generated.js'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { channelReader } from '../../src/chain/readChannel.js'
import type { ChannelRecord, ServerIdentity } from '../../src/ledger/index.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import type { ChannelConfig } from '../../src/protocol/types.js'
import {
  type ClaimExecutorOptions,
  claimExecutor,
  Settler,
  type SettlerOptions,
} from '../../src/settlement/index.js'
import type { ChannelStore } from '../../src/store/index.js'
import { channelId, domainSeparator } from '../../src/verify/index.js'
import type { EscrowHarness } from '../helpers/escrow.js'

/** Deposits per escrow `multicall` transaction. */
const DEPOSITS_PER_TX = 50

export const WITHDRAW_DELAY = 3600

let saltCounter = Math.floor(Math.random() * 2 ** 40)

/** Deposits `count` channels of `deposit` each from `payer` (approved once) in a few transactions. */
export async function depositChannels(
  h: EscrowHarness,
  payer: Account,
  sessionKey: Account,
  identity: ServerIdentity,
  count: number,
  deposit: bigint,
): Promise<{ id: Hex; config: ChannelConfig }[]> {
  await h.approve(payer, deposit * BigInt(count))
  const separator = domainSeparator({ chainId: h.chain.id, verifyingContract: h.escrow })
  const channels = Array.from({ length: count }, () => {
    const config: ChannelConfig = {
      payer: payer.address.toLowerCase() as Address,
      payerAuthorizer: sessionKey.address.toLowerCase() as Address,
      receiver: identity.receiver,
      receiverAuthorizer: identity.receiverAuthorizer,
      token: identity.token,
      withdrawDelay: identity.withdrawDelay,
      salt: pad(toHex(++saltCounter), { size: 32 }),
    }
    return { id: channelId(config, separator), config }
  })
  for (let i = 0; i < channels.length; i += DEPOSITS_PER_TX) {
    const calls = channels.slice(i, i + DEPOSITS_PER_TX).map(({ config }) =>
      encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'deposit',
        args: [config, deposit, zeroAddress, '0x'],
      }),
    )
    await h.write(payer, 'multicall', [calls])
  }
  return channels
}

/** Ledger records of channels charged `charged` each under a voucher of exactly that ceiling. */
export async function chargedRecords(
  h: EscrowHarness,
  sessionKey: Account,
  channels: readonly { id: Hex; config: ChannelConfig }[],
  deposit: bigint,
  charged: (index: number) => bigint,
): Promise<ChannelRecord[]> {
  return Promise.all(
    channels.map(async ({ id, config }, i) => ({
      channelId: id,
      config,
      chargedCumulativeAmount: charged(i),
      signedMaxClaimable: charged(i),
      inFlightCumulativeAmount: charged(i),
      signature: await h.signVoucher(sessionKey, id, charged(i)),
      balance: deposit,
      totalClaimed: 0n,
      withdrawRequestedAt: 0,
      refundNonce: 0n,
      syncedAt: 0,
    })),
  )
}

export interface Rig {
  payee: Payee
  settler: Settler
  identity: ServerIdentity
}

/** A payee over `store` holding `records`, and a settler sending from `sender`. */
export async function openRig(params: {
  h: EscrowHarness
  store: ChannelStore
  identity: ServerIdentity
  sender: Account
  records?: readonly ChannelRecord[]
  publicClient?: PublicClient
  rpcUrl?: string
  executor?: Partial<ClaimExecutorOptions>
  settler?: Partial<SettlerOptions>
}): Promise<Rig> {
  const { h, store, identity } = params
  const publicClient = params.publicClient ?? h.publicClient
  const payee = await openPayee({
    chainId: h.chain.id,
    escrow: h.escrow,
    identity,
    store,
    readChannel: channelReader(publicClient, h.escrow),
  })
  for (const record of params.records ?? []) {
    payee.ledger.open(record)
    await store.put(record)
  }
  const executor = claimExecutor({
    publicClient,
    walletClient: senderWallet(h.chain, params.rpcUrl ?? h.rpcUrl, params.sender),
    escrow: h.escrow,
    identity,
    ...params.executor,
  })
  const settler = new Settler({
    payee,
    store,
    executor,
    receiver: identity.receiver,
    token: identity.token,
    retryDelayMs: 100,
    ...params.settler,
  })
  return { payee, settler, identity }
}

export function senderWallet(
  chain: Chain,
  rpcUrl: string,
  account: Account,
): WalletClient<Transport, Chain, Account> {
  return createWalletClient({
    chain,
    transport: http(rpcUrl, { retryCount: 0 }),
    account,
    pollingInterval: LOCAL_POLLING_MS,
  })
}
