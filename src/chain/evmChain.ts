import { type Chain, defineChain } from 'viem'
import { CANONICAL_ADDRESSES } from '../protocol/constants.js'
import { PRESETS } from './presets.js'

/**
 * A viem chain for a chain id and its JSON-RPC endpoint, with Multicall3 at its canonical
 * address (channel reads batch through it): what the server, the payer and the dev chain use.
 */
export function evmChain(rpcUrl: string, chainId: number, name = `eip155:${chainId}`): Chain {
  return defineChain({
    id: chainId,
    name,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
    contracts: { multicall3: { address: CANONICAL_ADDRESSES.multicall3 } },
  })
}

/**
 * The viem chain of the local development chain (`npx tollgate chain`: anvil, chain id 31337,
 * `http://127.0.0.1:8545`), with Multicall3 at its canonical address, which viem's own `anvil`
 * and `foundry` chains lack and channel reads need. A node elsewhere takes its URL in the
 * transport.
 *
 * @example
 * const publicClient = createPublicClient({ chain: localChain, transport: http(rpcUrl) })
 */
export const localChain: Chain = Object.freeze(
  evmChain(PRESETS.local.publicRpcUrl, PRESETS.local.chainId, PRESETS.local.name),
)
