import type { PublicClient } from 'viem'
import type { ContractSignatureCheck } from '../verify/index.js'

/** EIP-1271's magic value: `bytes4(keccak256("isValidSignature(bytes32,bytes)"))`. */
const EIP1271_MAGIC = '0x1626ba7e'

const EIP1271_ABI = [
  {
    type: 'function',
    name: 'isValidSignature',
    stateMutability: 'view',
    inputs: [
      { name: 'hash', type: 'bytes32' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [{ name: '', type: 'bytes4' }],
  },
] as const

/** What {@link contractSignatureCheck} reads through: a viem `PublicClient` of any chain has it. */
export type ContractSignatureCheckClient = Pick<PublicClient, 'getCode' | 'readContract'>

/**
 * The EIP-1271 check the payee injects for smart-wallet payers: resolves whether `account`'s
 * `isValidSignature(digest, signature)` returns the magic value, `false` for an account without
 * code or a call that reverts, and rejects only when the node cannot be reached.
 */
export function contractSignatureCheck(
  client: ContractSignatureCheckClient,
): ContractSignatureCheck {
  return async (account, digest, signature) => {
    const code = await client.getCode({ address: account })
    if (code === undefined || code === '0x') return false
    try {
      const result = await client.readContract({
        address: account,
        abi: EIP1271_ABI,
        functionName: 'isValidSignature',
        args: [digest, signature],
      })
      return result.toLowerCase() === EIP1271_MAGIC
    } catch (err) {
      if ((err as { name?: string }).name === 'ContractFunctionExecutionError') return false
      throw err
    }
  }
}
