import { type Address, getAddress, type Hex, type LocalAccount, pad } from 'viem'
import { type ErrorCode, isErrorCode, TollgateError } from '../errors/index.js'
import {
  CANONICAL_ADDRESSES,
  decodeSettleResponse,
  EXACT_SCHEME,
  encodeHeader,
  exactPaymentPayload,
  HEADERS,
  type PaymentRequired,
  type PaymentRequirements,
  paymentPayload,
  requirementsEqual,
} from '../protocol/index.js'
import { type CallToolOptions, type ToolCall, type ToolClient, toolPayer } from './callTool.js'
import { connectPaid, type PaidSession } from './connect.js'
import { paymentRequiredOf, unreceiptedAttempt } from './httpAnswer.js'
import { Journal, type JournalStats, type PaidResource, type PayerChannel } from './journal.js'
import { signingOf, type VoucherSigning } from './keySigner.js'
import { authorizeExact, selectExact } from './payExact.js'
import { type OnChainChannel, payerChain } from './payerChain.js'
import {
  DEFAULT_RESERVATION_CALLS,
  type DepositPolicy,
  PayerCore,
  RESERVATION_TTL_MS,
  type ReservationPolicy,
} from './payerCore.js'
import { type Attempt, payRequirements } from './payRequirements.js'
import { signVoucher } from './signing.js'
import { resolveLimits, type SpendLimits, type SpendReport, spendReport } from './spendPolicy.js'
import { type TickOptions, TickPayer } from './ticks.js'

/** Options of {@link createPayer}. */
export interface PayerOptions {
  /** The funding wallet: the channels' `payer`; signs ERC-3009 deposits and sends on-chain transactions. */
  account: LocalAccount
  /**
   * Signs the vouchers (the channels' `payerAuthorizer`): a session key, so the funding key is
   * needed only to deposit and withdraw. A {@link keySigner} signs on libsecp256k1 where the addon
   * loads; any other signer (or a fallback) is reported through `onWarning` and in
   * {@link Payer.signing}. @default account
   */
  payerAuthorizer?: LocalAccount
  /** JSON-RPC endpoint of the chain. */
  rpcUrl: string
  chainId: number
  /** @default the canonical x402 escrow */
  escrow?: Address
  /** @default the canonical x402 ERC-3009 deposit collector */
  erc3009Collector?: Address
  /** Where the payer keeps its journal (channels and spends). One payer per folder. */
  dataDir: string
  policy?: {
    limits?: SpendLimits
    deposit?: DepositPolicy
    /**
     * Spend reservations: one durable record counts the next `calls` prices of a channel against
     * the limits, so those vouchers are signed with no flush of their own; a reservation expires
     * after `ttlMs` (its spend is dated then). A crash forfeits at most the unused part of each
     * channel's open reservation: counted as spent, never signed; a clean `close()` gives it back.
     * @default { calls: 100, ttlMs: 60000 }
     */
    reservation?: Partial<ReservationPolicy>
  }
  /** Tokens the payer agrees to pay in. @default any token the server names */
  assets?: readonly Address[]
  /** The channels' salt: fixed, so a channel is found again from chain after local state is lost. @default zero */
  salt?: Hex
  /** The fetch that carries the requests. @default globalThis.fetch */
  fetch?: typeof fetch
  /** Unix milliseconds, for the spend windows. @default Date.now */
  now?: () => number
  /**
   * A server raised a channel's charge above what its receipts acknowledged (a corrective 402 after
   * it restarted from a crash with a request of this payer in flight, say). The charge is within
   * the payer's own signed voucher, so it is adopted, but the payer should know.
   * @default nothing is reported
   */
  onUnacknowledgedCharge?: (event: UnacknowledgedCharge) => void
  /**
   * Pays tollgate routes that offer ticks (`extra.tickWindow`) one window at a time: one voucher
   * for the window's calls, counted as spent when signed, then one hash preimage per call
   * (src/transports/http/PROTOCOL.md). Other routes and servers are paid as usual.
   * @default false
   */
  ticks?: boolean | TickOptions
  /**
   * Something the payer works around but the operator should know: vouchers signed in
   * JavaScript, not on libsecp256k1 (about ten times slower).
   * @default process.emitWarning
   */
  onWarning?: (message: string) => void
}

/** What {@link PayerOptions.onUnacknowledgedCharge} reports. */
export interface UnacknowledgedCharge {
  readonly channelId: Hex
  /** What the payer's receipts acknowledged. */
  readonly acknowledged: bigint
  /** What the server now says is charged. */
  readonly charged: bigint
}

