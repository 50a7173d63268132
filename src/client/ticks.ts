import { randomBytes } from 'node:crypto'
import type { Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import {
  decodeSettleResponse,
  encodeHeader,
  HEADERS,
  type PaymentPayload,
  type PaymentRequirements,
} from '../protocol/index.js'
import {
  encodeTickHeader,
  encodeTickWindowHeader,
  MAX_TICKS,
  parseTickReceipt,
  TICK_HEADERS,
  TICK_WINDOW_TYPES,
  tickCommitmentDigest,
  tickDomain,
  tickDomainSeparator,
  tickLink,
} from '../protocol/tickWire.js'
import { bytesToHex } from '../verify/index.js'
import { paymentRequiredOf, unreceiptedAttempt } from './httpAnswer.js'
import type { PayerCore } from './payerCore.js'
import { type Attempt, payRequirements } from './payRequirements.js'
import { receiptMismatch } from './verifyReceipt.js'

/** Options of a payer's ticks ({@link PayerOptions.ticks}). */
export interface TickOptions {
  /** The most calls one window covers, whatever the server offers. @default DEFAULT_MAX_TICKS */
  maxTicks?: number
}

/** Calls one window of this payer covers at most unless {@link TickOptions.maxTicks} says otherwise. */
export const DEFAULT_MAX_TICKS = 1000

/** A request made replayable, as the payer's fetch reads it. */
export interface TickOutgoing {
  readonly url: URL
  readonly method: string
  readonly headers: Headers
  readonly init: RequestInit
}

/** The payer's side of an open window: the chain, and which index comes next. */
interface PayerWindow {
  /** w_0 … w_(ticks-1); w_(i-1) = keccak256(w_i). */
  readonly chain: readonly Uint8Array[]
  readonly ticks: number
  readonly price: bigint
  /** The window's voucher ceiling: no receipt may go past it. */
  readonly ceiling: bigint
  /** The index the next call presents. */
  next: number
  /** The last index whose receipt was checked (0: the opening call). */
  confirmed: number
}

/**
 * Ticks on the payer's side (src/transports/http/PROTOCOL.md): on a route whose requirements
 * offer `extra.tickWindow`, a call opens a window with one voucher for the window's full amount
 * (counted against the spend limits when it is signed) and a signed commitment to a fresh hash
 * chain; each later call presents the next preimage. A window that ended on the server (used up,
 * idle, a restart) is replaced by a new voucher window; a call whose response was lost is
 * recovered by the next, whose receipt shows what the server charged.
 */
export class TickPayer {
  private readonly windows = new Map<Hex, PayerWindow>()
  private readonly separator: Uint8Array
  private readonly maxTicks: number

  constructor(
    private readonly core: PayerCore,
    private readonly send: typeof fetch,
    options: TickOptions = {},
  ) {
    const maxTicks = options.maxTicks ?? DEFAULT_MAX_TICKS
    if (!Number.isSafeInteger(maxTicks) || maxTicks < 2 || maxTicks > MAX_TICKS) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `ticks.maxTicks must be an integer in [2, ${MAX_TICKS}].`,
      )
    }
    this.maxTicks = maxTicks
    this.separator = tickDomainSeparator(core.chainId, core.escrow)
  }

  /** The calls a window of `requirements` covers, when the server offers ticks there. */
  offered(requirements: PaymentRequirements): number | undefined {
    const window = requirements.extra?.tickWindow
    if (typeof window !== 'number' || !Number.isSafeInteger(window) || window < 2) return undefined
    return Math.min(window, this.maxTicks)
  }

  /** Pays one call of a tick route: a tick of the open window, else a new window. */
  async pay(
    out: TickOutgoing,
    requirements: PaymentRequirements,
    hooks: {
      onChannel(id: Hex): Promise<void>
      remember(requirements: PaymentRequirements): void
    },
  ): Promise<Response> {
    const origin = out.url.origin
    const channel = await this.core.channelFor(requirements, origin)
    const id = channel.channelId
    const ticked = await this.core.withChannel(id, () => this.tick(id, out, requirements))
    if (ticked) return ticked
    return payRequirements(this.core, requirements, origin, {
      onChannel: hooks.onChannel,
      remember: hooks.remember,
      ceiling: (current, offered) =>
        current.charged + BigInt(this.offered(offered) ?? 1) * BigInt(offered.amount),
      attempt: (payment) => this.open(out, payment),
    })
  }

  /** Sends a window's opening call: the voucher and, when the route offers ticks, a new chain's commitment. */
  private async open(out: TickOutgoing, payment: PaymentPayload): Promise<Attempt<Response>> {
    const headers = new Headers(out.headers)
    headers.set(HEADERS.paymentSignature, encodeHeader(payment))
    // The wire payload: amounts are decimal strings.
    const wire = payment.payload as { voucher: { channelId: Hex; maxClaimableAmount: string } }
    const voucher = {
      channelId: wire.voucher.channelId,
      maxClaimableAmount: BigInt(wire.voucher.maxClaimableAmount),
    }
    const ticks = this.offered(payment.accepted)
    const price = BigInt(payment.accepted.amount)
    const window = ticks === undefined ? undefined : await this.commit(voucher, price, ticks)
    if (window) headers.set(TICK_HEADERS.window, window.header)
    this.windows.delete(voucher.channelId)
    const response = await this.send(out.url, { ...out.init, method: out.method, headers })
    const receiptHeader = response.headers.get(HEADERS.paymentResponse)
    if (response.status < 400 && receiptHeader !== null) {
      const receipt = decodeSettleResponse(receiptHeader)
      if (window && receipt.ok && tickIndexOf(receipt.value.response.extra) === 0) {
        this.windows.set(voucher.channelId, window.state)
      }
      return { kind: 'receipt', receipt, answer: response }
    }
    return unreceiptedAttempt(response)
  }

  /** A fresh chain for a window of `ticks` calls under the voucher, and its signed commitment. */
  private async commit(
    voucher: { channelId: Hex; maxClaimableAmount: bigint },
    price: bigint,
    ticks: number,
  ): Promise<{ state: PayerWindow; header: string }> {
    const chain = new Array<Uint8Array>(ticks)
    chain[ticks - 1] = new Uint8Array(randomBytes(32))
    for (let i = ticks - 1; i > 0; i--) chain[i - 1] = tickLink(chain[i] as Uint8Array)
    const root = bytesToHex(chain[0] as Uint8Array)
    const message = {
      channelId: voucher.channelId,
      maxClaimableAmount: voucher.maxClaimableAmount,
      price,
      ticks,
      root,
    }
    const digest = tickCommitmentDigest(this.separator, message)
    if (!digest)
      throw new TollgateError('tollgate_internal', 'the tick commitment is out of range.')
    const signer = this.core.authorizer
    const signature = signer.sign
      ? await signer.sign({ hash: bytesToHex(digest) })
      : await signer.signTypedData({
          domain: tickDomain(this.core.chainId, this.core.escrow),
          types: TICK_WINDOW_TYPES,
          primaryType: 'TickWindow',
          message,
        })
    return {
      state: { chain, ticks, price, ceiling: voucher.maxClaimableAmount, next: 1, confirmed: 0 },
      header: encodeTickWindowHeader({ ticks, root, signature }),
    }
  }

  /**
   * One tick of the channel's open window (under the channel's lock), or undefined when there is
   * none left to use: the caller opens a new window.
   */
  private async tick(
    id: Hex,
    out: TickOutgoing,
    requirements: PaymentRequirements,
  ): Promise<Response | undefined> {
    const window = this.windows.get(id)
    if (!window) return undefined
    if (window.price !== BigInt(requirements.amount) || this.core.current(id).blocked) {
      this.windows.delete(id)
      return undefined
    }
    for (let round = 1; ; round++) {
      const index = window.next
      if (index >= window.ticks) {
        this.windows.delete(id)
        return undefined
      }
      const headers = new Headers(out.headers)
      headers.set(TICK_HEADERS.tick, encodeTickHeader(id, index, window.chain[index] as Uint8Array))
      let response: Response
      try {
        response = await this.send(out.url, { ...out.init, method: out.method, headers })
      } catch (err) {
        // The server may have served and charged it: the next call presents the next preimage,
        // and its receipt (or the index the server expects) tells.
        window.next = index + 1
        throw err
      }
      const receiptHeader = response.headers.get(TICK_HEADERS.receipt)
      if (response.status < 400 && receiptHeader !== null) {
        await this.settle(id, window, index, receiptHeader)
        return response
      }
      if (response.status !== 402) return response
      const error = paymentRequiredOf(response)?.error
      const expected = Number(response.headers.get(TICK_HEADERS.expected) ?? Number.NaN)
      if (
        error === 'tollgate_tick_invalid' &&
        round === 1 &&
        Number.isSafeInteger(expected) &&
        expected > window.confirmed &&
        expected < window.ticks &&
        expected !== index
      ) {
        await response.body?.cancel()
        window.next = expected
        continue
      }
      if (error === 'tollgate_tick_invalid' || error === 'tollgate_tick_window_ended') {
        await response.body?.cancel()
        this.windows.delete(id)
        return undefined
      }
      return response
    }
  }

  /**
   * Checks a tick's receipt and adopts its charged total. Ticks between the last checked one and
   * `index` had their responses lost: the server consumed them (the chain allows no skipping), so
   * each may have been charged up to the price. Anything else blocks the channel.
   */
  private async settle(id: Hex, window: PayerWindow, index: number, header: string): Promise<void> {
    const parsed = parseTickReceipt(header)
    if (!parsed.ok) await this.core.block(id, parsed)
    const receipt = parsed.ok ? parsed.value : undefined
    const channel = this.core.current(id)
    const cumulative = receipt?.chargedCumulativeAmount ?? 0n
    const charged = receipt?.chargedAmount ?? 0n
    const unseen = BigInt(index - 1 - window.confirmed) * window.price
    const problem =
      receipt?.channelId !== id.toLowerCase()
        ? `the receipt is for channel ${receipt?.channelId}.`
        : receipt.index !== index
          ? `the receipt does not name tick ${index}.`
          : charged > window.price
            ? `it charged ${charged}, above the price ${window.price}.`
            : cumulative - channel.charged - charged < 0n ||
                cumulative - channel.charged - charged > unseen ||
                cumulative > window.ceiling
              ? `its cumulative charge ${cumulative} is not ${channel.charged} + ${charged} (+ at most ${unseen} for unacknowledged ticks), within ${window.ceiling}.`
              : undefined
    if (problem !== undefined) {
      await this.core.block(id, receiptMismatch(problem))
      return
    }
    await this.core.journal.putChannel({ ...channel, charged: cumulative }, false)
    window.confirmed = index
    window.next = index + 1
    if (window.next >= window.ticks) this.windows.delete(id)
  }
}

/** The index a receipt's `extra.tick` names, if any. */
function tickIndexOf(extra: Record<string, unknown> | undefined): number | undefined {
  const tick = extra?.tick as { index?: unknown } | undefined
  return typeof tick?.index === 'number' ? tick.index : undefined
}
