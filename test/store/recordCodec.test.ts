import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import type { ChannelRecord } from '../../src/ledger/types.js'
import { decodeRecord, encodeRecord, normalizeChannelId } from '../../src/store/recordCodec.js'
import { channelIdOf, MAX_UINT128, makeRecord, recordArb } from './fixtures.js'

const roundTrip = (record: ChannelRecord) => decodeRecord(record.channelId, encodeRecord(record))

describe('record codec', () => {
  it('round-trips every field exactly', () => {
    fc.assert(
      fc.property(recordArb, (record) => {
        expect(roundTrip(record)).toEqual(record)
      }),
      { numRuns: 2_000 },
    )
  })

  it('round-trips the extremes: all zero and all at 2^128 - 1, and amounts up to 2^256 - 1', () => {
    const zero = { ...makeRecord(0, 0n), signature: '0x', syncedAt: 0 } as const
    const max = {
      ...makeRecord(1, MAX_UINT128, MAX_UINT128),
      totalClaimed: MAX_UINT128,
      refundNonce: (1n << 256n) - 1n,
      syncedAt: 2 ** 48 - 1,
    }
    expect(roundTrip(zero)).toEqual(zero)
    expect(roundTrip(max)).toEqual(max)
  })

  it('takes about 250 bytes for a typical record (65-byte signature, 6-decimal amounts)', () => {
    const record = { ...makeRecord(7, 2_500_000n, 2_400_000n), balance: 10_000_000n }
    expect(encodeRecord(record).length).toBeLessThan(250)
  })

  it('comes back lowercase', () => {
    const record = makeRecord(3, 5n)
    const upper = {
      ...record,
      signature: record.signature.toUpperCase().replace('0X', '0x') as `0x${string}`,
    }
    expect(roundTrip(upper).signature).toBe(record.signature)
    expect(normalizeChannelId(`0x${'AB'.repeat(32)}`)).toBe(`0x${'ab'.repeat(32)}`)
  })

  it('refuses fields that do not fit, with tollgate_internal', () => {
    const base = makeRecord(1, 10n)
    const bad: ChannelRecord[] = [
      { ...base, signedMaxClaimable: -1n },
      { ...base, balance: 1n << 256n },
      { ...base, signature: '0xabc' },
      { ...base, signature: '0xzz' },
      { ...base, config: { ...base.config, payer: '0x1234' } },
      { ...base, config: { ...base.config, salt: `0x${'g'.repeat(64)}` } },
      { ...base, config: { ...base.config, withdrawDelay: 1.5 } },
      { ...base, syncedAt: -1 },
      { ...base, withdrawRequestedAt: 2 ** 48 },
    ]
    for (const record of bad) {
      expect(() => encodeRecord(record)).toThrow(
        expect.objectContaining({ code: 'tollgate_internal' }),
      )
    }
    expect(() => normalizeChannelId('0x1234')).toThrow(TollgateError)
  })

  it('refuses corrupt bytes with tollgate_store_failed instead of inventing a record', () => {
    const bytes = encodeRecord(makeRecord(1, 10n))
    const id = channelIdOf(1)
    const corruptions = [
      bytes.subarray(0, bytes.length - 1),
      Buffer.concat([bytes, Buffer.from([0])]),
    ]
    const badVersion = Buffer.from(bytes)
    badVersion[0] = 99
    corruptions.push(badVersion)
    for (const corrupt of corruptions) {
      expect(() => decodeRecord(id, corrupt)).toThrow(
        expect.objectContaining({ code: 'tollgate_store_failed' }),
      )
    }
  })
})