/** The outcome of the refund of one channel: the amount and transaction, or why it failed. */
export type ChannelRefund =
  | {
      readonly channelId: Hex
      readonly ok: true
      readonly amount: bigint
      readonly transaction: string
    }
  | {
      readonly channelId: Hex
      readonly ok: false
      readonly code: ErrorCode
      readonly message: string
    }

/** A payer's view of one channel, for display. */
export type ChannelSummary = PayerChannel & { readonly onChain?: OnChainChannel }

/** A paid HTTP client and the channel operations behind it. */
export interface Payer {
  readonly address: Address
  readonly authorizer: Address
  /**
   * A drop-in `fetch` that pays x402 402s: batch-settlement where offered, else `exact` (one
   * EIP-3009 transfer per call, signed by `account`, within the same spend limits). After the first 402 of a
   * route it pays on the first request, one round trip per paid call, and falls back to the 402
   * exchange when the requirements changed; a route it has not paid yet is asked its price
   * first, so nothing is signed at a guessed price. Calls on one channel are
   * serialized. Throws `TollgateError` with a stable code when it will not pay:
   * `tollgate_spend_limit` (nothing signed), `tollgate_receipt_mismatch` (the server cheated;
   * it is paid no more), `tollgate_payee_blocked`, `tollgate_withdrawal_pending`.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  /**
   * Opens a paid session on a tollgate WebSocket feed or request route (ws:// or wss://); see
   * {@link connectPaid}. Channels for WebSocket routes are funded by direct deposit.
   */
  connect(wsUrl: string): Promise<PaidSession>
  /**
   * Calls a tool of an MCP server through `client` (the MCP SDK's `Client`, connected), paying
   * it when it answers with x402's 402 tool result: the payment goes in `_meta["x402/payment"]`
   * and the receipt, checked as over HTTP, comes back in `_meta["x402/payment-response"]`.
   * Resolves with the tool's result (a refused payment's 402 result included); throws as
   * {@link fetch} does when it will not pay. Spend limits count the server's payments under
   * `options.origin`, by default `mcp://<the server's name>`.
   *
   * @example
   * const result = await payer.callTool(client, { name: 'forecast', arguments: { city: 'Oslo' } })
   */
  callTool<R extends object>(
    client: ToolClient<R>,
    params: ToolCall,
    options?: CallToolOptions,
  ): Promise<R>
  /**
   * What was spent against each spend limit, from the journal; `reserved` is what open
   * reservations count beyond it.
   */
  spending(): SpendReport
  /** How vouchers are signed: on libsecp256k1 (`native`), or in JavaScript and why. */
  readonly signing: VoucherSigning
  /** The journal's writes and flushes, and the reservations opened, since the payer started. */
  stats(): PayerStats
  /** The channels in the journal; with `{ onChain: true }`, each with its on-chain state. */
  channels(options?: { onChain?: boolean }): Promise<ChannelSummary[]>
  /**
   * Asks the server at `origin` (a URL; only its origin counts) for a cooperative refund of
   * every channel this payer holds with it: all that is left of each, or `amount` of each. Each
   * refund is sent to a paid route the channel paid on that origin (kept in the journal), or to
   * `origin` itself for a channel of an older journal. Resolves with one result per channel;
   * none when the journal has no channel with that origin.
   *
   * @example
   * for (const r of await payer.refund('https://api.example.com')) if (!r.ok) console.error(r.code)
   */
  refund(origin: string, options?: { amount?: bigint }): Promise<ChannelRefund[]>
  /** Starts a withdrawal of a channel's unclaimed balance (the payer pays the gas). */
  initiateWithdraw(channelId: Hex): Promise<{ transaction: Hex; finalizeAfter: number }>
  /** Finalizes a withdrawal once the channel's withdraw delay has passed. */
  finalizeWithdraw(channelId: Hex): Promise<{ transaction: Hex; amount: bigint }>
  /** The shared core (the WebSocket client builds on it). */
  readonly core: PayerCore
  /** Gives back the unused part of every open reservation, then closes the journal. */
  close(): Promise<void>
}

/** What {@link Payer.stats} reports. */
export interface PayerStats extends JournalStats {
  readonly reservations: number
}

/** The longest a reservation may last: an hour. */
const MAX_RESERVATION_TTL_MS = 60 * 60 * 1000

/** Rounds of a refund: send, then at most this many more after a corrective 402. */
const MAX_ROUNDS = 4

/** A request made replayable: its body read once. */
interface Outgoing {
  readonly url: URL
  readonly method: string
  readonly headers: Headers
  readonly init: RequestInit
}

