import { randomUUID } from 'node:crypto'
import type { Address, Hex } from 'viem'
import type { EscrowReceipt, EscrowWriter } from '../chain/escrowWriter.js'
import type { ChannelReader } from '../chain/readChannel.js'
import { accept, type ErrorCode, type Result, reject, TollgateError } from '../errors/index.js'
import {
  type ChainEvent,
  type ChannelRecord,
  type ClaimCandidate,
  checkVoucher,
  type Hold,
  Ledger,
  type OnChainChannel,
  recordFromChain,
  recoverInFlight,
  type ServerIdentity,
  sameConfig,
  type VoucherPayment,
  type VoucherRule,
} from '../ledger/index.js'
import type { DepositPayload, RefundPayload } from '../protocol/types.js'
import type { ChannelStore } from '../store/index.js'
import {
  type HoldOutcome,
  isSharedLedger,
  type PayerLimit,
  type SharedLedger,
} from '../store/redis/sharedLedger.js'
import {
  type BackendPreference,
  type ContractSignatureCheck,
  channelId,
  claimableSignature,
  createVoucherVerifier,
  domainSeparator,
  loadBackend,
} from '../verify/index.js'
import { type Admission, admission, type PaidRoute, type VoucherCarrying } from './admit.js'
import {
  type ActionLimit,
  DEFAULT_CONTRACT_CHECKS,
  OnChainGuard,
  type OnChainLimits,
  WindowCounter,
} from './onChainGuard.js'

export interface PayeeOptions {
  /** The chain and escrow the channels live on (their EIP-712 domain). */
  chainId: number
  escrow: Address
  /** This server's channel fields (receiver, receiver authorizer, token, withdraw delay). */
  identity: ServerIdentity
  /** Where vouchers are kept; reloaded on open. */
  store: ChannelStore
  /** Reads a channel seen for the first time from chain. */
  readChannel: ChannelReader
  /** @default 'auto' (native libsecp256k1, else the JS fallback, reported through `onWarning`) */
  backend?: BackendPreference
  contractSignatureCheck?: ContractSignatureCheck
  /** @default DEFAULT_EXPOSURE_CAP */
  exposureCap?: bigint
  /** A channel needs a claim soon (exposure cap hit, withdrawal started). */
  onClaimNeeded?: (record: ChannelRecord) => void
  /** Something the operator must know that did not stop the server (slow fallback, write-behind failure). */
  onWarning?: (message: string, cause?: unknown) => void
  /** @default Date.now */
  now?: () => number
  /** What payers may make the server send on chain at its expense. @default DEFAULT_ONCHAIN_LIMITS */
  onChainLimits?: OnChainLimits
  /**
   * Vouchers of one contract payer (EIP-1271) checked per window, each an RPC call; past it they
   * are refused with `tollgate_rate_limited`. `false`: no limit. @default DEFAULT_CONTRACT_CHECKS
   */
  contractChecks?: ActionLimit | false
  /**
   * With a shared store (Redis): how long a hold lasts unless renewed (a WebSocket session renews
   * its own); past it, its instance is taken to have died and what it had in flight is charged.
   * @default DEFAULT_HOLD_TTL_MS
   */
  holdTtlMs?: number
}

/** A request's hold on a channel in a shared store lasts 30 s unless renewed. */
export const DEFAULT_HOLD_TTL_MS = 30_000

/** What a deposit (or refund) payload came with besides itself. */
export interface DepositOptions {
  /** The route's `extra.minDeposit`: a smaller deposit is refused before anything is sent. */
  readonly minDeposit?: bigint | undefined
  /** Who asked (the client IP over HTTP), for the per-requester on-chain limit. */
  readonly requester?: string | undefined
}

/** The durable cover of a held WebSocket session: how far its charges may go. */
interface Cover {
  /** The in-flight amount of the last record known to be on disk. */
  durable: bigint
  /** How much a refill reserves beyond the charged total. */
  readonly reserve: bigint
  /** The refill being written, if any. */
  writing: Promise<void> | undefined
  /** With a shared store: renews the session's hold while it lasts. */
  keepAlive?: NodeJS.Timeout
}

/** What {@link Payee.decide} answers: a held channel, or a rejection with its stable code. */
export type Decision =
  | { readonly ok: true; readonly hold: Hold }
  | {
      readonly ok: false
      readonly code: ErrorCode
      readonly message: string
      /** The channel as the server holds it, for a corrective 402. */
      readonly record?: ChannelRecord
      /** Seconds until a rate limit that refused the payment lets it through. */
      readonly retryAfter?: number
    }

/** A decision on a `deposit` payload, with the deposit's receipt once it landed on chain. */
export type DepositDecision = Decision & { readonly deposit?: EscrowReceipt }

/** A cooperative refund that landed: its receipt and the channel after it. */
export interface RefundOutcome {
  readonly receipt: EscrowReceipt
  readonly record: ChannelRecord
}

/** What {@link openPayee} found in the store. */
export interface Recovery {
  readonly channels: number
  /** The previous process stopped without closing the store. */
  readonly fromCrash: boolean
  /** Channels whose in-flight amount was charged (see {@link ChannelRecord.inFlightCumulativeAmount}). */
  readonly corrected: number
}

/**
 * Messages (or WebSocket requests) of a session that may be delivered ahead of a durable record:
 * the charged total is written behind every half of it, and a session waits for that write
 * before it goes past it. After a crash a payer is charged at most this many messages beyond
 * what was delivered.
 */
export const DEFAULT_PERSIST_EVERY_MESSAGES = 64

/** The store's metadata key holding the identity whose channels the store keeps. */
const IDENTITY_META = 'identity'

/**
 * The payee core: the one small API the transports and settlement build on. It joins the pure
 * ledger to a store and a chain reader (both injected), and keeps DESIGN.md invariant #2: a
 * voucher is stored before {@link decide} returns the hold that lets the caller serve.
 */
