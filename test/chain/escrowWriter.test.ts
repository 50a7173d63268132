import { type Address, createWalletClient, http, type PrivateKeyAccount, pad, toHex } from 'viem'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LOCAL_POLLING_MS } from '../../src/chain/devChain.js'
import { escrowWriter } from '../../src/chain/escrowWriter.js'
import { channelReader } from '../../src/chain/readChannel.js'
import { openPayee, type Payee } from '../../src/payee/index.js'
import type { ChannelConfig, DepositPayload, RefundPayload } from '../../src/protocol/types.js'
import { MemoryStore } from '../../src/store/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'

const dev = useDevChain()
const h = dev.harness
const [, receiver, payer, , authorizer] = dev.accounts as PrivateKeyAccount[] as [
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
  PrivateKeyAccount,
]
const sessionKey = randomAccount()
const lower = (a: Address) => a.toLowerCase() as Address
const identity = {
  receiver: lower(receiver.address),
  receiverAuthorizer: lower(authorizer.address),
  token: lower(dev.contracts.usdc),
  withdrawDelay: 3600,
}
const writer = escrowWriter({
  publicClient: h.publicClient,
  walletClient: createWalletClient({
    chain: dev.chain,
    transport: http(dev.rpcUrl, { retryCount: 0 }),
    account: receiver,
    pollingInterval: LOCAL_POLLING_MS,
  }),
  escrow: dev.contracts.escrow,
  erc3009Collector: dev.contracts.erc3009Collector,
  confirmations: 1,
})

let salt = 1000
let authorizationSalt = 0
function config(): ChannelConfig {
  return {
    payer: lower(payer.address),
    payerAuthorizer: lower(sessionKey.address),
    ...identity,
    salt: pad(toHex(++salt), { size: 32 }),
  }
}

async function depositPayload(
  c: ChannelConfig,
  amount: bigint,
  max: bigint,
  window = { validAfter: 0n, validBefore: 2n ** 40n },
): Promise<DepositPayload> {
  const id = await h.channelId(c)
  const authSalt = pad(toHex(++authorizationSalt), { size: 32 })
  return {
    type: 'deposit',
    channelConfig: c,
    voucher: {
      channelId: id,
      maxClaimableAmount: max,
      signature: await h.signVoucher(sessionKey, id, max),
    },
    deposit: {
      amount,
      erc3009Authorization: {
        ...window,
        salt: authSalt,
        signature: await h.signReceiveAuthorization(
          payer,
          id,
          amount,
          BigInt(authSalt),
          window.validAfter,
          window.validBefore,
        ),
      },
    },
  }
}

let payee: Payee
let revert: () => Promise<void>
beforeEach(async () => {
  revert = await dev.snapshot()
  payee = await openPayee({
    chainId: dev.chainId,
    escrow: dev.contracts.escrow,
    identity,
    store: await MemoryStore.open(),
    readChannel: channelReader(h.publicClient, dev.contracts.escrow),
  })
})
afterEach(async () => {
  await payee.close()
  await revert()
})

