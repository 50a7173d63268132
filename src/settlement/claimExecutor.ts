import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  encodeFunctionData,
  type Hex,
  InsufficientFundsError,
  NonceTooLowError,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  toFunctionSelector,
  type WalletClient,
} from 'viem'
import { BatchSettlement } from '../chain/contracts.generated.js'
import { encodePackedClaim, type PackedClaimHeader } from '../chain/packedClaim.js'
import { hasError, hasRevertData, revertReason } from '../chain/revertReason.js'
import {
  createSendLock,
  MAX_NONCE_RETRIES,
  SEND_PRIORITY,
  type SendLock,
  type SendPriority,
} from '../chain/sendLock.js'
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

/** Headroom added to the node's gas estimate, in percent. */
const GAS_HEADROOM_PERCENT = 20n

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
  const confirmations = options.confirmations ?? DEFAULT_SETTLEMENT_CONFIRMATIONS
  const replaceAfterMs = options.replaceAfterMs ?? DEFAULT_REPLACE_AFTER_MS
  const confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS
  const sendLock = options.sendLock ?? createSendLock()
  const bump = BigInt(100 + (options.feeBumpPercent ?? DEFAULT_FEE_BUMP_PERCENT))
  const maxReplacements = options.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS
  const pollMs = publicClient.pollingInterval
  const receiverSide = [identity.receiver, identity.receiverAuthorizer].some(
    (a) => a.toLowerCase() === sender.toLowerCase(),
  )
  if (!receiverSide && !options.authorizer) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `settlement sender ${sender} is neither the receiver nor its authorizer; give the authorizer's key to relay claimWithSignature`,
    )
  }
  if (bump < 110n)
    throw new TollgateError('tollgate_invalid_config', 'feeBumpPercent must be >= 10')
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

  /** Simulates, checks gas funds, sends with the pending nonce, replaces when stuck, waits. */
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
    gas += (gas * GAS_HEADROOM_PERCENT) / 100n
    let fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }
    let balance: bigint
    try {
      ;[fees, balance] = await Promise.all([
        publicClient.estimateFeesPerGas() as Promise<typeof fees>,
        publicClient.getBalance({ address: sender }),
      ])
    } catch (err) {
      return reject('tollgate_chain_unavailable', revertReason(err))
    }
    if (balance < gas * fees.maxFeePerGas) {
      return reject(
        'tollgate_settlement_insufficient_gas',
        `${sender} holds ${balance} wei, needs ${gas * fees.maxFeePerGas}`,
      )
    }
    const hashes: Hex[] = []
    let nonce: number | undefined
    let replacements = 0
    let nonceRetries = 0
    for (;;) {
      let hash: Hex
      try {
        ;[hash, nonce] = await sendLock.run(async () => {
          const n =
            nonce === undefined || hashes.length === 0
              ? await publicClient.getTransactionCount({ address: sender, blockTag: 'pending' })
              : nonce
          const sent = await walletClient.sendTransaction({
            account,
            chain: walletClient.chain,
            to: escrow,
            data,
            gas,
            nonce: n,
            ...fees,
          })
          return [sent, n] as const
        }, priority)
      } catch (err) {
        if (hasError(err, InsufficientFundsError))
          return reject('tollgate_settlement_insufficient_gas', revertReason(err))
        if (hashes.length > 0 && hasError(err, NonceTooLowError)) {
          // The nonce is used: one of the transactions already sent was mined.
          const mined = await waitForAny(hashes, replaceAfterMs)
          return mined ?? reject(codes.transaction, 'nonce used by another transaction')
        }
        if (hasError(err, NonceTooLowError) && nonceRetries++ < MAX_NONCE_RETRIES) {
          // Another sender of this account (a deposit, a refund) took the nonce meanwhile.
          nonce = undefined
          continue
        }
        if (hashes.length > 0) {
          const mined = await waitForAny(hashes, replaceAfterMs)
          if (mined) return mined
        }
        return isRpcFailure(err)
          ? reject('tollgate_chain_unavailable', revertReason(err))
          : reject(codes.transaction, revertReason(err))
      }
      hashes.push(hash)
      await onSent(hash, nonce)
      const last = replacements >= maxReplacements
      const mined = await waitForAny(hashes, last ? replaceAfterMs * 2 : replaceAfterMs)
      if (mined) return mined
      if (last) {
        return reject(
          'invalid_batch_settlement_evm_wait_for_receipt_failed',
          `${hashes.at(-1)} not mined after ${replacements} replacements`,
        )
      }
      replacements++
      fees = {
        maxFeePerGas: (fees.maxFeePerGas * bump) / 100n,
        maxPriorityFeePerGas: (fees.maxPriorityFeePerGas * bump) / 100n,
      }
    }
  }

  /**
   * Polls the receipts of `hashes` for up to `timeoutMs`; once one is mined, waits for its
   * confirmations. Undefined on timeout. A reverted receipt is a rejection.
   */
  async function waitForAny(
    hashes: readonly Hex[],
    timeoutMs: number,
  ): Promise<Result<SentTransaction> | undefined> {
    const until = Date.now() + timeoutMs
    for (;;) {
      for (const hash of hashes) {
        let receipt: TransactionReceipt | undefined
        try {
          receipt = await publicClient.getTransactionReceipt({ hash })
        } catch {
          receipt = undefined
        }
        if (receipt) return confirmed(receipt)
      }
      if (Date.now() >= until) return undefined
      await sleep(pollMs)
    }
  }

  async function confirmed(receipt: TransactionReceipt): Promise<Result<SentTransaction>> {
    if (receipt.status !== 'success')
      return reject('invalid_batch_settlement_evm_transaction_reverted', receipt.transactionHash)
    const target = receipt.blockNumber + BigInt(confirmations) - 1n
    const until = Date.now() + confirmTimeoutMs
    for (;;) {
      let head: bigint
      try {
        head = await publicClient.getBlockNumber({ cacheTime: 0 })
      } catch {
        head = -1n
      }
      if (head >= target) break
      if (Date.now() >= until) {
        return reject(
          'invalid_batch_settlement_evm_wait_for_receipt_failed',
          `${receipt.transactionHash} mined in block ${receipt.blockNumber}, not confirmed by ${target} within ${confirmTimeoutMs} ms`,
        )
      }
      await sleep(pollMs)
    }
    return accept({
      hash: receipt.transactionHash,
      blockNumber: receipt.blockNumber,
      gasUsed: receipt.gasUsed,
      effectiveGasPrice: receipt.effectiveGasPrice,
    })
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
            (await waitForAny(hashes, replaceAfterMs * (maxReplacements + 1))) ??
            reject('invalid_batch_settlement_evm_wait_for_receipt_failed', `${hash} still pending`)
          )
      }
      return undefined
    },
  }
}

/** Whether the error is the node not answering (transport), not the call failing. */
function isRpcFailure(err: unknown): boolean {
  if (!(err instanceof BaseError)) return true
  return (
    err.walk(
      (e) =>
        (e as { name?: string }).name === 'HttpRequestError' ||
        (e as { name?: string }).name === 'TimeoutError' ||
        (e as { name?: string }).name === 'InternalRpcError' ||
        (e as { name?: string }).name === 'UnknownRpcError',
    ) !== null && !hasRevertData(err)
  )
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
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
