import {
  type Account,
  type Address,
  type Chain,
  type Hex,
  InsufficientFundsError,
  NonceTooLowError,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from 'viem'
import { accept, type ErrorCode, type Result, reject } from '../errors/index.js'
import { hasError, hasRevertData, revertReason } from './revertReason.js'
import { createSendLock, MAX_NONCE_RETRIES, type SendLock, type SendPriority } from './sendLock.js'

/** Options of {@link createTransactionSender}: the fee policy claims use (see `claimExecutor`). */
export interface TransactionSenderOptions {
  publicClient: PublicClient
  /** Sends the transactions and pays their gas. */
  walletClient: WalletClient<Transport, Chain, Account>
  /** Shared with every other sender of the account in this process. @default a lock of its own */
  sendLock?: SendLock
  /** Blocks a transaction must be buried under. @default 1 */
  confirmations?: number
  /** How long a transaction may stay unmined before it is replaced. @default 60 000 */
  replaceAfterMs?: number
  /** Fee increase of a replacement, in percent (at least 10). @default 25 */
  feeBumpPercent?: number
  /** Replacements of one transaction before giving up waiting. @default 3 */
  maxReplacements?: number
  /**
   * How long a mined transaction may wait for its confirmations before the send gives up on it
   * (a node that stops producing blocks never holds the sender). @default 120 000
   */
  confirmTimeoutMs?: number
}

/** A mined, successful transaction. */
export interface MinedTransaction {
  readonly hash: Hex
  readonly blockNumber: bigint
  readonly gasUsed: bigint
  /** Wei paid per gas. */
  readonly effectiveGasPrice: bigint
  readonly logs: TransactionReceipt['logs']
}

/** What a caller learns while a transaction is sent, and how it goes in the send lock. */
export interface SendOptions {
  /** Told of each transaction sent (the first, then each replacement) before it is waited for. */
  readonly onSent?: (hash: Hex, nonce: number) => Promise<void>
  /** @default SEND_PRIORITY.payer */
  readonly priority?: SendPriority
}

/** The codes a send reports its failures with. */
export interface SendCodes {
  readonly transaction: ErrorCode
  readonly insufficientGas: ErrorCode
}

/** Sends one transaction with the settlement fee policy. Failures are values; nothing throws but bugs. */
export interface TransactionSender {
  /**
   * Checks that the sender can pay `gas` (plus headroom) at the current fees, takes the account's
   * pending nonce under the send lock, sends, replaces the transaction with higher fees while it
   * stays unmined, and waits for its confirmations.
   */
  send(
    to: Address,
    data: Hex,
    gas: bigint,
    codes: SendCodes,
    options?: SendOptions,
  ): Promise<Result<MinedTransaction>>
  /**
   * Polls the receipts of `hashes` (one nonce's transactions) for up to `timeoutMs`; once one is
   * mined, waits for its confirmations. Undefined on timeout; a reverted receipt is a rejection.
   */
  waitForAny(
    hashes: readonly Hex[],
    timeoutMs: number,
  ): Promise<Result<MinedTransaction> | undefined>
}

/** Headroom added to the node's gas estimate, in percent. */
const GAS_HEADROOM_PERCENT = 20n

/**
 * A {@link TransactionSender} on viem, with the fee handling of settlement claims: the node's fee
 * estimate, a balance check before sending, replacement by a fee bump when stuck, a nonce taken
 * under the account's send lock.
 *
 * @example
 * const sender = createTransactionSender({ publicClient, walletClient, sendLock })
 * const mined = await sender.send(token, data, gas, { transaction: 'invalid_exact_evm_transaction_failed', insufficientGas: 'tollgate_settlement_insufficient_gas' })
 */
export function createTransactionSender(options: TransactionSenderOptions): TransactionSender {
  const { publicClient, walletClient } = options
  const account = walletClient.account
  const sender = account.address
  const sendLock = options.sendLock ?? createSendLock()
  const confirmations = options.confirmations ?? 1
  const replaceAfterMs = options.replaceAfterMs ?? 60_000
  const bump = BigInt(100 + (options.feeBumpPercent ?? 25))
  const maxReplacements = options.maxReplacements ?? 3
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 120_000
  const pollMs = publicClient.pollingInterval

  async function waitForAny(
    hashes: readonly Hex[],
    timeoutMs: number,
  ): Promise<Result<MinedTransaction> | undefined> {
    const until = Date.now() + timeoutMs
    for (;;) {
      for (const hash of hashes) {
        const receipt = await publicClient.getTransactionReceipt({ hash }).catch(() => undefined)
        if (receipt) return confirmed(receipt)
      }
      if (Date.now() >= until) return undefined
      await sleep(pollMs)
    }
  }

  /**
   * After a send whose answer was lost: if the node holds a transaction at `nonce` (it acted), waits
   * up to `timeoutMs` for it to be mined, so that whoever retries reads the chain after it.
   */
  async function waitForNonce(nonce: number, timeoutMs: number): Promise<void> {
    const count = (blockTag: 'pending' | 'latest') =>
      publicClient.getTransactionCount({ address: sender, blockTag }).catch(() => undefined)
    const pending = await count('pending')
    if (pending === undefined || pending <= nonce) return
    const until = Date.now() + timeoutMs
    while (Date.now() < until) {
      const mined = await count('latest')
      if (mined !== undefined && mined > nonce) return
      await sleep(pollMs)
    }
  }

  async function confirmed(receipt: TransactionReceipt): Promise<Result<MinedTransaction>> {
    if (receipt.status !== 'success') {
      return reject('invalid_batch_settlement_evm_transaction_reverted', receipt.transactionHash)
    }
    const target = receipt.blockNumber + BigInt(confirmations) - 1n
    const until = Date.now() + confirmTimeoutMs
    while (target > receipt.blockNumber) {
      const head = await publicClient.getBlockNumber({ cacheTime: 0 }).catch(() => -1n)
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
      logs: receipt.logs,
    })
  }

  return {
    waitForAny,
    async send(to, data, estimate, codes, sendOptions = {}) {
      const gas = estimate + (estimate * GAS_HEADROOM_PERCENT) / 100n
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
          codes.insufficientGas,
          `${sender} holds ${balance} wei, needs ${gas * fees.maxFeePerGas}`,
        )
      }
      const hashes: Hex[] = []
      let nonce: number | undefined
      let replacements = 0
      let nonceRetries = 0
      for (;;) {
        let hash: Hex
        let attempted: number | undefined
        try {
          ;[hash, nonce] = await sendLock.run(async () => {
            const n =
              nonce === undefined || hashes.length === 0
                ? await publicClient.getTransactionCount({ address: sender, blockTag: 'pending' })
                : nonce
            attempted = n
            const sent = await walletClient.sendTransaction({
              account,
              chain: walletClient.chain,
              to,
              data,
              gas,
              nonce: n,
              ...fees,
            })
            return [sent, n] as const
          }, sendOptions.priority)
        } catch (err) {
          if (hasError(err, InsufficientFundsError)) {
            return reject(codes.insufficientGas, revertReason(err))
          }
          if (hashes.length > 0 && hasError(err, NonceTooLowError)) {
            // The nonce is used: one of the transactions already sent was mined.
            const mined = await waitForAny(hashes, replaceAfterMs)
            return mined ?? reject(codes.transaction, 'nonce used by another transaction')
          }
          if (hasError(err, NonceTooLowError) && nonceRetries++ < MAX_NONCE_RETRIES) {
            nonce = undefined
            continue
          }
          if (hashes.length > 0) {
            const mined = await waitForAny(hashes, replaceAfterMs)
            if (mined) return mined
          }
          if (isRpcFailure(err) && attempted !== undefined && hashes.length === 0) {
            await waitForNonce(attempted, replaceAfterMs)
          }
          return isRpcFailure(err)
            ? reject('tollgate_chain_unavailable', revertReason(err))
            : reject(codes.transaction, revertReason(err))
        }
        hashes.push(hash)
        await sendOptions.onSent?.(hash, nonce)
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
    },
  }
}

/** Whether the error is the node not answering (transport), not the call failing. */
export function isRpcFailure(err: unknown): boolean {
  if (!(err instanceof Error) || !('walk' in err)) return true
  const base = err as Parameters<typeof hasRevertData>[0]
  return (
    base.walk((e) =>
      ['HttpRequestError', 'TimeoutError', 'InternalRpcError', 'UnknownRpcError'].includes(
        (e as { name?: string }).name ?? '',
      ),
    ) !== null && !hasRevertData(base)
  )
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
