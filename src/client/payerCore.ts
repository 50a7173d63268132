import { type Address, getAddress, type Hex, type LocalAccount } from 'viem'
import { describe, type Rejection, TollgateError } from '../errors/index.js'
import { parseChannelState } from '../protocol/decodeChannelState.js'
import { parseVoucherState } from '../protocol/decodeVoucherState.js'
import {
  type BatchPayload,
  type ChannelConfig,
  type DecodedSettleResponse,
  MAX_UINT128,
  type Network,
  type PaymentRequired,
  type PaymentRequirements,
  SCHEME,
} from '../protocol/index.js'
import {
  channelId as computeChannelId,
  type DomainSeparator,
  domainSeparatorBytes,
  escrowDomain,
} from '../verify/index.js'
import type { UnacknowledgedCharge } from './createPayer.js'
import type { Journal, PayerChannel } from './journal.js'
import type { KeySigner, keySigner } from './keySigner.js'
import type { PayerChain } from './payerChain.js'
import { isOwnVoucher, signDepositAuthorization, signVoucher } from './signing.js'
import { checkDeposit, checkSpend, type ResolvedLimits, spendHeadroom } from './spendPolicy.js'
import { type PendingPayment, receiptMismatch, verifyReceipt } from './verifyReceipt.js'

/** How a channel is funded when its balance does not cover the next voucher. */
export type DepositMethod = 'erc3009' | 'direct'

/** When and how much a payer deposits into a channel. */
export interface DepositPolicy {
  /**
   * `erc3009` (default over HTTP): a signed ERC-3009 authorization the server submits, gasless for
   * the payer; `direct`: the payer approves and deposits on chain itself and pays the gas. A server
   * that takes no deposit payloads gets a direct deposit instead.
   */
  method?: DepositMethod
  /** Token units deposited each time. @default the larger of `extra.minDeposit` and 100 prices */
  amount?: bigint
  /**
   * The most deposited at once, whatever the server's `extra.minDeposit` asks (a deposit is
   * locked until refunded or withdrawn). @default no cap beyond `amount` and `minDeposit`
   */
  max?: bigint
}

/** How many prices one deposit covers when no amount is configured. */
export const DEFAULT_DEPOSIT_PRICES = 100n

/** How many calls' worth of spend one durable reservation counts ahead, by default. */
export const DEFAULT_RESERVATION_CALLS = 100

/**
 * How long a reservation may be signed under, in milliseconds: its spend is dated at its
 * expiry, so the rolling windows count it up to this long after its last voucher, never less.
 */
export const RESERVATION_TTL_MS = 60_000

/**
 * Spend reservations: one durable record counts the next `calls` payments of a channel against
 * the limits, so they are signed with no flush of their own. A crash forfeits at most the unused
 * part of each channel's open reservation (counted as spent, never signed).
 */
export interface ReservationPolicy {
  /** Prices reserved ahead (1: a flush per payment, as with no reservation). @default 100 */
  readonly calls: number
  /** @default {@link RESERVATION_TTL_MS} */
  readonly ttlMs: number
}

/** Everything a voucher payment needs once the channel is chosen. */
export interface PreparedPayment {
  readonly channel: PayerChannel
  readonly payload: BatchPayload
  readonly pending: PendingPayment
}

/** The state and rules shared by the HTTP and WebSocket sides of a payer. */
export class PayerCore {
  readonly separator: DomainSeparator
  /** The escrow's EIP-712 domain, for signers that sign typed data rather than digests. */
  readonly domain: ReturnType<typeof escrowDomain>
  readonly network: Network
  /**
   * Whether the voucher of a channel's next call is signed while the current call is answered:
   * for a {@link keySigner} authorizer only, whose key is local (signing ahead costs tens of
   * microseconds, never a prompt or a remote call).
   */
  readonly signsAhead: boolean
  private readonly locks = new Map<Hex, Promise<unknown>>()
  /** Origins served by a blocked channel, with the reason: a cheating server is paid no more on any channel. */
  private readonly blockedOrigins = new Map<string, string>()
  private reservationCount = 0
  /**
   * Per channel, the voucher signature of its next call, signed ahead while the current call is
   * answered: in memory only, it leaves the payer through {@link prepare}, after that call's own
   * checks, as a signature made then would.
   */
  private readonly ahead = new Map<Hex, { ceiling: bigint; signature: Promise<Hex> }>()
  private readonly identities = new WeakMap<
    PaymentRequirements,
    { config: ChannelConfig; id: Hex }
  >()

