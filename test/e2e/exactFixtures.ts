/**
 * A Fastify app with the tollgate plugin whose routes accept x402 `exact` besides
 * batch-settlement, on the run's dev chain: `GET /quote` (priced, exact accepted), `GET /broken`
 * (priced, exact accepted, its handler fails) and `GET /batch-only` (priced, exact not accepted).
 * The receiver authorizer's account sends the transfers and the deposits and pays their gas,
 * through one send lock.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import {
  type Address,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  type LocalAccount,
  type PrivateKeyAccount,
} from 'viem'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { escrowWriter } from '../../src/chain/escrowWriter.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { createSendLock } from '../../src/chain/sendLock.js'
import { createTransactionSender } from '../../src/chain/sendTransaction.js'
import { authorizationTransfers } from '../../src/chain/transferWithAuthorization.js'
import {
  type ExactPayee,
  type FacilitatorClient,
  openExactPayee,
  openPayee,
  type Payee,
} from '../../src/payee/index.js'
import {
  encodeHeader,
  exactPaymentPayload,
  type PaymentRequirements,
} from '../../src/protocol/index.js'
import type { ChannelStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { TRANSFER_WITH_AUTHORIZATION_TYPES } from '../../src/verify/index.js'
import type { useDevChain } from '../helpers/devChain.js'

type Dev = ReturnType<typeof useDevChain>

export const PRICE = 1000n
export const lower = (a: Address) => a.toLowerCase() as Address

export interface ExactApp {
  readonly app: FastifyInstance
  readonly payee: Payee
  readonly exact: ExactPayee
  readonly baseUrl: string
  close(): Promise<void>
}

/** Starts the app on a free port over `store` (closed with the app). */
export async function startExactApp(
  dev: Dev,
  store: ChannelStore,
  roles: { receiver: LocalAccount; authorizer: PrivateKeyAccount },
  facilitator?: FacilitatorClient,
): Promise<ExactApp> {
  const publicClient = createPublicClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    pollingInterval: LOCAL_POLLING_MS,
  })
  const walletClient = createWalletClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    account: roles.authorizer,
    pollingInterval: LOCAL_POLLING_MS,
  })
  const payee = await openPayee({
    chainId: dev.chainId,
    escrow: dev.contracts.escrow,
    identity: {
      receiver: lower(roles.receiver.address),
      receiverAuthorizer: lower(roles.authorizer.address),
      token: lower(dev.contracts.usdc),
      withdrawDelay: 86_400,
    },
    store,
    readChannel: channelReader(dev.harness.publicClient, dev.contracts.escrow),
  })
  const sendLock = createSendLock()
  const exact = await openExactPayee({
    chainId: dev.chainId,
    store,
    ...(facilitator
      ? { facilitator }
      : {
          transfers: authorizationTransfers({
            publicClient,
            account: roles.authorizer,
            sender: createTransactionSender({
              publicClient,
              walletClient,
              sendLock,
              confirmations: 1,
            }),
          }),
        }),
  })
  const app = Fastify()
  await app.register(tollgate, {
    payee,
    network: `eip155:${dev.chainId}`,
    asset: { address: dev.contracts.usdc, name: 'USDC', version: '2', decimals: 6 },
    payTo: roles.receiver.address,
    receiverAuthorizer: roles.authorizer.address,
    withdrawDelay: 86_400,
    exactPayee: exact,
    escrowWriter: escrowWriter({
      publicClient,
      walletClient,
      escrow: dev.contracts.escrow,
      erc3009Collector: dev.contracts.erc3009Collector,
      sendLock,
    }),
    rateLimit: false,
  })
  app.get('/quote', { config: { price: PRICE.toString(), exact: true } }, async (request) => ({
    quote: 42,
    payer: request.exactPayment?.payer ?? request.payment?.payer,
  }))
  app.get('/broken', { config: { price: PRICE.toString(), exact: true } }, async (_, reply) =>
    reply.code(500).send({ broken: true }),
  )
  app.get('/batch-only', { config: { price: PRICE.toString() } }, async () => ({ ok: true }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  return {
    app,
    payee,
    exact,
    baseUrl: `http://127.0.0.1:${address.port}`,
    async close() {
      await app.close()
      await payee.close()
    },
  }
}

/** The exact entry of a 402's `PAYMENT-REQUIRED`. */
export async function exactRequirementsOf(url: string): Promise<PaymentRequirements> {
  const response = await fetch(url)
  await response.body?.cancel()
  const required = JSON.parse(
    Buffer.from(response.headers.get('payment-required') ?? '', 'base64').toString(),
  ) as { accepts: PaymentRequirements[] }
  const exact = required.accepts.find((a) => a.scheme === 'exact')
  if (!exact) throw new Error(`${url} offers no exact payment`)
  return exact
}

/** Fields of an authorization a test may change from the honest one. */
export interface AuthorizationChanges {
  to?: Address
  value?: bigint
  validAfter?: bigint
  validBefore?: bigint
  nonce?: Hex
  /** Sign under another token's domain. */
  token?: Address
  /** Change `accepted` after signing. */
  accepted?: Partial<PaymentRequirements>
}

/** Signs an exact payment of `requirements` by `payer` (as the stock client does), with changes. */
export async function signExact(
  payer: LocalAccount,
  requirements: PaymentRequirements,
  chainId: number,
  changes: AuthorizationChanges = {},
): Promise<{ header: string; nonce: Hex }> {
  const now = BigInt(Math.floor(Date.now() / 1000))
  const nonce =
    changes.nonce ??
    (`0x${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex')}` as Hex)
  const message = {
    from: getAddress(payer.address),
    to: getAddress(changes.to ?? requirements.payTo),
    value: changes.value ?? BigInt(requirements.amount),
    validAfter: changes.validAfter ?? 0n,
    validBefore: changes.validBefore ?? now + BigInt(requirements.maxTimeoutSeconds),
    nonce,
  }
  const signature = await payer.signTypedData({
    domain: {
      name: String(requirements.extra?.name),
      version: String(requirements.extra?.version),
      chainId,
      verifyingContract: getAddress(changes.token ?? requirements.asset),
    },
    types: TRANSFER_WITH_AUTHORIZATION_TYPES,
    primaryType: 'TransferWithAuthorization',
    message,
  })
  const accepted = { ...requirements, ...changes.accepted }
  const payload = exactPaymentPayload(accepted, {
    signature,
    authorization: { ...message, from: lower(message.from), to: lower(message.to) },
  })
  return { header: encodeHeader(payload), nonce }
}

/** The error code of a refused payment's `PAYMENT-REQUIRED`. */
export function errorOf(response: Response): string | undefined {
  const header = response.headers.get('payment-required')
  if (header === null) return undefined
  return (JSON.parse(Buffer.from(header, 'base64').toString()) as { error?: string }).error
}
