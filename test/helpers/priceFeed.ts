import { type Account, createWalletClient, http } from 'viem'
import { MockAggregatorV3 } from '../../src/chain/contracts.generated.js'
import type { useDevChain } from './devChain.js'

/** Seconds since the epoch, now: the clock the server checks a round's age against. */
export function nowSeconds(): bigint {
  return BigInt(Math.floor(Date.now() / 1000))
}

/** Moves the dev chain's mock price feed (8 decimals): a new complete round, or any round. */
export function mockFeed(dev: ReturnType<typeof useDevChain>, account: Account) {
  const wallet = createWalletClient({
    account,
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
  })
  const publicClient = dev.harness.publicClient
  const address = dev.contracts.priceFeed
  const mined = async (hash: `0x${string}`) => {
    await publicClient.waitForTransactionReceipt({ hash })
  }
  return {
    address,
    /** A new complete round answering `answer` (dollars × 10^8), updated at `updatedAt`. */
    async setAnswer(answer: bigint, updatedAt = nowSeconds()): Promise<void> {
      await mined(
        await wallet.writeContract({
          address,
          abi: MockAggregatorV3.abi,
          functionName: 'setAnswer',
          args: [answer, updatedAt],
        }),
      )
    },
    /** Every field of the latest round. */
    async setRound(
      roundId: bigint,
      answer: bigint,
      updatedAt: bigint,
      answeredInRound: bigint,
    ): Promise<void> {
      await mined(
        await wallet.writeContract({
          address,
          abi: MockAggregatorV3.abi,
          functionName: 'setRound',
          args: [roundId, answer, updatedAt, updatedAt, answeredInRound],
        }),
      )
    },
  }
}
