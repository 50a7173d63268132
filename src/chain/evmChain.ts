import { type Chain, defineChain } from 'viem'
import { CANONICAL_ADDRESSES } from '../protocol/constants.js'

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
