/**
 * x402 `exact` on a tollgate plugin route, on a real anvil over real sockets: the stock client
 * (@x402/fetch with @x402/evm's exact scheme) pays it, the payment lands on chain before the
 * response, every refusal of the specification is answered with x402's code and moves nothing,
 * a failing handler charges nothing, and a restart does not reopen a used nonce.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { x402Client } from '@x402/core/client'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import type { PrivateKeyAccount } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXACT_NONCE_PREFIX } from '../../src/payee/index.js'
import { decodeSettleResponse, type PaymentRequirements } from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import {
  type ExactApp,
  errorOf,
  exactRequirementsOf,
  lower,
  PRICE,
  signExact,
  startExactApp,
} from './exactFixtures.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, , , authorizer, , , stockPayer, payer] = dev.accounts as PrivateKeyAccount[] &
  Record<1 | 4 | 7 | 8, PrivateKeyAccount>
const roles = { receiver, authorizer }

let dir: string
let store: LevelStore
let gate: ExactApp
let revert: () => Promise<void>

beforeAll(async () => {
  revert = await dev.snapshot()
  dir = mkdtempSync(join(tmpdir(), 'tollgate-exact-'))
  store = await LevelStore.open(dir)
  gate = await startExactApp(dev, store, roles)
})

afterAll(async () => {
  await gate?.close()
  await revert?.()
  rmSync(dir, { recursive: true, force: true })
})

const sentBy = (address: `0x${string}`) =>
  h.publicClient.getTransactionCount({ address, blockTag: 'pending' })

describe('an exact route', () => {
  it('lists batch-settlement first, then exact, in its 402', async () => {
    const response = await fetch(`${gate.baseUrl}/quote`)
    expect(response.status).toBe(402)
    const required = JSON.parse(
      Buffer.from(response.headers.get('payment-required') ?? '', 'base64').toString(),
    ) as { accepts: PaymentRequirements[] }
    expect(required.accepts.map((a) => a.scheme)).toEqual(['batch-settlement', 'exact'])
    expect(required.accepts[1]).toEqual({
      scheme: 'exact',
      network: `eip155:${dev.chainId}`,
      amount: PRICE.toString(),
      asset: lower(dev.contracts.usdc),
      payTo: lower(receiver.address),
      maxTimeoutSeconds: 60,
      extra: { assetTransferMethod: 'eip3009', name: 'USDC', version: '2' },
    })
    const batchOnly = await fetch(`${gate.baseUrl}/batch-only`)
    await batchOnly.body?.cancel()
    expect(errorOf(batchOnly)).toBeUndefined()
    const accepts = JSON.parse(
      Buffer.from(batchOnly.headers.get('payment-required') ?? '', 'base64').toString(),
    ).accepts as PaymentRequirements[]
    expect(accepts.map((a) => a.scheme)).toEqual(['batch-settlement'])
  })

  it('is paid by the stock exact client, one mined transfer per call', async () => {
    const client = new x402Client()
    client.register(`eip155:${dev.chainId}`, new ExactEvmScheme(stockPayer))
    client.setSpendControls({ allowedAssets: true })
    const pay = wrapFetchWithPayment(fetch, client)
    const payerBefore = await h.usdcBalance(stockPayer.address)
    const receiverBefore = await h.usdcBalance(receiver.address)
    for (let i = 0; i < 3; i++) {
      const response = await pay(`${gate.baseUrl}/quote`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ quote: 42, payer: lower(stockPayer.address) })
      const receipt = decodeSettleResponse(response.headers.get('payment-response') ?? undefined)
      if (!receipt.ok) throw new Error(receipt.message)
      const hash = receipt.value.response.transaction as `0x${string}`
      expect(receipt.value.response.success).toBe(true)
      const mined = await h.publicClient.getTransactionReceipt({ hash })
      expect(mined.status).toBe('success')
      expect(mined.from.toLowerCase()).toBe(lower(authorizer.address))
    }
    expect(await h.usdcBalance(stockPayer.address)).toBe(payerBefore - 3n * PRICE)
    expect(await h.usdcBalance(receiver.address)).toBe(receiverBefore + 3n * PRICE)
  })

  it('refuses every bad authorization with x402 codes, moving nothing and sending nothing', async () => {
    const url = `${gate.baseUrl}/quote`
    const requirements = await exactRequirementsOf(url)
    const now = BigInt(Math.floor(Date.now() / 1000))
    const stranger = privateKeyToAccount(generatePrivateKey())
    const cases = [
      [
        'expired',
        { validBefore: now - 1n },
        'invalid_exact_evm_payload_authorization_valid_before',
      ],
      [
        'not yet valid',
        { validAfter: now + 3600n },
        'invalid_exact_evm_payload_authorization_valid_after',
      ],
      [
        'under value',
        { value: PRICE - 1n },
        'invalid_exact_evm_payload_authorization_value_mismatch',
      ],
      ['wrong recipient', { to: stranger.address }, 'invalid_exact_evm_recipient_mismatch'],
      ['signed for another token', { token: dev.contracts.escrow }, 'invalid_exact_evm_signature'],
      [
        'another token accepted',
        { accepted: { asset: lower(dev.contracts.escrow) } },
        'invalid_payment_requirements',
      ],
      [
        'wrong network',
        { accepted: { network: 'eip155:8453' as const } },
        'invalid_exact_evm_network_mismatch',
      ],
    ] as const
    const payerBefore = await h.usdcBalance(payer.address)
    const sent = await sentBy(authorizer.address)
    for (const [name, changes, code] of cases) {
      const { header } = await signExact(payer, requirements, dev.chainId, changes)
      const response = await fetch(url, { headers: { 'payment-signature': header } })
      await response.body?.cancel()
      expect({ name, status: response.status, error: errorOf(response) }).toEqual({
        name,
        status: 402,
        error: code,
      })
    }
    // A payer with no tokens: the simulation refuses it, with the reason read from the token.
    const { header: broke } = await signExact(stranger, requirements, dev.chainId)
    const poor = await fetch(url, { headers: { 'payment-signature': broke } })
    await poor.body?.cancel()
    expect(errorOf(poor)).toBe('invalid_exact_evm_insufficient_balance')

    // A replay of a paid authorization.
    const { header } = await signExact(payer, requirements, dev.chainId)
    const first = await fetch(url, { headers: { 'payment-signature': header } })
    expect(first.status).toBe(200)
    await first.body?.cancel()
    const replay = await fetch(url, { headers: { 'payment-signature': header } })
    await replay.body?.cancel()
    expect([replay.status, errorOf(replay)]).toEqual([402, 'invalid_exact_evm_nonce_already_used'])

    expect(await h.usdcBalance(payer.address)).toBe(payerBefore - PRICE)
    expect(await sentBy(authorizer.address)).toBe(sent + 1)
  })

  it('charges nothing when the handler fails, and the authorization stays usable', async () => {
    const requirements = await exactRequirementsOf(`${gate.baseUrl}/broken`)
    const before = await h.usdcBalance(payer.address)
    const { header } = await signExact(payer, requirements, dev.chainId)
    const failed = await fetch(`${gate.baseUrl}/broken`, {
      headers: { 'payment-signature': header },
    })
    expect(failed.status).toBe(500)
    expect(failed.headers.get('payment-response')).toBeNull()
    await failed.body?.cancel()
    expect(await h.usdcBalance(payer.address)).toBe(before)
    // The same requirements (same price, token, recipient) on a route that works.
    const paid = await fetch(`${gate.baseUrl}/quote`, { headers: { 'payment-signature': header } })
    expect(paid.status).toBe(200)
    await paid.body?.cancel()
    expect(await h.usdcBalance(payer.address)).toBe(before - PRICE)
  })

  it('refuses a used nonce after a restart, even where the chain would take it again', async () => {
    const url = `${gate.baseUrl}/quote`
    const requirements = await exactRequirementsOf(url)
    const beforePaying = await dev.snapshot()
    const { header, nonce } = await signExact(payer, requirements, dev.chainId)
    const paid = await fetch(url, { headers: { 'payment-signature': header } })
    expect(paid.status).toBe(200)
    await paid.body?.cancel()

    await gate.close()
    // The chain forgets the transfer: only tollgate's store remembers the nonce.
    await beforePaying()
    store = await LevelStore.open(dir)
    const keys = (await store.listMeta(EXACT_NONCE_PREFIX)).map(([key]) => key)
    expect(keys).toContain(
      `${EXACT_NONCE_PREFIX}${lower(dev.contracts.usdc)}:${lower(payer.address)}:${nonce}`,
    )
    gate = await startExactApp(dev, store, roles)
    const before = await h.usdcBalance(payer.address)
    const replay = await fetch(`${gate.baseUrl}/quote`, {
      headers: { 'payment-signature': header },
    })
    await replay.body?.cancel()
    expect([replay.status, errorOf(replay)]).toEqual([402, 'invalid_exact_evm_nonce_already_used'])
    expect(await h.usdcBalance(payer.address)).toBe(before)
  })
})