describe('deposit payloads', () => {
  it("submits the payer's ERC-3009 deposit, mirrors it and accepts the voucher it carries", async () => {
    const c = config()
    const payload = await depositPayload(c, 5_000_000n, 1000n)
    const before = await h.usdcBalance(payer.address)
    const decision = await payee.decideDeposit(payload, { kind: 'exact', price: 1000n }, writer)
    expect(decision.ok).toBe(true)
    expect(decision.deposit).toMatchObject({ amount: 5_000_000n, balance: 5_000_000n })
    expect(decision.deposit?.transaction).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await h.usdcBalance(payer.address)).toBe(before - 5_000_000n)
    if (!decision.ok) return
    payee.commit(decision.hold, 1000n)
    expect(payee.ledger.get(payload.voucher.channelId)).toMatchObject({
      balance: 5_000_000n,
      chargedCumulativeAmount: 1000n,
      signedMaxClaimable: 1000n,
    })

    // A top-up of a known channel updates its balance.
    const topUp = await depositPayload(c, 1_000_000n, 2000n)
    const second = await payee.decideDeposit(topUp, { kind: 'exact', price: 1000n }, writer)
    expect(second.ok && second.deposit?.balance).toBe(6_000_000n)
  })

  it('submits concurrent deposits of many channels, each with its own nonce, and mines them all', async () => {
    const payloads = await Promise.all(
      Array.from({ length: 6 }, () => depositPayload(config(), 5000n, 1000n)),
    )
    const results = await Promise.all(payloads.map((p) => writer.deposit(p)))
    expect(results.map((r) => (r.ok ? 'ok' : r.code))).toEqual(Array(6).fill('ok'))
    for (const payload of payloads) {
      const channel = await h.channel(payload.voucher.channelId)
      expect(channel.balance).toBe(5000n)
    }
  })

  it('refuses, without spending gas, deposits whose authorization window is closed or whose voucher is forged', async () => {
    const nonce = await h.publicClient.getTransactionCount({ address: receiver.address })
    const expired = await depositPayload(config(), 1_000_000n, 1000n, {
      validAfter: 0n,
      validBefore: 1n,
    })
    expect(await code(payee.decideDeposit(expired, { kind: 'exact', price: 1000n }, writer))).toBe(
      'invalid_batch_settlement_evm_payload_authorization_valid_before',
    )
    const future = await depositPayload(config(), 1_000_000n, 1000n, {
      validAfter: 2n ** 39n,
      validBefore: 2n ** 40n,
    })
    expect(await code(payee.decideDeposit(future, { kind: 'exact', price: 1000n }, writer))).toBe(
      'invalid_batch_settlement_evm_payload_authorization_valid_after',
    )
    const forged = await depositPayload(config(), 1_000_000n, 1000n)
    const tampered = { ...forged, voucher: { ...forged.voucher, maxClaimableAmount: 999n } }
    expect(await code(payee.decideDeposit(tampered, { kind: 'exact', price: 999n }, writer))).toBe(
      'invalid_batch_settlement_evm_voucher_signature',
    )
    const badAuth = await depositPayload(config(), 1_000_000n, 1000n)
    const wrongAmount = { ...badAuth, deposit: { ...badAuth.deposit, amount: 2_000_000n } }
    const refused = await payee.decideDeposit(wrongAmount, { kind: 'exact', price: 1000n }, writer)
    expect(!refused.ok && refused.code).toBe(
      'invalid_batch_settlement_evm_deposit_simulation_failed',
    )
    expect(!refused.ok && refused.message).toMatch(/InvalidSignature/)
    expect(await h.publicClient.getTransactionCount({ address: receiver.address })).toBe(nonce)
  })
})

