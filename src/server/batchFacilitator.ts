import {
  type Account,
  type Address,
  encodeAbiParameters,
  encodeFunctionData,
  type Hex,
  hashTypedData,
  hexToBytes,
  keccak256,
  type PublicClient,
  parseEventLogs,
} from 'viem'
import { BatchSettlement } from '../chain/contracts.generated.js'
import type { EscrowWriter } from '../chain/escrowWriter.js'
import { revertReason } from '../chain/revertReason.js'
import type { SendCodes, TransactionSender } from '../chain/sendTransaction.js'
import { EIP3009_ABI } from '../chain/transferWithAuthorization.js'
import { accept, describe, type ErrorCode, type Result, reject } from '../errors/index.js'
import type { OnChainChannel } from '../ledger/index.js'
import { SCHEME, ZERO_ADDRESS } from '../protocol/constants.js'
import { decodePaymentPayload } from '../protocol/decodePaymentPayload.js'
import { isRecord, parseAddress } from '../protocol/parse.js'
import type {
  BatchPayload,
  ChannelConfig,
  DepositPayload,
  Network,
  SettleResponse,
  VerifyResponse,
} from '../protocol/types.js'
import {
  type ContractSignatureCheck,
  channelId,
  claimBatchDigest,
  createVoucherVerifier,
  domainSeparatorBytes,
  loadBackend,
  RECEIVE_WITH_AUTHORIZATION_TYPES,
  refundDigest,
  type Secp256k1Backend,
  verifyVoucherFor,
} from '../verify/index.js'
import {
  type ClaimAction,
  decodeSettleAction,
  type RefundAction,
  type SettleAction,
  type VoucherClaim,
} from './decodeSettleAction.js'

const BS = 'invalid_batch_settlement_evm_'

/** What {@link batchFacilitator} reads and simulates through: a viem `PublicClient` has it. */
export type BatchFacilitatorClient = Pick<
  PublicClient,
  'call' | 'estimateGas' | 'multicall' | 'readContract'
>

/** Options of {@link batchFacilitator}. */
export interface BatchFacilitatorOptions {
  chainId: number
  /** The escrow (the canonical `x402BatchSettlement` address). */
  escrow: Address
  /** The ERC-3009 deposit collector the deposits go through (the canonical address). */
  erc3009Collector: Address
  publicClient: BatchFacilitatorClient
  /** Sends the deposits (simulation, send lock, receipt). */
  writer: EscrowWriter
  /** Sends claims, settles and refunds with the settlement fee policy. */
  sender: TransactionSender
  /** The account of `writer` and `sender`: simulations run from it. */
  account: Account
  /** EIP-1271 check of a smart-wallet payer (`payerAuthorizer` zero); an RPC call. */
  contractCheck: ContractSignatureCheck
  /** @default loadBackend('auto') */
  backend?: Secp256k1Backend
  /** @default () => Date.now() / 1000 */
  nowSeconds?: () => number
}

/** The batch-settlement side of tollgate's facilitator. */
export interface BatchFacilitator {
  /** `POST /verify` of a `deposit`, `voucher` or `refund` payload. */
  verify(paymentPayload: unknown, requirements: Record<string, unknown>): Promise<VerifyResponse>
  /** `POST /settle` of a `deposit`, `claim`, `settle` or enriched `refund` payload. */
  settle(paymentPayload: unknown, requirements: Record<string, unknown>): Promise<SettleResponse>
}

/** The state `/verify` reports, read from chain once every signature verified. */
interface Verified {
  readonly payload: BatchPayload
  readonly state: OnChainChannel
}

/** `settle(receiver, token)` costs one SSTORE and one transfer: a fixed limit, as the stock facilitator sends it. */
const SETTLE_GAS = 100_000n

/** An ERC-3009 authorization must stay valid this long after verification, as the stock facilitator requires. */
const VALID_BEFORE_MARGIN_SECONDS = 6

