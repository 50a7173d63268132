import { x402Client } from '@x402/core/client'
import { encodePaymentSignatureHeader } from '@x402/core/http'
import type { PaymentRequired as StockPaymentRequired } from '@x402/core/types'
import {
  BatchSettlementEvmScheme,
  computeChannelId,
  InMemoryClientChannelStorage,
  processPaymentResponse,
} from '@x402/evm/batch-settlement/client'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import {
  type BatchRequirements,
  buildRequirements,
  decodePaymentHeader,
  encodeHeader,
  paymentRequired,
  requirementsEqual,
  voucherReceipt,
} from '../../src/protocol/index.js'
import { CHANNEL_STATE, NETWORK, REQUIREMENTS_PARAMETERS } from './fixtures.js'

// The stock x402 client (packages @x402/core and @x402/evm) paying tollgate's 402s. Signing is
// local; nothing here touches a chain.

const account = privateKeyToAccount(
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
)
const resource = { url: 'https://api.test/data' }

function stockClient(storage = new InMemoryClientChannelStorage()) {
  const client = new x402Client()
  client.register(NETWORK, new BatchSettlementEvmScheme(account, { storage }))
  client.setSpendControls({ allowedAssets: true })
  return client
}

async function pay(client: x402Client, requirements: BatchRequirements) {
  const required = paymentRequired({ resource, accepts: [requirements] })
  const payload = await client.createPaymentPayload(required as StockPaymentRequired)
  return decodePaymentHeader(encodePaymentSignatureHeader(payload))
}

function channelIdOf(requirements: BatchRequirements) {
  return computeChannelId(
    {
      payer: account.address,
      payerAuthorizer: account.address,
      receiver: requirements.payTo as `0x${string}`,
      receiverAuthorizer: requirements.extra.receiverAuthorizer as `0x${string}`,
      token: requirements.asset as `0x${string}`,
      withdrawDelay: requirements.extra.withdrawDelay,
      salt: `0x${'00'.repeat(32)}`,
    },
    NETWORK,
  )
}

describe('a stock x402 client paying tollgate', () => {
  it('sends a first deposit that tollgate decodes, with accepted equal to what was issued', async () => {
    const requirements = buildRequirements(REQUIREMENTS_PARAMETERS)
    const decoded = await pay(stockClient(), requirements)
    if (!decoded.ok) throw new Error(decoded.message)
    expect(requirementsEqual(decoded.value.accepted, requirements)).toBe(true)
    const { payload } = decoded.value
    expect(payload.type).toBe('deposit')
    expect(payload.channelConfig.payer).toBe(account.address.toLowerCase())
    expect(payload.voucher.maxClaimableAmount).toBe(1000n)
    expect(payload.voucher.channelId).toBe(channelIdOf(requirements))
  })

  it('deposits the minDeposit tollgate advertises', async () => {
    const requirements = buildRequirements({ ...REQUIREMENTS_PARAMETERS, minDeposit: 20_000n })
    const decoded = await pay(stockClient(), requirements)
    expect(
      decoded.ok &&
        decoded.value.payload.type === 'deposit' &&
        decoded.value.payload.deposit.amount,
    ).toBe(20_000n)
  })

  it('pays by voucher once funded, and advances on a tollgate voucher receipt', async () => {
    const requirements = buildRequirements(REQUIREMENTS_PARAMETERS)
    const channelId = channelIdOf(requirements)
    const storage = new InMemoryClientChannelStorage()
    await storage.set(channelId, { balance: '10000', chargedCumulativeAmount: '4000' })
    const client = stockClient(storage)

    const first = await pay(client, requirements)
    if (!first.ok) throw new Error(first.message)
    expect(first.value.payload.type).toBe('voucher')
    expect(first.value.payload.voucher.maxClaimableAmount).toBe(5000n)

    const receipt = voucherReceipt({
      network: NETWORK,
      payer: account.address.toLowerCase() as `0x${string}`,
      chargedAmount: 1000n,
      channelState: { ...CHANNEL_STATE, channelId, chargedCumulativeAmount: 5000n },
    })
    const header = encodeHeader(receipt)
    await processPaymentResponse(
      storage,
      (name) => (name === 'PAYMENT-RESPONSE' ? header : undefined),
      {
        channelId,
        requestAmount: requirements.amount,
      },
    )
    expect((await storage.get(channelId))?.chargedCumulativeAmount).toBe('5000')

    const second = await pay(client, requirements)
    expect(second.ok && second.value.payload.voucher.maxClaimableAmount).toBe(6000n)
  })
})
