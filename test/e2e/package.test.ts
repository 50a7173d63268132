/**
 * The README's local example as a user runs it: the block marked
 * `<!-- readme-example: local -->` is written into an empty project with the packed package
 * installed (test/helpers/packedInstall.ts), compiled under a strict tsconfig, and run with node
 * against the run's anvil, with the environment it documents (`TOLLGATE_PRIVATE_KEY`,
 * `TOLLGATE_RPC_URL`, `PORT`). tollgate's payer pays one call of its paid `GET /joke` (the
 * example must serve it) and gets a receipt; the example's settlement claims the charge on chain;
 * Ctrl-C (SIGINT) stops the server with exit code 0 and leaves its store closed cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../src/chain/anvil.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { createPayer } from '../../src/client/index.js'
import { decodeSettleResponse } from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { checkFolder, compileStrict, packedInstall } from '../helpers/packedInstall.js'
import { readmeExample } from '../helpers/readmeBlocks.js'

/** The paid route the local example serves. */
const PAID_PATH = '/joke'
/** How long the example may take to start listening, and to exit after SIGINT. */
const START_MS = 20_000
const STOP_MS = 5_000
/** How long the example's settlement may take to claim a charge (it checks every 2 s). */
const CLAIM_MS = 15_000

const dev = useDevChain()
const [serverKey, payerKey] = [dev.privateKeys[5], dev.privateKeys[9]] as [
  `0x${string}`,
  `0x${string}`,
]

let project: string
let folder: { dir: string; remove(): void } | undefined
let child: ChildProcess | undefined
let revert: (() => Promise<void>) | undefined

beforeAll(async () => {
  revert = await dev.snapshot()
  project = await packedInstall()
  folder = checkFolder(project, 'local-example')
}, 180_000)

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  folder?.remove()
  await revert?.()
})

/** Resolves when `proc` exits, with its code and signal, or rejects after `ms`. */
function exited(
  proc: ChildProcess,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode })
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms)
    proc.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

describe('the packed package', () => {
  it('ships its Apache-2.0 LICENSE, as package.json says', () => {
    const installed = join(project, 'node_modules/tollgate')
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'))
    expect(manifest.license).toBe('Apache-2.0')
    expect(existsSync(join(installed, 'LICENSE'))).toBe(true)
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toContain('Apache License')
  })
})

describe('the README local example, from the packed package', () => {
  it('compiles strictly, serves a paid call with a receipt, and stops on SIGINT with exit 0', async () => {
    if (!folder) throw new Error('no project')
    const example = readmeExample('local')
    writeFileSync(join(folder.dir, 'server.ts'), `${example.code}\n${example.declarations}\n`)
    expect(
      await compileStrict(folder.dir, ['server.ts'], { noEmit: false, outDir: 'out' }),
    ).toEqual([])

    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    let output = ''
    const server = spawn(process.execPath, [join('out', 'server.js')], {
      cwd: folder.dir,
      env: {
        PATH: process.env.PATH,
        TOLLGATE_PRIVATE_KEY: serverKey,
        TOLLGATE_RPC_URL: dev.rpcUrl,
        PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = server
    server.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    server.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })

    const deadline = Date.now() + START_MS
    let unpaid: Response | undefined
    while (unpaid === undefined) {
      if (server.exitCode !== null) throw new Error(`the example exited early:\n${output}`)
      if (Date.now() > deadline) throw new Error(`the example did not listen:\n${output}`)
      unpaid = await fetch(`${base}${PAID_PATH}`).catch(
        () => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100)),
      )
    }
    expect(unpaid.status, output).toBe(402)

    const payer = await createPayer({
      account: privateKeyToAccount(payerKey),
      payerAuthorizer: privateKeyToAccount(generatePrivateKey()),
      rpcUrl: dev.rpcUrl,
      chainId: dev.chainId,
      dataDir: join(folder.dir, 'payer'),
      policy: { deposit: { amount: 10_000n } },
    })
    try {
      const response = await payer.fetch(`${base}${PAID_PATH}`)
      expect(response.status, output).toBe(200)
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(`no valid PAYMENT-RESPONSE: ${receipt.message}\n${output}`)
      expect(receipt.value.response.success).toBe(true)
      expect(receipt.value.chargedAmount).toBe(1000n) // $0.001 in 6-decimal USDC
      const [channel] = await payer.channels()
      if (!channel) throw new Error('the payer holds no channel')
      // The example claims every 2 s: the charge lands on chain with no step of ours.
      const read = channelReader(dev.harness.publicClient, dev.contracts.escrow)
      const claimBy = Date.now() + CLAIM_MS
      while ((await read(channel.channelId)).totalClaimed < 1000n) {
        if (Date.now() > claimBy) throw new Error(`not claimed within ${CLAIM_MS} ms:\n${output}`)
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    } finally {
      await payer.close()
    }

    server.kill('SIGINT')
    const { code, signal } = await exited(server, STOP_MS).catch((err: Error) => {
      throw new Error(`${err.message} after SIGINT:\n${output}`)
    })
    expect({ code, signal }, output).toEqual({ code: 0, signal: null })
    const store = await LevelStore.open(join(folder.dir, 'data', 'vouchers'))
    expect(store.recoveredFromCrash).toBe(false)
    await store.close()
  })
})