export class Payee {
  readonly ledger: Ledger
  /** The channel fields this payee accepts (receiver, receiver authorizer, token, withdraw delay). */
  readonly identity: ServerIdentity
  readonly chainId: number
  readonly escrow: Address
  readonly domainSeparator: Hex
  /** The ECDSA backend in use: `native` or `js`. */
  readonly backend: string
  readonly recovery: Recovery
  private readonly store: ChannelStore
  private readonly readChannel: ChannelReader
  private readonly firstSight = new Map<Hex, Promise<Decision | undefined>>()
  private readonly balanceReads = new Map<Hex, Promise<boolean>>()
  private readonly covers = new Map<Hex, Cover>()
  /**
   * Channels whose stored record is the one written when their last request was admitted: it
   * holds that request's charge in flight, so the crash rule ({@link recoverInFlight}) reloads it
   * as charged, and the commit was not written again. {@link close} writes their records.
   */
  private readonly committedInFlight = new Set<Hex>()
  private readonly guard: OnChainGuard
  private readonly contractChecks: WindowCounter | undefined
  private readonly warn: (message: string, cause?: unknown) => void
  private readonly now: () => number
  /** The store every instance shares, which decides each hold (src/store/redis); none for a local store. */
  private readonly shared: SharedLedger | undefined
  /** Holders of this process's holds in the shared store, by channel. */
  private readonly holders = new Map<Hex, string>()
  /** Ends of this process's holds the shared store has not acknowledged yet, by channel. */
  private readonly ending = new Map<Hex, Promise<void>>()
  private readonly instanceId = randomUUID()
  private holdCount = 0
  private readonly holdTtlMs: number
  private readonly onClaimNeeded: (record: ChannelRecord) => void

  private constructor(options: PayeeOptions, ledger: Ledger, backend: string, recovery: Recovery) {
    this.ledger = ledger
    this.identity = ledger.identity
    this.chainId = options.chainId
    this.escrow = options.escrow
    this.backend = backend
    this.recovery = recovery
    this.store = options.store
    this.readChannel = options.readChannel
    this.domainSeparator = domainSeparator({
      chainId: options.chainId,
      verifyingContract: options.escrow,
    })
    this.warn = options.onWarning ?? (() => {})
    this.now = options.now ?? Date.now
    this.guard = new OnChainGuard(options.onChainLimits, this.now)
    const checks = options.contractChecks ?? DEFAULT_CONTRACT_CHECKS
    this.contractChecks = checks ? new WindowCounter(checks) : undefined
    this.shared = isSharedLedger(options.store) ? options.store : undefined
    this.holdTtlMs = options.holdTtlMs ?? this.shared?.holdTtlMs ?? DEFAULT_HOLD_TTL_MS
    this.onClaimNeeded = options.onClaimNeeded ?? (() => {})
  }

  /** Opens the payee: picks the ECDSA backend and reloads every channel from the store. */
  static async open(options: PayeeOptions): Promise<Payee> {
    const warn = options.onWarning ?? (() => {})
    const { backend, fallbackReason } = loadBackend(options.backend ?? 'auto')
    if (fallbackReason) warn(`voucher signatures use the slow JS fallback: ${fallbackReason}`)
    const separator = domainSeparator({
      chainId: options.chainId,
      verifyingContract: options.escrow,
    })
    const ledger = new Ledger({
      identity: options.identity,
      verifier: createVoucherVerifier({ backend, domainSeparator: separator }),
      ...(options.contractSignatureCheck
        ? { contractSignatureCheck: options.contractSignatureCheck }
        : {}),
      ...(options.exposureCap !== undefined ? { exposureCap: options.exposureCap } : {}),
      ...(options.onClaimNeeded ? { onClaimNeeded: options.onClaimNeeded } : {}),
      ...(options.now ? { now: options.now } : {}),
    })
    const { store } = options
    const fromCrash = store.recoveredFromCrash
    const stored = await store.loadAll()
    const identity = identityOf(options)
    const refused = checkStoredIdentity(await store.getMeta(IDENTITY_META), identity, stored)
    if (refused) throw new TollgateError('tollgate_identity_mismatch', refused)
    const corrected: ChannelRecord[] = []
    const shared = isSharedLedger(store)
    for (const record of stored) {
      // A shared store applies the crash rule itself, when a dead instance's hold expires.
      if (shared) {
        ledger.mirror(record)
        continue
      }
      const opened = recoverInFlight(record)
      if (opened !== record) corrected.push(opened)
      ledger.open(opened)
    }
    // Written back at once, so that a later clean close cannot hide what was in flight.
    await Promise.all(corrected.map((record) => store.put(record)))
    const bound = JSON.stringify(identity)
    if ((await store.getMeta(IDENTITY_META)) !== bound) await store.putMeta(IDENTITY_META, bound)
    if (corrected.length > 0 || fromCrash) {
      warn(
        `the store was not closed cleanly: ${stored.length} channels reloaded, ${corrected.length} charged what they had in flight`,
      )
    }
    const channels = stored.length
    return new Payee(options, ledger, backend.name, {
      channels,
      fromCrash,
      corrected: corrected.length,
    })
  }

