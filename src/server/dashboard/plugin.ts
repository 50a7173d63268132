import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { FastifyInstance } from 'fastify'
import { TollgateError } from '../../errors/index.js'
import {
  CHANNEL_SORTS,
  type ChannelSort,
  channels,
  type DashboardSource,
  DEFAULT_PAGE_SIZE,
  DEFAULT_SERIES_MINUTES,
  MAX_PAGE_SIZE,
  overview,
  settlements,
} from './api.js'
import { bearerCheck, MIN_TOKEN_LENGTH } from './auth.js'
import { PAGE_CSS, PAGE_SCRIPT, pageHtml } from './page.js'

/** Options of the dashboard plugin. */
export interface DashboardOptions {
  /**
   * A bearer token every API call must carry (`Authorization: Bearer <token>`); the page reads
   * it from its URL's fragment (`#token=...`). At least {@link MIN_TOKEN_LENGTH} characters.
   * @default none: for a listener on 127.0.0.1 only
   */
  token?: string | undefined
  /** Overrides of what the dashboard reads, e.g. `health` (the gateway's upstreams). */
  source?: Partial<DashboardSource> | undefined
}

/** uPlot's browser build and style, read once from node_modules (served, never from a CDN). */
const assets = (() => {
  const require = createRequire(import.meta.url)
  const read = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8')
  return { script: read('uPlot.iife.min.js'), style: read('uPlot.min.css') }
})()

const JS = 'text/javascript; charset=utf-8'
const CSS = 'text/css; charset=utf-8'

/**
 * The dashboard as Fastify routes, under the prefix it is registered with: `GET /` (the page),
 * `GET /assets/*` (its script, style and uPlot), and the JSON API the page and `tollgate status`
 * read: `GET /api/overview?minutes=60`, `GET /api/channels?sort&order&offset&limit`,
 * `GET /api/settlements`. Amounts are token units as decimal strings.
 *
 * @throws TollgateError `tollgate_invalid_config` for a token shorter than {@link MIN_TOKEN_LENGTH}.
 */
export async function dashboardPlugin(
  app: FastifyInstance,
  options: DashboardOptions & { source: DashboardSource },
): Promise<void> {
  const { source, token } = options
  if (token !== undefined && (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH)) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `the dashboard's bearer token must have at least ${MIN_TOKEN_LENGTH} characters`,
    )
  }
  const base = `${app.prefix}/`
  const html = pageHtml(base)
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(html))
  app.get('/assets/uplot.iife.min.js', async (_r, reply) => reply.type(JS).send(assets.script))
  app.get('/assets/uplot.min.css', async (_r, reply) => reply.type(CSS).send(assets.style))
  app.get('/assets/dashboard.js', async (_r, reply) => reply.type(JS).send(PAGE_SCRIPT))
  app.get('/assets/dashboard.css', async (_r, reply) => reply.type(CSS).send(PAGE_CSS))

  await app.register(async (api) => {
    if (token !== undefined) api.addHook('onRequest', bearerCheck(token))
    api.get<{ Querystring: { minutes: number } }>(
      '/api/overview',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              minutes: {
                type: 'integer',
                minimum: 1,
                maximum: 1440,
                default: DEFAULT_SERIES_MINUTES,
              },
            },
            additionalProperties: false,
          },
        },
      },
      async (request) => overview(source, request.query.minutes),
    )
    api.get<{
      Querystring: { sort: ChannelSort; order: 'asc' | 'desc'; offset: number; limit: number }
    }>(
      '/api/channels',
      {
        schema: {
          querystring: {
            type: 'object',
            properties: {
              sort: { type: 'string', enum: [...CHANNEL_SORTS], default: 'charged' },
              order: { type: 'string', enum: ['asc', 'desc'], default: 'desc' },
              offset: { type: 'integer', minimum: 0, default: 0 },
              limit: {
                type: 'integer',
                minimum: 1,
                maximum: MAX_PAGE_SIZE,
                default: DEFAULT_PAGE_SIZE,
              },
            },
            additionalProperties: false,
          },
        },
      },
      async (request) => channels(source, request.query),
    )
    api.get('/api/settlements', async () => settlements(source))
  })
}
