import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type LocalAccount,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { evmChain } from '../chain/evmChain.js'
import { LOCAL_CHAIN_ID, LOCAL_POLLING_MS } from '../chain/index.js'
import type { ChainPreset } from '../chain/presets.js'
import { createSendLock, type SendLock } from '../chain/sendLock.js'
import type { ServerConfig } from './config.js'

/** The viem clients of a configured server: reads, and writes signed by its key. */
export interface ChainClients {
  readonly publicClient: PublicClient
  readonly walletClient: WalletClient<Transport, Chain, Account>
  /** Serializes the key's sends (deposits, refunds, claims) so they never share a nonce. */
  readonly sendLock: SendLock
}

/**
 * Builds the clients for the configured chain and RPC URL, with Multicall3 at its canonical
 * address. On a local chain: no transport retries and fast polling (the node mines at once).
 */
export function chainClients(config: ServerConfig, key: Hex): ChainClients {
  return chainClientsFor(config.chain, config.rpcUrl, privateKeyToAccount(key))
}

/**
 * {@link chainClients} for a chain preset, an RPC URL and the account that signs; `onRpcError`
 * is told the method of every JSON-RPC request that fails (after the transport's retries).
 */
export function chainClientsFor(
  preset: ChainPreset,
  rpcUrl: string,
  account: LocalAccount,
  onRpcError?: (method: string) => void,
): ChainClients {
  const local = preset.chainId === LOCAL_CHAIN_ID
  const chain = evmChain(rpcUrl, preset.chainId, preset.name)
  const base = http(rpcUrl, local ? { retryCount: 0 } : {})
  const transport = onRpcError ? countingErrors(base, onRpcError) : base
  const pollingInterval = local ? LOCAL_POLLING_MS : undefined
  const publicClient = createPublicClient({
    chain,
    transport,
    ...(pollingInterval ? { pollingInterval } : {}),
  }) as PublicClient
  const walletClient = createWalletClient({
    chain,
    transport,
    account,
    ...(pollingInterval ? { pollingInterval } : {}),
  })
  return { publicClient, walletClient, sendLock: createSendLock() }
}

/** `transport`, telling `onError` the method of each request that fails. */
function countingErrors(transport: Transport, onError: (method: string) => void): Transport {
  return (params) => {
    const inner = transport(params)
    const request: typeof inner.request = async (args, options) => {
      try {
        return await inner.request(args, options)
      } catch (err) {
        onError(args.method)
        throw err
      }
    }
    return { ...inner, request }
  }
}
