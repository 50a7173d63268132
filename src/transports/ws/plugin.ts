import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { type Rejection, TollgateError } from '../../errors/index.js'
import { RefusalLog, TollgateMetrics } from '../../metrics/index.js'
import type { ResourceInfo } from '../../protocol/index.js'
import type { FollowedPrice } from '../oraclePrice.js'
import { CLOSE_CODES, DEFAULT_BAD_FRAME_WINDOW_MS, WS_SUBPROTOCOL } from './constants.js'
import { FeedPump } from './feedPump.js'
import { IpGuard } from './ipGuard.js'
import { RequestRunner } from './requestRunner.js'
import {
  type FeedRouteOptions,
  type RequestRouteOptions,
  type ResolvedRoute,
  resolveFeedRoute,
  resolveRequestRoute,
  resolveWsOptions,
  type TollgateWsOptions,
} from './resolveOptions.js'
import { Session, type SessionMode } from './session.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Registers a billed feed at `path` (a WebSocket GET route): each message of `source` sent to
     * a subscriber is charged `price`. Options are checked now (`tollgate_invalid_config`).
     */
    tollgateFeed(path: string, options: FeedRouteOptions): FastifyInstance
    /**
     * Registers billed requests at `path` (a WebSocket GET route): each `request` frame is answered
     * by `handler` and charged at most `price`. Options are checked now (`tollgate_invalid_config`).
     */
    tollgateRequests(path: string, options: RequestRouteOptions): FastifyInstance
  }
}

/**
 * The tollgate WebSocket transport for Fastify: per-message billing over x402 batch-settlement
 * vouchers, with credit windows (PROTOCOL.md beside this file). It registers `@fastify/websocket`
 * unless the application already did, and decorates the instance with `tollgateFeed` and
 * `tollgateRequests`. On close, every session is ended with a final receipt (close code 1001).
 *
 * @example
 * await app.register(tollgateWs, { payee, network: 'eip155:84532', asset, payTo, receiverAuthorizer, withdrawDelay: 900 })
 * app.tollgateFeed('/ticks', { price: 10n, creditWindow: 100, source: ticker, event: 'tick' })
 * app.tollgateRequests('/rpc', { price: 1000n, handler: async (body, ctx) => answer(body) })
 */
