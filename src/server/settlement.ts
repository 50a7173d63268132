import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import type { Account, Chain, PublicClient, Transport, WalletClient } from 'viem'
import type { ChainPreset } from '../chain/presets.js'
import type { SendLock } from '../chain/sendLock.js'
import type { Payee } from '../payee/index.js'
import {
  claimExecutor,
  createSettlementSchedule,
  reportJson,
  type SettlementLog,
  type SettlementReport,
  type SettlementSchedule,
  Settler,
} from '../settlement/index.js'
import type { ChannelStore } from '../store/index.js'
import type { ServerConfig } from './config.js'
import type { ResolvedSettlement } from './createTollgate.js'
import { bearerCheck } from './dashboard/auth.js'

/**
 * The settler of a configured server: claims sent by `walletClient`'s account (the receiver
 * authorizer), journal and lease in the payee's store. Used by the server's schedule and by
 * `tollgate settle` when it opens the data directory itself.
 */
export function configuredSettler(
  config: ServerConfig,
  clients: SettlerClients,
  payee: Payee,
  store: ChannelStore,
  log?: SettlementLog,
): Settler {
  return settlerFor(config.chain, config.settlement, clients, payee, store, log)
}

/** The clients a settler sends with. */
interface SettlerClients {
  publicClient: PublicClient
  walletClient: WalletClient<Transport, Chain, Account>
  sendLock?: SendLock
}

/** The settler of `payee` on `chain` with the given settlement options (see {@link configuredSettler}). */
export function settlerFor(
  chain: ChainPreset,
  s: ResolvedSettlement,
  clients: SettlerClients,
  payee: Payee,
  store: ChannelStore,
  log?: SettlementLog,
  onReport?: (report: SettlementReport) => void,
): Settler {
  const executor = claimExecutor({
    ...clients,
    escrow: chain.escrow,
    identity: payee.identity,
    confirmations: s.confirmations,
    ...(s.packedClaims === undefined ? {} : { packed: s.packedClaims }),
  })
  return new Settler({
    payee,
    store,
    executor,
    receiver: payee.identity.receiver,
    token: payee.identity.token,
    threshold: s.threshold,
    maxPerTx: s.maxPerTx,
    safetyMarginSeconds: s.safetyMarginSeconds,
    ...(s.tokenPerNative === undefined ? {} : { tokenPerNative: s.tokenPerNative }),
    ...(log ? { log } : {}),
    ...(onReport ? { onReport } : {}),
  })
}

/** A settlement schedule, logging each run that did or failed something. */
export function scheduleFor(
  s: Pick<ResolvedSettlement, 'sweepIntervalSeconds' | 'checkIntervalSeconds'>,
  settler: Settler,
  log: SettlementLog | undefined,
): SettlementSchedule {
  return createSettlementSchedule({
    settler,
    sweepIntervalMs: s.sweepIntervalSeconds * 1000,
    checkIntervalMs: s.checkIntervalSeconds * 1000,
    onReport: (report, trigger) => {
      if (!log) return
      if (report.claims.length === 0 && !report.settled && report.ok) return
      const summary = {
        trigger,
        claimedChannels: report.claimedChannels,
        claimedAmount: report.claimedAmount.toString(),
        settled: report.settled?.amount.toString() ?? '0',
        failures: report.failures.map((f) => f.code),
        ...(report.plan?.runBy === undefined
          ? {}
          : { withdrawalClaimBy: new Date(report.plan.runBy * 1000).toISOString() }),
      }
      if (report.ok) log.info(summary, 'tollgate: settlement run')
      else log.error(summary, 'tollgate: settlement run failed; retried at the next check')
    },
    onError: (err) => log?.error({ err }, 'tollgate: settlement run threw'),
  })
}

/**
 * The admin listener: a separate Fastify app (on 127.0.0.1 unless configured otherwise), with
 * `POST /settle` (`{ dryRun?, sweep? }`, default a sweep) answering the run's report as JSON,
 * and the dashboard at `/` with its JSON API under `/api/`. It is how `tollgate settle` and
 * `tollgate status` reach a running server, whose store (LevelDB) they cannot open themselves.
 * A run already in progress is waited for, then another runs. With `token`, `POST /settle` and
 * the API require `Authorization: Bearer <token>`.
 */
export async function adminApp(
  schedule: SettlementSchedule,
  options: {
    dashboard?: FastifyPluginAsync<{ token?: string | undefined }>
    token?: string | undefined
  } = {},
): Promise<FastifyInstance> {
  const admin = Fastify({ logger: false })
  if (options.dashboard) await admin.register(options.dashboard, { token: options.token })
  admin.post<{ Body: { dryRun?: boolean; sweep?: boolean } | undefined }>(
    '/settle',
    {
      ...(options.token === undefined ? {} : { onRequest: bearerCheck(options.token) }),
      schema: {
        body: {
          type: ['object', 'null'],
          properties: { dryRun: { type: 'boolean' }, sweep: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const body = request.body ?? {}
      const report = await schedule.trigger('manual', {
        sweep: body.sweep ?? true,
        dryRun: body.dryRun ?? false,
      })
      return reply.code(report.ok ? 200 : 502).send(reportJson(report))
    },
  )
  await admin.ready()
  return admin
}
