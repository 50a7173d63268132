/**
 * Spend reservations across a crash: a payer process paying in a loop is killed with SIGKILL
 * mid-run, a payer restarts on its data folder, and pays until its limit refuses. The server
 * never holds a voucher above what the journal counts, the limit is never exceeded, and what the
 * crash forfeits (counted, never signed) is within one reservation. Real processes, a real
 * journal on disk, a real server and anvil.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { LocalAccount } from 'viem'
import { generatePrivateKey } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keySigner } from '../../src/client/index.js'
import { TollgateError } from '../../src/errors/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { fundedAccount, PRICE, payerOn, startServer, type TestServer, tempDir } from './fixtures.js'

const dev = useDevChain()
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]
/** Prices per reservation, the limit (not a whole number of reservations) and the kill point. */
const CALLS = 10
const LIMIT = 55n * PRICE
const KILL_AFTER = 23

let server: TestServer
let revert: () => Promise<void>
const temp = tempDir()

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await startServer(dev, receiver, authorizer)
})

afterAll(async () => {
  await server?.stop()
  temp.remove()
  await revert?.()
})

/**
 * Runs payLoop.ts until it has printed `paid <after>`, then kills it with SIGKILL: node itself,
 * not a wrapper such as npx, whose SIGKILL would leave the payer running.
 */
async function payThenKill(settings: object, after: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/client/payLoop.ts'], {
    env: { ...process.env, PAY_LOOP: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  )
  for await (const line of createInterface({ input: child.stdout })) {
    if (line === `paid ${after}`) {
      child.kill('SIGKILL')
      break
    }
  }
  const signal = await exited
  if (signal !== 'SIGKILL') throw new Error(`the paying process ended by itself: ${stderr}`)
}

describe('spend reservations across a crash of the payer', () => {
  it('a SIGKILL mid-run never takes the payer past its limit, and forfeits at most one reservation', async () => {
    const key = generatePrivateKey()
    await fundedAccount(dev, 1_000_000n, false, keySigner(key))
    const url = `${server.base}/joke`
    await payThenKill(
      {
        rpcUrl: dev.rpcUrl,
        chainId: dev.chainId,
        url,
        dataDir: temp.dir,
        key,
        perDay: LIMIT.toString(),
        calls: CALLS,
      },
      KILL_AFTER,
    )

    const payer = await payerOn(dev, {
      account: keySigner(key),
      dataDir: temp.dir,
      policy: { limits: { perDay: LIMIT }, reservation: { calls: CALLS } },
    })
    const [channel] = await payer.channels()
    if (!channel) throw new Error('the killed payer left no channel')
    const held = () => server.payee.ledger.get(channel.channelId)?.signedMaxClaimable ?? 0n
    // What the journal counts after the crash covers every voucher the server holds, and its
    // excess over them (the forfeit) is at most one reservation.
    const { day, reserved } = payer.spending()
    expect(reserved).toBe(0n)
    const counted = day
    expect(held()).toBeGreaterThanOrEqual(BigInt(KILL_AFTER) * PRICE)
    expect(held()).toBeLessThanOrEqual(counted)
    expect(counted - held()).toBeLessThanOrEqual(BigInt(CALLS) * PRICE)
    expect(counted).toBeLessThanOrEqual(LIMIT)

    let refused: unknown
    for (let i = 0; i < 100 && refused === undefined; i++) {
      try {
        expect((await payer.fetch(url)).status).toBe(200)
      } catch (err) {
        refused = err
      }
    }
    expect(refused).toBeInstanceOf(TollgateError)
    expect((refused as TollgateError).code).toBe('tollgate_spend_limit')
    // The limit holds across the crash, and the refused call signed nothing.
    const finalHeld = held()
    expect(finalHeld).toBeLessThanOrEqual(LIMIT)
    expect(LIMIT - finalHeld).toBeLessThanOrEqual(BigInt(CALLS) * PRICE)
    expect(payer.spending().day).toBeLessThanOrEqual(LIMIT)
    const requests = server.requests
    await expect(payer.fetch(url)).rejects.toMatchObject({ code: 'tollgate_spend_limit' })
    expect(server.requests).toBe(requests)
    expect(held()).toBe(finalHeld)
    await payer.close()
  })
})
