import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocket } from 'ws'
import { TollgateError } from '../../errors/index.js'
import { RefusalLog, TollgateMetrics } from '../../metrics/index.js'
import type { ResourceInfo } from '../../protocol/index.js'
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

  // Added before @fastify/websocket's own preClose, which closes every socket bare.
  fastify.addHook('preClose', (done) => {
    for (const session of sessions) session.close(CLOSE_CODES.goingAway, 'server shutting down')
    done()
  })
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(websocket, {
      options: {
        maxPayload: options.maxPayload,
        handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
      },
    })
  }

  const open = (
    route: ResolvedRoute,
    socket: WebSocket,
    request: FastifyRequest,
    makeMode: (session: Session) => SessionMode,
  ) => {
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
        if (sessions.delete(s) && metrics) metrics.sessionClosed()
        addresses.disconnect(ip)
      },
      metrics ? metrics.route('ws', route.path) : undefined,
      refusalLog,
      () => addresses.strike(ip),
    )
    sessions.add(session)
    if (metrics) metrics.sessionOpened()
    session.start(makeMode(session))
  }

  fastify.decorate(
    'tollgateFeed',
    function tollgateFeed(this: FastifyInstance, path: string, routeOptions: FeedRouteOptions) {
      const route = resolveFeedRoute(path, routeOptions, options)
      this.get(path, { websocket: true }, (socket, request) =>
        open(route, socket, request, (session) => new FeedPump(session, route, request)),
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
        open(route, socket, request, (session) => new RequestRunner(session, route, request)),
      )
      return this
    },
  )
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
