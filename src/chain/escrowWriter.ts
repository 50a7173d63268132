import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  encodeAbiParameters,
  encodeFunctionData,
  type Hex,
  NonceTooLowError,
  type PublicClient,
  parseEventLogs,
  type Transport,
  type WalletClient,
} from 'viem'
import { accept, type ErrorCode, type Result, reject } from '../errors/index.js'
import type { DepositPayload, RefundPayload } from '../protocol/types.js'
import { BatchSettlement } from './contracts.generated.js'
import { revertReason } from './revertReason.js'
import { createSendLock, MAX_NONCE_RETRIES, type SendLock } from './sendLock.js'

/** What a deposit or refund transaction achieved, read from its receipt. */
export interface EscrowReceipt {
  readonly transaction: Hex
  readonly blockNumber: bigint
  /** Deposited or refunded amount. */
  readonly amount: bigint
  /** The channel balance after the transaction. */
  readonly balance: bigint
  /** What the transaction cost its sender, in wei (gas used times its effective price). */
  readonly fee: bigint
  /** Gas the transaction used (the server paid it). */
  readonly gasUsed: bigint
}

/** What {@link escrowWriter} simulates and waits through: a viem `PublicClient` of any chain has it. */
export type EscrowWriterPublicClient = Pick<
  PublicClient,
  'call' | 'readContract' | 'waitForTransactionReceipt'
>

export interface EscrowWriterOptions {
  publicClient: EscrowWriterPublicClient
  /** The account that sends deposits (it pays their gas) and, for refunds, is the channel's receiver or receiver authorizer. */
  walletClient: WalletClient<Transport, Chain, Account>
  escrow: Address
  /** The ERC-3009 deposit collector (canonical address by default on every chain). */
  erc3009Collector: Address
  /** Blocks to wait after inclusion. @default 1 */
  confirmations?: number
  /** Shared with every other sender of the account in this process. @default a lock of its own */
  sendLock?: SendLock
  /** @default () => Date.now() / 1000 */
  nowSeconds?: () => number
}

/** Submits the on-chain side of x402 `deposit` and `refund` payloads. Failures are values with x402 codes. */
export interface EscrowWriter {
  /** Checks the authorization window, simulates, sends `deposit` through the ERC-3009 collector and waits. */
  deposit(payload: DepositPayload): Promise<Result<EscrowReceipt>>
  /**
   * Claims what was charged with the payer's zero-charge voucher, then refunds `amount` (all
   * that remains when absent) of the unclaimed balance to the payer, in one transaction.
   */
  refund(payload: RefundPayload, charged: bigint): Promise<Result<EscrowReceipt>>
}

/**
 * An {@link EscrowWriter} on viem.
 *
 * @example
 * const writer = escrowWriter({ publicClient, walletClient, escrow, erc3009Collector })
 * const result = await writer.deposit(payload)
 */
