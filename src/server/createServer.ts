import { join } from 'node:path'
import replyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Hex } from 'viem'
import { escrowWriter } from '../chain/escrowWriter.js'
import { LOCAL_CHAIN_ID } from '../chain/index.js'
import { type ChainWatcher, createChainWatcher } from '../chain/watcher.js'
import type { Payee } from '../payee/index.js'
import { type SettlementSchedule, type Settler, settlementMetrics } from '../settlement/index.js'
import { LevelStore } from '../store/index.js'
import { tollgate } from '../transports/http/index.js'
import { tollgateWs } from '../transports/ws/index.js'
import { chainClients } from './chainClients.js'
import type { ServerConfig } from './config.js'
import { configuredPayee } from './configuredPayee.js'
import { adminApp, configuredSchedule, configuredSettler } from './settlement.js'
import { type UpstreamFeed, upstreamFeed } from './upstreamFeed.js'

/** A running standalone tollgate: the Fastify app, the payee, the chain watcher and the settlement. */
export interface TollgateServer {
  readonly app: FastifyInstance
  readonly payee: Payee
  readonly watcher: ChainWatcher
  readonly settler: Settler
  /** Runs the settler on its schedule (when `settlement.enabled`) and on withdrawal alerts. */
  readonly settlement: SettlementSchedule
  /** The admin listener on 127.0.0.1 (`POST /settle`), when `settlement.adminPort` is set; listening. */
  readonly admin: FastifyInstance | undefined
  /** Stops settling and watching, closes the apps, flushes and closes the store. */
  close(): Promise<void>
}

/**
 * Assembles a standalone server from a configuration: a LevelDB voucher store, the payee, the
 * chain watcher, the `tollgate` plugin with deposits and refunds enabled, and one paid route per
 * configured upstream (proxied with @fastify/reply-from, streamed, not buffered). An upstream
 * answer of 400 or more is passed on and not charged. Each configured feed is a billed WebSocket
 * route (`tollgateWs`) selling the messages of an upstream WebSocket, reconnected with backoff
 * when it drops. `GET /health` is free; `ok` is false while the chain watcher is failing or an
 * upstream feed is down.
 *
 * The key is the receiver authorizer's: it signs nothing the payer relies on, but sends deposit
 * and refund transactions (and pays their gas). The receiver defaults to its address.
 *
 * Settlement (src/settlement): the key also sends the claims and the settle sweep. The schedule
 * checks for claims due every `settlement.checkIntervalSeconds`, sweeps every
 * `settlement.sweepIntervalSeconds`, and runs at once when the watcher sees a withdrawal start
 * or a channel reaches its exposure cap. `GET /metrics` serves the Prometheus metrics
 * (settlement totals, next deadline, gas per claimed channel, failures). With
 * `settlement.adminPort`, a second listener on 127.0.0.1 takes `POST /settle` (used by
 * `tollgate settle` while the server holds the store).
 */
export async function createServer(
  config: ServerConfig,
  key: Hex,
  options: { logger?: FastifyServerOptions['logger'] } = {},
): Promise<TollgateServer> {
  const local = config.chain.chainId === LOCAL_CHAIN_ID
  const { publicClient, walletClient, sendLock } = chainClients(config, key)
  const account = walletClient.account

  const app = Fastify({ logger: options.logger ?? false })
  const receiver = config.receiver ?? account.address
  const store = await LevelStore.open(join(config.dataDir, 'vouchers'), { mode: config.storeMode })
  // Bound once the schedule exists; the payee calls it when a channel needs a claim soon.
  let claimNeeded: () => void = () => {}
  let payee: Payee
  try {
    payee = await configuredPayee(config, { publicClient, walletClient }, store, {
      onWarning: (message, cause) => app.log.warn({ err: cause }, message),
      onClaimNeeded: () => claimNeeded(),
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
    onWithdrawInitiated: (channelId, finalizeAfter) => {
      app.log.warn(
        { channelId, finalizeAfter },
        'tollgate: a payer started a withdrawal; claiming before the deadline',
      )
      return settlement.trigger('withdrawal')
    },
    onError: (err) => app.log.error({ err }, 'tollgate: chain watcher poll failed; retrying'),
  })

  const settler = configuredSettler(
    config,
    { publicClient, walletClient, sendLock },
    payee,
    store,
    app.log,
  )
  const settlement = configuredSchedule(config, settler, app.log)
  claimNeeded = () => settlement.nudge('exposure')
  const metrics = settlementMetrics({ records: () => payee.ledger.records(), settler })

  // What the HTTP and the WebSocket plugins both announce in their requirements.
  const terms = {
    payee,
    network: config.chain.network,
    asset: config.chain.usdc,
    payTo: receiver,
    receiverAuthorizer: account.address,
    withdrawDelay: config.withdrawDelay,
  }
  await app.register(tollgate, {
    ...terms,
    escrowWriter: escrowWriter({
      publicClient,
      walletClient,
      escrow: config.chain.escrow,
      erc3009Collector: config.chain.erc3009Collector,
      sendLock,
    }),
  })
  await app.register(tollgateWs, terms)
  const feeds: { path: string; upstream: UpstreamFeed }[] = []
  for (const feed of config.feeds) {
    const upstream = upstreamFeed(feed.upstream, {
      onDown: (url, cause, retryInMs) =>
        app.log.warn({ err: cause, url, retryInMs }, 'tollgate: upstream feed down; reconnecting'),
      onUp: (url) => app.log.info({ url }, 'tollgate: upstream feed connected'),
    })
    feeds.push({ path: feed.path, upstream })
    app.tollgateFeed(feed.path, {
      price: feed.price,
      source: upstream.source,
      event: upstream.event,
      ...(feed.creditWindow === undefined ? {} : { creditWindow: feed.creditWindow }),
      ...(feed.description ? { description: feed.description } : {}),
    })
  }
  await app.register(replyFrom)
  app.get('/health', async () => {
    const status = watcher.status
    const block = (value: bigint | undefined) => (value === undefined ? null : Number(value))
    const feedsUp = feeds.every((f) => f.upstream.connected)
    return {
      ok: status.consecutiveFailures === 0 && feedsUp,
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
      feeds: feeds.map((f) => ({ path: f.path, connected: f.upstream.connected })),
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
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  )
  await app.ready()
  watcher.start()
  for (const feed of feeds) feed.upstream.start()
  if (config.settlement.enabled) settlement.start()
  let admin: FastifyInstance | undefined
  if (config.settlement.adminPort !== undefined) {
    admin = await adminApp(settlement)
    await admin.listen({ host: '127.0.0.1', port: config.settlement.adminPort })
  }

  let closed: Promise<void> | undefined
  return {
    app,
    payee,
    watcher,
    settler,
    settlement,
    admin,
    close() {
      closed ??= (async () => {
        await admin?.close()
        await settlement.stop()
        await watcher.stop()
        for (const feed of feeds) feed.upstream.close()
        await app.close()
        await payee.close()
      })()
      return closed
    },
  }
}
