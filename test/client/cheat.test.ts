/**
 * Servers that cheat: a real socket serving tollgate's own 402 for `/joke`, then answering the
 * payment with a receipt or a corrective 402 that does not add up. The payer detects it, with a
 * stable code, and pays that server no more.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Hex, LocalAccount } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import {
  decodePaymentHeader,
  encodeHeader,
  type PaymentRequired,
  type SettleResponse,
} from '../../src/protocol/index.js'
import { useDevChain } from '../helpers/devChain.js'
import { randomAccount } from '../helpers/escrow.js'
import { fundedAccount, PRICE, payerOn, startServer, type TestServer, tempDir } from './fixtures.js'

const dev = useDevChain()
const [receiver, authorizer] = [dev.accounts[1], dev.accounts[4]] as [LocalAccount, LocalAccount]

let honest: TestServer
let required: string
let revert: () => Promise<void>
const cleanups: (() => void | Promise<void>)[] = []

beforeAll(async () => {
  revert = await dev.snapshot()
  honest = await startServer(dev, receiver, authorizer)
  required = (await fetch(`${honest.base}/joke`)).headers.get('payment-required') ?? ''
})

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup()
  await honest?.stop()
  await revert?.()
})

type Answer = (payment: { channelId: Hex; max: bigint; signature: Hex; deposit?: bigint }) => {
  status: number
  headers: Record<string, string>
}

/** A server that sends tollgate's 402 unpaid, and `answer` to any payment; counts requests. */
async function cheater(answer: Answer): Promise<{ base: string; requests: () => number }> {
  let requests = 0
  const server: Server = createServer((request, response) => {
    requests += 1
    const header = request.headers['payment-signature']
    if (typeof header !== 'string') {
      response.writeHead(402, { 'payment-required': required }).end('{}')
      return
    }
    const decoded = decodePaymentHeader(header)
    if (!decoded.ok) throw new Error(decoded.message)
    const { payload } = decoded.value
    const { status, headers } = answer({
      channelId: payload.voucher.channelId,
      max: payload.voucher.maxClaimableAmount,
      signature: payload.voucher.signature,
      ...(payload.type === 'deposit' ? { deposit: payload.deposit.amount } : {}),
    })
    response.writeHead(status, headers).end('{"joke":"maybe"}')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(async () => {
    server.close()
    server.closeAllConnections()
  })
  const { port } = server.address() as AddressInfo
  return { base: `http://127.0.0.1:${port}`, requests: () => requests }
}

function receipt(channelId: Hex, chargedAmount: bigint, cumulative: bigint, deposit?: bigint) {
  const response: SettleResponse = {
    success: true,
    transaction: deposit === undefined ? '' : `0x${'ab'.repeat(32)}`,
    network: `eip155:${dev.chainId}`,
    amount: deposit === undefined ? '' : deposit.toString(),
    extra: {
      chargedAmount: chargedAmount.toString(),
      channelState: { channelId, chargedCumulativeAmount: cumulative.toString() },
    },
  }
  return { status: 200, headers: { 'payment-response': encodeHeader(response) } }
}

async function payer(extra: Partial<Parameters<typeof payerOn>[1]> = {}) {
  const temp = tempDir()
  cleanups.push(temp.remove)
  const account = await fundedAccount(dev, 1_000_000n)
  const open = () => payerOn(dev, { account, dataDir: temp.dir, ...extra })
  return Object.assign(await open(), { reopen: open })
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    if (err instanceof TollgateError) return err.code
    throw err
  }
  throw new Error('expected a TollgateError')
}

describe('a server that cheats', () => {
  const cases: [string, Answer][] = [
    [
      'charges more than the ceiling signed for',
      ({ channelId, deposit }) => receipt(channelId, 2n * PRICE, 2n * PRICE, deposit),
    ],
    [
      'reports a cumulative charge that does not add up',
      ({ channelId, deposit }) => receipt(channelId, PRICE, 5n * PRICE, deposit),
    ],
    [
      'sends a receipt for another channel',
      ({ deposit }) => receipt(`0x${'11'.repeat(32)}`, PRICE, PRICE, deposit),
    ],
  ]
  for (const [what, answer] of cases) {
    it(`is detected when it ${what}, and is paid no more`, async () => {
      const server = await cheater(answer)
      const p = await payer()
      expect(await codeOf(p.fetch(`${server.base}/joke`))).toBe('tollgate_receipt_mismatch')
      const seen = server.requests()
      expect(await codeOf(p.fetch(`${server.base}/joke`))).toBe('tollgate_payee_blocked')
      expect(server.requests()).toBe(seen)
      const [channel] = await p.channels()
      expect(channel?.blocked).toMatch(/does not add up/)
      await p.close()
      // The block is in the journal: after a restart the server is still paid nothing.
      const restarted = await p.reopen()
      expect(await codeOf(restarted.fetch(`${server.base}/joke`))).toBe('tollgate_payee_blocked')
      await restarted.close()
    })
  }

  it('is detected when its corrective 402 shows a voucher the payer never signed', async () => {
    const forger = randomAccount() as LocalAccount
    const server = await cheater(({ channelId }) => {
      const body = JSON.parse(Buffer.from(required, 'base64').toString()) as PaymentRequired
      const [accepted] = body.accepts
      if (!accepted) throw new Error('no requirements')
      const corrective: PaymentRequired = {
        ...body,
        error: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        accepts: [
          {
            ...accepted,
            extra: {
              ...accepted.extra,
              channelState: {
                channelId,
                balance: '100000000',
                totalClaimed: '0',
                withdrawRequestedAt: 0,
                refundNonce: '0',
                chargedCumulativeAmount: '90000000',
              },
              voucherState: { signedMaxClaimable: '90000000', signature: forged },
            },
          },
        ],
      }
      return { status: 402, headers: { 'payment-required': encodeHeader(corrective) } }
    })
    const forged = await dev.harness.signVoucher(forger, `0x${'00'.repeat(32)}`, 90_000_000n)
    const p = await payer()
    expect(await codeOf(p.fetch(`${server.base}/joke`))).toBe('tollgate_receipt_mismatch')
    expect(await codeOf(p.fetch(`${server.base}/joke`))).toBe('tollgate_payee_blocked')
    const [channel] = await p.channels()
    expect(channel).toMatchObject({ charged: 0n })
    expect(channel?.blocked).toMatch(/not signed by this payer/)
    await p.close()
  })
})

describe('a server that restarted with a request of this payer in flight', () => {
  it('is paid on, and the payer is told what was charged beyond its receipts', async () => {
    let calls = 0
    const server = await cheater(({ channelId, max, signature, deposit }) => {
      calls += 1
      if (calls > 1) return receipt(channelId, PRICE, 2n * PRICE, deposit)
      // The answer to the first payment was lost in the crash; after the restart the server
      // charges what was in flight: the payer's own voucher for it.
      const body = JSON.parse(Buffer.from(required, 'base64').toString()) as PaymentRequired
      const [accepted] = body.accepts
      if (!accepted) throw new Error('no requirements')
      const corrective: PaymentRequired = {
        ...body,
        error: 'invalid_batch_settlement_evm_cumulative_amount_mismatch',
        accepts: [
          {
            ...accepted,
            extra: {
              ...accepted.extra,
              channelState: {
                channelId,
                balance: '1000000',
                totalClaimed: '0',
                withdrawRequestedAt: 0,
                refundNonce: '0',
                chargedCumulativeAmount: max.toString(),
              },
              voucherState: { signedMaxClaimable: max.toString(), signature },
            },
          },
        ],
      }
      return { status: 402, headers: { 'payment-required': encodeHeader(corrective) } }
    })
    const reported: unknown[] = []
    const p = await payer({ onUnacknowledgedCharge: (event) => reported.push(event) })
    const response = await p.fetch(`${server.base}/joke`)
    expect(response.status).toBe(200)
    const [channel] = await p.channels()
    expect(reported).toEqual([{ channelId: channel?.channelId, acknowledged: 0n, charged: PRICE }])
    expect(channel).toMatchObject({ charged: 2n * PRICE })
    await p.close()
  })
})
