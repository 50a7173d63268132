import type { Address } from 'viem'
import { contractSignatureCheck } from '../chain/contractSignatureCheck.js'
import type { ChainPreset } from '../chain/presets.js'
import { channelReader } from '../chain/readChannel.js'
import { openPayee, type Payee, type PayeeOptions } from '../payee/index.js'
import type { ChannelStore } from '../store/index.js'
import type { ChainClients } from './chainClients.js'
import type { ServerConfig } from './config.js'

type Hooks = Pick<PayeeOptions, 'onWarning' | 'onClaimNeeded' | 'onChainLimits'>

/**
 * The payee of a configured server over `store`: the key's account is the receiver authorizer,
 * the receiver defaults to it. Used by `tollgate settle` when it opens the data directory itself.
 */
export function configuredPayee(
  config: ServerConfig,
  clients: Pick<ChainClients, 'publicClient' | 'walletClient'>,
  store: ChannelStore,
  hooks: Hooks = {},
): Promise<Payee> {
  const receiver = config.receiver ?? clients.walletClient.account.address
  return payeeFor(config.chain, receiver, config.withdrawDelay, clients, store, hooks)
}

/**
 * The payee of `chain` whose receiver authorizer is the wallet client's account: channel reads
 * and EIP-1271 checks through the public client.
 */
export function payeeFor(
  chain: ChainPreset,
  receiver: Address,
  withdrawDelay: number,
  clients: Pick<ChainClients, 'publicClient' | 'walletClient'>,
  store: ChannelStore,
  hooks: Hooks = {},
): Promise<Payee> {
  const { publicClient, walletClient } = clients
  return openPayee({
    chainId: chain.chainId,
    escrow: chain.escrow,
    identity: {
      receiver,
      receiverAuthorizer: walletClient.account.address,
      token: chain.usdc.address,
      withdrawDelay,
    },
    store,
    readChannel: channelReader(publicClient, chain.escrow),
    contractSignatureCheck: contractSignatureCheck(publicClient),
    ...hooks,
  })
}
