import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import * as secp from '@noble/secp256k1'
import fc from 'fast-check'
import { hexToBytes, keccak256, toHex } from 'viem'
import { describe, expect, it } from 'vitest'
import { TollgateError } from '../../src/errors/index.js'
import {
  domainSeparator,
  jsBackend,
  loadBackend,
  loadNativeBackend,
  parseSignature,
  type Secp256k1Backend,
  voucherDigest,
} from '../../src/verify/index.js'
import {
  address,
  alice,
  anAccount,
  bob,
  bytes32,
  chainId,
  defined,
  N,
  PRIVATE_KEYS,
  privateKey,
  signVoucher,
  uint128,
} from './fixtures.js'

// noble needs these only to sign (the tests' own signatures); verification uses none.
secp.hashes.sha256 = sha256
secp.hashes.hmacSha256 = (key, message) => hmac(sha256, key, message)

const native = loadNativeBackend()
const BACKENDS: readonly Secp256k1Backend[] = [native, jsBackend]

const word = (value: bigint) => hexToBytes(toHex(value, { size: 32 }))
const compactOf = (r: bigint, s: bigint) => {
  const out = new Uint8Array(64)
  out.set(word(r), 0)
  out.set(word(s), 32)
  return out
}

describe('loadBackend', () => {
  const missing = () => {
    throw new TollgateError(
      'tollgate_invalid_config',
      'libsecp256k1 addon (secp256k1/bindings) did not load: gone',
    )
  }

  it('loads libsecp256k1 here, with no fallback reason', () => {
    const loaded = loadBackend('auto')
    expect(loaded.backend.name).toBe('native')
    expect(loaded.fallbackReason).toBeUndefined()
    expect(loadBackend('native').backend.name).toBe('native')
    expect(loadBackend('js').backend.name).toBe('js')
  })

  it('auto falls back to js and says why; native refuses to fall back', () => {
    const loaded = loadBackend('auto', missing)
    expect(loaded.backend.name).toBe('js')
    expect(loaded.fallbackReason).toContain('did not load: gone')
    expect(() => loadBackend('native', missing)).toThrow(TollgateError)
  })

  it('rejects an unknown preference as misconfiguration', () => {
    expect(() => loadBackend('fast' as 'auto')).toThrow(/auto, native or js/)
  })
})

