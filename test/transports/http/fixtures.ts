/**
 * A Fastify app with the tollgate plugin over a real Payee (MemoryStore, real signature checks)
 * and a fake chain reader, plus a payer that signs real vouchers. No chain, no port.
 */
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Hex } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { expect } from 'vitest'
import { isErrorCode } from '../../../src/errors/index.js'
import type { OnChainChannel } from '../../../src/ledger/index.js'
import { openPayee, type Payee, type PayeeOptions } from '../../../src/payee/index.js'
import {
  CANONICAL_ADDRESSES,
  type ChannelConfig,
  decodePaymentRequired,
  decodeSettleResponse,
  encodeHeader,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  paymentPayload,
} from '../../../src/protocol/index.js'
import { MemoryStore } from '../../../src/store/index.js'
import { type TollgateOptions, tollgate } from '../../../src/transports/http/index.js'
import { channelId } from '../../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, sessionKey, sign } from '../../ledger/fixtures.js'

export const NETWORK = `eip155:${CHAIN_ID}` as const
export const ASSET = { address: IDENTITY.token, name: 'USDC', version: '2', decimals: 6 }
export const PRICE = 1000n

export interface TestApp {
  app: FastifyInstance
  payee: Payee
  store: MemoryStore
  /** On-chain state the fake reader answers; unknown channels read as never deposited. */
  chain: Map<Hex, OnChainChannel>
}

/** A payee of the test identity over a MemoryStore, reading channels from a fake chain. */
export async function fixturePayee(
  extra: Partial<PayeeOptions> = {},
): Promise<Omit<TestApp, 'app'>> {
  const store = await MemoryStore.open()
  const chain = new Map<Hex, OnChainChannel>()
  const payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: CANONICAL_ADDRESSES.escrow,
    identity: IDENTITY,
    store,
    readChannel: async (id) =>
      chain.get(id) ?? { balance: 0n, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n },
    ...extra,
  })
  return { payee, store, chain }
}

/** What every adapter of a fixture payee is told: its network, asset, receiver and terms. */
export function fixtureTerms(payee: Payee) {
  return {
    payee,
    network: NETWORK,
    asset: ASSET,
    payTo: IDENTITY.receiver,
    receiverAuthorizer: IDENTITY.receiverAuthorizer,
    withdrawDelay: IDENTITY.withdrawDelay,
  }
}

/** Builds (does not listen) an app; `routes` adds routes after the plugin. */
export async function makeApp(
  routes: (app: FastifyInstance) => void,
  options: Partial<TollgateOptions> = {},
): Promise<TestApp> {
  const { payee, store, chain } = await fixturePayee()
  const app = Fastify({ logger: false })
  await app.register(tollgate, { ...fixtureTerms(payee), rateLimit: false, ...options })
  routes(app)
  await app.ready()
  return { app, payee, store, chain }
}

export interface Channel {
  config: ChannelConfig
  id: Hex
}

/** A channel deposited on the fake chain. */
export function openChannel(
  t: Pick<TestApp, 'chain'>,
  balance = 1_000_000n,
  overrides: Partial<ChannelConfig> = {},
): Channel {
  const config = makeConfig(overrides)
  const id = channelId(config, DOMAIN)
  t.chain.set(id, { balance, totalClaimed: 0n, withdrawRequestedAt: 0, refundNonce: 0n })
  return { config, id }
}

/** A `PaymentPayload` paying `accepted` with a voucher of ceiling `max`. */
export async function voucherPayment(
  accepted: PaymentRequirements,
  channel: Channel,
  max: bigint,
  signer: PrivateKeyAccount = sessionKey,
): Promise<PaymentPayload> {
  return paymentPayload({
    accepted,
    payload: {
      type: 'voucher',
      channelConfig: channel.config,
      voucher: {
        channelId: channel.id,
        maxClaimableAmount: max,
        signature: await sign(signer, channel.id, max),
      },
    },
  })
}

/** A `PAYMENT-SIGNATURE` header paying `accepted` with a voucher of ceiling `max`. */
export async function voucherHeader(
  accepted: PaymentRequirements,
  channel: Channel,
  max: bigint,
  signer: PrivateKeyAccount = sessionKey,
): Promise<string> {
  return encodeHeader(await voucherPayment(accepted, channel, max, signer))
}

/** The `PAYMENT-REQUIRED` of a response, decoded; fails the test when absent or malformed. */
export function requiredOf(response: LightMyRequestResponse): PaymentRequired {
  const header = response.headers['payment-required']
  expect(typeof header).toBe('string')
  const decoded = decodePaymentRequired(header as string)
  if (!decoded.ok) throw new Error(decoded.message)
  return decoded.value
}

/** The requirements a route issues, read from its unpaid 402. */
export async function acceptedFor(app: FastifyInstance, url: string): Promise<PaymentRequirements> {
  const response = await app.inject({ url })
  expect(response.statusCode).toBe(402)
  const [accepted] = requiredOf(response).accepts
  if (!accepted) throw new Error('no requirements')
  return accepted
}

/** The `PAYMENT-RESPONSE` of a paid response, decoded. */
export function receiptOf(response: LightMyRequestResponse, header = 'payment-response') {
  const value = response.headers[header]
  expect(typeof value).toBe('string')
  const decoded = decodeSettleResponse(value as string)
  if (!decoded.ok) throw new Error(decoded.message)
  return decoded.value
}

/** An error reply: the status and a stable code in the body (and in PAYMENT-REQUIRED if sent). */
export function expectError(response: LightMyRequestResponse, status: number, code: string): void {
  expect(response.statusCode).toBe(status)
  const body = response.json() as { error: string; message: string }
  expect(body.error).toBe(code)
  expect(isErrorCode(body.error)).toBe(true)
  expect(typeof body.message).toBe('string')
  if (response.headers['payment-required'] !== undefined) {
    expect(requiredOf(response).error).toBe(code)
  }
}

/** A promise with its resolve function, to hold a handler open. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {}
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
