/**
 * The x402 `exact` scheme, tollgate against the stock server in one run on one local anvil:
 * `exact_verify_per_s`, the pure check of an EIP-3009 authorization (digest + ECDSA against the
 * payer's cached key), and `exact_paid_rps`, paid calls per second served by a Fastify app with the
 * tollgate plugin (an exact route, transfers sent by its key, nonces in a durable LevelStore),
 * against `stock_exact_paid_rps`, the stock `@x402/express` exact server with its in-process
 * facilitator (test/helpers/stockExactServer.ts). The same load runs against both: CONNECTIONS
 * concurrent connections, each sending an authorization signed before the clock starts (as the
 * stock client's second request, the paid one) as soon as its previous call is answered.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { LocalAccount, PrivateKeyAccount } from 'viem'
import { startDevChain } from '../src/chain/devChain.js'
import { decodeExactPayment, type PaymentRequirements } from '../src/protocol/index.js'
import { LevelStore } from '../src/store/index.js'
import { createAuthorizationVerifier, loadBackend } from '../src/verify/index.js'
import { exactRequirementsOf, signExact, startExactApp } from '../test/e2e/exactFixtures.js'
import { EscrowHarness } from '../test/helpers/escrow.js'
import { startStockExactServer } from '../test/helpers/stockExactServer.js'
import { STOCK_PATHS } from '../test/helpers/stockServer.js'
import type { Log } from './run.js'

const CONNECTIONS = 8
const PRICE = 1000n
/** Measured phase of each server. */
const PHASE_MS = 4_000
/** Paid calls per connection at most, signed before the clock. */
const PER_CONNECTION = 200
/** Authorizations checked for `exact_verify_per_s`. */
const VERIFY_COUNT = 20_000

export async function run(log: Log) {
  const chain = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-exact-'))
  const [, receiver, , , authorizer, facilitator, ...payers] = chain.accounts as PrivateKeyAccount[]
  const harness = EscrowHarness.on(chain)
  const dev = {
    chain: chain.chain,
    chainId: chain.chain.id,
    rpcUrl: chain.rpcUrl,
    contracts: chain.contracts,
    harness,
  } as unknown as Parameters<typeof startExactApp>[0]
  const store = await LevelStore.open(dir)
  const gate = await startExactApp(dev, store, {
    receiver: receiver as LocalAccount,
    authorizer: authorizer as PrivateKeyAccount,
  })
  const stock = await startStockExactServer({
    rpcUrl: chain.rpcUrl,
    chain: chain.chain,
    facilitator: { account: facilitator as LocalAccount },
    payTo: (receiver as LocalAccount).address,
    asset: { address: chain.contracts.usdc, name: 'USDC', version: '2' },
    price: PRICE,
  })
  try {
    const ours = await exactRequirementsOf(`${gate.baseUrl}/quote`)
    const theirs = await exactRequirementsOf(`${stock.baseUrl}${STOCK_PATHS.paid}`)

    // Pure verification, one payer (its key cached after the first check).
    const backend = loadBackend('auto').backend
    const verifier = createAuthorizationVerifier({
      backend,
      domain: {
        name: 'USDC',
        version: '2',
        chainId: chain.chain.id,
        verifyingContract: chain.contracts.usdc,
      },
    })
    const samples = await Promise.all(
      Array.from({ length: 64 }, async () => {
        const { header } = await signExact(payers[0] as LocalAccount, ours, chain.chain.id)
        const decoded = decodeExactPayment(JSON.parse(Buffer.from(header, 'base64').toString()))
        if (!decoded.ok) throw new Error(decoded.message)
        return decoded.value.payload
      }),
    )
    const started = performance.now()
    for (let i = 0; i < VERIFY_COUNT; i++) {
      const sample = samples[i % samples.length] as (typeof samples)[number]
      if (!verifier.verify(sample.authorization, sample.signature)) throw new Error('bad sample')
    }
    const exactVerifyPerS = Math.round(VERIFY_COUNT / ((performance.now() - started) / 1000))
    log(`exact verify: ${exactVerifyPerS}/s (${backend.name})`)

    const load = async (url: string, requirements: PaymentRequirements) => {
      const headers = await Promise.all(
        Array.from({ length: CONNECTIONS }, (_, c) =>
          Promise.all(
            Array.from({ length: PER_CONNECTION }, () =>
              signExact(
                payers[c % payers.length] as LocalAccount,
                requirements,
                chain.chain.id,
              ).then((s) => s.header),
            ),
          ),
        ),
      )
      let ok = 0
      let failed = 0
      const until = performance.now() + PHASE_MS
      const begun = performance.now()
      await Promise.all(
        headers.map(async (own) => {
          for (const header of own) {
            if (performance.now() >= until) return
            const response = await fetch(url, { headers: { 'payment-signature': header } })
            await response.arrayBuffer()
            if (response.status === 200 && response.headers.get('payment-response')) ok++
            else failed++
          }
        }),
      )
      const seconds = (performance.now() - begun) / 1000
      return { rps: Math.round(ok / seconds), ok, failed }
    }
    const tollgateRun = await load(`${gate.baseUrl}/quote`, ours)
    log(
      `tollgate exact: ${tollgateRun.rps} paid/s (${tollgateRun.ok} ok, ${tollgateRun.failed} failed)`,
    )
    const stockRun = await load(`${stock.baseUrl}${STOCK_PATHS.paid}`, theirs)
    log(`stock exact: ${stockRun.rps} paid/s (${stockRun.ok} ok, ${stockRun.failed} failed)`)
    return {
      exact_verify_per_s: exactVerifyPerS,
      exact_paid_rps: tollgateRun.rps,
      stock_exact_paid_rps: stockRun.rps,
    }
  } finally {
    await stock.stop()
    await gate.close()
    rmSync(dir, { recursive: true, force: true })
    await chain.stop()
  }
}
