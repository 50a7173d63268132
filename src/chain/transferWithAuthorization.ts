import {
  type Account,
  type Address,
  encodeFunctionData,
  type Hex,
  type PublicClient,
  parseEventLogs,
  parseSignature,
} from 'viem'
import { accept, type Result, reject } from '../errors/index.js'
import type { ExactPayload } from '../protocol/types.js'
import { revertReason } from './revertReason.js'
import { isRpcFailure, type TransactionSender } from './sendTransaction.js'

/** The EIP-3009 functions an exact transfer calls, and the ERC-20 `Transfer` event it emits. */
export const EIP3009_ABI = [
  {
    type: 'function',
    name: 'transferWithAuthorization',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'from', type: 'address' },
      { name: 'to', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'validAfter', type: 'uint256' },
      { name: 'validBefore', type: 'uint256' },
      { name: 'nonce', type: 'bytes32' },
      { name: 'v', type: 'uint8' },
      { name: 'r', type: 'bytes32' },
      { name: 's', type: 'bytes32' },
    ],
    outputs: [],
  },
  {
    type: 'function',
    name: 'transferWithAuthorization',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'from', type: 'address' },
      { name: 'to', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'validAfter', type: 'uint256' },
      { name: 'validBefore', type: 'uint256' },
      { name: 'nonce', type: 'bytes32' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [],
  },
  {
    type: 'function',
    name: 'authorizationState',
    stateMutability: 'view',
    inputs: [
      { name: 'authorizer', type: 'address' },
      { name: 'nonce', type: 'bytes32' },
    ],
    outputs: [{ name: '', type: 'bool' }],
  },
  {
    type: 'function',
    name: 'balanceOf',
    stateMutability: 'view',
    inputs: [{ name: 'account', type: 'address' }],
    outputs: [{ name: '', type: 'uint256' }],
  },
  {
    type: 'event',
    name: 'Transfer',
    inputs: [
      { name: 'from', type: 'address', indexed: true },
      { name: 'to', type: 'address', indexed: true },
      { name: 'value', type: 'uint256', indexed: false },
    ],
  },
] as const

/** Options of {@link authorizationTransfers}. */
export interface AuthorizationTransfersOptions {
  publicClient: Pick<PublicClient, 'estimateGas' | 'readContract'>
  /** Sends the transfers (its account pays their gas) with the settlement fee policy. */
  sender: TransactionSender
  /** The account of `sender`: the simulation runs from it. */
  account: Account
}

/** A mined exact transfer. */
export interface MinedTransfer {
  readonly transaction: Hex
  readonly blockNumber: bigint
}

/** Simulates and submits EIP-3009 `transferWithAuthorization` calls. */
export interface AuthorizationTransfers {
  /**
   * Estimates the transfer's gas from the sender, which simulates it: the token checks the
   * signature, the window, the nonce and the balance. A failure is diagnosed from the token's
   * state: `invalid_exact_evm_nonce_already_used`, `invalid_exact_evm_insufficient_balance`, else
   * `invalid_exact_evm_transaction_simulation_failed`; `tollgate_chain_unavailable` when the node
   * does not answer.
   */
  simulate(token: Address, payload: ExactPayload): Promise<Result<bigint>>
  /** Sends the transfer with `gas` from {@link simulate} and waits until it is mined. */
  transfer(token: Address, payload: ExactPayload, gas: bigint): Promise<Result<MinedTransfer>>
}

/**
 * {@link AuthorizationTransfers} on viem.
 *
 * @example
 * const transfers = authorizationTransfers({ publicClient, sender, account })
 * const gas = await transfers.simulate(usdc, payload)
 * if (gas.ok) await transfers.transfer(usdc, payload, gas.value)
 */
export function authorizationTransfers(
  options: AuthorizationTransfersOptions,
): AuthorizationTransfers {
  const { publicClient, sender, account } = options

  async function diagnose(
    token: Address,
    payload: ExactPayload,
    err: unknown,
  ): Promise<Result<never>> {
    if (isRpcFailure(err)) return reject('tollgate_chain_unavailable', revertReason(err))
    const { from, nonce, value } = payload.authorization
    const reason = revertReason(err)
    try {
      const [used, balance] = await Promise.all([
        publicClient.readContract({
          address: token,
          abi: EIP3009_ABI,
          functionName: 'authorizationState',
          args: [from, nonce],
        }),
        publicClient.readContract({
          address: token,
          abi: EIP3009_ABI,
          functionName: 'balanceOf',
          args: [from],
        }),
      ])
      if (used) return reject('invalid_exact_evm_nonce_already_used', reason)
      if (balance < value) {
        return reject('invalid_exact_evm_insufficient_balance', `${from} holds ${balance}`)
      }
    } catch {
      // The diagnosis is best effort: the simulation failed either way.
    }
    return reject('invalid_exact_evm_transaction_simulation_failed', reason)
  }

  return {
    async simulate(token, payload) {
      try {
        return accept(await publicClient.estimateGas({ account, to: token, data: encode(payload) }))
      } catch (err) {
        return diagnose(token, payload, err)
      }
    },
    async transfer(token, payload, gas) {
      const sent = await sender.send(token, encode(payload), gas, {
        transaction: 'invalid_exact_evm_transaction_failed',
        insufficientGas: 'tollgate_settlement_insufficient_gas',
      })
      if (!sent.ok) {
        return sent.code === 'invalid_batch_settlement_evm_transaction_reverted'
          ? reject('invalid_exact_evm_transaction_failed', sent.message)
          : sent
      }
      const { from, to, value } = payload.authorization
      const moved = parseEventLogs({
        abi: EIP3009_ABI,
        eventName: 'Transfer',
        logs: sent.value.logs.filter((log) => log.address.toLowerCase() === token.toLowerCase()),
      }).some(
        (log) =>
          log.args.from.toLowerCase() === from &&
          log.args.to.toLowerCase() === to &&
          log.args.value === value,
      )
      if (!moved)
        return reject('invalid_exact_evm_transaction_failed', 'no matching Transfer event')
      return accept({ transaction: sent.value.hash, blockNumber: sent.value.blockNumber })
    },
  }
}

/** The v, r, s overload for an ECDSA signature (every EIP-3009 token has it), bytes otherwise. */
function encode(payload: ExactPayload): Hex {
  const { from, to, value, validAfter, validBefore, nonce } = payload.authorization
  const { signature } = payload
  if (signature.length === 132) {
    const { r, s, v, yParity } = parseSignature(signature)
    return encodeFunctionData({
      abi: EIP3009_ABI,
      functionName: 'transferWithAuthorization',
      args: [
        from,
        to,
        value,
        validAfter,
        validBefore,
        nonce,
        Number(v ?? BigInt(yParity + 27)),
        r,
        s,
      ],
    })
  }
  return encodeFunctionData({
    abi: EIP3009_ABI,
    functionName: 'transferWithAuthorization',
    args: [from, to, value, validAfter, validBefore, nonce, signature],
  })
}
