import type { Address, Hex } from 'viem'
import type { AuthorizationTransfers } from '../chain/transferWithAuthorization.js'
import {
  accept,
  type ErrorCode,
  isErrorCode,
  type Result,
  reject,
  TollgateError,
} from '../errors/index.js'
import {
  type DecodedExactPayment,
  type ExactRequirements,
  exactPaymentPayload,
  type Network,
  type PaymentRequirements,
  requirementsEqual,
} from '../protocol/index.js'
import type { ChannelStore } from '../store/index.js'
import {
  type AuthorizationVerifier,
  type BackendPreference,
  createAuthorizationVerifier,
  loadBackend,
} from '../verify/index.js'
import type { FacilitatorClient } from './facilitatorClient.js'

/** What an adapter sells by the exact scheme: one request at exactly `requirements.amount`. */
export interface ExactRoute {
  /** CAIP-2 network of the token. */
  readonly network: Network
  /** The exact requirements the route issues; a payment must echo them as sent. */
  readonly requirements: ExactRequirements
}

/** An exact payment that verified: its nonce is reserved until {@link ExactPayee.settle} or {@link ExactPayee.release}. */
export interface VerifiedExact {
  readonly payer: Address
  readonly amount: bigint
  readonly route: ExactRoute
  readonly payment: DecodedExactPayment
  /** The simulated gas of the transfer (self-submitted transfers only). */
  readonly gas: bigint | undefined
  /** The nonce's key in the store. */
  readonly key: string
}

/** The answer of {@link ExactPayee.verify}. */
export type ExactAdmission =
  | { readonly kind: 'verified'; readonly verified: VerifiedExact }
  | {
      readonly kind: 'refused'
      readonly code: ErrorCode
      readonly message: string
      readonly status?: number
      /** The payer paid stale requirements: send the route's requirements back. */
      readonly resend?: true
    }

/** A settled exact payment: the mined transfer. */
export interface SettledExact {
  readonly transaction: Hex
  readonly payer: Address
  readonly amount: bigint
}

/** Most exact transfers waiting to be mined at once. */
export const DEFAULT_MAX_PENDING_TRANSFERS = 64

/**
 * Seconds an authorization must still be valid when it is verified, as the stock facilitator
 * requires: room for the transfer to be mined before `validBefore`.
 */
export const VALID_BEFORE_MARGIN_SECONDS = 6

/** Nonces recorded between two sweeps of the expired ones. */
const PRUNE_EVERY = 4096

/** Store metadata prefix of the nonces of exact authorizations seen. */
export const EXACT_NONCE_PREFIX = 'exact-nonce:'

/** Options of {@link openExactPayee}. */
export interface ExactPayeeOptions {
  chainId: number
  /** Where the nonces of authorizations seen are kept: the voucher store. */
  store: ChannelStore
  /**
   * Submits the transfers itself (its account pays the gas). Give this or `facilitator`.
   */
  transfers?: AuthorizationTransfers | undefined
  /** Verifies and settles through a remote x402 facilitator instead. */
  facilitator?: FacilitatorClient | undefined
  /** Most transfers waiting to be mined; more are refused with `tollgate_transfers_busy`. @default DEFAULT_MAX_PENDING_TRANSFERS */
  maxPendingTransfers?: number | undefined
  /** @default 'auto' */
  backend?: BackendPreference | undefined
  /** @default Date.now */
  now?: (() => number) | undefined
}

/**
 * The exact-scheme payment path (x402 `exact` on EVM, EIP-3009), beside the batch-settlement
 * payee. Every check that costs nothing comes first (requirements as issued, recipient, value,
 * validity window, the signature against the payer's cached key, the nonce against those seen);
 * only then the simulation (or the facilitator's `/verify`). Settling writes the nonce to the
 * store durably before the transfer is sent, so a crash or a restart never lets it pay twice, and
 * answers once the transfer is mined.
 */
export class ExactPayee {
  private readonly verifiers = new Map<string, AuthorizationVerifier>()
  /** Nonces seen (stored), by key, with their `validBefore`. */
  private readonly used = new Map<string, bigint>()
  /** Nonces of payments verified and not yet settled or released. */
  private readonly reserved = new Set<string>()
  private pending = 0
  private readonly maxPending: number
  private readonly backend: ReturnType<typeof loadBackend>['backend']
  private readonly now: () => number