describe('deposits an attacker asks for', () => {
  const sent = () => h.publicClient.getTransactionCount({ address: receiver.address })
  const exact = { kind: 'exact', price: 1000n } as const

  it('sends nothing for tiny deposits whose voucher does not fit the balance after them', async () => {
    const before = await sent()
    for (let i = 0; i < 10; i++) {
      const payload = await depositPayload(config(), 1n, 1000n)
      const decision = await payee.decideDeposit(payload, exact, writer)
      expect(decision).toMatchObject({
        ok: false,
        code: 'invalid_batch_settlement_evm_cumulative_exceeds_balance',
      })
      expect(decision.deposit).toBeUndefined()
    }
    expect(await sent()).toBe(before)
  })

  it('sends nothing for a deposit below the advertised minDeposit', async () => {
    const before = await sent()
    const payload = await depositPayload(config(), 5000n, 1000n)
    const decision = await payee.decideDeposit(payload, exact, writer, { minDeposit: 10_000n })
    expect(decision).toMatchObject({
      ok: false,
      code: 'invalid_batch_settlement_evm_deposit_below_min_deposit',
    })
    expect(await sent()).toBe(before)
  })

  it('refuses on-chain actions past a payer limit or the gas budget, while vouchers keep working', async () => {
    const limited = await openPayee({
      chainId: dev.chainId,
      escrow: dev.contracts.escrow,
      identity,
      store: await MemoryStore.open(),
      readChannel: channelReader(h.publicClient, dev.contracts.escrow),
      onChainLimits: { perPayer: { max: 1, timeWindowMs: 60_000 }, gasBudget: false },
    })
    const c = config()
    const first = await limited.decideDeposit(
      await depositPayload(c, 10_000n, 1000n),
      exact,
      writer,
    )
    if (!first.ok) throw new Error(first.message)
    limited.commit(first.hold, 1000n)
    const before = await sent()
    const second = await limited.decideDeposit(
      await depositPayload(c, 10_000n, 2000n),
      exact,
      writer,
    )
    expect(second).toMatchObject({ ok: false, code: 'tollgate_onchain_rate_limited' })
    expect(await sent()).toBe(before)
    const voucher = await limited.decide(
      {
        channelConfig: c,
        voucher: {
          channelId: first.hold.channelId,
          maxClaimableAmount: 2000n,
          signature: await h.signVoucher(sessionKey, first.hold.channelId, 2000n),
        },
      },
      exact,
    )
    expect(voucher.ok).toBe(true)
    await limited.close()

    const budgeted = await openPayee({
      chainId: dev.chainId,
      escrow: dev.contracts.escrow,
      identity,
      store: await MemoryStore.open(),
      readChannel: channelReader(h.publicClient, dev.contracts.escrow),
      onChainLimits: { gasBudget: { wei: 1n, timeWindowMs: 60_000 } },
    })
    const spent = await budgeted.decideDeposit(
      await depositPayload(config(), 10_000n, 1000n),
      exact,
      writer,
    )
    expect(spent.ok).toBe(true)
    expect(spent.deposit?.fee).toBeGreaterThan(0n)
    const over = await budgeted.decideDeposit(
      await depositPayload(config(), 10_000n, 1000n),
      exact,
      writer,
    )
    expect(over).toMatchObject({ ok: false, code: 'tollgate_onchain_budget_spent' })
    await budgeted.close()
  })
})

describe('refund payloads', () => {
  it('claims what was charged and returns the rest to the payer in one transaction', async () => {
    const c = config()
    const payload = await depositPayload(c, 5_000_000n, 1000n)
    const id = payload.voucher.channelId
    const decision = await payee.decideDeposit(payload, { kind: 'exact', price: 1000n }, writer)
    if (!decision.ok) throw new Error(decision.message)
    payee.commit(decision.hold, 700n)

    const wrong: RefundPayload = {
      type: 'refund',
      channelConfig: c,
      voucher: {
        channelId: id,
        maxClaimableAmount: 1000n,
        signature: await h.signVoucher(sessionKey, id, 1000n),
      },
    }
    expect(await code(payee.refund(wrong, writer))).toBe(
      'invalid_batch_settlement_evm_cumulative_amount_mismatch',
    )

    const refund: RefundPayload = {
      type: 'refund',
      channelConfig: c,
      voucher: {
        channelId: id,
        maxClaimableAmount: 700n,
        signature: await h.signVoucher(sessionKey, id, 700n),
      },
    }
    expect(await code(payee.refund({ ...refund, amount: 5_000_000n }, writer))).toBe(
      'invalid_batch_settlement_evm_refund_amount_invalid',
    )
    const before = await h.usdcBalance(payer.address)
    const done = await payee.refund(refund, writer)
    if (!done.ok) throw new Error(done.message)
    expect(done.value.receipt.amount).toBe(5_000_000n - 700n)
    expect(await h.usdcBalance(payer.address)).toBe(before + 5_000_000n - 700n)
    expect(await h.channel(id)).toEqual({ balance: 700n, totalClaimed: 700n })
    expect(done.value.record).toMatchObject({
      balance: 700n,
      totalClaimed: 700n,
      chargedCumulativeAmount: 700n,
      refundNonce: 1n,
    })
    expect(payee.ledger.isHeld(id)).toBe(false)
    expect(await code(payee.refund(refund, writer))).toBe(
      'invalid_batch_settlement_evm_refund_no_balance',
    )
  })
})

async function code(result: Promise<{ ok: boolean; code?: string }>): Promise<string> {
  const r = await result
  return r.ok ? 'ok' : (r.code ?? 'no code')
}
