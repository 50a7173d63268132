import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  type LocalAccount,
  type PublicClient,
  type WalletClient,
  zeroAddress,
} from 'viem'
import { BatchSettlement, TestUSDC } from '../chain/contracts.generated.js'
import type { ChannelConfig } from '../protocol/index.js'

/** A channel as the escrow holds it. */
export interface OnChainChannel {
  readonly balance: bigint
  readonly totalClaimed: bigint
  /** Unix seconds when a withdrawal was started; 0 when none. */
  readonly withdrawRequestedAt: number
  /** What a pending withdrawal takes back; 0 when none. */
  readonly withdrawAmount: bigint
}

/** Parameters of {@link payerChain}. */
export interface PayerChainParameters {
  rpcUrl: string
  chainId: number
  escrow: Address
  /** Sends the payer's own transactions (direct deposits, withdrawals) and pays their gas. */
  account: LocalAccount
  /** Receipt polling interval in milliseconds. @default 1000 (a local node: 50) */
  pollingInterval?: number
}

/** The payer's edge to the chain: channel reads and the transactions it pays for itself. */
export interface PayerChain {
  readonly publicClient: PublicClient
  readonly walletClient: WalletClient
  readChannel(channelId: Hex): Promise<OnChainChannel>
  /** Approves the escrow for `amount` of the token, then deposits it (no collector). */
  depositDirect(config: ChannelConfig, amount: bigint): Promise<Hex>
  initiateWithdraw(config: ChannelConfig, amount: bigint): Promise<Hex>
  finalizeWithdraw(config: ChannelConfig): Promise<Hex>
  tokenBalance(token: Address, owner: Address): Promise<bigint>
  /** Mints test USDC: development chains only (the test token mints to anyone). */
  mint(token: Address, to: Address, amount: bigint): Promise<Hex>
}

/**
 * The payer's chain edge on viem: reads in one multicall-free pair of calls, writes sent by the
 * funding account and awaited to their receipt (a revert throws, with viem's reason).
 *
 * @example
 * const chain = payerChain({ rpcUrl, chainId: 84532, escrow: CANONICAL_ADDRESSES.escrow, account })
 * const { balance, totalClaimed } = await chain.readChannel(channelId)
 */
export function payerChain(parameters: PayerChainParameters): PayerChain {
  const { rpcUrl, chainId, escrow, account } = parameters
  const chain: Chain = defineChain({
    id: chainId,
    name: `eip155:${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  })
  const pollingInterval = parameters.pollingInterval ?? (chainId === 31337 ? 50 : 1000)
  const transport = http(rpcUrl)
  const publicClient = createPublicClient({ chain, transport, pollingInterval })
  const walletClient = createWalletClient({ chain, transport, account, pollingInterval })

  const confirm = async (hash: Hex): Promise<Hex> => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash })
    if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`)
    return hash
  }
  const writeEscrow = async (
    functionName: 'deposit' | 'initiateWithdraw' | 'finalizeWithdraw',
    args: readonly unknown[],
  ): Promise<Hex> => {
    const { request } = await publicClient.simulateContract({
      account,
      address: escrow,
      abi: BatchSettlement.abi,
      functionName,
      args: args as never,
    })
    return confirm(await walletClient.writeContract(request as never))
  }
  const writeToken = async (
    token: Address,
    functionName: 'approve' | 'mint',
    args: readonly [Address, bigint],
  ): Promise<Hex> =>
    confirm(
      await walletClient.writeContract({
        account,
        chain,
        address: token,
        abi: TestUSDC.abi,
        functionName,
        args,
      }),
    )

  return {
    publicClient,
    walletClient,
    async readChannel(channelId) {
      const [[balance, totalClaimed], [withdrawAmount, withdrawRequestedAt]] = await Promise.all([
        publicClient.readContract({
          address: escrow,
          abi: BatchSettlement.abi,
          functionName: 'channels',
          args: [channelId],
        }),
        publicClient.readContract({
          address: escrow,
          abi: BatchSettlement.abi,
          functionName: 'pendingWithdrawals',
          args: [channelId],
        }),
      ])
      return { balance, totalClaimed, withdrawAmount, withdrawRequestedAt }
    },
    async depositDirect(config, amount) {
      await writeToken(config.token, 'approve', [escrow, amount])
      return writeEscrow('deposit', [config, amount, zeroAddress, '0x'])
    },
    initiateWithdraw: (config, amount) => writeEscrow('initiateWithdraw', [config, amount]),
    finalizeWithdraw: (config) => writeEscrow('finalizeWithdraw', [config]),
    tokenBalance: (token, owner) =>
      publicClient.readContract({
        address: token,
        abi: TestUSDC.abi,
        functionName: 'balanceOf',
        args: [owner],
      }),
    mint: (token, to, amount) => writeToken(token, 'mint', [to, amount]),
  }
}