  constructor(
    readonly account: LocalAccount,
    readonly authorizer: LocalAccount,
    readonly chainId: number,
    readonly escrow: Address,
    readonly collector: Address,
    readonly salt: Hex,
    readonly journal: Journal,
    readonly chain: PayerChain,
    readonly limits: ResolvedLimits,
    readonly deposit: DepositPolicy,
    readonly now: () => number,
    /** Tokens this payer pays in (lowercase); empty: any the server names. */
    readonly assets: ReadonlySet<string>,
    readonly reservation: ReservationPolicy,
    private readonly onUnacknowledged?: (event: UnacknowledgedCharge) => void,
  ) {
    this.separator = domainSeparatorBytes({ chainId, verifyingContract: escrow })
    this.domain = escrowDomain(chainId, escrow)
    for (const channel of journal.channels.values()) {
      if (channel.blocked !== undefined)
        for (const o of channel.origins) this.blockedOrigins.set(o, channel.blocked)
    }
    this.network = `eip155:${chainId}`
    this.signsAhead = (authorizer as Partial<KeySigner>).signingBackend !== undefined
  }

  /** The batch-settlement entry of a 402 this payer can pay, if any. */
  select(required: PaymentRequired): PaymentRequirements | undefined {
    return required.accepts.find(
      (a) =>
        a.scheme === SCHEME &&
        a.network === this.network &&
        (this.assets.size === 0 || this.assets.has(a.asset.toLowerCase())),
    )
  }

  /** The channel config this payer uses with the server of `requirements`. */
  configFor(requirements: PaymentRequirements): ChannelConfig {
    return this.identify(requirements).config
  }

  /** The id of the channel this payer uses with the server of `requirements`. */
  channelIdOf(requirements: PaymentRequirements): Hex {
    return this.identify(requirements).id
  }

  /** The channel config and id for `requirements`, computed once per requirements object. */
  private identify(requirements: PaymentRequirements): { config: ChannelConfig; id: Hex } {
    const cached = this.identities.get(requirements)
    if (cached) return cached
    const config = this.buildConfig(requirements)
    const identity = { config, id: computeChannelId(config, this.separator) }
    this.identities.set(requirements, identity)
    return identity
  }

  private buildConfig(requirements: PaymentRequirements): ChannelConfig {
    const extra = requirements.extra ?? {}
    return {
      payer: getAddress(this.account.address),
      payerAuthorizer: getAddress(this.authorizer.address),
      receiver: getAddress(requirements.payTo),
      receiverAuthorizer: getAddress(String(extra.receiverAuthorizer)),
      token: getAddress(requirements.asset),
      withdrawDelay: Number(extra.withdrawDelay),
      salt: this.salt,
    }
  }

  /**
   * The payer's channel with the server of `requirements`, from the journal or, when the
   * journal has none (a new channel, or local state lost), from chain: its balance, and
   * `totalClaimed` as the charged baseline (x402: with no record, the baseline is on chain).
   */
  async channelFor(requirements: PaymentRequirements, origin: string): Promise<PayerChannel> {
    const { config, id } = this.identify(requirements)
    const known = this.journal.channels.get(id)
    if (known) {
      if (known.origins.includes(origin)) return known
      const channel = { ...known, origins: [...known.origins, origin] }
      await this.journal.putChannel(channel, false)
      return channel
    }
    const onChain = await this.chain.readChannel(id)
    const channel: PayerChannel = {
      channelId: id,
      network: this.network,
      escrow: this.escrow,
      config,
      origins: [origin],
      balance: onChain.balance,
      charged: onChain.totalClaimed,
      signed: onChain.totalClaimed,
      withdrawInitiatedAt: onChain.withdrawRequestedAt,
    }
    await this.journal.putChannel(channel, true)
    return channel
  }