  /**
   * Decides a voucher for one request (rule `exact`) or a WebSocket session (rule `credit`). On
   * `ok`, the voucher is durable and the channel is held: serve, then {@link commit} or
   * {@link release}. A channel seen for the first time is read from chain once.
   */
  async decide(
    payment: VoucherPayment,
    rule: VoucherRule,
    payerLimit?: Omit<PayerLimit, 'payer'>,
  ): Promise<Decision> {
    const limited = this.contractCheckLimited(payment.channelConfig)
    if (limited) return limited
    if (this.shared) return this.decideShared(this.shared, payment, rule, payerLimit)
    let result = await this.ledger.begin(payment, rule)
    if (!result.ok && result.unknownChannel) {
      const refused = await this.openFromChain(payment)
      if (refused) return refused
      result = await this.ledger.begin(payment, rule)
    }
    if (!result.ok && result.code === EXCEEDS_BALANCE && result.signed) {
      if (await this.refreshBalance(payment.voucher.channelId)) {
        result = await this.ledger.begin(payment, rule)
      }
    }
    if (!result.ok) return result
    try {
      await this.store.put(result.hold.record)
    } catch (err) {
      this.ledger.release(result.hold)
      return reject('tollgate_store_failed', err instanceof Error ? err.message : String(err))
    }
    this.committedInFlight.delete(result.hold.channelId)
    if (rule.kind === 'credit') {
      this.covers.set(result.hold.channelId, {
        durable: result.hold.record.inFlightCumulativeAmount,
        reserve: rule.reserve ?? result.hold.record.signedMaxClaimable,
        writing: undefined,
      })
    }
    return result
  }

  /**
   * The one question every adapter asks of a payment it screened ({@link screenPayment}): a
   * `voucher` payload (a `deposit` one too, given the escrow writer that sends it), or a credit
   * top-up on the session's `held` channel. Adapters switch on the answer; no money rule lives in
   * them.
   */
  async admit(
    route: PaidRoute,
    payload: VoucherCarrying,
    options: {
      readonly writer?: EscrowWriter | undefined
      readonly held?: Hold | undefined
      readonly requester?: string | undefined
      /**
       * The per-payer rate limit, for a shared store to check and count in the same step as the
       * hold (no round trip of its own). Without a shared store it is the caller's to count.
       */
      readonly payerLimit?: Omit<PayerLimit, 'payer'> | undefined
    } = {},
  ): Promise<Admission> {
    const payment = { channelConfig: payload.channelConfig, voucher: payload.voucher }
    if (options.held) return admission(await this.extend(options.held, payment, route.rule))
    if (payload.type === 'deposit') {
      if (!options.writer) {
        return admission(
          reject(
            'invalid_batch_settlement_evm_payload_type',
            'deposit payloads are not accepted here: deposit on chain, then pay by voucher.',
          ),
        )
      }
      return admission(
        await this.decideDeposit(payload, route.rule, options.writer, {
          minDeposit: route.minDeposit,
          requester: options.requester,
        }),
      )
    }
    return admission(await this.decide(payment, route.rule, options.payerLimit))
  }

  /** Whether the store counts per-payer rate limits itself, in its hold ({@link admit}'s `payerLimit`). */
  get countsPayerLimits(): boolean {
    return this.shared !== undefined
  }

  /**
   * A `deposit` payload. Nothing is sent, read or stored until the payment could succeed: the
   * channel is this server's and its id matches its config, the voucher is signed by the
   * channel's signer, the deposit is at least `minDeposit`, and the voucher fits the channel as
   * it will be after the deposit (its balance read from chain for a channel seen for the first
   * time). Then the on-chain limits of {@link PayeeOptions.onChainLimits} are counted, the server
   * submits the payer's ERC-3009 deposit (paying the gas), mirrors the new balance, and decides
   * the voucher as {@link decide} does. The receipt comes back even when the voucher is then
   * refused, since the deposit stays on chain.
   */
  async decideDeposit(
    payload: DepositPayload,
    rule: VoucherRule,
    writer: EscrowWriter,
    options: DepositOptions = {},
  ): Promise<DepositDecision> {
    const { channelConfig: config, voucher, deposit } = payload
    const id = voucher.channelId
    const identity = this.ledger.checkIdentity(config)
    if (identity) return identity
    const checks = this.contractCheckLimited(config)
    if (checks) return checks
    if (!this.isChannelOf(config, id)) {
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    }
    if (!(await this.ledger.verifySignature(config, voucher)))
      return reject('invalid_batch_settlement_evm_voucher_signature')
    if (options.minDeposit !== undefined && deposit.amount < options.minDeposit) {
      return reject(
        'invalid_batch_settlement_evm_deposit_below_min_deposit',
        `deposit ${deposit.amount} < minDeposit ${options.minDeposit}`,
      )
    }
    if (this.ledger.isHeld(id)) return reject('invalid_batch_settlement_evm_channel_busy')
    let fresh: OnChainChannel | undefined
    let base = this.ledger.get(id)
    if (!base) {
      try {
        fresh = await this.readChannel(id)
      } catch (err) {
        return reject(
          'invalid_batch_settlement_evm_channel_state_read_failed',
          err instanceof Error ? err.message : '',
        )
      }
      base = recordFromChain(id, config, fresh, this.now())
    }
    let refused = this.refusedAfterDeposit(base, payload, rule)
    if (
      refused?.code === EXCEEDS_BALANCE &&
      fresh === undefined &&
      (await this.refreshBalance(id))
    ) {
      refused = this.refusedAfterDeposit(this.ledger.get(id) ?? base, payload, rule)
    }
    if (refused) return refused
    const limited = this.guard.admit(config.payer, options.requester)
    if (limited) return limited
    const deposited = await this.sendGuarded(() => writer.deposit(payload))
    if (!deposited.ok) return deposited
    if (this.isKnown(id)) {
      this.apply({ type: 'deposited', channelId: id, balance: deposited.value.balance })
    } else {
      const onChain = { ...(fresh as OnChainChannel), balance: deposited.value.balance }
      this.persistBehind(this.ledger.open(recordFromChain(id, config, onChain, this.now())))
    }
    const decision = await this.decide(payload, rule)
    return { ...decision, deposit: deposited.value }
  }

  /**
   * Whether `id` is the channel id of `config`: the EIP-712 hash of a config the ledger does not
   * hold for `id` yet, a comparison with the one it holds (hashed when it was opened) otherwise.
   */
  private isChannelOf(config: VoucherPayment['channelConfig'], id: Hex): boolean {
    const known = this.ledger.get(id)
    if (known && sameConfig(known.config, config)) return true
    return channelId(config, this.domainSeparator) === id
  }

