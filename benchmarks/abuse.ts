/**
 * Abuse: honest payers' paid throughput while a flood of hostile payments runs at the same time,
 * against the same honest load without the flood, in one run on one local anvil. The server is
 * the tollgate plugin on a durable LevelStore with an escrow writer (it would submit deposits).
 * The flood (benchmarks/support/flood.ts, a child process of its own) sends forged vouchers on
 * the honest channels, vouchers with random signatures for channels never seen, and `deposit`
 * payloads of one token unit whose vouchers are signed by their own keys; the honest load
 * (benchmarks/support/loadgen.ts, another child) pays on channels of its own. Per-IP limits are
 * off: every client is 127.0.0.1 here, and the point is what a flood costs once it gets in.
 * `refused_deposit_txs` counts the transactions the server's key sent during the flood.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import {
  type Account,
  type Address,
  createWalletClient,
  type Hex,
  http,
  type LocalAccount,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import {
  DEV_USDC_DOMAIN,
  devPublicClient,
  LOCAL_POLLING_MS,
  startDevChain,
} from '../src/chain/devChain.js'
import { escrowWriter } from '../src/chain/escrowWriter.js'
import { channelReader } from '../src/chain/readChannel.js'
import { keySigner } from '../src/client/keySigner.js'
import { signVoucher } from '../src/client/signing.js'
import { openPayee, type Payee } from '../src/payee/index.js'
import {
  type ChannelConfig,
  encodeHeader,
  type PaymentRequirements,
  paymentPayload,
} from '../src/protocol/index.js'
import { LevelStore } from '../src/store/index.js'
import { tollgate } from '../src/transports/http/index.js'
import { bytesToHex, channelId, domainSeparator, escrowDomain } from '../src/verify/index.js'
import { EscrowHarness } from '../test/helpers/escrow.js'
import { HANDLER_BODY } from '../test/helpers/stockServer.js'
import type { Log } from './run.js'
import { FLOOD_FLAG, type FloodResult, type FloodSpec } from './support/flood.js'
import { runGenerator } from './support/generatorProcess.js'
import {
  type LoadChannel,
  type LoadResult,
  openChannels,
  requirementsOf,
  runLoad,
} from './support/loadgen.js'

const CONNECTIONS = 16
const FLOOD_CONNECTIONS = 16
/** Distinct hostile headers, sent round and round. */
const HOSTILE = 600
const PRICE = 1000n
const WITHDRAW_DELAY = 3600
const WARMUP = 20
const REQUESTS = 2000
const PHASE_MS = 5_000
const DEPOSIT = PRICE * BigInt((WARMUP + REQUESTS) * 2 + 100)

