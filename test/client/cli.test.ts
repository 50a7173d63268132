/**
 * The payer commands of the `tollgate` CLI, run as child processes (`npx tsx src/cli/main.ts`)
 * against a tollgate server and the run's anvil: fund, pay, channels, refund, withdraw. The key
 * comes from the environment or a key file, never from the command line.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Hex, LocalAccount } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/chain/anvil.js'
import { PRESETS } from '../../src/chain/presets.js'
import { useDevChain } from '../helpers/devChain.js'
import { PRICE, startServer, type TestServer, tempDir, WITHDRAW_DELAY } from './fixtures.js'

const run = promisify(execFile)
const dev = useDevChain()
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]
const key: Hex = generatePrivateKey()
const payer = privateKeyToAccount(key)
const temp = tempDir()

let server: TestServer
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  server = await startServer(dev, receiver, authorizer)
})

afterAll(async () => {
  await server?.stop()
  temp.remove()
  await revert?.()
})

async function tollgate(args: string[], env: Record<string, string> = { TOLLGATE_PAYER_KEY: key }) {
  const { stdout } = await run(
    'npx',
    ['tsx', 'src/cli/main.ts', ...args, '--rpc', dev.rpcUrl, '--data-dir', temp.dir],
    { env: { ...process.env, ...env }, timeout: 60_000 },
  )
  return stdout
}

const jsonOf = async (args: string[]) => JSON.parse(await tollgate([...args, '--json']))

/** Runs a command that must fail; resolves to its exit code and output. */
async function failing(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    await tollgate(args)
  } catch (err) {
    return err as { code: number; stdout: string; stderr: string }
  }
  throw new Error(`tollgate ${args.join(' ')} succeeded`)
}

describe('the tollgate payer CLI', () => {
  it('funds, pays, lists, refunds and withdraws, with the key from the environment or a file', async () => {
    expect(dev.chainId).toBe(PRESETS.local.chainId)
    expect(dev.contracts.usdc.toLowerCase()).toBe(PRESETS.local.usdc.address.toLowerCase())
    const funded = await jsonOf(['fund', '--amount', '5000000'])
    expect(funded).toMatchObject({ address: payer.address, amount: '5000000', balance: '5000000' })

    const url = `${server.base}/joke`
    const paid = await jsonOf(['pay', url, '--max-per-request', '$0.01'])
    expect(paid).toMatchObject({ status: 200, body: '{"joke":"paid"}' })
    expect(paid.receipt).toMatchObject({
      success: true,
      extra: { chargedAmount: PRICE.toString() },
    })
    const keyFile = join(temp.dir, 'payer.key')
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 })
    const human = await tollgate(['pay', url], { TOLLGATE_PAYER_KEY_FILE: keyFile })
    expect(human).toMatch(/^\{"joke":"paid"\}\npaid 0\.001 USDC on channel 0x[0-9a-f]{64}\n$/)

    const [channel] = await jsonOf(['channels'])
    expect(channel).toMatchObject({ charged: '2000', origins: [server.base] })
    expect(channel.onChain).toMatchObject({ totalClaimed: '0' })
    expect(await tollgate(['channels'])).toContain('charged 0.002 USDC, claimed 0 USDC')

    // Not yet withdrawing: the escrow's revert, decoded, in one line.
    const early = await failing(['withdraw', channel.channelId, '--finalize'])
    expect(early.code).toBe(1)
    expect(early.stderr).toBe(
      `tollgate: invalid_batch_settlement_evm_transaction_reverted: NoPendingWithdrawal(${channel.channelId})\n`,
    )

    // As the README shows it: the origin, not a paid route.
    const refunded = await jsonOf(['refund', server.base])
    expect(refunded).toEqual([
      {
        channelId: channel.channelId,
        ok: true,
        amount: (BigInt(channel.onChain.balance) - 2n * PRICE).toString(),
        transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      },
    ])

    // Pay again (a fresh deposit), then take the unclaimed rest back by withdrawal.
    expect((await jsonOf(['pay', url])).status).toBe(200)
    const started = await jsonOf(['withdraw', channel.channelId])
    expect(started.finalizeAfter).toBeGreaterThan(0)
    await dev.advance(WITHDRAW_DELAY + 1)
    const finished = await jsonOf(['withdraw', channel.channelId, '--finalize'])
    expect(BigInt(finished.amount)).toBeGreaterThan(0n)
    // The server never claimed the third call before the withdrawal ended: only two were paid for.
    expect(await dev.harness.usdcBalance(payer.address)).toBe(5_000_000n - 2n * PRICE)
  })

  it('exits with 1 on a refused or failed call, the status and code on stderr', async () => {
    const missing = await failing(['pay', `${server.base}/nowhere`])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(`tollgate: ${server.base}/nowhere answered HTTP 404\n`)
    expect(missing.stdout).toContain('not paid (HTTP 404)')

    // A payer on another chain cannot pay the 402: it is printed, and the command fails.
    const unpaid = await failing(['pay', `${server.base}/joke`, '--network', 'base-sepolia'])
    expect(unpaid.code).toBe(1)
    expect(unpaid.stderr).toMatch(
      new RegExp(`^tollgate: (\\w+: )?${server.base}/joke answered HTTP 402\n$`),
    )

    const nobody = `http://127.0.0.1:${await freePort()}/joke`
    const gone = await failing(['pay', nobody])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toBe(`tollgate: ${nobody} could not be reached: ECONNREFUSED\n`)
  })

  it('refuses to run without a key, and pays nothing over a limit', async () => {
    await expect(tollgate(['channels'], { TOLLGATE_PAYER_KEY: '' })).rejects.toThrow(
      /TOLLGATE_PAYER_KEY/,
    )
    const before = server.requests
    await expect(
      tollgate(['pay', `${server.base}/joke`, '--max-per-request', '999']),
    ).rejects.toThrow(/tollgate_spend_limit|spend limit/)
    expect(server.requests - before).toBeLessThanOrEqual(1)
  })
})