describe.each(BACKENDS)('$name backend', (backend) => {
  it('recovers the key of viem-signed vouchers and verifies them against it', async () => {
    await fc.assert(
      fc.asyncProperty(
        anAccount,
        bytes32,
        uint128,
        chainId,
        address,
        async (account, id, amount, chain, escrow) => {
          const signature = await signVoucher(account, chain, escrow, id, amount)
          const parsed = defined(parseSignature(signature))
          const digest = voucherDigest(
            domainSeparator({ chainId: chain, verifyingContract: escrow }),
            id,
            amount,
          )
          const key = backend.recoverPublicKey(digest, parsed.compact, parsed.recid)
          expect(key && toHex(key)).toBe(account.publicKey)
          expect(
            backend.verify(digest, parsed.compact, parsed.recid, hexToBytes(account.publicKey)),
          ).toBe(true)
          // Another key, another digest, the other recovery id: all refused.
          expect(
            backend.verify(
              digest,
              parsed.compact,
              parsed.recid,
              hexToBytes((account === alice ? bob : alice).publicKey),
            ),
          ).toBe(false)
          expect(
            backend.verify(
              hexToBytes(keccak256(digest)),
              parsed.compact,
              parsed.recid,
              hexToBytes(account.publicKey),
            ),
          ).toBe(false)
          expect(
            backend.verify(digest, parsed.compact, 1 - parsed.recid, hexToBytes(account.publicKey)),
          ).toBe(false)
        },
      ),
      { numRuns: 40 },
    )
  })

  it('refuses the high-s twin in verify although it recovers the same key', async () => {
    const account = alice
    const digest = hexToBytes(keccak256(toHex('high-s')))
    const sig = secp.sign(digest, hexToBytes(PRIVATE_KEYS[0]), {
      prehash: false,
      format: 'recovered',
    })
    const r = BigInt(toHex(sig.subarray(1, 33)))
    const s = BigInt(toHex(sig.subarray(33, 65)))
    const recid = defined(sig[0])
    const twin = compactOf(r, N - s)
    const key = backend.recoverPublicKey(digest, twin, 1 - recid)
    expect(key && toHex(key)).toBe(account.publicKey)
    expect(backend.verify(digest, twin, 1 - recid, hexToBytes(account.publicKey))).toBe(false)
    expect(backend.verify(digest, compactOf(r, s), recid, hexToBytes(account.publicKey))).toBe(true)
  })

  it('returns null or false, never throws, for out-of-range scalars and bad shapes', () => {
    const digest = hexToBytes(keccak256('0x01'))
    const key = hexToBytes(alice.publicKey)
    for (const [r, s] of [
      [0n, 1n],
      [1n, 0n],
      [N, 1n],
      [1n, N],
      [2n ** 256n - 1n, 1n],
    ] as const) {
      for (const recid of [0, 1]) {
        expect(backend.recoverPublicKey(digest, compactOf(r, s), recid)).toBeNull()
        expect(backend.verify(digest, compactOf(r, s), recid, key)).toBe(false)
      }
    }
    expect(backend.recoverPublicKey(digest.subarray(1), compactOf(1n, 1n), 0)).toBeNull()
    expect(backend.recoverPublicKey(digest, new Uint8Array(65), 0)).toBeNull()
    expect(backend.recoverPublicKey(digest, compactOf(1n, 1n), 2)).toBeNull()
    expect(backend.verify(digest, compactOf(1n, 1n), 0, new Uint8Array(65))).toBe(false)
    expect(backend.verify(digest, compactOf(1n, 1n), 0, key.subarray(0, 33))).toBe(false)
  })
})

describe('native and js agree', () => {
  /** A valid signature, then one of several corruptions (or none). */
  const cases = fc
    .record({
      key: privateKey,
      digest: bytes32,
      mutation: fc.constantFrom(
        'none',
        'flip-byte',
        'high-s',
        'other-recid',
        'random',
        'r-zero',
        's-zero',
        'r-over-n',
      ),
      byte: fc.nat(63),
      random: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    })
    .map(({ key, digest, mutation, byte, random }) => {
      const d = hexToBytes(digest)
      const sig = secp.sign(d, hexToBytes(key), { prehash: false, format: 'recovered' })
      let recid = defined(sig[0])
      let compact = sig.slice(1)
      const r = BigInt(toHex(compact.subarray(0, 32)))
      const s = BigInt(toHex(compact.subarray(32)))
      if (mutation === 'flip-byte') compact[byte] = (defined(compact[byte]) ^ 0x01) & 0xff
      if (mutation === 'high-s') {
        compact = compactOf(r, N - s)
        recid = 1 - recid
      }
      if (mutation === 'other-recid') recid = 1 - recid
      if (mutation === 'random') compact = random
      if (mutation === 'r-zero') compact = compactOf(0n, s)
      if (mutation === 's-zero') compact = compactOf(r, 0n)
      if (mutation === 'r-over-n') compact = compactOf(r + N < 2n ** 256n ? r + N : N, s)
      return {
        publicKey: secp.getPublicKey(hexToBytes(key), false),
        digest: d,
        compact,
        recid,
        mutation,
      }
    })

  it('on random valid and corrupted signatures', () => {
    fc.assert(
      fc.property(cases, ({ publicKey, digest, compact, recid, mutation }) => {
        const a = native.recoverPublicKey(digest, compact, recid)
        const b = jsBackend.recoverPublicKey(digest, compact, recid)
        expect(a === null ? null : toHex(a)).toBe(b === null ? null : toHex(b))
        const verdict = native.verify(digest, compact, recid, publicKey)
        expect(jsBackend.verify(digest, compact, recid, publicKey)).toBe(verdict)
        expect(verdict).toBe(mutation === 'none')
      }),
      { numRuns: 150 },
    )
  })
})