  /**
   * A contract payer's voucher costs an RPC call to check (EIP-1271): counted against
   * {@link PayeeOptions.contractChecks} before anything is checked.
   */
  private contractCheckLimited(config: VoucherPayment['channelConfig']) {
    if (!this.contractChecks || config.payerAuthorizer !== ZERO_AUTHORIZER) return undefined
    if (this.contractChecks.take(config.payer.toLowerCase(), this.now())) return undefined
    return reject(
      'tollgate_rate_limited',
      `too many vouchers of contract payer ${config.payer} to check; retry later`,
    )
  }

  /** Sends an admitted on-chain action and counts what it cost against the gas budget. */
  private async sendGuarded(
    send: () => Promise<Result<EscrowReceipt>>,
  ): Promise<Result<EscrowReceipt>> {
    let result: Result<EscrowReceipt> | undefined
    try {
      result = await send()
      return result
    } finally {
      this.guard.spent(result?.ok ? result.value.fee : 0n)
    }
  }

  /** Why the voucher of a deposit payload would be refused once the deposit landed, if it would. */
  private refusedAfterDeposit(
    record: ChannelRecord,
    payload: DepositPayload,
    rule: VoucherRule,
  ): (ReturnType<typeof reject> & { record?: ChannelRecord }) | undefined {
    const after = { ...record, balance: record.balance + payload.deposit.amount }
    const refused = checkVoucher(
      after,
      payload.voucher.maxClaimableAmount,
      rule,
      this.ledger.exposureCap,
    )
    if (!refused) return undefined
    // The voucher is signed: a mismatch gets the channel's state, as a voucher alone would.
    return refused.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' &&
      this.isKnown(record.channelId)
      ? { ...refused, record }
      : refused
  }

  /**
   * A cooperative `refund` payload: its zero-charge voucher (ceiling = charged) must be signed by
   * the channel's signer; the writer then claims what was charged and returns `amount` (or all
   * the rest) of the balance to the payer in one transaction. The channel is held meanwhile.
   */
  async refund(
    payload: RefundPayload,
    writer: EscrowWriter,
    options: Pick<DepositOptions, 'requester'> = {},
  ): Promise<Result<RefundOutcome> & { record?: ChannelRecord }> {
    const decision = await this.decide(payload, { kind: 'refund' })
    if (!decision.ok) return decision
    const limited = this.guard.admit(payload.channelConfig.payer, options.requester)
    if (limited) {
      this.release(decision.hold)
      return limited
    }
    const { hold } = decision
    const before = hold.record
    const refundable = before.balance - before.chargedCumulativeAmount
    if (payload.amount !== undefined && payload.amount > refundable) {
      this.release(hold)
      return reject(
        'invalid_batch_settlement_evm_refund_amount_invalid',
        `at most ${refundable} can be refunded`,
      )
    }
    const result = await this.sendGuarded(() =>
      writer.refund(payload, before.chargedCumulativeAmount),
    )
    if (!result.ok) {
      this.release(hold)
      return result
    }
    if (before.chargedCumulativeAmount > before.totalClaimed) {
      this.apply({
        type: 'claimed',
        channelId: hold.channelId,
        totalClaimed: before.chargedCumulativeAmount,
      })
    }
    this.apply({
      type: 'refunded',
      channelId: hold.channelId,
      balance: result.value.balance,
      refundNonce: before.refundNonce + 1n,
    })
    const record = this.release(hold)
    return accept({ receipt: result.value, record })
  }

  /** Charges the actual price after the handler succeeded and releases the channel. */
  commit(hold: Hold, actual: bigint): Decision & { readonly record?: ChannelRecord } {
    const result = this.ledger.commit(hold, actual)
    if (this.shared) {
      clearInterval(this.covers.get(hold.channelId)?.keepAlive)
      this.covers.delete(hold.channelId)
      this.endShared(hold, this.ledger.get(hold.channelId) ?? hold.record, false)
      if (!result.ok) return result
      return { ok: true, hold: { ...hold, record: result.record }, record: result.record }
    }
    if (!result.ok) return result
    // One store write per request: the record stored at admission already reloads as this one.
    if (reloadsAs(hold.record, result.record)) this.committedInFlight.add(hold.channelId)
    else this.persistBehind(result.record)
    return { ok: true, hold: { ...hold, record: result.record }, record: result.record }
  }

  /** Releases the channel with nothing charged: the handler failed, or the session ended. */
  release(hold: Hold): ChannelRecord {
    clearInterval(this.covers.get(hold.channelId)?.keepAlive)
    this.covers.delete(hold.channelId)
    const record = this.ledger.release(hold)
    if (this.shared) this.endShared(hold, record, true)
    else if (record !== hold.record) this.persistBehind(record)
    return record
  }

  /**
   * Waits until a charge of `amount` on a held session is within its durable cover: `undefined`
   * when it is already (the hot path, nothing to await), else the write that brings it there.
   * Rejects with `tollgate_store_failed` when that write fails: the session must stop serving.
   */
  coverFor(hold: Hold, amount: bigint): Promise<void> | undefined {
    const cover = this.covers.get(hold.channelId)
    const record = this.ledger.get(hold.channelId)
    if (!cover || !record || record.chargedCumulativeAmount + amount <= cover.durable) {
      return undefined
    }
    return this.refill(hold, cover, record)
  }

