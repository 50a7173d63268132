/** Shared arbitraries and viem reference helpers for the verify tests. */
import fc from 'fast-check'
import { type Address, getAddress, type Hex, hashTypedData, toHex } from 'viem'
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import { BATCH_SETTLEMENT_TYPES, type ChannelConfig, escrowDomain } from '../../src/verify/index.js'

export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
export const CANONICAL_ESCROW: Address = '0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003'
export const ZERO_ADDRESS: Address = '0x0000000000000000000000000000000000000000'

export const types = BATCH_SETTLEMENT_TYPES
export { escrowDomain }

const hex = (length: number) =>
  fc.uint8Array({ minLength: length, maxLength: length }).map((b) => toHex(b))

/** Addresses in lowercase or EIP-55 checksummed form. */
export const address = fc
  .tuple(hex(20), fc.boolean())
  .map(([a, checksum]) => (checksum ? getAddress(a) : a) as Address)
export const bytes32 = hex(32)
export const uint128 = fc.bigInt({ min: 0n, max: 2n ** 128n - 1n })
export const uint256 = fc.bigInt({ min: 0n, max: 2n ** 256n - 1n })
export const chainId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
export const privateKey = fc.bigInt({ min: 1n, max: N - 1n }).map((k) => toHex(k, { size: 32 }))

export const channelConfig: fc.Arbitrary<ChannelConfig> = fc.record({
  payer: address,
  payerAuthorizer: address,
  receiver: address,
  receiverAuthorizer: address,
  token: address,
  withdrawDelay: fc.integer({ min: 0, max: 2 ** 40 - 1 }),
  salt: bytes32,
})

export function referenceVoucherDigest(
  chain: number,
  escrow: Address,
  channelId: Hex,
  maxClaimableAmount: bigint,
): Hex {
  return hashTypedData({
    domain: escrowDomain(chain, escrow),
    types,
    primaryType: 'Voucher',
    message: { channelId, maxClaimableAmount },
  })
}

export function signVoucher(
  account: PrivateKeyAccount,
  chain: number,
  escrow: Address,
  channelId: Hex,
  maxClaimableAmount: bigint,
): Promise<Hex> {
  return account.signTypedData({
    domain: escrowDomain(chain, escrow),
    types,
    primaryType: 'Voucher',
    message: { channelId, maxClaimableAmount },
  })
}

/** Well-known development keys (anvil's), so property runs do not pay key derivation each time. */
export const PRIVATE_KEYS = [
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
] as const
export const alice = privateKeyToAccount(PRIVATE_KEYS[0])
export const bob = privateKeyToAccount(PRIVATE_KEYS[1])
export const carol = privateKeyToAccount(PRIVATE_KEYS[2])
/** One of the accounts above. */
export const anAccount = fc.constantFrom(alice, bob, carol)

/** The value, or a thrown test failure when it is missing. */
export function defined<T>(value: T | null | undefined, what = 'value'): T {
  if (value === null || value === undefined) throw new Error(`${what} is missing`)
  return value
}

/** Replaces s by n - s and flips v: the malleated twin of a valid signature (recovers the same key). */
export function highS(signature: Hex): Hex {
  const r = signature.slice(2, 66)
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  const v = Number.parseInt(signature.slice(130, 132), 16)
  return `0x${r}${(N - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex
}

/** Flips v (27 <-> 28) and keeps r and s. */
export function flipV(signature: Hex): Hex {
  const v = Number.parseInt(signature.slice(130, 132), 16)
  return `${signature.slice(0, 130)}${(v === 27 ? 28 : 27).toString(16)}` as Hex
}

/** Rewrites v as 0/1. */
export function zeroOneV(signature: Hex): Hex {
  const v = Number.parseInt(signature.slice(130, 132), 16)
  return `${signature.slice(0, 130)}0${v - 27}` as Hex
}
