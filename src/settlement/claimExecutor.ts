import {
  type Account,
  type Address,
  type Chain,
  encodeFunctionData,
  type Hex,
  type PublicClient,
  type Transport,
  toFunctionSelector,
  type WalletClient,
} from 'viem'
import { BatchSettlement } from '../chain/contracts.generated.js'
import { encodePackedClaim, type PackedClaimHeader } from '../chain/packedClaim.js'
import { revertReason } from '../chain/revertReason.js'
import {
  createSendLock,
  SEND_PRIORITY,
  type SendLock,
  type SendPriority,
} from '../chain/sendLock.js'
import {
  createTransactionSender,
  isRpcFailure,
  type MinedTransaction,
} from '../chain/sendTransaction.js'
import { accept, type ErrorCode, type Result, reject, TollgateError } from '../errors/index.js'
import type { ServerIdentity } from '../ledger/types.js'
import { BATCH_SETTLEMENT_TYPES, escrowDomain } from '../verify/index.js'
import type { PlannedBatch } from './planSettlement.js'

/** Blocks a claim must be buried under before it counts as done. */
export const DEFAULT_SETTLEMENT_CONFIRMATIONS = 1

/** How long a sent transaction may stay unmined before it is replaced with higher fees: 60 s. */
export const DEFAULT_REPLACE_AFTER_MS = 60_000
/**
 * How long a mined claim may wait for its confirmations before the run gives up on it (the
 * journal reconciles it on the next run): a node that stops answering never holds settlement.
 */
export const DEFAULT_CONFIRM_TIMEOUT_MS = 120_000

/** Fee increase of a replacement, in percent: nodes demand at least 10. */
export const DEFAULT_FEE_BUMP_PERCENT = 25

/** Replacements of one transaction before giving up waiting for it. */
export const DEFAULT_MAX_REPLACEMENTS = 3

export interface ClaimExecutorOptions {
  publicClient: PublicClient
  /** Sends claims and settle sweeps and pays their gas. */
  walletClient: WalletClient<Transport, Chain, Account>
  escrow: Address
  /** The server's channel fields: the receiver and authorizer allowed to claim, the token to settle. */
  identity: ServerIdentity
  /**
   * Signs the `ClaimBatch` of a relayed `claimWithSignature` when the sender is neither the
   * receiver nor the receiver authorizer: the receiver authorizer's account.
   */
  authorizer?: Account
  /** Use `claimPacked` for EOA channels. @default detected: the escrow's code has the `claimPacked` selector */
  packed?: boolean
  /** @default DEFAULT_SETTLEMENT_CONFIRMATIONS */
  confirmations?: number
  /** @default DEFAULT_REPLACE_AFTER_MS */
  replaceAfterMs?: number
  /** @default DEFAULT_CONFIRM_TIMEOUT_MS */
  confirmTimeoutMs?: number
  /** @default DEFAULT_FEE_BUMP_PERCENT */
  feeBumpPercent?: number
  /** @default DEFAULT_MAX_REPLACEMENTS */
  maxReplacements?: number
  /** Shared with every other sender of the account in this process (deposits, refunds). @default a lock of its own */
  sendLock?: SendLock
}

/** A mined, successful transaction. */
export interface SentTransaction {
  readonly hash: Hex
  readonly blockNumber: bigint
  readonly gasUsed: bigint
  /** Wei paid per gas. */
  readonly effectiveGasPrice: bigint
}

/** Called once per transaction sent for one call (the first, then each replacement), before waiting. */
export type OnSent = (hash: Hex, nonce: number) => Promise<void>

/**
 * Sends claim batches and settle sweeps on viem. Every call simulates first, checks that the
 * sender can pay the gas, takes the account's pending nonce, sends, replaces the transaction
 * with higher fees when it stays unmined, and waits for confirmations. Failures are values with
 * stable codes; nothing throws but bugs.
 */
export interface ClaimExecutor {
  /** Whether EOA channels are claimed through `claimPacked`. */
  packed(): Promise<boolean>
  /** On-chain `channels(id).totalClaimed` of each channel, in one Multicall3 call. */
  readClaimed(channelIds: readonly Hex[]): Promise<Map<Hex, bigint>>
  /** Claimed and not yet settled for the server's receiver and token. */
  readUnsettled(): Promise<bigint>
  /** Wei per gas the next transaction would pay (max fee). */
  gasPrice(): Promise<bigint>
  claim(batch: PlannedBatch, onSent: OnSent): Promise<Result<SentTransaction>>
  settle(onSent?: OnSent): Promise<Result<SentTransaction & { readonly amount: bigint }>>
  /**
   * Waits for one of `hashes` (same nonce; a crashed run's) to be mined, if any is known to the
   * node. Resolves to undefined when none is mined or pending: those transactions are gone.
   */
  resume(hashes: readonly Hex[]): Promise<Result<SentTransaction> | undefined>
}