export async function run(log: Log) {
  const dev = await startDevChain()
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-abuse-'))
  let app: FastifyInstance | undefined
  let payee: Payee | undefined
  try {
    const [, receiver, authorizer, funder] = dev.accounts as [
      Account,
      LocalAccount,
      LocalAccount,
      Account,
    ]
    const harness = EscrowHarness.on(dev)
    const lower = (a: Address) => a.toLowerCase() as Address
    const publicClient = devPublicClient(dev)
    payee = await openPayee({
      chainId: dev.chain.id,
      escrow: dev.contracts.escrow,
      identity: {
        receiver: lower(receiver.address),
        receiverAuthorizer: lower(authorizer.address),
        token: lower(dev.contracts.usdc),
        withdrawDelay: WITHDRAW_DELAY,
      },
      store: await LevelStore.open(join(dir, 'channels')),
      readChannel: channelReader(publicClient, dev.contracts.escrow),
    })
    app = Fastify()
    await app.register(tollgate, {
      payee,
      network: `eip155:${dev.chain.id}`,
      asset: { address: dev.contracts.usdc, ...DEV_USDC_DOMAIN, decimals: 6 },
      payTo: receiver.address,
      receiverAuthorizer: authorizer.address,
      withdrawDelay: WITHDRAW_DELAY,
      rateLimit: false,
      escrowWriter: escrowWriter({
        publicClient,
        walletClient: createWalletClient({
          chain: dev.chain,
          transport: http(dev.rpcUrl, { retryCount: 0 }),
          account: receiver,
          pollingInterval: LOCAL_POLLING_MS,
        }),
        escrow: dev.contracts.escrow,
        erc3009Collector: dev.contracts.erc3009Collector,
      }),
    })
    app.get('/paid', { config: { price: PRICE } }, async () => HANDLER_BODY)
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    const accepted = await requirementsOf(`${base}/paid`)
    await harness.approve(funder, DEPOSIT * BigInt(CONNECTIONS))
    const channels = await openChannels(harness, funder, accepted, CONNECTIONS, DEPOSIT)
    const headers = await hostileHeaders(accepted, channels, dev.chain.id, dev.contracts.escrow)

    const honest = (durationMs: number): Promise<LoadResult> =>
      runLoad({
        url: `${base}/paid`,
        accepted,
        price: PRICE,
        chainId: dev.chain.id,
        escrow: dev.contracts.escrow,
        channels,
        warmup: WARMUP,
        requests: REQUESTS,
        durationMs,
      })
    const advance = (result: LoadResult) =>
      channels.forEach((c, i) => {
        c.charged += BigInt(result.served[i] ?? 0) * PRICE
      })

    const quiet = await honest(PHASE_MS)
    advance(quiet)
    log(`quiet: ${Math.round(quiet.rps)} paid req/s`)

    const sentBefore = await publicClient.getTransactionCount({ address: receiver.address })
    const flooding = runGenerator<FloodSpec, FloodResult>(
      new URL('./support/flood.ts', import.meta.url).href,
      FLOOD_FLAG,
      {
        url: `${base}/paid`,
        headers,
        connections: FLOOD_CONNECTIONS,
        durationMs: PHASE_MS + 2_000,
      },
    )
    const flooded = await honest(PHASE_MS)
    advance(flooded)
    const flood = (await flooding).result
    const sentAfter = await publicClient.getTransactionCount({ address: receiver.address })
    const refused = Object.entries(flood.statuses)
      .filter(([status]) => status !== '200')
      .reduce((n, [, count]) => n + count, 0)
    log(
      `under flood: ${Math.round(flooded.rps)} paid req/s; flood ${flood.requests} requests, ${JSON.stringify(flood.statuses)}`,
    )
    return {
      refused_deposit_txs: sentAfter - sentBefore,
      paid_rps_quiet: Math.round(quiet.rps),
      paid_rps_under_flood: Math.round(flooded.rps),
      refused_per_s: Math.round(refused / (flood.wallMs / 1000)),
      under_flood_vs_quiet: Math.round((flooded.rps / quiet.rps) * 1000) / 1000,
      flood_statuses: flood.statuses,
      honest_errors: quiet.errors + flooded.errors,
    }
  } finally {
    await app?.close()
    await payee?.close()
    await dev.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A third forged vouchers on the honest channels (signed by another key), a third vouchers of
 * channels never seen with random signatures, a third one-unit deposits whose vouchers are signed
 * by the channel's own key (they pass the signature check and must be refused before any send).
 */
async function hostileHeaders(
  accepted: PaymentRequirements,
  channels: LoadChannel[],
  chainId: number,
  escrow: Address,
): Promise<string[]> {
  const separator = domainSeparator({ chainId, verifyingContract: escrow })
  const typedDomain = escrowDomain(chainId, escrow)
  const forger = keySigner(bytesToHex(randomBytes(32)))
  const sign = (signer: ReturnType<typeof keySigner>, id: Hex, max: bigint) =>
    signVoucher(signer, separator, typedDomain, id, max)
  const headers: string[] = []
  for (let i = 0; i < HOSTILE; i++) {
    const kind = i % 3
    const honest = channels[i % channels.length] as LoadChannel
    if (kind === 0) {
      const max = honest.charged + PRICE * BigInt(1 + (i % 7))
      const signature = await sign(forger, honest.channelId, max)
      headers.push(voucherHeader(accepted, honest.config, honest.channelId, max, signature))
      continue
    }
    const key = bytesToHex(randomBytes(32))
    const payer = privateKeyToAccount(key).address.toLowerCase() as Address
    const config: ChannelConfig = {
      ...honest.config,
      payer,
      payerAuthorizer: payer,
      salt: bytesToHex(randomBytes(32)),
    }
    const id = channelId(config, separator)
    if (kind === 1) {
      headers.push(voucherHeader(accepted, config, id, PRICE, bytesToHex(randomBytes(65))))
      continue
    }
    const signature = await sign(keySigner(key), id, PRICE)
    headers.push(
      encodeHeader(
        paymentPayload({
          accepted,
          payload: {
            type: 'deposit',
            channelConfig: config,
            voucher: { channelId: id, maxClaimableAmount: PRICE, signature },
            deposit: {
              amount: 1n,
              erc3009Authorization: {
                validAfter: 0n,
                validBefore: 2n ** 40n,
                salt: bytesToHex(randomBytes(32)),
                signature: bytesToHex(randomBytes(65)),
              },
            },
          },
        }),
      ),
    )
  }
  return headers
}

function voucherHeader(
  accepted: PaymentRequirements,
  channelConfig: ChannelConfig,
  id: Hex,
  maxClaimableAmount: bigint,
  signature: Hex,
): string {
  return encodeHeader(
    paymentPayload({
      accepted,
      payload: {
        type: 'voucher',
        channelConfig,
        voucher: { channelId: id, maxClaimableAmount, signature },
      },
    }),
  )
}
