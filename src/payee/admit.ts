import type { EscrowReceipt } from '../chain/escrowWriter.js'
import type { ErrorCode } from '../errors/index.js'
import type { ChannelRecord, Hold, VoucherRule } from '../ledger/index.js'
import {
  type BatchPayload,
  type DecodedPayment,
  type Network,
  type PaymentRequirements,
  requirementsEqual,
} from '../protocol/index.js'
import type { Decision } from './payee.js'

/** What an adapter (HTTP route, WebSocket route, MCP tool) knows of what it sells. */
export interface PaidRoute {
  /** CAIP-2 network of the escrow. */
  readonly network: Network
  /** The requirements the route issues; a payment must echo them as sent. */
  readonly requirements: PaymentRequirements
  /** `exact` (one request at `price`) or `credit` (a window of messages). */
  readonly rule: VoucherRule
  /** The smallest deposit the route advertises (`extra.minDeposit`); smaller ones are refused. */
  readonly minDeposit?: bigint | undefined
}

/**
 * The payee's answer to one payment, which every adapter switches on:
 * - `held`: the voucher is durable and the channel held; serve, then `commit` or `release`.
 * - `corrective`: the ceiling is not what the server holds (x402's `cumulative_amount_mismatch`)
 *   and the voucher is signed by the channel's signer: answer with the channel's state so the
 *   payer can resync (a corrective 402).
 * - `refused`: a stable code; `status` overrides the code's HTTP status, and `resend` asks for
 *   the route's requirements to go back with it (a client that paid stale requirements).
 */
export type Admission =
  | { readonly kind: 'held'; readonly hold: Hold; readonly deposit?: EscrowReceipt }
  | {
      readonly kind: 'corrective'
      readonly code: ErrorCode
      readonly message: string
      readonly record: ChannelRecord
    }
  | {
      readonly kind: 'refused'
      readonly code: ErrorCode
      readonly message: string
      readonly status?: number
      readonly resend?: true
      /** Seconds until the rate limit that refused it lets it through (`tollgate_rate_limited`). */
      readonly retryAfter?: number
    }

/** The payload types an adapter takes besides vouchers. */
export interface AcceptedPayloads {
  /** ERC-3009 deposits (the server sends them and pays the gas): needs an escrow writer. */
  readonly deposit: boolean
  /** Cooperative refunds: needs an escrow writer. */
  readonly refund: boolean
  /** Why the others are not taken, for the refusal's message. */
  readonly why?: string
}

/**
 * The checks of a decoded payment that cost nothing, before anything is read or stored: the
 * network, the requirements as issued, and the payload type. `undefined` when they pass.
 */
export function screenPayment(
  route: PaidRoute,
  decoded: DecodedPayment,
  accepts: AcceptedPayloads,
): (Admission & { kind: 'refused' }) | undefined {
  const { accepted, payload } = decoded
  if (accepted.network !== route.network) {
    return refused(
      'invalid_network',
      `This resource is paid on ${route.network}, not ${accepted.network}.`,
    )
  }
  if (!requirementsEqual(accepted, route.requirements)) {
    // 402, not the table's 400: the client recovers by paying the requirements it is sent.
    return {
      ...refused('invalid_payment_requirements', 'Pay the requirements as sent.'),
      status: 402,
      resend: true,
    }
  }
  if (!accepts[payload.type as keyof AcceptedPayloads] && payload.type !== 'voucher') {
    return refused(
      'invalid_batch_settlement_evm_payload_type',
      `${payload.type} payloads are not accepted here${accepts.why ? ` (${accepts.why})` : ''}: deposit on chain, then pay by voucher.`,
    )
  }
  return undefined
}

/** Maps a payee decision onto an {@link Admission}. */
export function admission(decision: Decision & { readonly deposit?: EscrowReceipt }): Admission {
  if (decision.ok) {
    return decision.deposit
      ? { kind: 'held', hold: decision.hold, deposit: decision.deposit }
      : { kind: 'held', hold: decision.hold }
  }
  const { code, message, record, retryAfter } = decision
  if (code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' && record) {
    return { kind: 'corrective', code, message, record }
  }
  return retryAfter === undefined
    ? refused(code, message)
    : { ...refused(code, message), retryAfter }
}

/** A voucher-carrying payload (`voucher` or `deposit`) as the payee decides it. */
export type VoucherCarrying = Extract<BatchPayload, { type: 'voucher' | 'deposit' }>

function refused(code: ErrorCode, message: string): Admission & { kind: 'refused' } {
  return { kind: 'refused', code, message }
}