/**
 * Creates a payer: opens its journal in `dataDir` and returns its paid `fetch` and channel
 * operations.
 *
 * @throws TollgateError `tollgate_invalid_config` for a malformed limit or journal.
 * @example
 * const payer = await createPayer({ account, payerAuthorizer: sessionKey, rpcUrl, chainId: 84532, dataDir: '.payer',
 *   policy: { limits: { perRequest: '$0.01', perDay: '$5' } } })
 * const response = await payer.fetch('https://api.example.com/joke')
 */
export async function createPayer(options: PayerOptions): Promise<Payer> {
  const escrow = getAddress(options.escrow ?? CANONICAL_ADDRESSES.escrow)
  const authorizer = options.payerAuthorizer ?? options.account
  const now = options.now ?? Date.now
  const limits = resolveLimits(options.policy?.limits)
  const reservation = resolveReservation(options.policy?.reservation)
  const signing = signingOf(authorizer)
  if (signing.fallbackReason !== undefined) {
    const warn = options.onWarning ?? ((message: string) => process.emitWarning(message))
    warn(`vouchers are signed in JavaScript, not on libsecp256k1: ${signing.fallbackReason}`)
  }
  const journal = await Journal.open(options.dataDir, now)
  const chain = payerChain({
    rpcUrl: options.rpcUrl,
    chainId: options.chainId,
    escrow,
    account: options.account,
  })
  const core = new PayerCore(
    options.account,
    authorizer,
    options.chainId,
    escrow,
    getAddress(options.erc3009Collector ?? CANONICAL_ADDRESSES.erc3009Collector),
    options.salt ?? pad('0x00', { size: 32 }),
    journal,
    chain,
    limits,
    options.policy?.deposit ?? {},
    now,
    new Set((options.assets ?? []).map((a) => a.toLowerCase())),
    reservation,
    options.onUnacknowledgedCharge,
  )
  const send = options.fetch ?? globalThis.fetch
  /** Requirements by `METHOD origin/path`. */
  const byRoute = new Map<string, PaymentRequirements>()
  const routeKey = (out: Outgoing) => `${out.method} ${out.url.origin}${out.url.pathname}`
  const remember = (out: Outgoing, requirements: PaymentRequirements) => {
    byRoute.set(routeKey(out), requirements)
  }

  /** Keeps a paid route of the channel on the request's origin, for its refunds (under its lock). */
  const keepResource = async (id: Hex, out: Outgoing): Promise<void> => {
    const current = core.current(id)
    const origin = out.url.origin
    if (current.resources?.[origin] !== undefined) return
    const resource: PaidResource = { url: `${origin}${out.url.pathname}`, method: out.method }
    await journal.putChannel(
      { ...current, resources: { ...current.resources, [origin]: resource } },
      false,
    )
  }

  /** Pays `requirements` for one request; loops over corrective and changed 402s. */
  const paidByVoucher = (out: Outgoing, first: PaymentRequirements): Promise<Response> =>
    payRequirements(core, first, out.url.origin, {
      onChannel: (id) => keepResource(id, out),
      remember: (offered) => remember(out, offered),
      async attempt(payment): Promise<Attempt<Response>> {
        const headers = new Headers(out.headers)
        headers.set(HEADERS.paymentSignature, encodeHeader(payment))
        const response = await send(out.url, { ...out.init, method: out.method, headers })
        const receiptHeader = response.headers.get(HEADERS.paymentResponse)
        if (response.status < 400 && receiptHeader !== null) {
          return { kind: 'receipt', receipt: decodeSettleResponse(receiptHeader), answer: response }
        }
        return unreceiptedAttempt(response)
      },
    })

  const ticks = options.ticks
    ? new TickPayer(core, send, options.ticks === true ? {} : options.ticks)
    : undefined
  /** Pays one request: by a tick window where the route offers one and the payer opted in. */
  const paid = (out: Outgoing, first: PaymentRequirements): Promise<Response> =>
    ticks?.offered(first) !== undefined
      ? ticks.pay(out, first, {
          onChannel: (id) => keepResource(id, out),
          remember: (offered) => remember(out, offered),
        })
      : paidByVoucher(out, first)

  /** What a 402 offers this payer: batch-settlement where offered, else exact. */
  const offerOf = (required: PaymentRequired) =>
    core.select(required) ?? selectExact(required, core.network, core.assets)
  const exactPayer = { account: options.account, chainId: options.chainId, journal, limits, now }

  /**
   * Pays one request by an exact transfer (x402 `exact`); once more with the requirements of a
   * 402 that changed them.
   */
  const payExact = async (out: Outgoing, first: PaymentRequirements): Promise<Response> => {
    let requirements = first
    for (let round = 1; ; round++) {
      const payload = await authorizeExact(exactPayer, requirements, out.url.origin)
      const headers = new Headers(out.headers)
      headers.set(
        HEADERS.paymentSignature,
        encodeHeader(exactPaymentPayload(requirements, payload)),
      )
      const response = await send(out.url, { ...out.init, method: out.method, headers })
      if (response.status !== 402 || round === 2) return response
      const required = paymentRequiredOf(response)
      const offered = required && offerOf(required)
      if (!offered || requirementsEqual(offered, requirements)) return response
      await response.body?.cancel()
      remember(out, offered)
      if (offered.scheme !== EXACT_SCHEME) return paid(out, offered)
      requirements = offered
    }
  }

  const payerFetch = async (
    input: string | URL | Request,
    init?: RequestInit,
  ): Promise<Response> => {
    const out = await outgoing(input, init)
    // Only a route's own last requirements are paid unasked: a voucher signed at another
    // route's price, refused by the server, would be signed for a call the limits then refuse.
    const cached = byRoute.get(routeKey(out))
    if (cached) return cached.scheme === EXACT_SCHEME ? payExact(out, cached) : paid(out, cached)
    const response = await send(out.url, { ...out.init, method: out.method, headers: out.headers })
    if (response.status !== 402) return response
    const required = paymentRequiredOf(response)
    const requirements = required && offerOf(required)
    if (!requirements) return response
    await response.body?.cancel()
    remember(out, requirements)
    return requirements.scheme === EXACT_SCHEME
      ? payExact(out, requirements)
      : paid(out, requirements)
  }

  /** The requirements of a route: cached, or from an unpaid request's 402. */
  const requirementsOf = async (url: URL, method: string): Promise<PaymentRequirements> => {
    const out = await outgoing(url, { method })
    const cached = byRoute.get(routeKey(out))
    if (cached) return cached
    const response = await send(url, { method })
    await response.body?.cancel()
    const required = paymentRequiredOf(response)
    const requirements = required && core.select(required)
    if (!requirements) {
      throw new TollgateError(
        'unsupported_scheme',
        `${url} offers no batch-settlement payment this payer can make.`,
      )
    }
    remember(out, requirements)
    return requirements
  }

  /** The cooperative refund of one channel, sent to a paid route of it. */
  const refundOne = async (
    id: Hex,
    resource: PaidResource,
    opts: { amount?: bigint },
  ): Promise<{ amount: bigint; transaction: string }> => {
    const target = new URL(resource.url)
    const requirements = await requirementsOf(target, resource.method)
    return core.withChannel(id, async () => {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const current = core.current(id)
        const signature = await signVoucher(
          core.authorizer,
          core.separator,
          core.domain,
          id,
          current.charged,
        )
        const payload = paymentPayload({
          accepted: requirements,
          payload: {
            type: 'refund',
            channelConfig: current.config,
            voucher: { channelId: id, maxClaimableAmount: current.charged, signature },
            ...(opts.amount === undefined ? {} : { amount: opts.amount }),
          },
        })
        const response = await send(target, {
          method: resource.method,
          headers: { [HEADERS.paymentSignature]: encodeHeader(payload) },
        })
        await response.body?.cancel()
        const receiptHeader = response.headers.get(HEADERS.paymentResponse)
        if (response.ok && receiptHeader !== null) {
          const receipt = decodeSettleResponse(receiptHeader)
          if (!receipt.ok) return core.block(id, receipt)
          const amount = receipt.value.amount ?? 0n
          const balance = receipt.value.channelState?.balance ?? current.balance - amount
          await journal.putChannel({ ...core.current(id), balance }, true)
          return { amount, transaction: receipt.value.response.transaction }
        }
        const required = paymentRequiredOf(response)
        if (required?.error === 'invalid_batch_settlement_evm_cumulative_amount_mismatch') {
          await core.adoptCorrective(id, required)
          continue
        }
        const error = required?.error ?? `HTTP ${response.status}`
        throw new TollgateError(
          required?.error !== undefined && isErrorCode(required.error)
            ? required.error
            : 'invalid_batch_settlement_evm_refund_transaction_failed',
          `${target.origin} refused the refund: ${error}.`,
        )
      }
      throw new TollgateError(
        'tollgate_internal',
        `No agreement with ${target.origin} on the refund.`,
      )
    })
  }

  const known = (channelId: Hex): PayerChannel => {
    const channel = journal.channels.get(channelId.toLowerCase() as Hex)
    if (!channel)
      throw new TollgateError(
        'tollgate_invalid_config',
        `No channel ${channelId} in ${journal.path}.`,
      )
    return channel
  }

  return {
    address: getAddress(options.account.address),
    authorizer: getAddress(authorizer.address),
    core,
    fetch: payerFetch,
    connect: (wsUrl) => connectPaid(core, wsUrl),
    callTool: toolPayer(core),
    spending: () => spendReport(limits, journal, now(), core.unusedReservations()),
    signing,
    stats: () => ({ ...journal.stats(), reservations: core.reservationsOpened() }),
    async channels(opts = {}) {
      const list = [...journal.channels.values()]
      if (!opts.onChain) return list
      return Promise.all(
        list.map(async (c) => ({ ...c, onChain: await chain.readChannel(c.channelId) })),
      )
    },
    async refund(origin, opts = {}) {
      const wanted = new URL(origin).origin
      const results: ChannelRefund[] = []
      for (const channel of journal.channels.values()) {
        if (!channel.origins.includes(wanted)) continue
        const resource = channel.resources?.[wanted] ?? { url: origin, method: 'GET' }
        try {
          results.push({
            channelId: channel.channelId,
            ok: true,
            ...(await refundOne(channel.channelId, resource, opts)),
          })
        } catch (err) {
          if (!(err instanceof TollgateError)) throw err
          results.push({
            channelId: channel.channelId,
            ok: false,
            code: err.code,
            message: err.message,
          })
        }
      }
      return results
    },
    async initiateWithdraw(channelId) {
      const channel = known(channelId)
      return core.withChannel(channel.channelId, async () => {
        const onChain = await chain.readChannel(channel.channelId)
        const amount = onChain.balance - onChain.totalClaimed
        if (amount <= 0n) {
          throw new TollgateError(
            'invalid_batch_settlement_evm_refund_no_balance',
            `Channel ${channelId} has nothing unclaimed.`,
          )
        }
        const transaction = await chain.initiateWithdraw(channel.config, amount)
        const state = await chain.readChannel(channel.channelId)
        await journal.putChannel(
          { ...core.current(channel.channelId), withdrawInitiatedAt: state.withdrawRequestedAt },
          true,
        )
        return {
          transaction,
          finalizeAfter: state.withdrawRequestedAt + channel.config.withdrawDelay,
        }
      })
    },
    async finalizeWithdraw(channelId) {
      const channel = known(channelId)
      return core.withChannel(channel.channelId, async () => {
        const before = await chain.tokenBalance(channel.config.token, channel.config.payer)
        const transaction = await chain.finalizeWithdraw(channel.config)
        const after = await chain.tokenBalance(channel.config.token, channel.config.payer)
        const state = await chain.readChannel(channel.channelId)
        await journal.putChannel(
          { ...core.current(channel.channelId), balance: state.balance, withdrawInitiatedAt: 0 },
          true,
        )
        return { transaction, amount: after - before }
      })
    },
    async close() {
      await core.releaseReservations()
      await journal.close()
    },
  }
}

