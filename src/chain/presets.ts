import type { Address } from 'viem'
import { CANONICAL_ADDRESSES } from '../protocol/constants.js'

/** A chain tollgate runs on: its CAIP-2 id, the USDC it is paid in, and where the escrow is. */
export interface ChainPreset {
  readonly name: string
  readonly chainId: number
  /** CAIP-2, `eip155:<chainId>`. */
  readonly network: `eip155:${number}`
  /** USDC: address and EIP-712 domain (as the 402's `extra.name` / `extra.version`). */
  readonly usdc: {
    readonly address: Address
    readonly name: string
    readonly version: string
    readonly decimals: number
  }
  readonly escrow: Address
  readonly erc3009Collector: Address
  /** A public RPC endpoint, for trying things out; production should use its own. */
  readonly publicRpcUrl?: string
  /** The block explorer's origin: transactions are at `<blockExplorer>/tx/<hash>`. */
  readonly blockExplorer?: string
}

/**
 * Presets with the real USDC deployments. The escrow and collector are at the canonical x402
 * addresses on every chain. The EIP-712 domains differ: Base Sepolia USDC is `USDC` / `2`, Base
 * USDC is `USD Coin` / `2`.
 */
export const PRESETS = Object.freeze({
  base: {
    name: 'Base',
    chainId: 8453,
    network: 'eip155:8453',
    usdc: {
      address: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
      name: 'USD Coin',
      version: '2',
      decimals: 6,
    },
    escrow: CANONICAL_ADDRESSES.escrow,
    erc3009Collector: CANONICAL_ADDRESSES.erc3009Collector,
    publicRpcUrl: 'https://mainnet.base.org',
    blockExplorer: 'https://basescan.org',
  },
  'base-sepolia': {
    name: 'Base Sepolia',
    chainId: 84532,
    network: 'eip155:84532',
    usdc: {
      address: '0x036CbD53842c5426634e7929541eC2318f3dCF7e',
      name: 'USDC',
      version: '2',
      decimals: 6,
    },
    escrow: CANONICAL_ADDRESSES.escrow,
    erc3009Collector: CANONICAL_ADDRESSES.erc3009Collector,
    publicRpcUrl: 'https://sepolia.base.org',
    blockExplorer: 'https://sepolia.basescan.org',
  },
  /**
   * A local development chain from `tollgate chain` (anvil, chain id 31337): the test USDC is
   * the first contract the first development account deploys, so its address is fixed.
   */
  local: {
    name: 'Local development chain',
    chainId: 31337,
    network: 'eip155:31337',
    usdc: {
      address: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      name: 'USDC',
      version: '2',
      decimals: 6,
    },
    escrow: CANONICAL_ADDRESSES.escrow,
    erc3009Collector: CANONICAL_ADDRESSES.erc3009Collector,
    publicRpcUrl: 'http://127.0.0.1:8545',
  },
} as const satisfies Record<string, ChainPreset>)

export type PresetName = keyof typeof PRESETS
