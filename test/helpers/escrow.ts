/**
 * Helpers for driving the escrow on a development chain from tests and benchmarks: channel
 * configs, signatures made by viem (the reference signer), deposits and claims.
 */
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  encodeAbiParameters,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  type TransactionReceipt,
  type WalletClient,
  zeroAddress,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { BatchSettlement, TestUSDC } from '../../src/chain/contracts.generated.js'
import { DEV_USDC_DOMAIN, type DevChain, LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { type EscrowWriter, escrowWriter } from '../../src/chain/escrowWriter.js'
import {
  BATCH_SETTLEMENT_TYPES,
  escrowDomain,
  RECEIVE_WITH_AUTHORIZATION_TYPES,
} from '../../src/verify/index.js'

export interface ChannelConfig {
  payer: Address
  payerAuthorizer: Address
  receiver: Address
  receiverAuthorizer: Address
  token: Address
  withdrawDelay: number
  salt: Hex
}

export const channelConfigTypes = { ChannelConfig: BATCH_SETTLEMENT_TYPES.ChannelConfig }
export const voucherTypes = { Voucher: BATCH_SETTLEMENT_TYPES.Voucher }
export const refundTypes = { Refund: BATCH_SETTLEMENT_TYPES.Refund }
export const claimBatchTypes = {
  ClaimBatch: BATCH_SETTLEMENT_TYPES.ClaimBatch,
  ClaimEntry: BATCH_SETTLEMENT_TYPES.ClaimEntry,
}
const receiveTypes = RECEIVE_WITH_AUTHORIZATION_TYPES

export { escrowDomain }

/** A local node mines at once; a receipt this late means the transaction is stuck. */
const RECEIPT_TIMEOUT_MS = 10_000

/** A test harness bound to one dev chain. */
export class EscrowHarness {
  readonly publicClient: PublicClient

  /** The harness of a chain started with `startDevChain`. */
  static on(dev: Pick<DevChain, 'rpcUrl' | 'chain' | 'contracts'>): EscrowHarness {
    const { escrow, usdc, erc3009Collector } = dev.contracts
    return new EscrowHarness(dev.rpcUrl, dev.chain, escrow, usdc, erc3009Collector)
  }

  constructor(
    readonly rpcUrl: string,
    readonly chain: Chain,
    readonly escrow: Address,
    readonly usdc: Address,
    readonly collector: Address,
  ) {
    this.publicClient = createPublicClient({
      chain,
      transport: http(rpcUrl, { retryCount: 0 }),
      pollingInterval: LOCAL_POLLING_MS,
    })
  }

  wallet(account: Account): WalletClient {
    return createWalletClient({
      chain: this.chain,
      transport: http(this.rpcUrl, { retryCount: 0 }),
      account,
      pollingInterval: LOCAL_POLLING_MS,
    })
  }

  /** tollgate's escrow writer sending as `account` on this chain (deposits, refunds, claims). */
  escrowWriter(account: Account): EscrowWriter {
    return escrowWriter({
      publicClient: this.publicClient,
      walletClient: createWalletClient({
        chain: this.chain,
        transport: http(this.rpcUrl, { retryCount: 0 }),
        account,
        pollingInterval: LOCAL_POLLING_MS,
      }),
      escrow: this.escrow,
      erc3009Collector: this.collector,
    })
  }

  async channelId(config: ChannelConfig): Promise<Hex> {
    return this.publicClient.readContract({
      address: this.escrow,
      abi: BatchSettlement.abi,
      functionName: 'getChannelId',
      args: [config],
    })
  }

  async signVoucher(
    signer: Account,
    channelId: Hex,
    maxClaimableAmount: bigint,
    chainId = this.chain.id,
    escrow = this.escrow,
  ): Promise<Hex> {
    if (!signer.signTypedData) throw new Error('account cannot sign')
    return signer.signTypedData({
      domain: escrowDomain(chainId, escrow),
      types: voucherTypes,
      primaryType: 'Voucher',
      message: { channelId, maxClaimableAmount },
    })
  }

  async signRefund(signer: Account, channelId: Hex, nonce: bigint, amount: bigint): Promise<Hex> {
    if (!signer.signTypedData) throw new Error('account cannot sign')
    return signer.signTypedData({
      domain: escrowDomain(this.chain.id, this.escrow),
      types: refundTypes,
      primaryType: 'Refund',
      message: { channelId, nonce, amount },
    })
  }

  async signClaimBatch(
    signer: Account,
    entries: { channelId: Hex; maxClaimableAmount: bigint; totalClaimed: bigint }[],
  ): Promise<Hex> {
    if (!signer.signTypedData) throw new Error('account cannot sign')
    return signer.signTypedData({
      domain: escrowDomain(this.chain.id, this.escrow),
      types: claimBatchTypes,
      primaryType: 'ClaimBatch',
      message: { claims: entries },
    })
  }

  /** The payer's ERC-3009 `ReceiveWithAuthorization` to the collector, bound to a channel by its nonce. */
  async signReceiveAuthorization(
    payer: Account,
    channelId: Hex,
    amount: bigint,
    salt: bigint,
    validAfter = 0n,
    validBefore = 2n ** 40n,
  ): Promise<Hex> {
    if (!payer.signTypedData) throw new Error('account cannot sign')
    const nonce = keccak256(
      encodeAbiParameters([{ type: 'bytes32' }, { type: 'uint256' }], [channelId, salt]),
    )
    return payer.signTypedData({
      domain: { ...DEV_USDC_DOMAIN, chainId: this.chain.id, verifyingContract: this.usdc },
      types: receiveTypes,
      primaryType: 'ReceiveWithAuthorization',
      message: {
        from: payer.address,
        to: this.collector,
        value: amount,
        validAfter,
        validBefore,
        nonce,
      },
    })
  }

  /** ERC-3009 `collectorData` for a deposit, signed by the payer. */
  async erc3009CollectorData(
    payer: Account,
    channelId: Hex,
    amount: bigint,
    salt = 1n,
    validBefore = 2n ** 40n,
  ): Promise<Hex> {
    const signature = await this.signReceiveAuthorization(
      payer,
      channelId,
      amount,
      salt,
      0n,
      validBefore,
    )
    return encodeAbiParameters(
      [{ type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'bytes' }],
      [0n, validBefore, salt, signature],
    )
  }

  async write(
    account: Account,
    functionName: string,
    args: readonly unknown[],
  ): Promise<TransactionReceipt> {
    const hash = await this.wallet(account).writeContract({
      address: this.escrow,
      // The token's errors too, so a revert bubbling up from it is decoded by name.
      abi: [...BatchSettlement.abi, ...TestUSDC.abi.filter((item) => item.type === 'error')],
      functionName: functionName as 'claim',
      args: args as never,
      chain: this.chain,
      account,
    })
    return this.publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })
  }

  async depositErc3009(
    payer: Account,
    sender: Account,
    config: ChannelConfig,
    amount: bigint,
    salt = 1n,
  ): Promise<TransactionReceipt> {
    const id = await this.channelId(config)
    const data = await this.erc3009CollectorData(payer, id, amount, salt)
    return this.write(sender, 'deposit', [config, amount, this.collector, data])
  }

  async approve(owner: Account, amount: bigint): Promise<void> {
    const hash = await this.wallet(owner).writeContract({
      address: this.usdc,
      abi: TestUSDC.abi,
      functionName: 'approve',
      args: [this.escrow, amount],
      chain: this.chain,
      account: owner,
    })
    await this.publicClient.waitForTransactionReceipt({ hash })
  }

  async depositDirect(
    sender: Account,
    config: ChannelConfig,
    amount: bigint,
  ): Promise<TransactionReceipt> {
    return this.write(sender, 'deposit', [config, amount, zeroAddress, '0x'])
  }

  async channel(channelId: Hex): Promise<{ balance: bigint; totalClaimed: bigint }> {
    const [balance, totalClaimed] = await this.publicClient.readContract({
      address: this.escrow,
      abi: BatchSettlement.abi,
      functionName: 'channels',
      args: [channelId],
    })
    return { balance, totalClaimed }
  }

  async usdcBalance(owner: Address): Promise<bigint> {
    return this.publicClient.readContract({
      address: this.usdc,
      abi: TestUSDC.abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  }
}

/** A fresh random account (not funded). */
export function randomAccount(): Account {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  return privateKeyToAccount(`0x${Buffer.from(bytes).toString('hex')}`)
}
