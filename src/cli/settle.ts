import { join } from 'node:path'
import { type ErrorCode, TollgateError } from '../errors/index.js'
import { chainClients } from '../server/chainClients.js'
import { loadConfig, loadKey, type ServerConfig } from '../server/config.js'
import { configuredPayee } from '../server/configuredPayee.js'
import { configuredSettler } from '../server/settlement.js'
import { reportJson, type SettlementReportJson } from '../settlement/index.js'
import { LevelStore } from '../store/index.js'
import { adminHeaders, adminOrigin } from './admin.js'
import { parseCommandArgs, stringOf } from './args.js'
import { interruptible, untilAborted } from './interruptible.js'

/** Width of the progress bar drawn on a terminal. */
const BAR_WIDTH = 30

/** The usage lines of `tollgate settle`. */
export const SETTLE_USAGE = `  settle [--config FILE] [--dry-run] [--json]
                            claim and settle revenue once (for cron); through the running
                            server's admin listener when it holds the data directory
`

/**
 * `tollgate settle [--config tollgate.json] [--dry-run] [--json]`: claims every voucher worth
 * claiming and settles to the receiver, once (for cron). Exits non-zero when anything failed.
 *
 * The store (LevelDB) admits one process. When the server runs, it holds the store: the command
 * then asks the server's admin listener (`settlement.adminPort`, 127.0.0.1 only) to run the
 * settlement and prints its report; without one it fails with `tollgate_settlement_unreachable`.
 * Otherwise the command opens the data directory itself (the server cannot start meanwhile).
 * `--dry-run` prints the plan and sends nothing; `--json` prints the report as one JSON object.
 * On a terminal, a progress bar on stderr follows the claim batches. SIGINT or SIGTERM stops it
 * with the store closed cleanly (exit code 130 or 143); the settlement journal in the store
 * reconciles whatever was in flight on the next run.
 *
 * @returns The exit code.
 */
export async function settleCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    config: { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  })
  const path = stringOf(args, 'config') ?? 'tollgate.json'
  const dryRun = args.values['dry-run'] === true
  const json = args.values.json === true
  return interruptible(async (signal) => {
    const config = loadConfig(path)
    const key = loadKey()

    let store: LevelStore
    try {
      store = await LevelStore.open(join(config.dataDir, 'vouchers'), { mode: config.storeMode })
    } catch (err) {
      if (!isLocked(err)) throw err
      const report = await untilAborted(throughServer(config, dryRun), signal)
      return finish(report, json)
    }
    try {
      const clients = chainClients(config, key)
      const payee = await untilAborted(configuredPayee(config, clients, store), signal)
      const settler = configuredSettler(config, clients, payee, store)
      const bar = process.stderr.isTTY ? progressBar() : undefined
      const report = await untilAborted(
        settler.run({
          sweep: true,
          dryRun,
          ...(bar ? { onProgress: bar } : {}),
        }),
        signal,
      )
      if (bar) process.stderr.write('\n')
      return finish(reportJson(report), json)
    } finally {
      await store.close()
    }
  })
}

/** Runs the settlement in the running server through its admin listener. */
async function throughServer(config: ServerConfig, dryRun: boolean): Promise<SettlementReportJson> {
  const port = config.settlement.adminPort
  if (port === undefined) {
    fail(
      'tollgate_settlement_unreachable',
      `${config.dataDir} is in use and settlement.adminPort is not configured`,
    )
  }
  const url = `${adminOrigin(config.settlement.adminHost, port)}/settle`
  let response: Response
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...adminHeaders() },
      body: JSON.stringify({ dryRun, sweep: true }),
    })
  } catch (err) {
    fail('tollgate_settlement_unreachable', `${url}: ${(err as Error).message}`)
  }
  try {
    return (await response.json()) as SettlementReportJson
  } catch {
    fail('tollgate_settlement_unreachable', `${url} answered ${response.status}`)
  }
}

/** Prints the report; resolves with the exit code, after throwing the first failure if any. */
function finish(report: SettlementReportJson, json: boolean): number {
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : describeReport(report))
  const [failure] = report.failures
  if (failure) {
    fail(failure.code, `${report.failures.length} failure(s), the first: ${failure.message}`)
  }
  return 0
}

/** The report for a human: the plan on a dry run, else what was claimed and settled. */
function describeReport(report: SettlementReportJson): string {
  const lines: string[] = []
  const plan = report.plan
  if (report.recovered > 0)
    lines.push(`reconciled ${report.recovered} journal entries of an interrupted run`)
  if (plan) {
    const channels = plan.batches.reduce((n, b) => n + b.claims.length, 0)
    lines.push(
      `plan: ${channels} channels in ${plan.batches.length} transactions, ${plan.claimTotal} token units` +
        (plan.settle ? `; then settle to ${plan.settle.receiver}` : ''),
    )
    if (report.dryRun) {
      for (const [i, batch] of plan.batches.entries()) {
        lines.push(`  transaction ${i + 1} (${batch.method}):`)
        for (const c of batch.claims) {
          const deadline =
            c.deadline === null ? '' : ` before ${new Date(c.deadline * 1000).toISOString()}`
          lines.push(`    ${c.channelId} ${c.amount} (${c.reason}${deadline})`)
        }
      }
      if (plan.skipped.length > 0) lines.push(`  skipped: ${plan.skipped.length} channels`)
    }
  }
  if (!report.dryRun) {
    lines.push(
      `claimed ${report.claimedChannels} channels, ${report.claimedAmount} token units, in ${report.claims.length} transactions`,
    )
    for (const c of report.claims)
      lines.push(`  ${c.hash} ${c.method} ${c.channels} channels, ${c.gasUsed} gas`)
    if (report.settled)
      lines.push(`settled ${report.settled.amount} token units in ${report.settled.hash}`)
  }
  for (const f of report.failures) lines.push(`failed: ${f.code}: ${f.message}`)
  return `${lines.join('\n')}\n`
}

/** Fails the command; the CLI prints the stable code first, for operators and scripts. */
function fail(code: ErrorCode, details: string): never {
  throw new TollgateError(code, details)
}

/** Draws `[#####.....] done/total channels` on stderr, in place. */
function progressBar(): (done: number, total: number) => void {
  return (done, total) => {
    const filled = total === 0 ? BAR_WIDTH : Math.round((done / total) * BAR_WIDTH)
    const bar = `${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}`
    process.stderr.write(`\r[${bar}] ${done}/${total} channels`)
  }
}

/** Whether opening the store failed because another process holds its LevelDB lock. */
function isLocked(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: string }).code === 'LEVEL_LOCKED') return true
  }
  return false
}
