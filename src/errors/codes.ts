/**
 * Every error code tollgate emits, in one table: the code, the HTTP status it maps to,
 * and what it means. Codes are stable: clients and operators match on them.
 *
 * x402 codes (`invalid_batch_settlement_evm_*`, `invalid_exact_evm_*` and the generic
 * `invalid_*`) are the protocol's own (coinbase/x402 `specs/schemes/batch-settlement`, `exact`,
 * spelled as `@x402/evm` 2.27.0 spells them); codes starting with
 * `tollgate_` are tollgate's where x402 has none.
 */

const BS = 'invalid_batch_settlement_evm_'
/** Prefix of the codes of x402's `exact` scheme on EVM, as `@x402/evm` spells them. */
const EX = 'invalid_exact_evm_'

type Entry = readonly [status: number, description: string]

const table = {
  // Generic x402 codes.
  invalid_payload: [400, 'The payment payload is malformed.'],
  invalid_payment_requirements: [
    400,
    'The accepted requirements do not match what this resource asks.',
  ],
  invalid_scheme: [400, 'The payload names a scheme this server does not accept here.'],
  unsupported_scheme: [400, 'The scheme is not supported.'],
  invalid_x402_version: [400, 'Only x402Version 2 is accepted.'],
  invalid_network: [402, 'The payload names another network.'],
  insufficient_funds: [402, 'The payer has too little to cover the price.'],

  // x402 batch-settlement codes.
  [`${BS}authorizer_address_mismatch`]: [402, 'The signer is not the channel authorizer.'],
  [`${BS}authorizer_not_configured`]: [
    402,
    "A receiver authorizer's signature is missing and this facilitator signs none.",
  ],
  [`${BS}channel_busy`]: [402, 'Another request on this channel is in progress.'],
  [`${BS}channel_id_mismatch`]: [
    402,
    'The voucher channelId is not the hash of the channel config.',
  ],
  [`${BS}channel_not_found`]: [402, 'The channel has no deposit on chain.'],
  [`${BS}channel_state_read_failed`]: [502, 'The channel state could not be read from chain.'],
  [`${BS}charge_exceeds_signed_cumulative`]: [402, 'The charge would exceed the signed ceiling.'],
  [`${BS}claim_payload`]: [400, 'The claim payload is malformed.'],
  [`${BS}claim_simulation_failed`]: [502, 'The claim transaction failed in simulation.'],
  [`${BS}claim_transaction_failed`]: [502, 'The claim transaction failed.'],
  [`${BS}cumulative_amount_mismatch`]: [
    402,
    'The voucher ceiling is not charged-so-far plus the price.',
  ],
  [`${BS}cumulative_below_claimed`]: [
    402,
    'The voucher ceiling is not above what was already claimed.',
  ],
  [`${BS}cumulative_exceeds_balance`]: [402, 'The voucher ceiling exceeds the channel balance.'],
  [`${BS}deposit_payload`]: [400, 'The deposit payload is malformed.'],
  [`${BS}deposit_simulation_failed`]: [402, 'The deposit failed in simulation.'],
  [`${BS}deposit_below_min_deposit`]: [
    402,
    'The deposit is below the minDeposit this resource asks.',
  ],
  [`${BS}deposit_transaction_failed`]: [502, 'The deposit transaction failed.'],
  [`${BS}erc3009_authorization_required`]: [400, 'A deposit needs an ERC-3009 authorization.'],
  [`${BS}insufficient_balance`]: [402, 'The payer token balance is below the deposit.'],
  [`${BS}missing_channel`]: [400, 'The payload carries no channel config.'],
  [`${BS}missing_eip712_domain`]: [500, 'The token EIP-712 name and version are not configured.'],
  [`${BS}network_mismatch`]: [402, 'The payload names another network.'],
  [`${BS}payload_authorization_valid_after`]: [402, 'The deposit authorization is not valid yet.'],
  [`${BS}payload_authorization_valid_before`]: [402, 'The deposit authorization has expired.'],
  [`${BS}payload_type`]: [400, 'Unknown payload type.'],
  [`${BS}receive_authorization_signature`]: [
    402,
    'The ERC-3009 authorization signature is invalid.',
  ],
  [`${BS}receiver_authorizer_mismatch`]: [
    402,
    "The channel's receiverAuthorizer is not this server's.",
  ],
  [`${BS}receiver_mismatch`]: [402, "The channel's receiver is not this server's."],
  [`${BS}refund_amount_invalid`]: [400, 'The refund amount is invalid.'],
  [`${BS}refund_no_balance`]: [402, 'The channel has nothing left to refund.'],
  [`${BS}refund_payload`]: [400, 'The refund payload is malformed.'],
  [`${BS}refund_simulation_failed`]: [502, 'The refund failed in simulation.'],
  [`${BS}refund_transaction_failed`]: [502, 'The refund transaction failed.'],
  [`${BS}rpc_read_failed`]: [502, 'A chain read failed.'],
  [`${BS}scheme`]: [400, 'The payload is not for the batch-settlement scheme.'],
  [`${BS}settle_payload`]: [400, 'The settle payload is malformed.'],
  [`${BS}nothing_to_settle`]: [409, 'There is nothing claimed and unsettled.'],
  [`${BS}settle_simulation_failed`]: [502, 'The settle transaction failed in simulation.'],
  [`${BS}settle_transaction_failed`]: [502, 'The settle transaction failed.'],
  [`${BS}token_mismatch`]: [402, "The channel's token is not this server's."],
  [`${BS}transaction_reverted`]: [502, 'The transaction reverted.'],
  [`${BS}unknown_settle_action`]: [400, 'Unknown settle action.'],
  [`${BS}voucher_payload`]: [400, 'The voucher is malformed.'],
  [`${BS}voucher_signature`]: [402, 'The voucher signature is invalid.'],
  [`${BS}wait_for_receipt_failed`]: [502, 'Waiting for the transaction receipt failed.'],
  [`${BS}withdraw_delay_mismatch`]: [402, "The channel's withdrawDelay is not this server's."],
  [`${BS}withdraw_delay_out_of_range`]: [400, 'withdrawDelay must lie in [900, 2592000] seconds.'],

  // x402 exact-scheme codes (EIP-3009 `transferWithAuthorization`), as @x402/evm spells them.
  [`${EX}scheme`]: [400, 'The payload is not for the exact scheme.'],
  [`${EX}network_mismatch`]: [402, 'The authorization names another network.'],
  [`${EX}missing_eip712_domain`]: [500, 'The token EIP-712 name and version are not configured.'],
  [`${EX}recipient_mismatch`]: [402, 'The authorization pays another recipient.'],
  [`${EX}signature`]: [402, 'The authorization signature is not from its payer for this token.'],
  [`${EX}payload_authorization_valid_before`]: [402, 'The authorization has expired.'],
  [`${EX}payload_authorization_valid_after`]: [402, 'The authorization is not valid yet.'],
  [`${EX}payload_authorization_value_mismatch`]: [402, 'The authorization value is not the price.'],
  [`${EX}nonce_already_used`]: [402, 'The authorization nonce was used before.'],
  [`${EX}insufficient_balance`]: [402, 'The payer token balance is below the price.'],
  [`${EX}transaction_simulation_failed`]: [402, 'The transfer failed in simulation.'],
  [`${EX}transaction_failed`]: [502, 'The transfer transaction failed.'],

  // tollgate codes, where x402 has none.
  tollgate_payment_header_too_large: [431, 'The payment header exceeds the size limit.'],
  tollgate_invalid_payment_required: [
    502,
    'The payment requirements sent by the server are malformed.',
  ],
  tollgate_invalid_payment_response: [502, 'The payment response sent by the server is malformed.'],
  tollgate_withdrawal_pending: [
    402,
    'The payer started a withdrawal; the channel takes no new vouchers.',
  ],
  tollgate_exposure_cap: [
    402,
    'The channel has too much unclaimed; retry after the server claims.',
  ],
  tollgate_escrow_mismatch: [402, 'The channel belongs to another escrow contract.'],
  // WebSocket transport (src/transports/ws/PROTOCOL.md); the status is advisory there.
  tollgate_ws_bad_frame: [400, 'The frame is not a valid tollgate WebSocket frame.'],
  tollgate_ws_frame_too_large: [413, 'The frame exceeds the size limit.'],
  tollgate_ws_no_credit: [
    402,
    'The session has too little credit for this message; send a voucher.',
  ],
  tollgate_ws_too_many_requests: [429, 'Too many requests are in flight on this connection.'],
  // HTTP ticks (src/transports/http/PROTOCOL.md): hash-chain calls within a voucher's window.
  tollgate_tick_invalid: [
    402,
    'The tick is not the next preimage of the channel window (replayed, out of order, or of another chain).',
  ],
  tollgate_tick_window_ended: [
    402,
    'The channel has no open tick window (used up, idle, withdrawn, repriced or the server restarted); open a new one with a voucher.',
  ],
  // Payer SDK (src/client): refusals made on the payer's side; the status is advisory there.
  tollgate_spend_limit: [
    402,
    'The payment would exceed a spend limit of the payer; nothing was signed.',
  ],
  tollgate_receipt_mismatch: [
    502,
    "The server's receipt or corrective 402 does not add up; the payer stopped paying it.",
  ],
  tollgate_payee_blocked: [
    403,
    'The payer stopped paying this server after a receipt that did not add up.',
  ],
  tollgate_invalid_config: [500, 'tollgate was configured wrongly.'],
  tollgate_store_failed: [503, 'The voucher could not be stored; nothing was charged.'],
  tollgate_store_not_durable: [
    500,
    'The shared store (Redis) does not persist each write as the store mode requires.',
  ],
  tollgate_identity_mismatch: [
    500,
    'The data directory holds the channels of another server identity (key, receiver, token, chain, escrow or withdraw delay).',
  ],
  tollgate_chain_unavailable: [502, 'The chain node could not be reached.'],
  // Command line (src/cli); the status is advisory there.
  tollgate_invalid_arguments: [400, 'The command line is not valid; see the usage.'],
  // Local chain (src/chain/anvil.ts); the status is advisory there.
  tollgate_anvil_not_found: [503, 'The anvil binary of the local chain was not found.'],
  // Settlement (src/settlement): claims and settle sweeps the server sends.
  tollgate_settlement_busy: [409, 'Another settler holds the settlement lease.'],
  tollgate_settlement_insufficient_gas: [
    503,
    'The settlement account has too little native coin to pay for gas; fund it.',
  ],
  tollgate_settlement_unreachable: [
    503,
    'The data directory is locked by a running server whose admin listener cannot be reached.',
  ],
  tollgate_onchain_rate_limited: [
    429,
    'Too many on-chain actions (deposits, refunds) were asked of this server; pay by voucher, or retry later.',
  ],
  tollgate_onchain_budget_spent: [
    503,
    'The server spent its gas budget for payer transactions this period; deposit on chain yourself, or retry later.',
  ],
  tollgate_transfers_busy: [
    503,
    'Too many exact-scheme transfers are waiting to be mined; retry shortly.',
  ],
  // Oracle pricing (src/chain/priceFeed.ts): routes priced in dollars through a price feed.
  tollgate_price_stale: [
    503,
    "The token's price feed has no fresh, complete round; nothing is charged until it has. Retry later.",
  ],
  tollgate_price_below_peg: [
    503,
    "The token's price is below the floor this server accepts; nothing is charged until it recovers.",
  ],
  tollgate_unauthorized: [401, 'The bearer token is missing or wrong (Authorization: Bearer).'],
  tollgate_rate_limited: [429, 'Too many requests; retry after the Retry-After seconds.'],
  tollgate_internal: [500, 'Internal error.'],
} as const satisfies Record<string, Entry>

/** A stable tollgate or x402 error code. */
export type ErrorCode = keyof typeof table

/** The HTTP status and description of every code, frozen. */
export const ERROR_CODES: Readonly<Record<ErrorCode, Entry>> = Object.freeze(table)

/** The HTTP status a code maps to. */
export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code][0]
}

/** The fixed one-line description of a code. */
export function describe(code: ErrorCode): string {
  return ERROR_CODES[code][1]
}

/** Whether a string is one of the codes of the table. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value)
}