  /**
   * How far a held session may be charged now: `covered`, the charged total it may reach with no
   * store write to wait for (its durable cover, {@link coverFor}, within what is in flight), and
   * `refillAt`, the charged total at which its next reserve is due ({@link chargeHeld} writes it
   * behind once a charge reaches it; `undefined` once the cover reaches the voucher's ceiling). A
   * session already past that point has the write started here. A caller that counts messages
   * ahead of {@link chargeHeld} stays within `covered` and charges by `refillAt`.
   */
  coveredTo(hold: Hold): { covered: bigint; refillAt: bigint | undefined } {
    const record = this.ledger.get(hold.channelId)
    if (!record) return { covered: 0n, refillAt: undefined }
    const cover = this.covers.get(hold.channelId)
    const inFlight = record.inFlightCumulativeAmount
    if (!cover) return { covered: inFlight, refillAt: undefined }
    const refillAt = refillPoint(cover, record)
    if (refillAt !== undefined && record.chargedCumulativeAmount >= refillAt) {
      this.refill(hold, cover, record).catch(() => {})
    }
    // bigint: no Math.min.
    let covered = inFlight
    if (cover.durable < covered) covered = cover.durable
    return { covered, refillAt }
  }

  /**
   * Charges within a held session (per message) and keeps the hold. The charge must lie within
   * the session's durable cover ({@link coverFor}): the in-flight amount of a record on disk, so
   * that a crash charges the payer at most one reserve beyond what was delivered. Past half of
   * it, the next reserve is written behind.
   */
  chargeHeld(hold: Hold, amount: bigint) {
    const cover = this.covers.get(hold.channelId)
    // Within what a durable record covers, not just what is in flight in memory.
    const result = this.ledger.chargeHeld(hold, amount, cover?.durable)
    if (cover && result.ok && cover.writing === undefined) {
      const refillAt = refillPoint(cover, result.record)
      if (refillAt !== undefined && result.record.chargedCumulativeAmount >= refillAt) {
        this.refill(hold, cover, result.record).catch(() => {})
      }
    }
    return result
  }

  /** Writes the next reserve of a session: its charged total now plus `cover.reserve`, at most its ceiling. */
  private refill(hold: Hold, cover: Cover, record: ChannelRecord): Promise<void> {
    if (cover.writing) return cover.writing
    const reserved = this.ledger.reserveInFlight(hold, cover.reserve)
    const target = reserved.inFlightCumulativeAmount
    if (target <= cover.durable && reserved === record) return Promise.resolve()
    const write = this.shared
      ? this.reserveShared(this.shared, hold.channelId, reserved, cover.reserve)
      : this.store.put(reserved)
    const writing = write.then(
      () => {
        if (target > cover.durable) cover.durable = target
        cover.writing = undefined
      },
      (err: unknown) => {
        cover.writing = undefined
        this.warn(
          `could not store the charges of channel ${hold.channelId}; its session stops`,
          err,
        )
        throw new TollgateError('tollgate_store_failed', 'The session could not be stored.', {
          cause: err,
        })
      },
    )
    cover.writing = writing
    return writing
  }

  /** Accepts a credit top-up voucher on a held session; durable before it returns. */
  async extend(hold: Hold, payment: VoucherPayment, rule: VoucherRule): Promise<Decision> {
    const limited = this.contractCheckLimited(payment.channelConfig)
    if (limited) return limited
    if (this.shared) return this.extendShared(this.shared, hold, payment, rule)
    const before = this.ledger.get(hold.channelId)
    let result = await this.ledger.extend(hold, payment.voucher, rule)
    if (
      !result.ok &&
      result.code === EXCEEDS_BALANCE &&
      result.signed &&
      (await this.refreshBalance(hold.channelId))
    ) {
      result = await this.ledger.extend(hold, payment.voucher, rule)
    }
    if (!result.ok) return result
    const stored = this.ledger.get(hold.channelId) ?? result.hold.record
    try {
      await this.store.put(stored)
    } catch (err) {
      // Nothing may be served on a voucher that is not stored: the session keeps the one before.
      if (before) this.ledger.revertExtend(hold, before)
      return reject('tollgate_store_failed', err instanceof Error ? err.message : String(err))
    }
    const cover = this.covers.get(hold.channelId)
    if (cover && stored.inFlightCumulativeAmount > cover.durable) {
      cover.durable = stored.inFlightCumulativeAmount
    }
    return result
  }

  /**
   * With a shared store: the end of this process's last hold on the channel, until the store
   * acknowledged it, when the payer's next voucher could not end it by itself (a release, or a
   * commit below what was in flight: see {@link SharedLedger.hold}); `undefined` otherwise, and
   * always with a local store. An adapter answers only after it, so that the payer's next
   * request, whichever instance it reaches, never finds the channel busy. Never rejects: an end
   * that fails is warned of and the hold expires by itself.
   */
  ended(channelId: Hex): Promise<void> | undefined {
    return this.ending.get(channelId)
  }

  /** Whether the payee holds a record of the channel (the chain watcher mirrors only those). */
  isKnown(channelId: Hex): boolean {
    return this.ledger.get(channelId) !== undefined
  }

  /** The withdrawals pending on the channels held (for the chain watcher's check after a restart). */
  pendingWithdrawals(): Iterable<{ channelId: Hex; finalizeAfter: number }> {
    return this.ledger.pendingWithdrawals()
  }

  /**
   * With a shared store: of `channelIds`, those it holds, opened here or on another instance,
   * so that whichever instance watches the chain mirrors their events there. None otherwise.
   */
  async knownOf(channelIds: readonly Hex[]): Promise<ReadonlySet<Hex>> {
    return this.shared ? this.shared.existing(channelIds) : new Set()
  }

  /** Mirrors an on-chain event. */
  apply(event: ChainEvent): ChannelRecord | undefined {
    const record = this.ledger.apply(event)
    if (this.shared) {
      this.shared.apply(event).catch((err: unknown) => {
        this.warn(`could not mirror a ${event.type} event of channel ${event.channelId}`, err)
      })
    } else if (record) this.persistBehind(record)
    return record
  }

  /**
   * With a shared store: reloads every channel another instance may have changed into this
   * process's view (held ones excepted), for settlement to plan from. Nothing to do otherwise.
   */
  async sync(): Promise<void> {
    if (!this.shared) return
    for (const record of await this.store.loadAll()) {
      if (!this.ledger.isHeld(record.channelId)) this.ledger.mirror(record)
    }
  }

