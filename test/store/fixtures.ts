/** Shared helpers for the store tests: records, arbitraries and temp directories. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Address, Hex } from 'viem'
import type { ChannelRecord } from '../../src/ledger/types.js'

export const MAX_UINT128 = (1n << 128n) - 1n

/** A fresh directory under the OS temp dir. */
export function makeTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tollgate-store-'))
}

/** Removes a directory made by {@link makeTempDir}. */
export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true })
}

const filled = (byte: number, bytes: number) =>
  `0x${byte.toString(16).padStart(2, '0').repeat(bytes)}`

/** The channel id of test channel `n`: 32 bytes, deterministic. */
export function channelIdOf(n: number): Hex {
  return `0x${n.toString(16).padStart(64, '0')}`
}

/** A plausible record of test channel `n` holding a voucher for `signedMaxClaimable`. */
export function makeRecord(n: number, signedMaxClaimable: bigint, charged = 0n): ChannelRecord {
  return {
    channelId: channelIdOf(n),
    config: {
      payer: filled(0x11, 20) as Address,
      payerAuthorizer: filled(0x22, 20) as Address,
      receiver: filled(0x33, 20) as Address,
      receiverAuthorizer: filled(0x44, 20) as Address,
      token: filled(0x55, 20) as Address,
      withdrawDelay: 86_400,
      salt: channelIdOf(n + 1_000_000),
    },
    chargedCumulativeAmount: charged,
    signedMaxClaimable,
    inFlightCumulativeAmount: charged,
    signature: filled(0xab, 65) as Hex,
    balance: MAX_UINT128,
    totalClaimed: 0n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
    syncedAt: 1_700_000_000_000,
  }
}

const hexBytes = (min: number, max = min) =>
  fc
    .uint8Array({ minLength: min, maxLength: max })
    .map((bytes) => `0x${Buffer.from(bytes).toString('hex')}` as Hex)

/** uint128 amounts, biased to the edges: 0, 1, 2^48 ± 1 (the codec's fast path), 2^128 - 1. */
export const amountArb = fc.oneof(
  fc.constantFrom(0n, 1n, (1n << 48n) - 1n, 1n << 48n, MAX_UINT128),
  fc.bigInt({ min: 0n, max: MAX_UINT128 }),
)

/** Any record the ledger could produce, and then some (fields are independent). */
export const recordArb: fc.Arbitrary<ChannelRecord> = fc.record({
  channelId: hexBytes(32),
  config: fc.record({
    payer: hexBytes(20) as fc.Arbitrary<Address>,
    payerAuthorizer: hexBytes(20) as fc.Arbitrary<Address>,
    receiver: hexBytes(20) as fc.Arbitrary<Address>,
    receiverAuthorizer: hexBytes(20) as fc.Arbitrary<Address>,
    token: hexBytes(20) as fc.Arbitrary<Address>,
    withdrawDelay: fc.oneof(fc.constantFrom(900, 2_592_000), fc.integer({ min: 0, max: 2 ** 40 })),
    salt: hexBytes(32),
  }),
  chargedCumulativeAmount: amountArb,
  signedMaxClaimable: amountArb,
  inFlightCumulativeAmount: amountArb,
  signature: fc.oneof(hexBytes(65), hexBytes(0, 300)),
  balance: amountArb,
  totalClaimed: amountArb,
  withdrawRequestedAt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 40 - 1 })),
  refundNonce: amountArb,
  syncedAt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 48 - 1 })),
})
