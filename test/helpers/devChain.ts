import { createTestClient, type Hex, http, type PrivateKeyAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { inject } from 'vitest'
import { evmChain } from '../../src/chain/evmChain.js'
import { EscrowHarness } from './escrow.js'

/** The run's shared dev chain (started by test/setup/chain.ts) as seen from a test file. */
export function useDevChain() {
  const injected = inject('devChain')
  const chain = evmChain(injected.rpcUrl, injected.chainId)
  const accounts: PrivateKeyAccount[] = injected.privateKeys.map((k) => privateKeyToAccount(k))
  const harness = new EscrowHarness(
    injected.rpcUrl,
    chain,
    injected.contracts.escrow,
    injected.contracts.usdc,
    injected.contracts.erc3009Collector,
  )
  const testClient = createTestClient({
    chain,
    mode: 'anvil',
    transport: http(injected.rpcUrl, { retryCount: 0 }),
  })
  return {
    ...injected,
    chain,
    accounts,
    harness,
    testClient,
    /** Snapshots the chain; the returned function reverts to it. */
    async snapshot(): Promise<() => Promise<void>> {
      const id: Hex = await testClient.snapshot()
      return async () => {
        await testClient.revert({ id })
      }
    },
    /** Moves chain time forward and mines a block. */
    async advance(seconds: number): Promise<void> {
      await testClient.increaseTime({ seconds })
      await testClient.mine({ blocks: 1 })
    },
  }
}