  claimable(): ClaimCandidate[] {
    return this.ledger.claimable()
  }

  /**
   * Writes the commits that were left in flight, then flushes and closes the store: the next open
   * is a clean one and reloads every channel exactly as it was.
   */
  async close(): Promise<void> {
    const writes: Promise<void>[] = []
    for (const id of this.committedInFlight) {
      const record = this.ledger.get(id)
      if (record) writes.push(this.store.put(record))
    }
    this.committedInFlight.clear()
    try {
      await Promise.all(writes)
    } finally {
      await this.store.close()
    }
  }

  /**
   * Closes the store as it was found (a store found unclean stays so): for a start that failed
   * after the payee opened, so that it changes nothing the next start relies on.
   */
  async abandon(): Promise<void> {
    await this.store.closeAsFound()
  }

  /**
   * {@link decide} on a shared store: the signature is verified here, then one script judges the
   * voucher against the channel as the store holds it, stores it and holds the channel. A channel
   * the store does not know is read from chain and created first.
   */
  private async decideShared(
    shared: SharedLedger,
    payment: VoucherPayment,
    rule: VoucherRule,
    payerLimit: Omit<PayerLimit, 'payer'> | undefined,
  ): Promise<Decision> {
    const { channelConfig: config, voucher } = payment
    const id = voucher.channelId
    const identity = this.ledger.checkIdentity(config)
    if (identity) return identity
    if (!this.isChannelOf(config, id)) {
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    }
    if (!(await this.ledger.verifySignature(config, voucher))) {
      return reject('invalid_batch_settlement_evm_voucher_signature')
    }
    if (this.ledger.isHeld(id)) return reject('invalid_batch_settlement_evm_channel_busy')
    const holder = `${this.instanceId}:${++this.holdCount}`
    const hold = () =>
      shared.hold({
        channelId: id,
        maxClaimableAmount: voucher.maxClaimableAmount,
        signature: claimableSignature(voucher.signature),
        rule,
        holder,
        ttlMs: this.holdTtlMs,
        exposureCap: this.ledger.exposureCap,
        extend: false,
        payerLimit: payerLimit && { payer: config.payer, ...payerLimit },
      })
    let outcome: HoldOutcome
    try {
      outcome = await hold()
      if (outcome.status === 'unknown') {
        const refused = await this.createFromChain(shared, payment)
        if (refused) return refused
        outcome = await hold()
      }
      if (outcome.status === 'refused' && outcome.code === EXCEEDS_BALANCE) {
        if (await this.refreshShared(shared, id, outcome.state.balance)) outcome = await hold()
      }
    } catch (err) {
      return reject('tollgate_store_failed', err instanceof Error ? err.message : String(err))
    }
    if (outcome.status !== 'held') return this.sharedRefusal(outcome, payment, rule)
    if (this.ledger.isHeld(id)) {
      // Another request of this process won meanwhile (it held the channel first): give it back.
      shared.end(id, holder, outcome.state.chargedCumulativeAmount, true).catch(() => {})
      return reject('invalid_batch_settlement_evm_channel_busy')
    }
    const record = this.ledger.mirror({ channelId: id, config, ...outcome.state }, true)
    this.holders.set(id, holder)
    if (rule.kind === 'credit') {
      const cover: Cover = {
        durable: record.inFlightCumulativeAmount,
        reserve: rule.reserve ?? record.signedMaxClaimable,
        writing: undefined,
      }
      // Renews the hold of a quiet session, which has no refill to renew it.
      cover.keepAlive = setInterval(() => {
        const current = this.ledger.get(id)
        if (current) this.reserveShared(shared, id, current, 0n).catch(() => {})
      }, this.holdTtlMs / 3)
      cover.keepAlive.unref()
      this.covers.set(id, cover)
    }
    return { ok: true, hold: { channelId: id, record, previous: outcome.previous } }
  }

  /** {@link extend} on a shared store: a credit top-up stored by the hold script on the session's own hold. */
  private async extendShared(
    shared: SharedLedger,
    hold: Hold,
    payment: VoucherPayment,
    rule: VoucherRule,
  ): Promise<Decision> {
    const { voucher } = payment
    const holder = this.holders.get(hold.channelId)
    if (!this.ledger.isHeld(hold.channelId) || holder === undefined) {
      throw new TollgateError('tollgate_internal', `channel ${hold.channelId} is not held`)
    }
    if (voucher.channelId !== hold.channelId)
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    const config = hold.record.config
    if (!(await this.ledger.verifySignature(config, voucher)))
      return reject('invalid_batch_settlement_evm_voucher_signature')
    const extend = () =>
      shared.hold({
        channelId: hold.channelId,
        maxClaimableAmount: voucher.maxClaimableAmount,
        signature: claimableSignature(voucher.signature),
        rule,
        holder,
        ttlMs: this.holdTtlMs,
        exposureCap: this.ledger.exposureCap,
        extend: true,
      })
    const current = this.ledger.get(hold.channelId) ?? hold.record
    let outcome: HoldOutcome
    try {
      // The session's charges so far are stored first: the script judges against them.
      await this.reserveShared(shared, hold.channelId, current, 0n)
      outcome = await extend()
      if (outcome.status === 'refused' && outcome.code === EXCEEDS_BALANCE) {
        if (await this.refreshShared(shared, hold.channelId, outcome.state.balance))
          outcome = await extend()
      }
    } catch (err) {
      return reject('tollgate_store_failed', err instanceof Error ? err.message : String(err))
    }
    if (outcome.status !== 'held') return this.sharedRefusal(outcome, payment, rule)
    const record = this.ledger.mirror({ ...current, ...outcome.state }, true)
    const cover = this.covers.get(hold.channelId)
    if (cover && record.inFlightCumulativeAmount > cover.durable) {
      cover.durable = record.inFlightCumulativeAmount
    }
    return { ok: true, hold: { ...hold, record } }
  }

