/**
 * Vitest global setup for the chain project: one anvil with every contract deployed per run.
 * Test files read it with `inject('devChain')` and isolate themselves with snapshots or fresh
 * accounts; the node is stopped when the run ends.
 */
import type { TestProject } from 'vitest/node'
import { type DevChain, startDevChain } from '../../src/chain/devChain.js'

export interface InjectedDevChain {
  rpcUrl: string
  chainId: number
  contracts: DevChain['contracts']
  privateKeys: DevChain['privateKeys']
}

declare module 'vitest' {
  export interface ProvidedContext {
    devChain: InjectedDevChain
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dev = await startDevChain()
  project.provide('devChain', {
    rpcUrl: dev.rpcUrl,
    chainId: dev.anvil.chainId,
    contracts: dev.contracts,
    privateKeys: dev.privateKeys,
  })
  return () => dev.stop()
}