/**
 * Reservation options with their defaults.
 *
 * @throws TollgateError `tollgate_invalid_config` for calls not a whole number from 1, or a
 *   lifetime not a whole number of milliseconds from 1 to an hour.
 */
function resolveReservation(options: Partial<ReservationPolicy> = {}): ReservationPolicy {
  const calls = options.calls ?? DEFAULT_RESERVATION_CALLS
  const ttlMs = options.ttlMs ?? RESERVATION_TTL_MS
  if (!Number.isSafeInteger(calls) || calls < 1) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `policy.reservation.calls must be a whole number from 1, not ${String(calls)}.`,
    )
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_RESERVATION_TTL_MS) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `policy.reservation.ttlMs must be a whole number from 1 to ${MAX_RESERVATION_TTL_MS}, not ${String(ttlMs)}.`,
    )
  }
  return { calls, ttlMs }
}

/** Reads a request once into a replayable form (a paid call may be sent more than once). */
async function outgoing(input: string | URL | Request, init: RequestInit = {}): Promise<Outgoing> {
  if (input instanceof Request) {
    const body = input.body === null ? undefined : await input.arrayBuffer()
    return {
      url: new URL(input.url),
      method: init.method ?? input.method,
      headers: new Headers(init.headers ?? input.headers),
      init: { ...init, ...(body === undefined ? {} : { body }) },
    }
  }
  const body =
    init.body instanceof ReadableStream ? await new Response(init.body).arrayBuffer() : init.body
  return {
    url: new URL(input),
    method: (init.method ?? 'GET').toUpperCase(),
    headers: new Headers(init.headers),
    init: { ...init, ...(body === undefined || body === null ? {} : { body }) },
  }
}