  private constructor(
    private readonly options: ExactPayeeOptions,
    stored: readonly [string, string][],
  ) {
    this.maxPending = options.maxPendingTransfers ?? DEFAULT_MAX_PENDING_TRANSFERS
    this.backend = loadBackend(options.backend ?? 'auto').backend
    this.now = options.now ?? Date.now
    for (const [key, validBefore] of stored) this.used.set(key, BigInt(validBefore))
  }

  /** Opens the exact payee: reloads the nonces seen from the store, dropping expired ones. */
  static async open(options: ExactPayeeOptions): Promise<ExactPayee> {
    if ((options.transfers === undefined) === (options.facilitator === undefined)) {
      throw new TollgateError(
        'tollgate_invalid_config',
        'give exactly one of transfers and facilitator',
      )
    }
    const max = options.maxPendingTransfers ?? DEFAULT_MAX_PENDING_TRANSFERS
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new TollgateError(
        'tollgate_invalid_config',
        `maxPendingTransfers ${max} is not positive`,
      )
    }
    const nowSeconds = BigInt(Math.floor((options.now ?? Date.now)() / 1000))
    const live: [string, string][] = []
    for (const [key, validBefore] of await options.store.listMeta(EXACT_NONCE_PREFIX)) {
      // An expired authorization can never be transferred again: the token refuses it.
      if (BigInt(validBefore) <= nowSeconds) await options.store.deleteMeta(key)
      else live.push([key, validBefore])
    }
    return new ExactPayee(options, live)
  }

  /** Transfers sent and not yet mined. */
  get pendingTransfers(): number {
    return this.pending
  }

  /**
   * Verifies an exact payment for `route`; on `verified` its nonce is reserved: serve, then
   * {@link settle} (or {@link release} when the handler failed).
   */
  async verify(route: ExactRoute, payment: DecodedExactPayment): Promise<ExactAdmission> {
    const { accepted, payload } = payment
    const { authorization: a } = payload
    const { requirements } = route
    if (accepted.network !== route.network) {
      return refused(
        'invalid_exact_evm_network_mismatch',
        `This resource is paid on ${route.network}, not ${accepted.network}.`,
      )
    }
    if (!requirementsEqual(accepted, requirements)) {
      return {
        ...refused('invalid_payment_requirements', 'Pay the requirements as sent.'),
        status: 402,
        resend: true,
      }
    }
    if (a.to !== requirements.payTo.toLowerCase()) {
      return refused('invalid_exact_evm_recipient_mismatch', `Pay ${requirements.payTo}.`)
    }
    const amount = BigInt(requirements.amount)
    if (a.value !== amount) {
      return refused(
        'invalid_exact_evm_payload_authorization_value_mismatch',
        `The price is ${amount}, the authorization moves ${a.value}.`,
      )
    }
    const now = BigInt(Math.floor(this.now() / 1000))
    if (a.validBefore < now + BigInt(VALID_BEFORE_MARGIN_SECONDS)) {
      return refused(
        'invalid_exact_evm_payload_authorization_valid_before',
        `valid before ${a.validBefore}`,
      )
    }
    if (a.validAfter > now) {
      return refused(
        'invalid_exact_evm_payload_authorization_valid_after',
        `valid after ${a.validAfter}`,
      )
    }
    if (payload.signature.length !== 132) {
      return refused(
        'invalid_exact_evm_signature',
        'Only 65-byte ECDSA (EOA) signatures are accepted.',
      )
    }
    if (!this.verifierFor(route).verify(a, payload.signature)) {
      return refused(
        'invalid_exact_evm_signature',
        'The signature is not the payer’s for this token.',
      )
    }
    const key = `${EXACT_NONCE_PREFIX}${requirements.asset.toLowerCase()}:${a.from}:${a.nonce}`
    if (this.used.has(key) || this.reserved.has(key)) {
      return refused('invalid_exact_evm_nonce_already_used', `nonce ${a.nonce}`)
    }
    if (this.pending + this.reserved.size >= this.maxPending) {
      return refused('tollgate_transfers_busy', `${this.maxPending} transfers are in flight.`)
    }
    this.reserved.add(key)
    let gas: bigint | undefined
    try {
      gas = await this.check(route, payment)
    } catch (err) {
      this.reserved.delete(key)
      if (err instanceof Refusal) return refused(err.code, err.message)
      throw err
    }
    return { kind: 'verified', verified: { payer: a.from, amount, route, payment, gas, key } }
  }

  /** Frees the nonce of a verified payment that will not be settled (the handler failed). */
  release(verified: VerifiedExact): void {
    this.reserved.delete(verified.key)
  }

  /**
   * Settles a verified payment: the nonce is stored durably first, then the transfer is sent (or
   * the facilitator's `/settle` called) and awaited until mined. A failure charges nothing; the
   * nonce stays refused.
   */
  async settle(verified: VerifiedExact): Promise<Result<SettledExact>> {
    const { key, route, payment, payer, amount } = verified
    const { authorization } = payment.payload
    try {
      await this.options.store.putMeta(key, authorization.validBefore.toString())
    } catch (err) {
      this.reserved.delete(key)
      return reject('tollgate_store_failed', err instanceof Error ? err.message : String(err))
    }
    this.used.set(key, authorization.validBefore)
    this.reserved.delete(key)
    if (this.used.size % PRUNE_EVERY === 0) this.prune()
    this.pending++
    try {
      const { transfers, facilitator } = this.options
      if (transfers) {
        const mined = await transfers.transfer(
          route.requirements.asset as Address,
          payment.payload,
          verified.gas ?? 0n,
        )
        return mined.ok ? accept({ transaction: mined.value.transaction, payer, amount }) : mined
      }
      const settled = await (facilitator as FacilitatorClient).settle(
        wire(payment),
        route.requirements,
      )
      if (!settled.success) {
        return reject(
          codeOf(settled.errorReason),
          settled.errorMessage ?? settled.errorReason ?? '',
        )
      }
      return accept({ transaction: settled.transaction as Hex, payer, amount })
    } catch (err) {
      return reject('invalid_exact_evm_transaction_failed', err instanceof Error ? err.message : '')
    } finally {
      this.pending--
    }
  }

  /** Forgets the nonces of expired authorizations (the token refuses them anyway), in memory and in the store. */
  private prune(): void {
    const now = BigInt(Math.floor(this.now() / 1000))
    for (const [key, validBefore] of this.used) {
      if (validBefore > now) continue
      this.used.delete(key)
      this.options.store.deleteMeta(key).catch(() => {})
    }
  }

  /** The simulation's gas, or the facilitator's verdict; throws a {@link Refusal}. */
  private async check(
    route: ExactRoute,
    payment: DecodedExactPayment,
  ): Promise<bigint | undefined> {
    const { transfers, facilitator } = this.options
    if (transfers) {
      const gas = await transfers.simulate(route.requirements.asset as Address, payment.payload)
      if (!gas.ok) throw new Refusal(gas.code, gas.message)
      return gas.value
    }
    let verdict: Awaited<ReturnType<FacilitatorClient['verify']>>
    try {
      verdict = await (facilitator as FacilitatorClient).verify(wire(payment), route.requirements)
    } catch (err) {
      throw new Refusal('tollgate_chain_unavailable', err instanceof Error ? err.message : '')
    }
    if (!verdict.isValid) {
      throw new Refusal(
        codeOf(verdict.invalidReason),
        verdict.invalidMessage ?? verdict.invalidReason ?? '',
      )
    }
    return undefined
  }

  private verifierFor(route: ExactRoute): AuthorizationVerifier {
    const { asset, extra } = route.requirements
    const id = `${asset}:${extra.name}:${extra.version}`
    let verifier = this.verifiers.get(id)
    if (!verifier) {
      verifier = createAuthorizationVerifier({
        backend: this.backend,
        domain: {
          name: extra.name,
          version: extra.version,
          chainId: this.options.chainId,
          verifyingContract: asset as Address,
        },
      })
      this.verifiers.set(id, verifier)
    }
    return verifier
  }
}

/** Opens an {@link ExactPayee}. */
export function openExactPayee(options: ExactPayeeOptions): Promise<ExactPayee> {
  return ExactPayee.open(options)
}

/** A refusal raised inside {@link ExactPayee.verify}'s costly checks. */
class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message)
  }
}

function refused(code: ErrorCode, message: string): ExactAdmission & { kind: 'refused' } {
  return { kind: 'refused', code, message }
}

/** A facilitator's reason as a code of the table, or the generic simulation failure. */
function codeOf(reason: string | undefined): ErrorCode {
  return reason !== undefined && isErrorCode(reason)
    ? reason
    : 'invalid_exact_evm_transaction_simulation_failed'
}

/** The payment in wire form, for a remote facilitator. */
function wire(payment: DecodedExactPayment) {
  return exactPaymentPayload(
    payment.accepted as PaymentRequirements,
    payment.payload,
    payment.resource,
  )
}