async function tollgateWsPlugin(fastify: FastifyInstance, raw: TollgateWsOptions): Promise<void> {
  const options = resolveWsOptions(raw)
  const metrics = raw.metrics ?? false
  if (metrics !== false && !(metrics instanceof TollgateMetrics)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      'metrics must be false or a TollgateMetrics (new TollgateMetrics()).',
    )
  }
  const refusalLog = metrics ? metrics.refusalLog : new RefusalLog()
  const sessions = new Set<Session>()
  const addresses = new IpGuard({
    maxConnections: options.maxConnectionsPerIp,
    maxBadFrames: options.maxBadFramesPerIp,
    badFrameWindowMs: DEFAULT_BAD_FRAME_WINDOW_MS,
  })

  /** Sessions of routes priced through the oracle, and the route price each was opened at. */
  const priced = new Map<Session, { route: FollowedPrice<ResolvedRoute>; at: ResolvedRoute }>()
  /**
   * Ends each session whose price is no longer in force: its route's round unusable (the code is
   * sent first) or moved to another price. Run after each feed read and on the feed's interval
   * (a round goes stale on the clock).
   */
  const reprice = () => {
    for (const [session, { route, at }] of priced) {
      const now = route.now()
      if (now.ok && now.value === at) continue
      priced.delete(session)
      if (!now.ok) session.refuse(now.code, now.message)
      void session.end(CLOSE_CODES.tryAgainLater, now.ok ? 'price changed' : 'price not in force')
    }
  }
  const { oracle } = options
  const unsubscribe = oracle?.feed.subscribe(reprice)
  const timer = oracle ? setInterval(reprice, oracle.feed.refreshSeconds * 1000) : undefined
  timer?.unref()

  // Added before @fastify/websocket's own preClose, which closes every socket bare: it runs once
  // every final receipt is sent (on a shared store, after the store acknowledged its hold's end).
  fastify.addHook('preClose', async () => {
    unsubscribe?.()
    clearInterval(timer)
    const closing: Promise<void>[] = []
    for (const session of sessions) {
      const sent = session.close(CLOSE_CODES.goingAway, 'server shutting down')
      if (sent) closing.push(sent)
    }
    await Promise.all(closing)
  })
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(websocket, {
      options: {
        maxPayload: options.maxPayload,
        handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
      },
    })
  }

  const open = <R extends ResolvedRoute>(
    followed: FollowedPrice<R>,
    socket: WebSocket,
    request: FastifyRequest,
    makeMode: (session: Session, route: R) => SessionMode,
  ) => {
    const now = followed.now()
    if (!now.ok) return unpriced(socket, now)
    const route = now.value
    const ip = request.ip
    if (!addresses.connect(ip)) {
      const frame = {
        type: 'error',
        code: 'tollgate_rate_limited',
        message: 'Too many connections or bad frames from this address; retry later.',
      }
      socket.send(JSON.stringify(frame))
      socket.close(CLOSE_CODES.policy, 'too many connections')
      return
    }
    const session = new Session(
      socket,
      route,
      options,
      resourceOf(request, route),
      request.log,
      (s) => {
        priced.delete(s)
        if (sessions.delete(s) && metrics) metrics.sessionClosed()
        addresses.disconnect(ip)
      },
      metrics ? metrics.route('ws', route.path) : undefined,
      refusalLog,
      () => addresses.strike(ip),
    )
    sessions.add(session)
    if (followed.followsFeed) priced.set(session, { route: followed, at: route })
    if (metrics) metrics.sessionOpened()
    session.start(makeMode(session, route))
  }

  fastify.decorate(
    'tollgateFeed',
    function tollgateFeed(this: FastifyInstance, path: string, routeOptions: FeedRouteOptions) {
      const route = resolveFeedRoute(path, routeOptions, options)
      this.get(path, { websocket: true }, (socket, request) =>
        open(route, socket, request, (session, at) => new FeedPump(session, at, request)),
      )
      return this
    },
  )
  fastify.decorate(
    'tollgateRequests',
    function tollgateRequests(
      this: FastifyInstance,
      path: string,
      routeOptions: RequestRouteOptions,
    ) {
      const route = resolveRequestRoute(path, routeOptions, options)
      this.get(path, { websocket: true }, (socket, request) =>
        open(route, socket, request, (session, at) => new RequestRunner(session, at, request)),
      )
      return this
    },
  )
}

/**
 * A connection to a route with no price in force (its oracle's round is stale, incomplete or
 * below the floor): an error frame with the code, then close code 1013 (try again later).
 */
function unpriced(socket: WebSocket, refusal: Rejection): void {
  socket.send(JSON.stringify({ type: 'error', code: refusal.code, message: refusal.message }))
  socket.close(CLOSE_CODES.tryAgainLater, 'price not in force')
}

/** `resource` of a route's `PaymentRequired`: the WebSocket URL requested. */
function resourceOf(request: FastifyRequest, route: ResolvedRoute): ResourceInfo {
  const host = request.host
  const scheme = request.protocol === 'https' ? 'wss' : 'ws'
  const resource: ResourceInfo = { url: host ? `${scheme}://${host}${request.url}` : request.url }
  if (route.description !== undefined) resource.description = route.description
  if (route.mimeType !== undefined) resource.mimeType = route.mimeType
  return resource
}

/**
 * The `tollgateWs` Fastify plugin, wrapped with fastify-plugin so that `tollgateFeed` and
 * `tollgateRequests` reach the application.
 */
export const tollgateWs = fp(tollgateWsPlugin, { fastify: '5.x', name: 'tollgate-ws' })
