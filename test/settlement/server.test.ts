/**
 * Settlement inside the standalone server (createServer) on a real anvil: the periodic check
 * claims channels past the threshold and settles to the receiver; a withdrawal started on chain
 * while the server is under load is claimed before its deadline; `/metrics` shows the totals;
 * and `tollgate settle` (a child process) goes through the admin listener while the server holds
 * the store, opens the store itself once the server is stopped, and fails with a stable code
 * when it can do neither.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Address, Hex, PrivateKeyAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/chain/anvil.js'
import type { ChannelRecord, ServerIdentity } from '../../src/ledger/index.js'
import type { ChannelConfig } from '../../src/protocol/types.js'
import { parseConfig } from '../../src/server/config.js'
import { createServer, type TollgateServer } from '../../src/server/createServer.js'
import { LevelStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import { chargedRecords, depositChannels, WITHDRAW_DELAY } from './rig.js'

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts')
const dev = useDevChain()
const h = dev.harness
const payer = (dev.accounts as PrivateKeyAccount[])[2] as PrivateKeyAccount
const key = dev.privateKeys[3] as Hex
const server0 = privateKeyToAccount(key)
const sessionKey = randomAccount()
const DEPOSIT = 1_000_000n
const THRESHOLD = 500_000n
const SMALL = 2_000n
const MARGIN = 300

let revert: () => Promise<void>
let dir: string
let configFile: string
let rawConfig: Record<string, unknown>
let server: TollgateServer | undefined
let base: string
let identity: ServerIdentity
let big: { id: Hex; config: ChannelConfig }[]
let small: { id: Hex; config: ChannelConfig }[]
let adminPort: number

beforeAll(async () => {
  revert = await dev.snapshot()
  dir = mkdtempSync(join(tmpdir(), 'tollgate-settle-server-'))
  identity = {
    receiver: randomAccount().address.toLowerCase() as Address,
    receiverAuthorizer: server0.address.toLowerCase() as Address,
    token: dev.contracts.usdc.toLowerCase() as Address,
    withdrawDelay: WITHDRAW_DELAY,
  }
  big = await depositChannels(h, payer, sessionKey, identity, 3, DEPOSIT)
  small = await depositChannels(h, payer, sessionKey, identity, 4, DEPOSIT)
  await storeRecords([
    ...(await chargedRecords(h, sessionKey, big, DEPOSIT, () => 600_000n)),
    ...(await chargedRecords(h, sessionKey, small, DEPOSIT, () => SMALL)),
  ])
  adminPort = await freePort()
  rawConfig = {
    network: 'local',
    rpcUrl: dev.rpcUrl,
    receiver: identity.receiver,
    dataDir: dir,
    confirmations: 0,
    withdrawDelay: WITHDRAW_DELAY,
    listen: { port: 0 },
    routes: [{ path: '/api/*', price: '1000', upstream: 'http://127.0.0.1:9' }],
    settlement: {
      checkIntervalSeconds: 1,
      threshold: THRESHOLD.toString(),
      safetyMarginSeconds: MARGIN,
      adminPort,
    },
  }
  configFile = join(dir, 'tollgate.json')
  writeFileSync(configFile, JSON.stringify(rawConfig))
  server = await createServer(parseConfig(rawConfig, dir), key)
  base = await server.app.listen({ host: '127.0.0.1', port: 0 })
})

afterAll(async () => {
  await server?.close()
  await revert()
  rmSync(dir, { recursive: true, force: true })
})

async function storeRecords(records: readonly ChannelRecord[]): Promise<void> {
  const store = await LevelStore.open(join(dir, 'vouchers'))
  for (const record of records) await store.put(record)
  await store.close()
}

const claimedOf = async (id: Hex) => (await h.channel(id)).totalClaimed

/** Polls until `check` holds (the test's timeout bounds the wait). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 100))
}

/** Runs `tollgate settle` with the server's key; resolves to its exit code and output. */
function settleCli(
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'settle', '--config', configFile, ...args],
    { env: { ...process.env, TOLLGATE_PRIVATE_KEY: key }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

describe('settlement in the server', () => {
  it('claims channels past the threshold on its periodic check, and settles to the receiver', async () => {
    await until(async () => (await h.usdcBalance(identity.receiver)) === 3n * 600_000n)
    for (const { id } of big) expect(await claimedOf(id)).toBe(600_000n)
    for (const { id } of small) expect(await claimedOf(id)).toBe(0n)
  })

  it('claims a channel whose payer starts a withdrawal, before its deadline, while under load', async () => {
    const leaving = small[0] as { id: Hex; config: ChannelConfig }
    let stop = false
    let served = 0
    const load = Array.from({ length: 16 }, async () => {
      while (!stop) {
        const res = await fetch(`${base}/api/item`)
        await res.arrayBuffer()
        if (res.status === 402) served++
      }
    })
    const receipt = await h.write(payer, 'initiateWithdraw', [leaving.config, DEPOSIT])
    const block = await h.publicClient.getBlock({ blockNumber: receipt.blockNumber })
    const deadline = Number(block.timestamp) + WITHDRAW_DELAY
    await until(async () => (await claimedOf(leaving.id)) === SMALL)
    const claimedAt = Number((await h.publicClient.getBlock()).timestamp)
    stop = true
    await Promise.all(load)
    expect(claimedAt).toBeLessThan(deadline - MARGIN)
    expect(served).toBeGreaterThan(0)
    for (const { id } of small.slice(1)) expect(await claimedOf(id)).toBe(0n)
  })

  it('serves the settlement metrics', async () => {
    let text = ''
    const value = (name: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `))
      return line?.split(' ')[1]
    }
    // The withdrawn channel's claim is on chain; its run ends with the settle sweep.
    await until(async () => {
      text = await (await fetch(`${base}/metrics`)).text()
      return (
        value('tollgate_claimed_channels_total') === '4' &&
        value('tollgate_unsettled_amount') === '0'
      )
    })
    expect(value('tollgate_claimed_channels_total')).toBe('4')
    expect(value('tollgate_unclaimed_amount')).toBe(String(3n * SMALL))
    expect(value('tollgate_next_claim_deadline_seconds')).toBe('+Inf')
    expect(Number(value('tollgate_claim_gas_per_channel'))).toBeGreaterThan(0)
    expect(value('tollgate_unsettled_amount')).toBe('0')
  })

  it('runs `tollgate settle` through the admin listener while the server holds the store', async () => {
    const dry = await settleCli('--dry-run', '--json')
    expect(dry.code).toBe(0)
    const plan = JSON.parse(dry.stdout)
    expect(plan.dryRun).toBe(true)
    expect(
      plan.plan.batches
        .flatMap((b: { claims: { channelId: Hex }[] }) => b.claims)
        .map((c: { channelId: Hex }) => c.channelId)
        .sort(),
    ).toEqual(
      small
        .slice(1)
        .map((c) => c.id)
        .sort(),
    )
    expect(await claimedOf((small[1] as { id: Hex }).id)).toBe(0n)

    const run = await settleCli('--json')
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, claimedChannels: 3 })
    for (const { id } of small) expect(await claimedOf(id)).toBe(SMALL)
    expect(await h.usdcBalance(identity.receiver)).toBe(3n * 600_000n + 4n * SMALL)
  })

  it('opens the store itself once the server is stopped, and fails with a code when it can do neither', async () => {
    await server?.close()
    server = undefined
    const more = await depositChannels(h, payer, sessionKey, identity, 2, DEPOSIT)
    await storeRecords(await chargedRecords(h, sessionKey, more, DEPOSIT, () => 7_000n))
    const run = await settleCli()
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/claimed 2 channels, 14000 token units, in 1 transactions/)
    for (const { id } of more) expect(await claimedOf(id)).toBe(7_000n)

    const holder = await LevelStore.open(join(dir, 'vouchers'))
    try {
      const refused = await settleCli('--json')
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/tollgate_settlement_unreachable/)
    } finally {
      await holder.close()
    }
  })
})
