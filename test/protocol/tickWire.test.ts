/**
 * The tick wire: the headers parse strictly with no hashing, and the commitment digest is the
 * EIP-712 typed-data hash viem computes for the same type and domain.
 */
import { randomBytes } from 'node:crypto'
import { type Hex, hashTypedData, keccak256, recoverAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import {
  encodeTickHeader,
  encodeTickReceipt,
  encodeTickWindowHeader,
  linksTo,
  parseTickHeader,
  parseTickReceipt,
  parseTickWindowHeader,
  TICK_WINDOW_TYPES,
  tickCommitmentDigest,
  tickDomain,
  tickDomainSeparator,
  tickLink,
} from '../../src/protocol/tickWire.js'
import { bytesToHex } from '../../src/verify/index.js'

const ESCROW = '0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003'
const ID = `0x${'12'.repeat(32)}` as Hex
const ROOT = `0x${'ab'.repeat(32)}` as Hex

describe('tick headers', () => {
  it('round-trips a tick', () => {
    const preimage = new Uint8Array(32).fill(7)
    const header = encodeTickHeader(ID.toUpperCase().replace('0X', '0x') as Hex, 42, preimage)
    const parsed = parseTickHeader(header)
    expect(parsed.ok && parsed.value.channelId).toBe(ID)
    expect(parsed.ok && parsed.value.index).toBe(42)
    expect(parsed.ok && [...parsed.value.preimage]).toEqual([...preimage])
  })

  it.each([
    ['nothing', undefined],
    ['empty', ''],
    ['no index', `${ID}  ${ROOT}`],
    ['a signed index', `${ID} -1 ${ROOT}`],
    ['a leading zero', `${ID} 01 ${ROOT}`],
    ['a huge index', `${ID} 99999999999 ${ROOT}`],
    ['a short preimage', `${ID} 1 0x${'ab'.repeat(31)}`],
    ['a non-hex preimage', `${ID} 1 0x${'ab'.repeat(31)}zz`],
    ['a non-hex channel', `0x${'zz'.repeat(32)} 1 ${ROOT}`],
    ['extra words', `${ID} 1 2 ${ROOT}`],
  ])('refuses %s', (_what, value) => {
    const parsed = parseTickHeader(value)
    expect(parsed.ok).toBe(false)
    expect(!parsed.ok && parsed.code).toBe('tollgate_tick_invalid')
  })

  it('round-trips a window header and refuses malformed ones', () => {
    const signature = `0x${'cd'.repeat(65)}` as Hex
    const header = encodeTickWindowHeader({ ticks: 100, root: ROOT, signature })
    expect(parseTickWindowHeader(header)).toEqual({
      ok: true,
      value: { ticks: 100, root: ROOT, signature },
    })
    for (const bad of [`0 ${ROOT} ${signature}`, `100 ${ROOT}`, `100 ${ROOT} 0x12`, 'x']) {
      expect(parseTickWindowHeader(bad).ok).toBe(false)
    }
  })
})

describe('tick commitment', () => {
  it('is the EIP-712 hash of TickWindow under the tick domain, signed by the payer', async () => {
    const message = {
      channelId: ID,
      maxClaimableAmount: 123_456n,
      price: 1000n,
      ticks: 100,
      root: ROOT,
    }
    const ours = tickCommitmentDigest(tickDomainSeparator(31337, ESCROW), message)
    const viems = hashTypedData({
      domain: tickDomain(31337, ESCROW),
      types: TICK_WINDOW_TYPES,
      primaryType: 'TickWindow',
      message,
    })
    expect(ours && bytesToHex(ours)).toBe(viems)
    const account = privateKeyToAccount(generatePrivateKey())
    const signature = await account.signTypedData({
      domain: tickDomain(31337, ESCROW),
      types: TICK_WINDOW_TYPES,
      primaryType: 'TickWindow',
      message,
    })
    expect(await recoverAddress({ hash: viems, signature })).toBe(account.address)
  })

  it('binds the chain and escrow, and refuses fields out of their types', () => {
    const message = { channelId: ID, maxClaimableAmount: 1n, price: 1n, ticks: 2, root: ROOT }
    const here = tickCommitmentDigest(tickDomainSeparator(31337, ESCROW), message)
    const there = tickCommitmentDigest(tickDomainSeparator(8453, ESCROW), message)
    expect(here && bytesToHex(here)).not.toBe(there && bytesToHex(there))
    const sep = tickDomainSeparator(31337, ESCROW)
    expect(tickCommitmentDigest(sep, { ...message, ticks: 0 })).toBeUndefined()
    expect(
      tickCommitmentDigest(sep, { ...message, maxClaimableAmount: 1n << 128n }),
    ).toBeUndefined()
    expect(tickCommitmentDigest(sep, { ...message, root: '0x12' })).toBeUndefined()
  })
})

describe('tick receipt', () => {
  it('round-trips, and refuses anything else', () => {
    const receipt = {
      channelId: ID,
      index: 7,
      chargedAmount: 1000n,
      chargedCumulativeAmount: 47_000n,
    }
    expect(parseTickReceipt(encodeTickReceipt(receipt))).toEqual({ ok: true, value: receipt })
    for (const bad of [null, '', `${ID} 7 1000`, `${ID} 7 -1 5`, `${ID} x 1 5`, `0x12 7 1 5`]) {
      const parsed = parseTickReceipt(bad)
      expect(!parsed.ok && parsed.code).toBe('tollgate_invalid_payment_response')
    }
  })
})

describe('tick link', () => {
  it('is keccak256, and linksTo accepts exactly the preimage of a link', () => {
    for (let i = 0; i < 50; i++) {
      const preimage = new Uint8Array(randomBytes(32))
      const link = tickLink(preimage)
      expect(bytesToHex(link)).toBe(keccak256(preimage))
      expect(linksTo(preimage, link)).toBe(true)
      const other = new Uint8Array(link)
      other[i % 32] = (other[i % 32] as number) ^ 1
      expect(linksTo(preimage, other)).toBe(false)
    }
    expect(linksTo(new Uint8Array(31), new Uint8Array(32))).toBe(false)
  })
})
