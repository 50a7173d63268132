import {
  type Address,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type LocalAccount,
  type PublicClient,
  type WalletClient,
  zeroAddress,
} from 'viem'
import { LOCAL_CHAIN_ID } from '../chain/anvil.js'
import { BatchSettlement, TestUSDC } from '../chain/contracts.generated.js'
import { LOCAL_POLLING_MS } from '../chain/devChain.js'
import { evmChain } from '../chain/evmChain.js'
import { type ChannelReader, channelReader } from '../chain/readChannel.js'
import type { OnChainChannel } from '../ledger/index.js'
import type { ChannelConfig } from '../protocol/index.js'

export type { OnChainChannel }

/** Parameters of {@link payerChain}. */
export interface PayerChainParameters {
  rpcUrl: string
  chainId: number
  escrow: Address
  /** Sends the payer's own transactions (direct deposits, withdrawals) and pays their gas. */
  account: LocalAccount
  /** Receipt polling interval in milliseconds. @default 1000 (a local node: LOCAL_POLLING_MS) */
  pollingInterval?: number
}

/** The payer's edge to the chain: channel reads and the transactions it pays for itself. */
export interface PayerChain {
  readonly publicClient: PublicClient
  readonly walletClient: WalletClient
  readChannel: ChannelReader
  /** Approves the escrow for `amount` of the token, then deposits it (no collector). */
  depositDirect(config: ChannelConfig, amount: bigint): Promise<Hex>
  initiateWithdraw(config: ChannelConfig, amount: bigint): Promise<Hex>
  finalizeWithdraw(config: ChannelConfig): Promise<Hex>
  tokenBalance(token: Address, owner: Address): Promise<bigint>
  /** Mints test USDC: development chains only (the test token mints to anyone). */
  mint(token: Address, to: Address, amount: bigint): Promise<Hex>
}

/**
 * The payer's chain edge on viem: channel reads in one Multicall3 call, writes sent by the
 * funding account and awaited to their receipt (a revert throws, with viem's reason).
 *
 * @example
 * const chain = payerChain({ rpcUrl, chainId: 84532, escrow: CANONICAL_ADDRESSES.escrow, account })
 * const { balance, totalClaimed } = await chain.readChannel(channelId)
 */
export function payerChain(parameters: PayerChainParameters): PayerChain {
  const { rpcUrl, chainId, escrow, account } = parameters
  const chain = evmChain(rpcUrl, chainId)
  const pollingInterval =
    parameters.pollingInterval ?? (chainId === LOCAL_CHAIN_ID ? LOCAL_POLLING_MS : 1000)
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
    readChannel: channelReader(publicClient, escrow),
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
