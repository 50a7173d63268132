/**
 * The stock x402 server selling one route by the `exact` scheme (Express, `@x402/express`
 * 2.27.0, `@x402/evm`'s exact server scheme), as its documentation assembles it: with the stock
 * exact facilitator in the same process (`facilitator: { account }`), or with a remote facilitator
 * over HTTP (`facilitator: { url, token }`, `@x402/core`'s HTTPFacilitatorClient), such as
 * tollgate's own. It serves `GET /paid` at a price and `GET /free`, the same handler unpriced.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { x402Facilitator } from '@x402/core/facilitator'
import { type FacilitatorClient, HTTPFacilitatorClient } from '@x402/core/server'
import type { Network } from '@x402/core/types'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { ExactEvmScheme as FacilitatorScheme } from '@x402/evm/exact/facilitator'
import { ExactEvmScheme as ServerScheme } from '@x402/evm/exact/server'
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
import { HANDLER_BODY, STOCK_PATHS } from './stockServer.js'

export interface StockExactServerOptions {
  rpcUrl: string
  chain: Chain
  /** In process (its account sends the transfers), or a remote facilitator's URL and bearer token. */
  facilitator: { account: LocalAccount } | { url: string; token?: string }
  /** Who is paid. */
  payTo: Address
  /** The token and its EIP-712 domain (the dev USDC: `USDC` / `2`). */
  asset: { address: Address; name: string; version: string }
  /** Per-request price in token units. */
  price: bigint
}

export interface StockExactServer {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  readonly network: Network
  stop(): Promise<void>
}

/**
 * Starts the stock exact server on 127.0.0.1, on a free port, once it has read its facilitator's
 * supported kinds.
 *
 * @example
 * const stock = await startStockExactServer({ rpcUrl, chain, facilitator: { account }, payTo, asset, price: 1000n })
 */
export async function startStockExactServer(
  options: StockExactServerOptions,
): Promise<StockExactServer> {
  const { chain } = options
  const network = `eip155:${chain.id}` as Network
  let facilitatorClient: FacilitatorClient
  if ('account' in options.facilitator) {
    const client = createWalletClient({
      account: options.facilitator.account,
      chain,
      transport: http(options.rpcUrl, { retryCount: 0 }),
      pollingInterval: LOCAL_POLLING_MS,
    }).extend(publicActions)
    const signer = toFacilitatorEvmSigner({
      address: options.facilitator.account.address,
      readContract: (args) => client.readContract(args as never),
      verifyTypedData: (args) => client.verifyTypedData(args as never),
      writeContract: (args) => client.writeContract(args as never),
      sendTransaction: (args) => client.sendTransaction(args),
      waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args),
      getCode: (args) => client.getCode(args),
    })
    const facilitator = new x402Facilitator().register(network, new FacilitatorScheme(signer))
    facilitatorClient = {
      verify: (payload, requirements) => facilitator.verify(payload, requirements),
      settle: (payload, requirements) => facilitator.settle(payload, requirements),
      getSupported: async () => facilitator.getSupported() as never,
    }
  } else {
    const { url, token } = options.facilitator
    const auth: Record<string, string> =
      token === undefined ? {} : { Authorization: `Bearer ${token}` }
    facilitatorClient = new HTTPFacilitatorClient({
      url,
      createAuthHeaders: async () => ({ verify: auth, settle: auth, supported: auth }),
    })
  }

  const resourceServer = new x402ResourceServer(facilitatorClient).register(
    network,
    new ServerScheme(),
  )
  const httpServer = new x402HTTPResourceServer(resourceServer, {
    [`GET ${STOCK_PATHS.paid}`]: {
      accepts: {
        scheme: 'exact',
        network,
        payTo: options.payTo,
        price: {
          amount: options.price.toString(),
          asset: options.asset.address,
          extra: { name: options.asset.name, version: options.asset.version },
        },
      },
      description: 'an exact-priced route of the stock x402 server',
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
    async stop() {
      const closed = once(server, 'close')
      server.close()
      server.closeAllConnections()
      await closed
    },
  }
}