/**
 * batch-settlement for stock x402 servers (`@x402/express` with `@x402/evm`'s batch-settlement
 * server scheme and a remote facilitator URL), in the shapes and codes of `@x402/evm` 2.27.0's
 * facilitator scheme: `/verify` of `deposit`, `voucher` and `refund` payloads answers the
 * channel's on-chain state in `extra`; `/settle` submits a `deposit`, a `claim`
 * (`claimWithSignature`), a `settle` (`settle(receiver, token)`) or an enriched `refund`
 * (`refundWithSignature`, after its claims in one `multicall`), paying the gas.
 *
 * Nothing is read or sent before every signature of the payload verifies (the payer's voucher
 * and deposit authorization, the receiver authorizer's `ClaimBatch` and `Refund`); then the
 * payment is checked against the chain and simulated. It signs nothing itself: a server supplies
 * its receiver authorizer's signatures (`/supported` advertises no `receiverAuthorizer`).
 *
 * @example
 * const batch = batchFacilitator({ chainId, escrow, publicClient, writer, sender, account, contractCheck })
 * const app = facilitatorApp({ exactPayee, batch, network, signer: account.address, token })
 */
export function batchFacilitator(options: BatchFacilitatorOptions): BatchFacilitator {
  const {
    chainId,
    escrow,
    erc3009Collector,
    publicClient,
    writer,
    sender,
    account,
    contractCheck,
  } = options
  const network: Network = `eip155:${chainId}`
  const nowSeconds = options.nowSeconds ?? (() => Date.now() / 1000)
  const separator = domainSeparatorBytes({ chainId, verifyingContract: escrow })
  const verifier = createVoucherVerifier({
    backend: options.backend ?? loadBackend('auto').backend,
    domainSeparator: separator,
  })

  /** Why `config` does not fit the requirements (x402's `validateChannelConfig`), if it does not. */
  function configRefused(
    config: ChannelConfig,
    id: Hex,
    requirements: Record<string, unknown>,
  ): ErrorCode | undefined {
    if (channelId(config, separator) !== id) return `${BS}channel_id_mismatch`
    if (parseAddress(requirements.payTo) !== config.receiver) return `${BS}receiver_mismatch`
    const extra = isRecord(requirements.extra) ? requirements.extra : {}
    const authorizer = parseAddress(extra.receiverAuthorizer)
    if (authorizer === undefined || authorizer === ZERO_ADDRESS) {
      return `${BS}receiver_authorizer_mismatch`
    }
    if (authorizer !== config.receiverAuthorizer) return `${BS}receiver_authorizer_mismatch`
    if (parseAddress(requirements.asset) !== config.token) return `${BS}token_mismatch`
    if (extra.withdrawDelay !== undefined && Number(extra.withdrawDelay) !== config.withdrawDelay) {
      return `${BS}withdraw_delay_mismatch`
    }
    return undefined
  }

  /** Whether the payer signed the deposit's `ReceiveWithAuthorization` (EIP-1271 for a smart-wallet channel). */
  async function depositSigned(
    payload: DepositPayload,
    domain: { name: string; version: string },
  ): Promise<boolean> {
    const { channelConfig: config, voucher, deposit } = payload
    const { validAfter, validBefore, salt, signature } = deposit.erc3009Authorization
    const digest = hashTypedData({
      domain: { ...domain, chainId, verifyingContract: config.token },
      types: RECEIVE_WITH_AUTHORIZATION_TYPES,
      primaryType: 'ReceiveWithAuthorization',
      message: {
        from: config.payer,
        to: erc3009Collector,
        value: deposit.amount,
        validAfter,
        validBefore,
        nonce: keccak256(
          encodeAbiParameters(
            [{ type: 'bytes32' }, { type: 'uint256' }],
            [voucher.channelId, BigInt(salt)],
          ),
        ),
      },
    })
    if (verifier.verifyDigest(hexToBytes(digest), signature, config.payer)) return true
    if (config.payerAuthorizer !== ZERO_ADDRESS) return false
    return contractCheck(config.payer, digest, signature)
  }

  /** Whether `signer` (an EOA receiver authorizer) signed `digest`. */
  const authorizerSigned = (digest: Uint8Array, signature: Hex, signer: Address): boolean =>
    verifier.verifyDigest(digest, signature, signer)

  /** Whether every row's voucher is its payer's. */
  async function vouchersSigned(claims: readonly VoucherClaim[]): Promise<boolean> {
    for (const claim of claims) {
      const voucher = {
        channelId: channelId(claim.channel, separator),
        maxClaimableAmount: claim.maxClaimableAmount,
        signature: claim.signature,
      }
      if (!(await verifyVoucherFor(claim.channel, voucher, { verifier, contractCheck }))) {
        return false
      }
    }
    return true
  }

  /** The claim rows' `claimWithSignature` calldata, once the authorizer's and payers' signatures verify. */
  async function claimCall(
    claims: readonly VoucherClaim[],
    signature: Hex | undefined,
  ): Promise<Result<Hex>> {
    const [first] = claims
    if (first === undefined) return reject(`${BS}claim_payload`, 'no claims.')
    if (signature === undefined) {
      return reject(
        `${BS}authorizer_not_configured`,
        'this facilitator signs no claims: send claimAuthorizerSignature.',
      )
    }
    const authorizer = first.channel.receiverAuthorizer
    if (claims.some((claim) => claim.channel.receiverAuthorizer !== authorizer)) {
      return reject(`${BS}authorizer_address_mismatch`, 'the rows have different authorizers.')
    }
    const entries = claims.map((claim) => ({
      channelId: channelId(claim.channel, separator),
      maxClaimableAmount: claim.maxClaimableAmount,
      totalClaimed: claim.totalClaimed,
    }))
    if (!authorizerSigned(claimBatchDigest(separator, entries), signature, authorizer)) {
      return reject(`${BS}authorizer_address_mismatch`, 'the ClaimBatch signature is not theirs.')
    }
    if (!(await vouchersSigned(claims))) return reject(`${BS}voucher_signature`)
    return accept(
      encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'claimWithSignature',
        args: [
          claims.map((claim) => ({
            voucher: { channel: claim.channel, maxClaimableAmount: claim.maxClaimableAmount },
            signature: claim.signature,
            totalClaimed: claim.totalClaimed,
          })),
          signature,
        ],
      }),
    )
  }

  async function readState(id: Hex, blockNumber?: bigint): Promise<OnChainChannel> {
    const at = blockNumber === undefined ? {} : { blockNumber }
    const [channel, pending, refundNonce] = await publicClient.multicall({
      allowFailure: false,
      ...at,
      contracts: [
        { address: escrow, abi: BatchSettlement.abi, functionName: 'channels', args: [id] },
        {
          address: escrow,
          abi: BatchSettlement.abi,
          functionName: 'pendingWithdrawals',
          args: [id],
        },
        { address: escrow, abi: BatchSettlement.abi, functionName: 'refundNonce', args: [id] },
      ],
    })
    return {
      balance: channel[0],
      totalClaimed: channel[1],
      withdrawRequestedAt: pending[1],
      refundNonce,
    }
  }

  /** Every check of `/verify`, in the stock facilitator's order, signatures before the chain. */
  async function check(
    paymentPayload: unknown,
    requirements: Record<string, unknown>,
  ): Promise<Result<Verified>> {
    const accepted = isRecord(paymentPayload) ? paymentPayload.accepted : undefined
    if (!isRecord(accepted) || accepted.scheme !== SCHEME || requirements.scheme !== SCHEME) {
      return reject(`${BS}scheme`)
    }
    if (accepted.network !== requirements.network || requirements.network !== network) {
      return reject(`${BS}network_mismatch`)
    }
    const decoded = decodePaymentPayload(paymentPayload)
    if (!decoded.ok) return decoded
    const payload = decoded.value.payload
    const { channelConfig: config, voucher } = payload
    const refused = configRefused(config, voucher.channelId, requirements)
    if (refused) return reject(refused)
    if (payload.type === 'deposit') {
      const extra = isRecord(requirements.extra) ? requirements.extra : {}
      if (typeof extra.name !== 'string' || typeof extra.version !== 'string') {
        return reject(`${BS}missing_eip712_domain`)
      }
      const { validAfter, validBefore } = payload.deposit.erc3009Authorization
      const now = Math.floor(nowSeconds())
      if (validBefore < BigInt(now + VALID_BEFORE_MARGIN_SECONDS)) {
        return reject(`${BS}payload_authorization_valid_before`)
      }
      if (validAfter > BigInt(now)) return reject(`${BS}payload_authorization_valid_after`)
      let signed: boolean
      try {
        signed = await depositSigned(payload, { name: extra.name, version: extra.version })
      } catch (err) {
        return reject(`${BS}rpc_read_failed`, revertReason(err))
      }
      if (!signed) return reject(`${BS}receive_authorization_signature`)
    }
    let signed: boolean
    try {
      signed = await verifyVoucherFor(config, voucher, { verifier, contractCheck })
    } catch (err) {
      return reject(`${BS}rpc_read_failed`, revertReason(err))
    }
    if (!signed) return reject(`${BS}voucher_signature`)

    let state: OnChainChannel
    let payerBalance = 0n
    try {
      if (payload.type === 'deposit') {
        const [read, balance] = await Promise.all([
          readState(voucher.channelId),
          publicClient.readContract({
            address: config.token,
            abi: EIP3009_ABI,
            functionName: 'balanceOf',
            args: [config.payer],
          }),
        ])
        state = read
        payerBalance = balance
      } else {
        state = await readState(voucher.channelId)
      }
    } catch (err) {
      return reject(`${BS}rpc_read_failed`, revertReason(err))
    }
    const ceiling = voucher.maxClaimableAmount
    if (payload.type === 'deposit') {
      if (payerBalance < payload.deposit.amount) return reject(`${BS}insufficient_balance`)
      if (ceiling > state.balance + payload.deposit.amount) {
        return reject(`${BS}cumulative_exceeds_balance`)
      }
      if (ceiling <= state.totalClaimed) return reject(`${BS}cumulative_below_claimed`)
      try {
        await publicClient.call({ account, to: escrow, data: depositCall(payload) })
      } catch (err) {
        return reject(`${BS}deposit_simulation_failed`, revertReason(err))
      }
      return accept({ payload, state })
    }
    if (state.balance === 0n) return reject(`${BS}channel_not_found`)
    if (ceiling > state.balance) return reject(`${BS}cumulative_exceeds_balance`)
    const below =
      payload.type === 'refund' ? ceiling < state.totalClaimed : ceiling <= state.totalClaimed
    if (below) return reject(`${BS}cumulative_below_claimed`)
    return accept({ payload, state })
  }

  function depositCall(payload: DepositPayload): Hex {
    const { validAfter, validBefore, salt, signature } = payload.deposit.erc3009Authorization
    return encodeFunctionData({
      abi: BatchSettlement.abi,
      functionName: 'deposit',
      args: [
        payload.channelConfig,
        payload.deposit.amount,
        erc3009Collector,
        encodeAbiParameters(
          [{ type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'bytes' }],
          [validAfter, validBefore, BigInt(salt), signature],
        ),
      ],
    })
  }

  /** Simulates `data` on the escrow by estimating its gas, then sends it and waits. */
  async function simulateAndSend(
    data: Hex,
    codes: { simulation: ErrorCode; transaction: ErrorCode },
    gas?: bigint,
  ) {
    let estimate: bigint
    try {
      estimate = await publicClient.estimateGas({ account, to: escrow, data })
    } catch (err) {
      return reject(codes.simulation, revertReason(err))
    }
    const sendCodes: SendCodes = {
      transaction: codes.transaction,
      insufficientGas: 'tollgate_settlement_insufficient_gas',
    }
    return sender.send(escrow, data, gas ?? estimate, sendCodes)
  }

  const failed = (code: ErrorCode, message: string, payer?: Address): SettleResponse => ({
    success: false,
    errorReason: code,
    errorMessage: message,
    ...(payer === undefined ? {} : { payer }),
    transaction: '',
    network,
  })

  const wireState = (id: Hex, state: OnChainChannel) => ({
    channelId: id,
    balance: state.balance.toString(),
    totalClaimed: state.totalClaimed.toString(),
    withdrawRequestedAt: Number(state.withdrawRequestedAt),
    refundNonce: state.refundNonce.toString(),
  })

  async function settleDeposit(
    paymentPayload: unknown,
    requirements: Record<string, unknown>,
  ): Promise<SettleResponse> {
    const verified = await check(paymentPayload, requirements)
    if (!verified.ok) return failed(verified.code, verified.message, payerOf(paymentPayload))
    const payload = verified.value.payload as DepositPayload
    const { payer } = payload.channelConfig
    const deposited = await writer.deposit(payload)
    if (!deposited.ok) return failed(deposited.code, deposited.message, payer)
    const id = payload.voucher.channelId
    return {
      success: true,
      transaction: deposited.value.transaction,
      network,
      payer,
      amount: payload.deposit.amount.toString(),
      extra: {
        channelState: wireState(id, { ...verified.value.state, balance: deposited.value.balance }),
      },
    }
  }

  async function settleClaim(action: ClaimAction): Promise<SettleResponse> {
    const call = await claimCall(action.claims, action.claimAuthorizerSignature)
    if (!call.ok) return failed(call.code, call.message)
    const sent = await simulateAndSend(call.value, {
      simulation: `${BS}claim_simulation_failed`,
      transaction: `${BS}claim_transaction_failed`,
    })
    if (!sent.ok) return failed(sent.code, sent.message)
    return { success: true, transaction: sent.value.hash, network }
  }

  async function settleSweep(action: SettleAction): Promise<SettleResponse> {
    const { receiver, token } = action
    let claimed: bigint
    let settled: bigint
    try {
      ;[claimed, settled] = await publicClient.readContract({
        address: escrow,
        abi: BatchSettlement.abi,
        functionName: 'receivers',
        args: [receiver, token],
      })
    } catch (err) {
      return failed(`${BS}rpc_read_failed`, revertReason(err))
    }
    if (claimed <= settled) {
      return failed(`${BS}nothing_to_settle`, 'nothing to settle for receiver and token')
    }
    const data = encodeFunctionData({
      abi: BatchSettlement.abi,
      functionName: 'settle',
      args: [receiver, token],
    })
    const sent = await simulateAndSend(
      data,
      {
        simulation: `${BS}settle_simulation_failed`,
        transaction: `${BS}settle_transaction_failed`,
      },
      SETTLE_GAS,
    )
    if (!sent.ok) return failed(sent.code, sent.message)
    const [event] = parseEventLogs({
      abi: BatchSettlement.abi,
      eventName: 'Settled',
      logs: sent.value.logs.filter((log) => log.address.toLowerCase() === escrow.toLowerCase()),
    })
    return {
      success: true,
      transaction: sent.value.hash,
      network,
      amount: (event?.args.amount ?? 0n).toString(),
    }
  }

  async function settleRefund(action: RefundAction): Promise<SettleResponse> {
    const { channelConfig: config, voucher, amount, refundNonce } = action
    const { payer } = config
    const id = channelId(config, separator)
    if (id !== voucher.channelId)
      return failed(`${BS}channel_id_mismatch`, describe(`${BS}channel_id_mismatch`), payer)
    if (action.refundAuthorizerSignature === undefined) {
      return failed(
        `${BS}authorizer_not_configured`,
        'this facilitator signs no refunds: send refundAuthorizerSignature.',
        payer,
      )
    }
    const refundSigned = authorizerSigned(
      refundDigest(separator, id, refundNonce, amount),
      action.refundAuthorizerSignature,
      config.receiverAuthorizer,
    )
    if (!refundSigned) {
      return failed(
        `${BS}authorizer_address_mismatch`,
        'the Refund signature is not the receiver authorizer’s.',
        payer,
      )
    }
    let signed: boolean
    try {
      signed = await verifyVoucherFor(config, voucher, { verifier, contractCheck })
    } catch (err) {
      return failed(`${BS}rpc_read_failed`, revertReason(err), payer)
    }
    if (!signed) return failed(`${BS}voucher_signature`, describe(`${BS}voucher_signature`), payer)
    let claim: Hex | undefined
    if (action.claims.length > 0) {
      const call = await claimCall(action.claims, action.claimAuthorizerSignature)
      if (!call.ok) return failed(call.code, call.message, payer)
      claim = call.value
    }

    let before: OnChainChannel
    try {
      before = await readState(id)
    } catch (err) {
      return failed(`${BS}rpc_read_failed`, revertReason(err), payer)
    }
    const claimedAfter = action.claims.reduce(
      (most, row) =>
        channelId(row.channel, separator) === id && row.totalClaimed > most
          ? row.totalClaimed
          : most,
      before.totalClaimed,
    )
    if (claimedAfter === before.balance) {
      return failed(`${BS}refund_no_balance`, 'Nothing to refund', payer)
    }
    const refund = encodeFunctionData({
      abi: BatchSettlement.abi,
      functionName: 'refundWithSignature',
      args: [config, amount, refundNonce, action.refundAuthorizerSignature],
    })
    const data =
      claim === undefined
        ? refund
        : encodeFunctionData({
            abi: BatchSettlement.abi,
            functionName: 'multicall',
            args: [[claim, refund]],
          })
    const sent = await simulateAndSend(data, {
      simulation: `${BS}refund_simulation_failed`,
      transaction: `${BS}refund_transaction_failed`,
    })
    if (!sent.ok) return failed(sent.code, sent.message, payer)
    const [event] = parseEventLogs({
      abi: BatchSettlement.abi,
      eventName: 'Refunded',
      logs: sent.value.logs.filter((log) => log.address.toLowerCase() === escrow.toLowerCase()),
    })
    const refunded = event?.args.amount ?? 0n
    const after = await readState(id, sent.value.blockNumber).catch(() => ({
      balance: before.balance - refunded,
      totalClaimed: claimedAfter,
      withdrawRequestedAt: before.withdrawRequestedAt,
      refundNonce: refundNonce + 1n,
    }))
    return {
      success: true,
      transaction: sent.value.hash,
      network,
      payer,
      amount: refunded.toString(),
      extra: { channelState: wireState(id, after) },
    }
  }

  return {
    async verify(paymentPayload, requirements) {
      const verified = await check(paymentPayload, requirements)
      if (!verified.ok) {
        const payer = payerOf(paymentPayload)
        return {
          isValid: false,
          invalidReason: verified.code,
          invalidMessage: verified.message,
          ...(payer === undefined ? {} : { payer }),
        }
      }
      const { payload, state } = verified.value
      return {
        isValid: true,
        payer: payload.channelConfig.payer,
        extra: wireState(payload.voucher.channelId, state),
      }
    },

    async settle(paymentPayload, requirements) {
      const inner = isRecord(paymentPayload) ? paymentPayload.payload : undefined
      if (isRecord(inner) && inner.type === 'deposit') {
        return settleDeposit(paymentPayload, requirements)
      }
      if (requirements.network !== network) {
        return failed(`${BS}network_mismatch`, describe(`${BS}network_mismatch`))
      }
      const action = decodeSettleAction(inner)
      if (action === undefined) {
        return failed(`${BS}payload_type`, describe(`${BS}payload_type`))
      }
      if (!action.ok) return failed(action.code, action.message)
      switch (action.value.type) {
        case 'claim':
          return settleClaim(action.value)
        case 'settle':
          return settleSweep(action.value)
        case 'refund':
          return settleRefund(action.value)
      }
    },
  }
}

/** The payer a payment payload names, when its channel config names one. */
function payerOf(paymentPayload: unknown): Address | undefined {
  const inner = isRecord(paymentPayload) ? paymentPayload.payload : undefined
  const config = isRecord(inner) ? inner.channelConfig : undefined
  return isRecord(config) ? parseAddress(config.payer) : undefined
}