  /** A refusal of the shared store as {@link decide} answers it; the voucher was signed, so a mismatch carries the channel's state. */
  private sharedRefusal(
    outcome: Exclude<HoldOutcome, { status: 'held' }>,
    payment: VoucherPayment,
    rule: VoucherRule,
  ): Decision {
    if (outcome.status === 'busy') return reject('invalid_batch_settlement_evm_channel_busy')
    if (outcome.status === 'limited') {
      const retryAfter = Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))
      const refused = reject(
        'tollgate_rate_limited',
        `payer ${payment.channelConfig.payer} is over its limit`,
      )
      return { ...refused, retryAfter }
    }
    if (outcome.status === 'lost') {
      return reject('tollgate_store_failed', 'the session lost its hold on the channel')
    }
    if (outcome.status === 'unknown')
      return reject('invalid_batch_settlement_evm_channel_not_found')
    const { voucher, channelConfig: config } = payment
    const record = { channelId: voucher.channelId, config, ...outcome.state }
    if (!this.ledger.isHeld(voucher.channelId)) this.ledger.mirror(record)
    const expected =
      rule.kind === 'refund'
        ? record.chargedCumulativeAmount
        : record.chargedCumulativeAmount + rule.price
    const message =
      outcome.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch'
        ? `expected ${rule.kind === 'credit' ? 'at least ' : ''}${expected}, got ${voucher.maxClaimableAmount}`
        : outcome.code === EXCEEDS_BALANCE
          ? `ceiling ${voucher.maxClaimableAmount} > balance ${record.balance}`
          : ''
    if (outcome.code === 'tollgate_exposure_cap') this.onClaimNeeded(record)
    const refused = reject(outcome.code, message)
    return outcome.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' ||
      outcome.code === EXCEEDS_BALANCE
      ? { ...refused, record }
      : refused
  }

  /** Creates a channel seen for the first time in the shared store, as read from chain (one read per process at a time). */
  private async createFromChain(
    shared: SharedLedger,
    payment: VoucherPayment,
  ): Promise<Decision | undefined> {
    const id = payment.voucher.channelId
    let pending = this.firstSight.get(id)
    if (!pending) {
      pending = (async () => {
        const read = await this.recordOnChain(id, payment)
        if (!read.ok) return read
        await shared.create(read.value)
        return undefined
      })().finally(() => this.firstSight.delete(id))
      this.firstSight.set(id, pending)
    }
    return pending
  }

  /** A voucher above the stored balance: reads the chain and raises it there if a deposit landed. Whether it rose. */
  private async refreshShared(shared: SharedLedger, id: Hex, balance: bigint): Promise<boolean> {
    let onChain: OnChainChannel
    try {
      onChain = await this.readChannel(id)
    } catch (err) {
      this.warn(`could not read channel ${id} to check for a new deposit`, err)
      return false
    }
    if (onChain.balance <= balance) return false
    await shared.apply({ type: 'deposited', channelId: id, balance: onChain.balance })
    return true
  }

  /** Writes a held session's charged total and reserves `reserve` beyond it; renews the hold. */
  private async reserveShared(
    shared: SharedLedger,
    id: Hex,
    record: ChannelRecord,
    reserve: bigint,
  ): Promise<void> {
    const holder = this.holders.get(id)
    const stored =
      holder === undefined
        ? undefined
        : await shared.reserve(
            id,
            holder,
            record.chargedCumulativeAmount,
            reserve === 0n ? 0n : record.inFlightCumulativeAmount - record.chargedCumulativeAmount,
            this.holdTtlMs,
          )
    if (!stored) {
      throw new TollgateError('tollgate_store_failed', `the hold on channel ${id} was lost`)
    }
  }

  /**
   * Ends this process's hold in the shared store, written behind ({@link ended} waits for it when
   * the next voucher cannot end it). What the hold had in flight is durable there already, so a
   * lost write charges at most that when the hold expires.
   */
  private endShared(hold: Hold, record: ChannelRecord, restore: boolean): void {
    const id = hold.channelId
    const holder = this.holders.get(id)
    if (holder === undefined || !this.shared) return
    this.holders.delete(id)
    const ending: Promise<void> = this.shared
      .end(id, holder, record.chargedCumulativeAmount, restore)
      .then(
        (ended) => {
          if (!ended) this.warn(`the hold on channel ${id} had expired when it ended`)
        },
        (err: unknown) => {
          this.warn(
            `could not end the hold on channel ${id}; it expires by itself and what was in flight is charged`,
            err,
          )
        },
      )
      .finally(() => {
        if (this.ending.get(id) === ending) this.ending.delete(id)
      })
    if (restore || record.chargedCumulativeAmount < hold.record.inFlightCumulativeAmount) {
      this.ending.set(id, ending)
    }
  }

  private async openFromChain(payment: VoucherPayment): Promise<Decision | undefined> {
    const { channelConfig: config, voucher } = payment
    const identity = this.ledger.checkIdentity(config)
    if (identity) return identity
    if (!this.isChannelOf(config, voucher.channelId)) {
      return reject('invalid_batch_settlement_evm_channel_id_mismatch')
    }
    // A chain read and a store write follow: only for a voucher its signer signed.
    if (!(await this.ledger.verifySignature(config, voucher))) {
      return reject('invalid_batch_settlement_evm_voucher_signature')
    }
    let pending = this.firstSight.get(voucher.channelId)
    if (!pending) {
      pending = this.readAndOpen(voucher.channelId, payment).finally(() =>
        this.firstSight.delete(voucher.channelId),
      )
      this.firstSight.set(voucher.channelId, pending)
    }
    return pending
  }

  /**
   * A voucher above the mirrored balance may follow a deposit the payer sent itself, which the
   * chain watcher has not mirrored yet: reads the channel from chain (one read shared by
   * concurrent callers) and raises the balance to what the escrow holds. Whether it rose.
   */
  private refreshBalance(id: Hex): Promise<boolean> {
    let pending = this.balanceReads.get(id)
    if (!pending) {
      pending = this.readChannel(id)
        .then((onChain) => {
          const record = this.ledger.get(id)
          if (!record || onChain.balance <= record.balance) return false
          this.apply({ type: 'deposited', channelId: id, balance: onChain.balance })
          return true
        })
        .catch((err: unknown) => {
          this.warn(`could not read channel ${id} to check for a new deposit`, err)
          return false
        })
        .finally(() => this.balanceReads.delete(id))
      this.balanceReads.set(id, pending)
    }
    return pending
  }

  /** A channel seen for the first time, as read from chain; refused when it was never deposited. */
  private async recordOnChain(id: Hex, payment: VoucherPayment): Promise<Result<ChannelRecord>> {
    let onChain: OnChainChannel
    try {
      onChain = await this.readChannel(id)
    } catch (err) {
      return reject(
        'invalid_batch_settlement_evm_channel_state_read_failed',
        err instanceof Error ? err.message : '',
      )
    }
    if (onChain.balance === 0n) return reject('invalid_batch_settlement_evm_channel_not_found')
    return accept(recordFromChain(id, payment.channelConfig, onChain, this.now()))
  }

  private async readAndOpen(id: Hex, payment: VoucherPayment): Promise<Decision | undefined> {
    const read = await this.recordOnChain(id, payment)
    if (!read.ok) return read
    const record = read.value
    this.ledger.open(record)
    // Stored even when the voucher that brought it is refused: memory and store agree.
    this.persistBehind(record)
    return undefined
  }

  private persistBehind(record: ChannelRecord): void {
    this.store.put(record).catch((err: unknown) => {
      this.warn(
        `could not store channel ${record.channelId}; it stays in memory and is retried on its next change`,
        err,
      )
    })
  }
}