export function escrowWriter(options: EscrowWriterOptions): EscrowWriter {
  const { publicClient, walletClient, escrow, erc3009Collector } = options
  const confirmations = options.confirmations ?? 1
  const nowSeconds = options.nowSeconds ?? (() => Date.now() / 1000)
  const account = walletClient.account
  const sendLock = options.sendLock ?? createSendLock()

  async function send(
    data: Hex,
    codes: { simulation: ErrorCode; transaction: ErrorCode },
  ): Promise<
    Result<{
      hash: Hex
      logs: readonly unknown[]
      blockNumber: bigint
      fee: bigint
      gasUsed: bigint
    }>
  > {
    try {
      await publicClient.call({ account, to: escrow, data })
    } catch (err) {
      return reject(codes.simulation, revertReason(err))
    }
    let hash: Hex | undefined
    for (let attempt = 0; hash === undefined; attempt++) {
      try {
        hash = await sendLock.run(() =>
          walletClient.sendTransaction({ account, to: escrow, data, chain: walletClient.chain }),
        )
      } catch (err) {
        // Another process sending for this account took the nonce meanwhile: take the next one.
        if (
          attempt < MAX_NONCE_RETRIES &&
          err instanceof BaseError &&
          err.walk((e) => e instanceof NonceTooLowError) !== null
        )
          continue
        return reject(codes.transaction, revertReason(err))
      }
    }
    try {
      const receipt = await publicClient.waitForTransactionReceipt({ hash, confirmations })
      if (receipt.status !== 'success')
        return reject('invalid_batch_settlement_evm_transaction_reverted', hash)
      return accept({
        hash,
        logs: receipt.logs,
        blockNumber: receipt.blockNumber,
        fee: receipt.gasUsed * receipt.effectiveGasPrice,
        gasUsed: receipt.gasUsed,
      })
    } catch (err) {
      return reject('invalid_batch_settlement_evm_wait_for_receipt_failed', revertReason(err))
    }
  }

  return {
    async deposit(payload) {
      const { validAfter, validBefore, salt, signature } = payload.deposit.erc3009Authorization
      const now = nowSeconds()
      if (BigInt(Math.floor(now)) <= validAfter) {
        return reject(
          'invalid_batch_settlement_evm_payload_authorization_valid_after',
          `valid after ${validAfter}`,
        )
      }
      if (BigInt(Math.ceil(now)) >= validBefore) {
        return reject(
          'invalid_batch_settlement_evm_payload_authorization_valid_before',
          `valid before ${validBefore}`,
        )
      }
      const collectorData = encodeAbiParameters(
        [{ type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'bytes' }],
        [validAfter, validBefore, BigInt(salt), signature],
      )
      const data = encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'deposit',
        args: [payload.channelConfig, payload.deposit.amount, erc3009Collector, collectorData],
      })
      const sent = await send(data, {
        simulation: 'invalid_batch_settlement_evm_deposit_simulation_failed',
        transaction: 'invalid_batch_settlement_evm_deposit_transaction_failed',
      })
      if (!sent.ok) return sent
      const [event] = parseEventLogs({
        abi: BatchSettlement.abi,
        logs: sent.value.logs as never,
        eventName: 'Deposited',
      })
      if (!event)
        return reject(
          'invalid_batch_settlement_evm_deposit_transaction_failed',
          'no Deposited event',
        )
      return accept({
        transaction: sent.value.hash,
        blockNumber: sent.value.blockNumber,
        amount: event.args.amount,
        balance: event.args.newBalance,
        fee: sent.value.fee,
        gasUsed: sent.value.gasUsed,
      })
    },

    async refund(payload, charged) {
      const { channelConfig: config, voucher } = payload
      const calls: Hex[] = []
      if (charged > 0n) {
        calls.push(
          encodeFunctionData({
            abi: BatchSettlement.abi,
            functionName: 'claim',
            args: [
              [
                {
                  voucher: { channel: config, maxClaimableAmount: voucher.maxClaimableAmount },
                  signature: voucher.signature,
                  totalClaimed: charged,
                },
              ],
            ],
          }),
        )
      }
      calls.push(
        encodeFunctionData({
          abi: BatchSettlement.abi,
          functionName: 'refund',
          args: [config, payload.amount ?? MAX_UINT128],
        }),
      )
      const data = encodeFunctionData({
        abi: BatchSettlement.abi,
        functionName: 'multicall',
        args: [calls],
      })
      const sent = await send(data, {
        simulation: 'invalid_batch_settlement_evm_refund_simulation_failed',
        transaction: 'invalid_batch_settlement_evm_refund_transaction_failed',
      })
      if (!sent.ok) return sent
      const [event] = parseEventLogs({
        abi: BatchSettlement.abi,
        logs: sent.value.logs as never,
        eventName: 'Refunded',
      })
      if (!event)
        return reject('invalid_batch_settlement_evm_refund_transaction_failed', 'no Refunded event')
      const [balance] = await publicClient.readContract({
        address: escrow,
        abi: BatchSettlement.abi,
        functionName: 'channels',
        args: [voucher.channelId],
        blockNumber: sent.value.blockNumber,
      })
      return accept({
        transaction: sent.value.hash,
        blockNumber: sent.value.blockNumber,
        amount: event.args.amount,
        balance,
        fee: sent.value.fee,
        gasUsed: sent.value.gasUsed,
      })
    },
  }
}

const MAX_UINT128 = (1n << 128n) - 1n