  /** Runs `task` alone on a channel: vouchers of one channel are signed and settled in order. */
  async withChannel<T>(id: Hex, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve()
    const run = previous.then(task, task)
    const tail = run.catch(() => undefined)
    this.locks.set(id, tail)
    try {
      return await run
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id)
    }
  }

  /** The channel's current state (call under {@link withChannel}). */
  current(id: Hex): PayerChannel {
    const channel = this.journal.channels.get(id)
    if (!channel)
      throw new TollgateError('tollgate_internal', `channel ${id} is not in the journal.`)
    return channel
  }

  /**
   * Prepares a payment of `price` on a channel, under its lock: refuses a blocked or
   * withdrawing channel, checks the spend limits, deposits when the balance does not cover the
   * new ceiling (a direct deposit now, or an ERC-3009 deposit in the payload), and signs the
   * voucher for `charged + price` (or `ceiling` when given, the credit window of a WebSocket
   * session). A voucher within the channel's open reservation (same origin, not expired) is
   * signed with no durable write; one past it first reserves, durably, its own growth and up to
   * {@link ReservationPolicy.calls} prices more, within what the limits leave. With a
   * {@link keySigner} and no `ceiling`, the voucher at `charged + 2 × price` (the next call's,
   * when this one is charged its price) is signed ahead while this call is answered, and kept in
   * memory until that call's prepare, which sends it only after the same checks.
   *
   * @throws TollgateError `tollgate_payee_blocked`, `tollgate_withdrawal_pending`,
   *   `tollgate_spend_limit` (nothing signed or deposited), or a chain error of a direct deposit.
   */
  async prepare(
    id: Hex,
    requirements: PaymentRequirements,
    origin: string,
    options: { ceiling?: bigint; method?: DepositMethod } = {},
  ): Promise<PreparedPayment> {
    let channel = this.current(id)
    const blocked = channel.blocked ?? this.blockedOrigins.get(origin)
    if (blocked !== undefined) throw new TollgateError('tollgate_payee_blocked', blocked)
    if (channel.withdrawInitiatedAt !== 0) {
      throw new TollgateError('tollgate_withdrawal_pending', `Channel ${id} is being withdrawn.`)
    }
    const price = BigInt(requirements.amount)
    const ceiling = options.ceiling ?? channel.charged + price
    const at = this.now()
    const { reservation } = channel
    const within =
      reservation !== undefined &&
      reservation.origin === origin &&
      at <= reservation.expiresAt &&
      ceiling <= reservation.ceiling
    // Spend is counted as the growth of the highest voucher signed, reserved ahead.
    const increase = within || ceiling <= channel.signed ? 0n : ceiling - channel.signed
    // A reservation that cannot cover this voucher (expired, another origin's, too small) gives
    // back its unused part first: a new one is counted afresh from the highest voucher signed.
    if (increase > 0n && reservation !== undefined) channel = await this.release(channel)
    const verdict = checkSpend(this.limits, this.journal, { origin, price, increase, now: at })
    if (!verdict.ok) raise(verdict)

    let depositAmount: bigint | undefined
    if (ceiling > channel.balance) {
      depositAmount = this.depositAmount(requirements, ceiling - channel.balance)
      const capped = checkDeposit(this.limits, depositAmount)
      if (!capped.ok) raise(capped)
    }
    // Checked and counted with no await in between: another channel's payment checks the limits
    // against this one's count.
    if (increase > 0n) channel = await this.reserve(id, origin, price, increase, ceiling, at)
    else if (ceiling > channel.signed) {
      channel = { ...channel, signed: ceiling }
      this.journal.setChannel(channel)
    }
    if (
      depositAmount !== undefined &&
      (options.method ?? this.deposit.method ?? 'erc3009') === 'direct'
    ) {
      await this.chain.depositDirect(channel.config, depositAmount)
      // Written to the channel as it is now: what was recorded meanwhile (an origin) stays.
      const latest = this.current(id)
      channel = { ...latest, balance: latest.balance + depositAmount }
      await this.journal.putChannel(channel, false)
      depositAmount = undefined
    }
    const signature = await this.voucherSignature(id, ceiling)
    if (this.signsAhead && options.ceiling === undefined && price > 0n)
      this.signAhead(id, ceiling + price)
    const voucher = { channelId: id, maxClaimableAmount: ceiling, signature }
    const pending: PendingPayment = {
      channelId: id,
      network: this.network,
      charged: channel.charged,
      amount: price,
      ...(depositAmount === undefined ? {} : { deposit: depositAmount }),
    }
    if (depositAmount === undefined) {
      return {
        channel,
        pending,
        payload: { type: 'voucher', channelConfig: channel.config, voucher },
      }
    }
    const extra = requirements.extra ?? {}
    const erc3009Authorization = await signDepositAuthorization({
      payer: this.account,
      chainId: this.chainId,
      token: {
        address: channel.config.token,
        name: String(extra.name),
        version: String(extra.version),
      },
      collector: this.collector,
      channelId: id,
      amount: depositAmount,
      validBefore: BigInt(Math.floor(Date.now() / 1000) + requirements.maxTimeoutSeconds),
    })
    return {
      channel,
      pending,
      payload: {
        type: 'deposit',
        channelConfig: channel.config,
        voucher,
        deposit: { amount: depositAmount, erc3009Authorization },
      },
    }
  }

  /** The signature of the voucher `(id, ceiling)`: the one signed ahead for it, or a new one. */
  private async voucherSignature(id: Hex, ceiling: bigint): Promise<Hex> {
    const ahead = this.ahead.get(id)
    this.ahead.delete(id)
    if (ahead?.ceiling === ceiling) {
      const signature = await ahead.signature.catch(() => undefined)
      if (signature !== undefined) return signature
    }
    return signVoucher(this.authorizer, this.separator, this.domain, id, ceiling)
  }

  /**
   * Signs the voucher `(id, ceiling)` ahead, for the channel's next call at the same price, two
   * event-loop turns on: after the current call's request is written and whatever the loop had
   * ready has run (a server in this same process reading that request, say), so the signature is
   * made while the answer is awaited rather than in its way. Not when the channel's highest
   * voucher already reached `ceiling` (its next call came first).
   */
  private signAhead(id: Hex, ceiling: bigint): void {
    setImmediate(() =>
      setImmediate(() => {
        const signed = this.journal.channels.get(id)?.signed
        if (signed === undefined || signed >= ceiling) return
        const signature = signVoucher(this.authorizer, this.separator, this.domain, id, ceiling)
        signature.catch(() => undefined)
        this.ahead.set(id, { ceiling, signature })
      }),
    )
  }

  /**
   * Closes the channel's open reservation, giving back its unused part (counted at the
   * reservation's own date). Needs no flush: a crash before it is on disk forfeits that part.
   * Call under the channel's lock.
   */
  private async release(channel: PayerChannel): Promise<PayerChannel> {
    const { reservation, ...rest } = channel
    if (reservation === undefined) return channel
    const unused = reservation.ceiling - channel.signed
    // Used up, it has nothing to give back: the channel's next line drops it.
    if (unused <= 0n) this.journal.setChannel(rest)
    else {
      const spend = { at: reservation.expiresAt, origin: reservation.origin, amount: -unused }
      await this.journal.putSpends([spend], rest, false)
    }
    return rest
  }

  /**
   * Opens a reservation for a voucher at `ceiling`, `increase` above the highest signed: counts
   * the increase and up to {@link ReservationPolicy.calls} prices more, as far as the limits
   * leave room, dated at the reservation's expiry, so the spend record stays an upper bound of
   * the vouchers signed in every rolling window. Counted at once, flushed to disk before it
   * resolves; the voucher at `ceiling` is set as signed, on the channel as it is now.
   */
  private async reserve(
    id: Hex,
    origin: string,
    price: bigint,
    increase: bigint,
    ceiling: bigint,
    at: number,
  ): Promise<PayerChannel> {
    const wanted = price * BigInt(this.reservation.calls)
    let amount = wanted > increase ? wanted : increase
    const room = spendHeadroom(this.limits, this.journal, origin, at)
    if (room !== undefined && amount > room) amount = room > increase ? room : increase
    const expiresAt = at + this.reservation.ttlMs
    const channel = this.current(id)
    const next: PayerChannel = {
      ...channel,
      signed: ceiling,
      reservation: { origin, ceiling: channel.signed + amount, expiresAt },
    }
    this.reservationCount += 1
    await this.journal.putSpends([{ at: expiresAt, origin, amount }], next, true)
    return next
  }

  /**
   * Gives back the unused part of every open reservation (at close), flushed to disk: the spend
   * record then counts exactly the vouchers signed.
   */
  async releaseReservations(): Promise<void> {
    for (const { channelId, reservation } of [...this.journal.channels.values()]) {
      if (reservation === undefined) continue
      await this.withChannel(channelId, async () => {
        await this.release(this.current(channelId))
      })
    }
    await this.journal.flush()
  }

  /** The unused part of the open reservations, per origin. */
  unusedReservations(): Map<string, bigint> {
    const unused = new Map<string, bigint>()
    for (const { reservation, signed } of this.journal.channels.values()) {
      if (reservation === undefined || reservation.ceiling <= signed) continue
      const left = reservation.ceiling - signed
      unused.set(reservation.origin, (unused.get(reservation.origin) ?? 0n) + left)
    }
    return unused
  }

  /** Reservations opened since this payer started. */
  reservationsOpened(): number {
    return this.reservationCount
  }

  /**
   * Checks a receipt against the pending payment and adopts its figures. A receipt that does
   * not add up blocks the channel for good.
   *
   * @throws TollgateError `tollgate_receipt_mismatch` after blocking the channel.
   */
  async settle(pending: PendingPayment, receipt: DecodedSettleResponse): Promise<PayerChannel> {
    const verified = verifyReceipt(pending, receipt)
    if (!verified.ok) return this.block(pending.channelId, verified)
    const channel = this.current(pending.channelId)
    const balance =
      verified.value.balance ??
      (pending.deposit !== undefined
        ? channel.balance + (receipt.amount ?? pending.deposit)
        : channel.balance)
    const next = { ...channel, charged: verified.value.charged, balance }
    await this.journal.putChannel(next, false)
    return next
  }

  /**
   * Adopts the server's figure from a corrective 402 (`cumulative_amount_mismatch`), after
   * checking it: with a `voucherState`, its signature must be this payer's own voucher for
   * `signedMaxClaimable` and the charge must not exceed it; without one, the charge must be the
   * channel's `totalClaimed` on chain (the server's baseline with no voucher).
   *
   * @throws TollgateError `tollgate_receipt_mismatch` after blocking the channel when the figure
   *   cannot be verified.
   */
  async adoptCorrective(id: Hex, required: PaymentRequired): Promise<PayerChannel> {
    const entry = required.accepts.find((a) => {
      const state = parseChannelState(a.extra?.channelState)
      return a.scheme === SCHEME && state?.channelId?.toLowerCase() === id.toLowerCase()
    })
    const state = parseChannelState(entry?.extra?.channelState)
    const charged = state?.chargedCumulativeAmount
    if (state === undefined || charged === undefined) {
      return this.block(
        id,
        receiptMismatch('the corrective 402 carries no channelState for this channel.'),
      )
    }
    const channel = this.current(id)
    const voucher = parseVoucherState(entry?.extra?.voucherState)
    let signed = channel.signed
    let balance = state.balance ?? channel.balance
    if (voucher?.signature !== undefined && voucher.signedMaxClaimable !== undefined) {
      const own = await isOwnVoucher(
        this.authorizer.address,
        this.separator,
        id,
        voucher.signedMaxClaimable,
        voucher.signature,
      )
      if (!own)
        return this.block(id, receiptMismatch('the voucher it shows is not signed by this payer.'))
      if (charged > voucher.signedMaxClaimable) {
        return this.block(
          id,
          receiptMismatch(
            `it claims ${charged} charged, above its voucher's ${voucher.signedMaxClaimable}.`,
          ),
        )
      }
      if (voucher.signedMaxClaimable > signed) signed = voucher.signedMaxClaimable
    } else {
      const onChain = await this.chain.readChannel(id)
      if (charged !== onChain.totalClaimed) {
        return this.block(
          id,
          receiptMismatch(
            `it claims ${charged} charged with no voucher, but ${onChain.totalClaimed} is claimed on chain.`,
          ),
        )
      }
      balance = onChain.balance
    }
    const next = { ...this.current(id), charged, signed, balance }
    await this.journal.putChannel(next, true)
    if (charged > channel.charged) {
      this.onUnacknowledged?.({ channelId: id, acknowledged: channel.charged, charged })
    }
    return next
  }

  /** Re-reads a channel's balance from chain (after the server said the voucher exceeds it). */
  async refreshBalance(id: Hex): Promise<PayerChannel> {
    const onChain = await this.chain.readChannel(id)
    const next = {
      ...this.current(id),
      balance: onChain.balance,
      withdrawInitiatedAt: onChain.withdrawRequestedAt,
    }
    await this.journal.putChannel(next, true)
    return next
  }

  /** Blocks a channel for good (persisted), then throws the rejection. */
  async block(id: Hex, rejection: Rejection): Promise<never> {
    const channel = this.current(id)
    for (const origin of channel.origins) this.blockedOrigins.set(origin, rejection.message)
    await this.journal.putChannel({ ...channel, blocked: rejection.message }, true)
    raise(rejection)
  }

  private depositAmount(requirements: PaymentRequirements, shortfall: bigint): bigint {
    const price = BigInt(requirements.amount)
    const minDeposit = requirements.extra?.minDeposit
    let amount = this.deposit.amount ?? price * DEFAULT_DEPOSIT_PRICES
    if (
      typeof minDeposit === 'string' &&
      /^[0-9]+$/.test(minDeposit) &&
      BigInt(minDeposit) > amount
    ) {
      amount = BigInt(minDeposit)
    }
    if (this.deposit.max !== undefined && amount > this.deposit.max) amount = this.deposit.max
    const { maxDeposit } = this.limits
    if (maxDeposit !== undefined && amount > maxDeposit) amount = maxDeposit
    if (amount < shortfall) amount = shortfall
    if (
      typeof minDeposit === 'string' &&
      /^[0-9]+$/.test(minDeposit) &&
      amount < BigInt(minDeposit)
    ) {
      // The server refuses smaller deposits before sending them: nothing is signed for one.
      throw new TollgateError(
        'tollgate_spend_limit',
        `the server asks deposits of at least ${minDeposit} token units, above this payer's deposit cap of ${amount}`,
      )
    }
    if (amount > MAX_UINT128)
      throw new TollgateError('tollgate_invalid_config', 'deposit amount is above uint128.')
    return amount
  }
}

/** Throws a rejection as a {@link TollgateError} with the same code. */
function raise(rejection: Rejection): never {
  const prefix = `${describe(rejection.code)} `
  const detail = rejection.message.startsWith(prefix)
    ? rejection.message.slice(prefix.length)
    : undefined
  throw new TollgateError(rejection.code, detail)
}
