import { contractSignatureCheck } from '../chain/contractSignatureCheck.js'
import { channelReader } from '../chain/readChannel.js'
import { openPayee, type Payee, type PayeeOptions } from '../payee/index.js'
import type { ChannelStore } from '../store/index.js'
import type { ChainClients } from './chainClients.js'
import type { ServerConfig } from './config.js'

/**
 * The payee of a configured server over `store`: the key's account is the receiver authorizer,
 * the receiver defaults to it. Used by the server and by `tollgate settle` when it opens the data
 * directory itself.
 */
export function configuredPayee(
  config: ServerConfig,
  clients: Pick<ChainClients, 'publicClient' | 'walletClient'>,
  store: ChannelStore,
  hooks: Pick<PayeeOptions, 'onWarning' | 'onClaimNeeded'> = {},
): Promise<Payee> {
  const { publicClient, walletClient } = clients
  return openPayee({
    chainId: config.chain.chainId,
    escrow: config.chain.escrow,
    identity: {
      receiver: config.receiver ?? walletClient.account.address,
      receiverAuthorizer: walletClient.account.address,
      token: config.chain.usdc.address,
      withdrawDelay: config.withdrawDelay,
    },
    store,
    readChannel: channelReader(publicClient, config.chain.escrow),
    contractSignatureCheck: contractSignatureCheck(publicClient),
    ...hooks,
  })
}
