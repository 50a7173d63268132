import { join } from 'node:path'
import replyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import {
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  type PublicClient,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { contractSignatureCheck } from '../chain/contractSignatureCheck.js'
import { escrowWriter } from '../chain/escrowWriter.js'
import { LOCAL_CHAIN_ID, LOCAL_POLLING_MS } from '../chain/index.js'
import { channelReader } from '../chain/readChannel.js'
import { type ChainWatcher, createChainWatcher } from '../chain/watcher.js'
import { openPayee, type Payee } from '../payee/index.js'
import { CANONICAL_ADDRESSES } from '../protocol/constants.js'
import { LevelStore } from '../store/index.js'
import { tollgate } from '../transports/http/index.js'
import type { ServerConfig } from './config.js'

/** A running standalone tollgate: the Fastify app, the payee and the chain watcher. */
export interface TollgateServer {
  readonly app: FastifyInstance
  readonly payee: Payee
  readonly watcher: ChainWatcher
  /** Stops watching, closes the app, flushes and closes the store. */
  close(): Promise<void>
}

/**
 * Assembles a standalone server from a configuration: a LevelDB voucher store, the payee, the
 * chain watcher, the `tollgate` plugin with deposits and refunds enabled, and one paid route per
 * configured upstream (proxied with @fastify/reply-from, streamed, not buffered). An upstream
 * answer of 400 or more is passed on and not charged. `GET /health` is free; `ok` is false
 * while the chain watcher is failing.
 *
 * The key is the receiver authorizer's: it signs nothing the payer relies on, but sends deposit
 * and refund transactions (and pays their gas). The receiver defaults to its address.
 */
export async function createServer(
  config: ServerConfig,
  key: Hex,
  options: { logger?: FastifyServerOptions['logger'] } = {},
): Promise<TollgateServer> {
  const account = privateKeyToAccount(key)
  const local = config.chain.chainId === LOCAL_CHAIN_ID
  const chain: Chain = defineChain({
    id: config.chain.chainId,
    name: config.chain.name,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [config.rpcUrl] } },
    contracts: { multicall3: { address: CANONICAL_ADDRESSES.multicall3 } },
  })
  const transport = http(config.rpcUrl, local ? { retryCount: 0 } : {})
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

  const app = Fastify({ logger: options.logger ?? false })
  const receiver = config.receiver ?? account.address
  const store = await LevelStore.open(join(config.dataDir, 'vouchers'), { mode: config.storeMode })
  let payee: Payee
  try {
    payee = await openPayee({
      chainId: config.chain.chainId,
      escrow: config.chain.escrow,
      identity: {
        receiver,
        receiverAuthorizer: account.address,
        token: config.chain.usdc.address,
        withdrawDelay: config.withdrawDelay,
      },
      store,
      readChannel: channelReader(publicClient, config.chain.escrow),
      contractSignatureCheck: contractSignatureCheck(publicClient),
      onWarning: (message, cause) => app.log.warn({ err: cause }, message),
    })
  } catch (err) {
    await store.close()
    throw err
  }
  const watcher = createChainWatcher({
    client: publicClient,
    escrow: config.chain.escrow,
    sink: payee,
    meta: store,
    ...(config.confirmations === undefined ? {} : { confirmations: config.confirmations }),
    ...(local ? { pollIntervalMs: 500 } : {}),
    onWithdrawInitiated: (channelId, finalizeAfter) =>
      app.log.warn(
        { channelId, finalizeAfter },
        'tollgate: a payer started a withdrawal; claim before the deadline',
      ),
    onError: (err) => app.log.error({ err }, 'tollgate: chain watcher poll failed; retrying'),
  })

  await app.register(tollgate, {
    payee,
    network: config.chain.network,
    asset: config.chain.usdc,
    payTo: receiver,
    receiverAuthorizer: account.address,
    withdrawDelay: config.withdrawDelay,
    escrowWriter: escrowWriter({
      publicClient,
      walletClient,
      escrow: config.chain.escrow,
      erc3009Collector: config.chain.erc3009Collector,
    }),
  })
  await app.register(replyFrom)
  app.get('/health', async () => {
    const status = watcher.status
    const block = (value: bigint | undefined) => (value === undefined ? null : Number(value))
    return {
      ok: status.consecutiveFailures === 0,
      network: config.chain.network,
      channels: payee.ledger.size,
      signatureBackend: payee.backend,
      watcher: {
        lastProcessedBlock: block(status.lastProcessedBlock),
        headSeen: block(status.headSeen),
        lag: block(status.lag),
        failures: status.failures,
        consecutiveFailures: status.consecutiveFailures,
      },
    }
  })
  for (const route of config.routes) {
    app.route({
      method: [...route.methods] as never,
      url: route.path,
      config: {
        price: route.price,
        ...(route.description ? { description: route.description } : {}),
      },
      handler: (request, reply) => reply.from(new URL(request.url, route.upstream).toString()),
    })
  }
  await app.ready()
  watcher.start()

  let closed: Promise<void> | undefined
  return {
    app,
    payee,
    watcher,
    close() {
      closed ??= (async () => {
        await watcher.stop()
        await app.close()
        await payee.close()
      })()
      return closed
    },
  }
}