const abi = BatchSettlement.abi
const CLAIM_PACKED_SELECTOR = toFunctionSelector('claimPacked(bytes)').slice(2)

/**
 * A {@link ClaimExecutor}. The entry point: `claimPacked` (tollgate's escrow, EOA channels) or the
 * x402 `claim` when the sender is the receiver or its authorizer; `claimWithSignature` with a
 * `ClaimBatch` signed by `authorizer` otherwise.
 *
 * @throws TollgateError `tollgate_invalid_config` when the sender may not claim and no authorizer is given.
 *
 * @example
 * const executor = claimExecutor({ publicClient, walletClient, escrow, identity })
 * const sent = await executor.claim(batch, (hash, nonce) => journal.sent(entry, hash, nonce))
 */
export function claimExecutor(options: ClaimExecutorOptions): ClaimExecutor {
  const { publicClient, walletClient, escrow, identity } = options
  const account = walletClient.account
  const sender = account.address
  const replaceAfterMs = options.replaceAfterMs ?? DEFAULT_REPLACE_AFTER_MS
  const feeBumpPercent = options.feeBumpPercent ?? DEFAULT_FEE_BUMP_PERCENT
  const maxReplacements = options.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS
  const receiverSide = [identity.receiver, identity.receiverAuthorizer].some(
    (a) => a.toLowerCase() === sender.toLowerCase(),
  )
  if (!receiverSide && !options.authorizer) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `settlement sender ${sender} is neither the receiver nor its authorizer; give the authorizer's key to relay claimWithSignature`,
    )
  }
  if (feeBumpPercent < 10)
    throw new TollgateError('tollgate_invalid_config', 'feeBumpPercent must be >= 10')
  const transactions = createTransactionSender({
    publicClient,
    walletClient,
    sendLock: options.sendLock ?? createSendLock(),
    confirmations: options.confirmations ?? DEFAULT_SETTLEMENT_CONFIRMATIONS,
    replaceAfterMs,
    feeBumpPercent,
    maxReplacements,
    confirmTimeoutMs: options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS,
  })
  const { waitForAny } = transactions
  let packedSupport: Promise<boolean> | undefined

  const packed = () => {
    packedSupport ??=
      options.packed !== undefined
        ? Promise.resolve(options.packed && receiverSide)
        : publicClient
            .getCode({ address: escrow })
            .then((code) => receiverSide && (code ?? '').includes(CLAIM_PACKED_SELECTOR))
    return packedSupport
  }

  async function encodeClaim(batch: PlannedBatch): Promise<Hex> {
    const rows = batch.claims.map((c) => ({
      voucher: { channel: c.config, maxClaimableAmount: c.maxClaimableAmount },
      signature: c.signature,
      totalClaimed: c.totalClaimed,
    }))
    if (batch.method === 'claimPacked') {
      return encodeFunctionData({
        abi,
        functionName: 'claimPacked',
        args: [
          encodePackedClaim(
            packedHeader(batch),
            batch.claims.map((c) => ({
              payer: c.config.payer,
              payerAuthorizer: c.config.payerAuthorizer,
              salt: c.config.salt,
              maxClaimableAmount: c.maxClaimableAmount,
              totalClaimed: c.totalClaimed,
              signature: c.signature,
            })),
          ),
        ],
      })
    }
    if (receiverSide) return encodeFunctionData({ abi, functionName: 'claim', args: [rows] })
    const authorizer = options.authorizer as Account
    if (!authorizer.signTypedData)
      throw new TollgateError('tollgate_invalid_config', 'the authorizer account cannot sign')
    const signature = await authorizer.signTypedData({
      domain: escrowDomain(walletClient.chain.id, escrow),
      types: {
        ClaimBatch: BATCH_SETTLEMENT_TYPES.ClaimBatch,
        ClaimEntry: BATCH_SETTLEMENT_TYPES.ClaimEntry,
      },
      primaryType: 'ClaimBatch',
      message: {
        claims: batch.claims.map((c) => ({
          channelId: c.channelId,
          maxClaimableAmount: c.maxClaimableAmount,
          totalClaimed: c.totalClaimed,
        })),
      },
    })
    return encodeFunctionData({ abi, functionName: 'claimWithSignature', args: [rows, signature] })
  }

  /** Simulates, then sends through the shared sender (fees, gas funds, replacements, waits). */
  async function send(
    data: Hex,
    codes: { simulation: ErrorCode; transaction: ErrorCode },
    onSent: OnSent,
    priority: SendPriority = SEND_PRIORITY.claim,
  ): Promise<Result<SentTransaction>> {
    let gas: bigint
    try {
      await publicClient.call({ account, to: escrow, data })
      gas = await publicClient.estimateGas({ account, to: escrow, data })
    } catch (err) {
      if (isRpcFailure(err)) return reject('tollgate_chain_unavailable', revertReason(err))
      return reject(codes.simulation, revertReason(err))
    }
    const sent = await transactions.send(
      escrow,
      data,
      gas,
      { transaction: codes.transaction, insufficientGas: 'tollgate_settlement_insufficient_gas' },
      { onSent, priority },
    )
    return sent.ok ? accept(minedOf(sent.value)) : sent
  }

  return {
    packed,
    async readClaimed(channelIds) {
      const results = await publicClient.multicall({
        allowFailure: false,
        contracts: channelIds.map(
          (id) => ({ address: escrow, abi, functionName: 'channels', args: [id] }) as const,
        ),
      })
      return new Map(channelIds.map((id, i) => [id, (results[i] as readonly [bigint, bigint])[1]]))
    },
    async readUnsettled() {
      const [claimed, settled] = await publicClient.readContract({
        address: escrow,
        abi,
        functionName: 'receivers',
        args: [identity.receiver, identity.token],
      })
      return claimed - settled
    },
    async gasPrice() {
      const fees = await publicClient.estimateFeesPerGas()
      return fees.maxFeePerGas ?? (await publicClient.getGasPrice())
    },
    async claim(batch, onSent) {
      if (batch.method === 'claimPacked' && !(await packed())) {
        throw new TollgateError('tollgate_internal', 'claimPacked planned but not supported')
      }
      return send(
        await encodeClaim(batch),
        {
          simulation: 'invalid_batch_settlement_evm_claim_simulation_failed',
          transaction: 'invalid_batch_settlement_evm_claim_transaction_failed',
        },
        onSent,
        batch.claims.some((c) => c.deadline !== undefined)
          ? SEND_PRIORITY.withdrawal
          : SEND_PRIORITY.claim,
      )
    },
    async settle(onSent = async () => {}) {
      let amount: bigint
      try {
        amount = await this.readUnsettled()
      } catch (err) {
        return reject('tollgate_chain_unavailable', revertReason(err))
      }
      if (amount === 0n) return reject('invalid_batch_settlement_evm_nothing_to_settle')
      const data = encodeFunctionData({
        abi,
        functionName: 'settle',
        args: [identity.receiver, identity.token],
      })
      const sent = await send(
        data,
        {
          simulation: 'invalid_batch_settlement_evm_settle_simulation_failed',
          transaction: 'invalid_batch_settlement_evm_settle_transaction_failed',
        },
        onSent,
      )
      return sent.ok ? accept({ ...sent.value, amount }) : sent
    },
    async resume(hashes) {
      for (const hash of hashes) {
        let known = false
        try {
          known = (await publicClient.getTransaction({ hash })) !== null
        } catch {
          known = false
        }
        if (known)
          return (
            (await waitForAny(hashes, replaceAfterMs * (maxReplacements + 1)).then((mined) =>
              mined?.ok ? accept(minedOf(mined.value)) : mined,
            )) ??
            reject('invalid_batch_settlement_evm_wait_for_receipt_failed', `${hash} still pending`)
          )
      }
      return undefined
    },
  }
}

