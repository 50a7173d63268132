import fc from 'fast-check'
import {
  type Hex,
  hashTypedData,
  keccak256,
  toHex,
  domainSeparator as viemDomainSeparator,
} from 'viem'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import {
  bytesToHex,
  channelId,
  channelIdBytes,
  claimBatchDigest,
  domainSeparator,
  domainSeparatorBytes,
  refundDigest,
  TYPEHASHES,
  voucherDigest,
} from '../../src/verify/index.js'
import {
  address,
  bytes32,
  CANONICAL_ESCROW,
  chainId,
  channelConfig,
  escrowDomain,
  referenceVoucherDigest,
  types,
  uint128,
  uint256,
} from './fixtures.js'

const RUNS = { numRuns: 200 }

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof TollgateError ? error.code : `not a TollgateError: ${String(error)}`
  }
  return undefined
}

describe('EIP-712 hashing matches viem', () => {
  it('domainSeparator equals viem for any chain id and escrow', () => {
    fc.assert(
      fc.property(chainId, address, (chain, escrow) => {
        const expected = viemDomainSeparator({ domain: escrowDomain(chain, escrow) })
        expect(domainSeparator({ chainId: chain, verifyingContract: escrow })).toBe(expected)
        expect(domainSeparator({ chainId: BigInt(chain), verifyingContract: escrow })).toBe(
          expected,
        )
      }),
      RUNS,
    )
  })

  it('channelId is the typed-data hash of the ChannelConfig, with the separator as hex or bytes', () => {
    fc.assert(
      fc.property(channelConfig, chainId, address, (config, chain, escrow) => {
        const expected = hashTypedData({
          domain: escrowDomain(chain, escrow),
          types,
          primaryType: 'ChannelConfig',
          message: config,
        })
        const domain = { chainId: chain, verifyingContract: escrow }
        expect(channelId(config, domainSeparator(domain))).toBe(expected)
        expect(bytesToHex(channelIdBytes(config, domainSeparatorBytes(domain)))).toBe(expected)
      }),
      RUNS,
    )
  })

  it('channelId of the canonical escrow on Base differs from Base Sepolia (domain binds the chain)', () => {
    fc.assert(
      fc.property(channelConfig, (config) => {
        const base = channelId(
          config,
          domainSeparator({ chainId: 8453, verifyingContract: CANONICAL_ESCROW }),
        )
        const sepolia = channelId(
          config,
          domainSeparator({ chainId: 84532, verifyingContract: CANONICAL_ESCROW }),
        )
        expect(base).not.toBe(sepolia)
      }),
      { numRuns: 20 },
    )
  })

  it('voucherDigest equals viem', () => {
    fc.assert(
      fc.property(bytes32, uint128, chainId, address, (id, amount, chain, escrow) => {
        const sep = domainSeparator({ chainId: chain, verifyingContract: escrow })
        expect(bytesToHex(voucherDigest(sep, id, amount))).toBe(
          referenceVoucherDigest(chain, escrow, id, amount),
        )
      }),
      RUNS,
    )
  })

  it('refundDigest equals viem', () => {
    fc.assert(
      fc.property(
        bytes32,
        uint256,
        uint128,
        chainId,
        address,
        (id, nonce, amount, chain, escrow) => {
          const expected = hashTypedData({
            domain: escrowDomain(chain, escrow),
            types,
            primaryType: 'Refund',
            message: { channelId: id, nonce, amount },
          })
          const sep = domainSeparatorBytes({ chainId: chain, verifyingContract: escrow })
          expect(bytesToHex(refundDigest(sep, id, nonce, amount))).toBe(expected)
        },
      ),
      RUNS,
    )
  })

  it('claimBatchDigest equals viem for batches of 0 to 12 rows', () => {
    const entry = fc.record({
      channelId: bytes32,
      maxClaimableAmount: uint128,
      totalClaimed: uint128,
    })
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), chainId, address, (claims, chain, escrow) => {
        const expected = hashTypedData({
          domain: escrowDomain(chain, escrow),
          types,
          primaryType: 'ClaimBatch',
          message: { claims },
        })
        const sep = domainSeparator({ chainId: chain, verifyingContract: escrow })
        expect(bytesToHex(claimBatchDigest(sep, claims))).toBe(expected)
      }),
      { numRuns: 100 },
    )
  })

  it('typehashes are frozen, as viem derives them from the type definitions', () => {
    expect(Object.isFrozen(TYPEHASHES)).toBe(true)
    expect(TYPEHASHES.Voucher).toBe(
      keccak256(toHex('Voucher(bytes32 channelId,uint128 maxClaimableAmount)')),
    )
    expect(TYPEHASHES.ClaimBatch).toBe(
      keccak256(
        toHex(
          'ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)',
        ),
      ),
    )
  })
})

describe('hashing rejects malformed input as a caller bug', () => {
  const sep = domainSeparator({ chainId: 8453, verifyingContract: CANONICAL_ESCROW })
  const id = `0x${'11'.repeat(32)}` as Hex

  it('throws tollgate_invalid_config for a bad domain', () => {
    expect(code(() => domainSeparator({ chainId: -1, verifyingContract: CANONICAL_ESCROW }))).toBe(
      'tollgate_invalid_config',
    )
    expect(code(() => domainSeparator({ chainId: 1.5, verifyingContract: CANONICAL_ESCROW }))).toBe(
      'tollgate_invalid_config',
    )
    expect(code(() => domainSeparator({ chainId: 1, verifyingContract: '0x1234' }))).toBe(
      'tollgate_invalid_config',
    )
    expect(code(() => voucherDigest('0xabcd', id, 1n))).toBe('tollgate_invalid_config')
  })

  it('throws tollgate_internal for fields out of their ABI range or not hex', () => {
    expect(code(() => voucherDigest(sep, id, 2n ** 128n))).toBe('tollgate_internal')
    expect(code(() => voucherDigest(sep, id, -1n))).toBe('tollgate_internal')
    expect(code(() => voucherDigest(sep, `0x${'zz'.repeat(32)}` as Hex, 1n))).toBe(
      'tollgate_internal',
    )
    expect(code(() => refundDigest(sep, id, 2n ** 256n, 1n))).toBe('tollgate_internal')
    const config = {
      payer: CANONICAL_ESCROW,
      payerAuthorizer: CANONICAL_ESCROW,
      receiver: CANONICAL_ESCROW,
      receiverAuthorizer: CANONICAL_ESCROW,
      token: CANONICAL_ESCROW,
      withdrawDelay: 3600,
      salt: id,
    }
    expect(code(() => channelId(config, sep))).toBeUndefined()
    expect(code(() => channelId({ ...config, withdrawDelay: 2 ** 40 }, sep))).toBe(
      'tollgate_internal',
    )
    expect(code(() => channelId({ ...config, payer: `${CANONICAL_ESCROW}00` as Hex }, sep))).toBe(
      'tollgate_internal',
    )
    expect(code(() => channelId({ ...config, salt: toHex(1) }, sep))).toBe('tollgate_internal')
  })

  it('a failed call leaves no trace in the shared encoding buffers', () => {
    const before = bytesToHex(voucherDigest(sep, id, 5n))
    code(() => voucherDigest(sep, id, 2n ** 128n))
    code(() => voucherDigest(sep, `0x${'22'.repeat(31)}zz` as Hex, 5n))
    expect(bytesToHex(voucherDigest(sep, id, 5n))).toBe(before)
  })
})
