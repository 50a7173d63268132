/**
 * A tollgate server for the payer tests: a Fastify app with the HTTP plugin (ERC-3009 deposits
 * taken, refunds answered) and the WebSocket plugin, on a real socket, counting the HTTP requests
 * it receives; and payer accounts funded with test USDC (and gas, for direct deposits).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { type Account, type LocalAccount, parseEther } from 'viem'
import { TestUSDC } from '../../src/chain/contracts.generated.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { createPayer, type Payer, type PayerOptions } from '../../src/client/index.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import { MemoryStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { tollgateWs } from '../../src/transports/ws/index.js'
import type { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'

export type Dev = ReturnType<typeof useDevChain>

export const PRICE = 1000n
export const WITHDRAW_DELAY = 900

export interface TestServer {
  app: FastifyInstance
  payee: Payee
  /** `http://127.0.0.1:<port>` */
  base: string
  /** HTTP requests received so far. */
  requests: number
  stop(): Promise<void>
}

/**
 * Starts a tollgate app: `GET /joke` and `GET /other` at {@link PRICE}, `GET /dear` at twice
 * that, `POST /echo` at {@link PRICE}, `GET /free`, the
 * WebSocket feed `/ticks` and request route `/rpc` at a tenth of it. On a free port unless `port`
 * is given.
 */
export async function startServer(
  dev: Dev,
  receiver: LocalAccount,
  authorizer: LocalAccount,
  port = 0,
): Promise<TestServer> {
  const h = dev.harness
  const payee = await openPayee({
    chainId: dev.chainId,
    escrow: h.escrow,
    identity: {
      receiver: receiver.address,
      receiverAuthorizer: authorizer.address,
      token: h.usdc,
      withdrawDelay: WITHDRAW_DELAY,
    },
    store: await MemoryStore.open(),
    readChannel: channelReader(h.publicClient, h.escrow),
  })
  const app = Fastify()
  const asset = { address: h.usdc, name: 'USDC', version: '2', decimals: 6 }
  const identity = {
    payee,
    network: `eip155:${dev.chainId}` as const,
    payTo: receiver.address,
    receiverAuthorizer: authorizer.address,
    withdrawDelay: WITHDRAW_DELAY,
  }
  await app.register(tollgate, {
    ...identity,
    asset,
    escrowWriter: h.escrowWriter(receiver),
  })
  await app.register(tollgateWs, { ...identity, asset })
  const server = { app, payee, base: '', requests: 0, stop: async () => {} } as TestServer
  app.addHook('onRequest', async () => {
    server.requests += 1
  })
  app.get('/joke', { config: { price: PRICE } }, async () => ({ joke: 'paid' }))
  app.get('/other', { config: { price: PRICE } }, async () => ({ other: 'paid' }))
  app.get('/dear', { config: { price: 2n * PRICE } }, async () => ({ dear: 'paid' }))
  app.get('/free', async () => ({ free: true }))
  app.post('/echo', { config: { price: PRICE } }, async (request) => ({ echo: request.body }))
  let tick = 0
  app.tollgateFeed('/ticks', {
    price: PRICE / 10n,
    creditWindow: 20,
    source: async function* () {
      for (;;) yield { tick: ++tick }
    },
  })
  app.tollgateRequests('/rpc', {
    price: PRICE / 10n,
    creditWindow: 10,
    handler: async (body) => ({ echo: body }),
  })
  await app.listen({ host: '127.0.0.1', port })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  server.base = `http://127.0.0.1:${address.port}`
  server.stop = async () => {
    await app.close()
    await payee.close()
  }
  return server
}

/** `account` (a fresh one by default) with `usdc` test USDC minted to it and, when `gas`, some ETH. */
export async function fundedAccount(
  dev: Dev,
  usdc: bigint,
  gas = false,
  account = randomAccount() as LocalAccount,
): Promise<LocalAccount> {
  const minter = dev.accounts[0] as Account
  const hash = await dev.harness.wallet(minter).writeContract({
    address: dev.harness.usdc,
    abi: TestUSDC.abi,
    functionName: 'mint',
    args: [account.address, usdc],
    chain: dev.chain,
    account: minter,
  })
  await dev.harness.publicClient.waitForTransactionReceipt({ hash })
  if (gas) await dev.testClient.setBalance({ address: account.address, value: parseEther('10') })
  return account
}

/** A temporary data folder, removed by the returned function. */
export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-payer-'))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A payer on the dev chain. */
export function payerOn(
  dev: Dev,
  options: Omit<PayerOptions, 'rpcUrl' | 'chainId'>,
): Promise<Payer> {
  return createPayer({ rpcUrl: dev.rpcUrl, chainId: dev.chainId, ...options })
}
