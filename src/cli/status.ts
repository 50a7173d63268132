import { formatUnits } from 'viem'
import { TollgateError } from '../errors/index.js'
import { loadConfig } from '../server/config.js'
import type { ChannelPage, Overview } from '../server/dashboard/index.js'
import { adminHeaders, adminOrigin } from './admin.js'
import { type ParsedArgs, parseCommandArgs, stringOf, usage } from './args.js'

/** The usage lines of `tollgate status`. */
export const STATUS_USAGE = `  status [--config FILE] [--json]
                            the running server's health, revenue today and in total, unclaimed,
                            next withdrawal deadline (through its admin listener)
`

/** The usage lines of `tollgate channels --server`. */
export const SERVER_CHANNELS_USAGE = `  channels --server [--config FILE] [--sort COL] [--limit N] [--json]
                            the running server's channels (payer, balance, charged, claimed,
                            unclaimed, withdrawal deadline), most charged first
`

/** Reads `path` of the running server's dashboard API (TOLLGATE_ADMIN_TOKEN when set). */
async function adminGet<T>(args: ParsedArgs, path: string): Promise<T> {
  const config = loadConfig(stringOf(args, 'config') ?? 'tollgate.json')
  const port = config.settlement.adminPort
  if (port === undefined || port === 0) {
    throw new TollgateError(
      'tollgate_settlement_unreachable',
      'settlement.adminPort is not configured (a fixed port), so the server cannot be asked',
    )
  }
  const url = `${adminOrigin(config.settlement.adminHost, port)}/api/${path}`
  let response: Response
  try {
    response = await fetch(url, { headers: adminHeaders() })
  } catch (err) {
    throw new TollgateError('tollgate_settlement_unreachable', `${url}: ${(err as Error).message}`)
  }
  if (response.status === 401) throw new TollgateError('tollgate_unauthorized', url)
  if (!response.ok) {
    throw new TollgateError('tollgate_settlement_unreachable', `${url} answered ${response.status}`)
  }
  return (await response.json()) as T
}

/** An amount in dollars, or in the token when it is not a dollar stablecoin (an oracle converts it). */
const money = (units: string, token: Overview['token']) => {
  const figure = Number(formatUnits(BigInt(units), token.decimals)).toFixed(4)
  return token.dollar ? `$${figure}` : `${figure} ${token.symbol}`
}
const when = (seconds: number | null) =>
  seconds === null ? 'none' : new Date(seconds * 1000).toISOString()

/**
 * `tollgate status [--config tollgate.json] [--json]`: asks the running server's admin listener
 * for its overview: health, revenue today (UTC, as this server process counted it) and in
 * total, unclaimed, and the next withdrawal deadline with money unclaimed. Amounts in dollars (in
 * the token when an oracle converts it);
 * `--json` prints the API's answer (token units). Exits with 1 when the server is unhealthy.
 *
 * @returns The exit code.
 */
export async function statusCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, { config: { type: 'string' }, json: { type: 'boolean' } })
  const o = await adminGet<Overview>(args, 'overview')
  if (args.values.json === true) {
    process.stdout.write(`${JSON.stringify(o)}\n`)
  } else {
    const d = (units: string) => money(units, o.token)
    const lag = o.health.watcher.lagBlocks
    process.stdout.write(
      `${[
        `health          ${o.health.ok ? 'ok' : 'NOT OK'} (watcher lag ${lag ?? '?'} blocks, signatures ${o.health.signatureBackend}, store ${o.health.storeMode})`,
        `network         ${o.chain} (${o.network})`,
        `revenue today   ${d(o.revenue.today)}`,
        `revenue total   ${d(o.revenue.total)}`,
        `unclaimed       ${d(o.revenue.unclaimed)}`,
        `unsettled       ${o.revenue.unsettled === null ? 'unknown' : d(o.revenue.unsettled)}`,
        `channels        ${o.channels.count} (${o.channels.withdrawing} withdrawing)`,
        `next deadline   ${when(o.nextDeadline)}`,
      ].join('\n')}\n`,
    )
  }
  return o.health.ok ? 0 : 1
}

/**
 * `tollgate channels --server [--config tollgate.json] [--sort COL] [--limit N] [--json]`: the
 * running server's channels through its admin listener, amounts in dollars.
 *
 * @returns The exit code.
 */
export async function serverChannelsCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, {
    server: { type: 'boolean' },
    config: { type: 'string' },
    sort: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  })
  const sort = stringOf(args, 'sort') ?? 'charged'
  const limit = stringOf(args, 'limit') ?? '50'
  if (!/^\d+$/.test(limit)) usage(`--limit needs a whole number, got "${limit}"`)
  const order = sort === 'payer' ? 'asc' : 'desc'
  const page = await adminGet<ChannelPage>(
    args,
    `channels?sort=${encodeURIComponent(sort)}&order=${order}&limit=${limit}`,
  )
  if (args.values.json === true) {
    process.stdout.write(`${JSON.stringify(page)}\n`)
    return 0
  }
  const o = await adminGet<Overview>(args, 'overview')
  const d = (units: string) => money(units, o.token).padStart(12)
  const lines = page.channels.map(
    (c) =>
      `${c.payer}  ${d(c.balance)} ${d(c.charged)} ${d(c.claimed)} ${d(c.unclaimed)}  ${c.withdrawalDeadline === null ? '' : when(c.withdrawalDeadline)}`,
  )
  process.stdout.write(
    `${'payer'.padEnd(42)}  ${'balance'.padStart(12)} ${'charged'.padStart(12)} ${'claimed'.padStart(12)} ${'unclaimed'.padStart(12)}  withdrawal deadline\n${lines.join('\n')}\n${page.channels.length} of ${page.total} channels\n`,
  )
  return 0
}
