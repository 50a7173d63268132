import { join } from 'node:path'
import replyFrom from '@fastify/reply-from'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Hex } from 'viem'
import type { ChainWatcher } from '../chain/watcher.js'
import { TollgateError } from '../errors/index.js'
import type { Payee } from '../payee/index.js'
import type { SettlementSchedule, Settler } from '../settlement/index.js'
import { RedisStore } from '../store/index.js'
import { FACILITATOR_SECRET_ENV, FACILITATOR_TOKEN_ENV, type ServerConfig } from './config.js'
import { createTollgate } from './createTollgate.js'
import { ADMIN_TOKEN_ENV } from './dashboard/auth.js'
import { facilitatorApp } from './facilitator.js'
import { adminApp } from './settlement.js'
import { type UpstreamFeed, upstreamFeed } from './upstreamFeed.js'
import { upstreamProbe } from './upstreamProbe.js'
/** A running standalone tollgate: the Fastify app, the payee, the chain watcher and the settlement. */
export interface TollgateServer {
  readonly app: FastifyInstance
  readonly payee: Payee
  readonly watcher: ChainWatcher
  readonly settler: Settler
  /** Runs the settler on its schedule (when `settlement.enabled`) and on withdrawal alerts. */
  readonly settlement: SettlementSchedule
  /**
   * The admin listener (`POST /settle`, the dashboard and its API), when `settlement.adminPort`
   * is set; listening.
   */
  readonly admin: FastifyInstance | undefined
  /** The admin listener's URL (`http://127.0.0.1:4021/`), when there is one: the dashboard. */
  readonly adminUrl: string | undefined
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
 * upstream feed is down, or an HTTP upstream cannot be reached (`upstreams` says why).
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
 *
 * A route with `exact: true` also takes x402 `exact` payments: the key sends each transfer and
 * pays its gas, or the facilitator of `exact.facilitatorUrl` does (its bearer token in
 * `TOLLGATE_FACILITATOR_TOKEN`). With `exact.facilitator`, another listener serves tollgate as an
 * x402 facilitator for stock servers, behind the bearer token of `TOLLGATE_FACILITATOR_SECRET`.
 */
export async function createServer(
  config: ServerConfig,
  key: Hex,
  options: {
    logger?: FastifyServerOptions['logger']
    /** The admin listener's bearer token (`tollgate serve` reads TOLLGATE_ADMIN_TOKEN). */
    adminToken?: string | undefined
  } = {},
): Promise<TollgateServer> {
  const { adminHost, adminPort } = config.settlement
  if (adminPort !== undefined && !isLoopback(adminHost) && options.adminToken === undefined) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `settlement.adminHost ${adminHost} is not a loopback address: set a bearer token in ${ADMIN_TOKEN_ENV}`,
    )
  }
  const app = Fastify({ logger: options.logger ?? false, trustProxy: config.listen.trustProxy })
  const tg = await createTollgate({
    network: config.chain,
    rpcUrl: config.rpcUrl,
    account: key,
    ...(config.receiver ? { receiver: config.receiver } : {}),
    withdrawDelay: config.withdrawDelay,
    ...(config.redis
      ? { store: await RedisStore.open(config.redis) }
      : { dataDir: config.dataDir, storeMode: config.storeMode }),
    ...(config.confirmations === undefined ? {} : { confirmations: config.confirmations }),
    settlement: config.settlement,
    onChainLimits: config.onChainLimits,
    exact: {
      ...(config.exact.facilitatorUrl === undefined
        ? {}
        : {
            facilitator: {
              url: config.exact.facilitatorUrl,
              token: process.env[FACILITATOR_TOKEN_ENV],
            },
          }),
      ...(config.exact.maxPendingTransfers === undefined
        ? {}
        : { maxPendingTransfers: config.exact.maxPendingTransfers }),
    },
    ...(config.oracle ? { oracle: config.oracle } : {}),
    logger: app.log,
  })
  const feeds: { path: string; upstream: UpstreamFeed }[] = []
  let admin: FastifyInstance | undefined
  let facilitator: FastifyInstance | undefined
  try {
    await app.register(tg.http, { rateLimit: config.rateLimit })
    await app.register(tg.ws, config.websocket)
    for (const feed of config.feeds) {
      const upstream = upstreamFeed(feed.upstream, {
        onDown: (url, cause, retryInMs) =>
          app.log.warn(
            { err: cause, url, retryInMs },
            'tollgate: upstream feed down; reconnecting',
          ),
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
    const upstreams = config.routes.map((route) => ({
      path: route.path,
      probe: upstreamProbe(route.upstream),
    }))
    const { payee, watcher } = tg
    const gatewayHealth = async () => {
      const checked = await Promise.all(
        upstreams.map(async (u) => ({ path: u.path, ...(await u.probe.check()) })),
      )
      return {
        ok: feeds.every((f) => f.upstream.connected) && checked.every((u) => u.reachable),
        upstreams: checked,
        feeds: feeds.map((f) => ({ path: f.path, connected: f.upstream.connected })),
      }
    }
    app.get('/health', async (_request, reply) => {
      const status = watcher.status
      const block = (value: bigint | undefined) => (value === undefined ? null : Number(value))
      const gateway = await gatewayHealth()
      const ok = status.consecutiveFailures === 0 && gateway.ok
      return reply.code(ok ? 200 : 503).send({
        ok,
        network: config.chain.network,
        channels: payee.ledger.size,
        signatureBackend: payee.backend,
        storeMode: tg.storeMode,
        watcher: {
          lastProcessedBlock: block(status.lastProcessedBlock),
          headSeen: block(status.headSeen),
          lag: block(status.lag),
          failures: status.failures,
          consecutiveFailures: status.consecutiveFailures,
        },
        upstreams: gateway.upstreams,
        feeds: gateway.feeds,
      })
    })
    for (const route of config.routes) {
      app.route({
        method: [...route.methods] as never,
        url: route.path,
        config: {
          price: route.price,
          ...(route.description ? { description: route.description } : {}),
          ...(route.exact === undefined ? {} : { exact: route.exact }),
        },
        handler: (request, reply) => reply.from(new URL(request.url, route.upstream).toString()),
      })
    }
    app.get('/metrics', async (_request, reply) =>
      reply.type(tg.metrics.contentType).send(await tg.metrics.metrics()),
    )
    await app.ready()
    for (const feed of feeds) feed.upstream.start()
    if (adminPort !== undefined) {
      const dashboard = tg.dashboard
      admin = await adminApp(tg.settlement, {
        dashboard: (instance, opts) =>
          dashboard(instance, { ...opts, source: { health: gatewayHealth } }),
        token: options.adminToken,
      })
      await admin.listen({ host: adminHost, port: adminPort })
    }
    if (config.exact.facilitator) {
      facilitator = facilitatorApp({
        exactPayee: tg.exactPayee,
        batch: tg.batchFacilitator,
        network: config.chain.network,
        signer: tg.terms.receiverAuthorizer,
        token: process.env[FACILITATOR_SECRET_ENV] ?? '',
      })
      await facilitator.listen(config.exact.facilitator)
    }
  } catch (err) {
    for (const feed of feeds) feed.upstream.close()
    await facilitator?.close().catch(() => {})
    await admin?.close().catch(() => {})
    await app.close().catch(() => {})
    await tg.abandon()
    throw err
  }
  app.log.info(
    {
      network: config.chain.network,
      receiver: tg.terms.payTo,
      receiverAuthorizer: tg.terms.receiverAuthorizer,
      routes: config.routes.map(
        (r) => `${r.methods.join(',')} ${r.path} ${r.price} -> ${r.upstream}`,
      ),
      feeds: config.feeds.map((f) => `${f.path} ${f.price} -> ${f.upstream}`),
      adminPort: adminPort ?? null,
      dashboard: adminUrlOf(admin) ?? null,
      storeMode: tg.storeMode,
      dataDir: join(config.dataDir, 'vouchers'),
      ...(config.redis ? { store: 'redis' } : {}),
      settlement: config.settlement.enabled ? 'scheduled' : 'withdrawals only',
    },
    'tollgate: ready',
  )

  let closed: Promise<void> | undefined
  return {
    app,
    payee: tg.payee,
    watcher: tg.watcher,
    settler: tg.settler,
    settlement: tg.settlement,
    admin,
    adminUrl: adminUrlOf(admin),
    close() {
      closed ??= (async () => {
        await admin?.close()
        await facilitator?.close()
        for (const feed of feeds) feed.upstream.close()
        await app.close()
        await tg.close()
      })()
      return closed
    },
  }
}

/** Whether `host` is a loopback address (the admin listener needs no token there). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** `http://host:port/` of a listening admin app. */
function adminUrlOf(admin: FastifyInstance | undefined): string | undefined {
  const address = admin?.server.address()
  if (!address || typeof address === 'string') return undefined
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}/`
}
