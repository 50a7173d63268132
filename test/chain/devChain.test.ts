import { createPublicClient, http } from 'viem'
import { describe, expect, it } from 'vitest'
import { startAnvil } from '../../src/chain/anvil.js'
import { TestUSDC } from '../../src/chain/contracts.generated.js'
import { DEV_FUNDING, startDevChain } from '../../src/chain/devChain.js'
import { CANONICAL_ADDRESSES as CANONICAL } from '../../src/protocol/constants.js'

describe('local chain', () => {
  it('starts a dev chain with code at every canonical address, funds accounts, and stops cleanly', async () => {
    const dev = await startDevChain()
    const client = createPublicClient({
      chain: dev.chain,
      transport: http(dev.rpcUrl, { retryCount: 0 }),
    })
    for (const address of [CANONICAL.escrow, CANONICAL.erc3009Collector, CANONICAL.multicall3]) {
      expect((await client.getCode({ address }))?.length ?? 0).toBeGreaterThan(2)
    }
    const balance = await client.readContract({
      address: dev.contracts.usdc,
      abi: TestUSDC.abi,
      functionName: 'balanceOf',
      args: [dev.accounts.at(-1)?.address ?? '0x'],
    })
    expect(balance).toBe(DEV_FUNDING)
    expect(dev.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    await dev.stop()
    await dev.stop()
    await expect(client.getBlockNumber()).rejects.toThrow()
  })

  it('reports a port that is taken instead of hanging', async () => {
    const first = await startAnvil()
    try {
      await expect(startAnvil({ port: first.port, startTimeoutMs: 3000 })).rejects.toMatchObject({
        code: 'tollgate_chain_unavailable',
      })
    } finally {
      await first.stop()
    }
  })
})
