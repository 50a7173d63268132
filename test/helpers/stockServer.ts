/**
 * The reference the HTTP benchmark compares tollgate with: the stock x402 server as its
 * documentation assembles it (Express, `@x402/express` 2.27.0, `@x402/evm`'s batch-settlement
 * server scheme) with the stock batch-settlement facilitator running in the same process (no
 * facilitator HTTP hop), its viem signer on the development chain. It serves `GET /paid` at a
 * price and `GET /free`, the same handler without a price.
 *
 * Facts of the stock packages this relies on (x402-batch-settlement.md section 3): chain 31337
 * has no default token, so the price is `{ amount, asset, extra: { name, version } }`; the
 * facilitator reads channels through Multicall3 at its canonical address (deployed by
 * `startDevChain`); the server signs claims and refunds with its own receiver-authorizer key.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { x402Facilitator } from '@x402/core/facilitator'
import { type FacilitatorClient, HTTPFacilitatorClient } from '@x402/core/server'
import type { Network } from '@x402/core/types'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { BatchSettlementEvmScheme as FacilitatorScheme } from '@x402/evm/batch-settlement/facilitator'
import { BatchSettlementEvmScheme as ServerScheme } from '@x402/evm/batch-settlement/server'
import {
  paymentMiddlewareFromHTTPServer,
  x402HTTPResourceServer,
  x402ResourceServer,
} from '@x402/express'
import express from 'express'
import {
  type Address,
  type Chain,
  createWalletClient,
  http,
  type LocalAccount,
  publicActions,
} from 'viem'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'

/** Where the stock server's priced route and its free twin live. */
export const STOCK_PATHS = Object.freeze({ paid: '/paid', free: '/free' })

/** What each route answers once it runs (the same body as the tollgate app's). */
export const HANDLER_BODY = Object.freeze({ ok: true })

export interface StockServerOptions {
  rpcUrl: string
  chain: Chain
  /**
   * The stock facilitator in process, its account sending the transactions (deposits, claims,
   * settles) and paying their gas; or a remote facilitator's URL and bearer token (tollgate's).
   */
  facilitator: LocalAccount | { url: string; token: string }
  /** The channels' receiver (`payTo`). */
  receiver: Address
  /** Signs claims and refunds as the channels' receiver authorizer (held by the server). */
  receiverAuthorizer: LocalAccount
  /** The token and its EIP-712 domain (the dev USDC: `USDC` / `2`). */
  asset: { address: Address; name: string; version: string }
  /** Per-request price in token units. */
  price: bigint
  /** Seconds; channels must carry exactly this. */
  withdrawDelay: number
}

export interface StockServer {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  readonly network: Network
  /** The server scheme (its channel storage is the server's state). */
  readonly scheme: ServerScheme
  /** What the server verifies and settles through (for a channel manager's claims and settles). */
  readonly facilitatorClient: FacilitatorClient
  stop(): Promise<void>
}

/**
 * Starts the stock server on 127.0.0.1, on a free port, and waits until it has read its
 * facilitator's supported kinds (so a wrong assembly fails here, not on the first request).
 *
 * @example
 * const stock = await startStockServer({ rpcUrl, chain, facilitator, receiver, receiverAuthorizer, asset, price: 1000n, withdrawDelay: 3600 })
 * const response = await fetch(`${stock.baseUrl}/paid`) // 402 with PAYMENT-REQUIRED
 * await stock.stop()
 */
export async function startStockServer(options: StockServerOptions): Promise<StockServer> {
  const { chain } = options
  const network = `eip155:${chain.id}` as Network
  const facilitatorClient =
    'url' in options.facilitator
      ? remoteFacilitator(options.facilitator)
      : inProcessFacilitator(options.rpcUrl, chain, network, options.facilitator)

  const scheme = new ServerScheme(options.receiver, {
    receiverAuthorizerSigner: options.receiverAuthorizer,
    withdrawDelay: options.withdrawDelay,
  })
  const resourceServer = new x402ResourceServer(facilitatorClient).register(network, scheme)
  const httpServer = new x402HTTPResourceServer(resourceServer, {
    [`GET ${STOCK_PATHS.paid}`]: {
      accepts: {
        scheme: 'batch-settlement',
        network,
        payTo: options.receiver,
        price: {
          amount: options.price.toString(),
          asset: options.asset.address,
          extra: { name: options.asset.name, version: options.asset.version },
        },
      },
      description: 'a priced route of the stock x402 server',
    },
  })
  await httpServer.initialize()

  const app = express()
  app.disable('x-powered-by')
  app.use(paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false))
  app.get(STOCK_PATHS.paid, (_req, res) => {
    res.json(HANDLER_BODY)
  })
  app.get(STOCK_PATHS.free, (_req, res) => {
    res.json(HANDLER_BODY)
  })

  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    network,
    scheme,
    facilitatorClient,
    async stop() {
      const closed = once(server, 'close')
      server.close()
      server.closeAllConnections()
      await closed
    },
  }
}

/** The stock batch-settlement facilitator, called in process (no facilitator HTTP hop). */
function inProcessFacilitator(
  rpcUrl: string,
  chain: Chain,
  network: Network,
  account: LocalAccount,
): FacilitatorClient {
  const client = createWalletClient({
    account,
    chain,
    transport: http(rpcUrl, { retryCount: 0 }),
    pollingInterval: LOCAL_POLLING_MS,
  }).extend(publicActions)
  // The structural signer the stock facilitator wants, over one viem wallet + public client.
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    readContract: (args) => client.readContract(args as never),
    verifyTypedData: (args) => client.verifyTypedData(args as never),
    writeContract: (args) => client.writeContract(args as never),
    sendTransaction: (args) => client.sendTransaction(args),
    waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args),
    getCode: (args) => client.getCode(args),
  })
  const facilitator = new x402Facilitator().register(network, new FacilitatorScheme(signer))
  return {
    verify: (payload, requirements) => facilitator.verify(payload, requirements),
    settle: (payload, requirements) => facilitator.settle(payload, requirements),
    getSupported: async () => facilitator.getSupported() as never,
  }
}

/** A remote facilitator over HTTP (`@x402/core`'s client), with its bearer token. */
function remoteFacilitator(remote: { url: string; token: string }): FacilitatorClient {
  const auth = { Authorization: `Bearer ${remote.token}` }
  return new HTTPFacilitatorClient({
    url: remote.url,
    createAuthHeaders: async () => ({ verify: auth, settle: auth, supported: auth }),
  })
}