/** What a claim or settle reports of its mined transaction. */
function minedOf(mined: MinedTransaction): SentTransaction {
  const { hash, blockNumber, gasUsed, effectiveGasPrice } = mined
  return { hash, blockNumber, gasUsed, effectiveGasPrice }
}

/**
 * The header of a packed claim: the channel fields its rows share (the planner groups them so),
 * taken from the channels themselves, never from the server's current identity.
 *
 * @throws TollgateError `tollgate_internal` when the rows do not share them.
 */
function packedHeader(batch: PlannedBatch): PackedClaimHeader {
  const [first] = batch.claims
  if (!first) throw new TollgateError('tollgate_internal', 'a packed claim needs at least one row')
  const { receiver, receiverAuthorizer, token, withdrawDelay } = first.config
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()
  for (const { config } of batch.claims) {
    if (
      !same(config.receiver, receiver) ||
      !same(config.receiverAuthorizer, receiverAuthorizer) ||
      !same(config.token, token) ||
      config.withdrawDelay !== withdrawDelay
    ) {
      throw new TollgateError(
        'tollgate_internal',
        'the channels of a packed claim must share receiver, receiverAuthorizer, token and withdrawDelay',
      )
    }
  }
  return { receiver, receiverAuthorizer, token, withdrawDelay }
}