/**
 * The charged total at which a session's next reserve is written: half a reserve before its
 * durable cover; `undefined` once the cover reaches the voucher's ceiling (nothing more to write).
 */
function refillPoint(cover: Cover, record: ChannelRecord): bigint | undefined {
  return cover.durable < record.signedMaxClaimable ? cover.durable - cover.reserve / 2n : undefined
}

/**
 * Whether `stored` (a record written with a charge in flight) reloads as `committed` under the
 * crash rule: the charge settled was exactly what was in flight, and nothing else changed.
 */
function reloadsAs(stored: ChannelRecord, committed: ChannelRecord): boolean {
  return (
    committed.chargedCumulativeAmount === stored.inFlightCumulativeAmount &&
    committed.inFlightCumulativeAmount === committed.chargedCumulativeAmount &&
    committed.signedMaxClaimable === stored.signedMaxClaimable &&
    committed.signature === stored.signature &&
    committed.balance === stored.balance &&
    committed.totalClaimed === stored.totalClaimed &&
    committed.withdrawRequestedAt === stored.withdrawRequestedAt &&
    committed.refundNonce === stored.refundNonce &&
    committed.syncedAt === stored.syncedAt &&
    committed.config === stored.config
  )
}

/** `payerAuthorizer` of a contract payer's channel: its vouchers are checked by EIP-1271. */
const ZERO_AUTHORIZER = '0x0000000000000000000000000000000000000000'

/** The refusal of a voucher above the mirrored balance: worth a look at the chain first. */
const EXCEEDS_BALANCE = 'invalid_batch_settlement_evm_cumulative_exceeds_balance'

/** Opens a {@link Payee}. */
export function openPayee(options: PayeeOptions): Promise<Payee> {
  if (!Number.isSafeInteger(options.chainId) || options.chainId <= 0) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `chainId must be a positive integer, got ${options.chainId}`,
    )
  }
  return Payee.open(options)
}

/** The identity a store is bound to: the chain, the escrow and this server's channel fields. */
interface StoredIdentity {
  readonly chainId: number
  readonly escrow: string
  readonly receiver: string
  readonly receiverAuthorizer: string
  readonly token: string
  readonly withdrawDelay: number
}

function identityOf(options: PayeeOptions): StoredIdentity {
  const { identity } = options
  return {
    chainId: options.chainId,
    escrow: options.escrow.toLowerCase(),
    receiver: identity.receiver.toLowerCase(),
    receiverAuthorizer: identity.receiverAuthorizer.toLowerCase(),
    token: identity.token.toLowerCase(),
    withdrawDelay: identity.withdrawDelay,
  }
}

/**
 * Why a store may not be opened with `identity`, or undefined. A store written before the
 * identity was kept is judged by its records' channel fields.
 */
function checkStoredIdentity(
  stored: string | undefined,
  identity: StoredIdentity,
  records: readonly ChannelRecord[],
): string | undefined {
  let found: Partial<StoredIdentity>
  if (stored === undefined) {
    const first = records[0]
    if (!first) return undefined
    const { receiver, receiverAuthorizer, token, withdrawDelay } = first.config
    found = { receiver, receiverAuthorizer, token, withdrawDelay }
  } else {
    found = JSON.parse(stored) as StoredIdentity
  }
  const differs = (Object.keys(found) as (keyof StoredIdentity)[]).filter(
    (key) => String(found[key]).toLowerCase() !== String(identity[key]).toLowerCase(),
  )
  if (differs.length === 0) return undefined
  const what = differs.map((key) => `${key} ${found[key]} (now ${identity[key]})`).join(', ')
  return (
    `the data directory holds the channels of another identity: ${what}. Its vouchers can only be ` +
    'claimed by that identity. To rotate the key: keep the old key on this data directory until ' +
    '`tollgate settle` has claimed everything and its payers have moved, and start the new key on a new data directory.'
  )
}
