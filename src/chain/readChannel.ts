import type { Address, Hex, PublicClient } from 'viem'
import type { OnChainChannel } from '../ledger/index.js'
import { BatchSettlement } from './contracts.generated.js'

/** Reads a channel's on-chain state from the escrow. */
export type ChannelReader = (channelId: Hex) => Promise<OnChainChannel>

/** What {@link channelReader} reads through: a viem `PublicClient` of any chain has it. */
export type ChannelReaderClient = Pick<PublicClient, 'multicall'>

/**
 * A {@link ChannelReader} on viem: `channels`, `pendingWithdrawals` and `refundNonce` in one
 * Multicall3 call at the latest block. Rejects when the node cannot be read.
 *
 * @example
 * const read = channelReader(publicClient, CANONICAL_ADDRESSES.escrow)
 * const { balance, totalClaimed } = await read(channelId)
 */
export function channelReader(client: ChannelReaderClient, escrow: Address): ChannelReader {
  return async (channelId) => {
    const [channel, pending, refundNonce] = await client.multicall({
      allowFailure: false,
      contracts: [
        { address: escrow, abi: BatchSettlement.abi, functionName: 'channels', args: [channelId] },
        {
          address: escrow,
          abi: BatchSettlement.abi,
          functionName: 'pendingWithdrawals',
          args: [channelId],
        },
        {
          address: escrow,
          abi: BatchSettlement.abi,
          functionName: 'refundNonce',
          args: [channelId],
        },
      ],
    })
    return {
      balance: channel[0],
      totalClaimed: channel[1],
      withdrawRequestedAt: pending[1],
      refundNonce,
    }
  }
}
