import { keccak_256 } from '@noble/hashes/sha3.js'
import fc from 'fast-check'
import { bytesToHex, keccak256 as viemKeccak } from 'viem'
import { describe, expect, it } from 'vitest'
import {
  jsBackend,
  KECCAK,
  keccak256,
  loadBackend,
  loadKeccak,
  loadNativeBackend,
} from '../../src/verify/index.js'

/** A `hash-wasm` stand-in whose hasher answers `answer` whatever it is given. */
const wrongHasher = (answer: Uint8Array) => () => ({
  createKeccak: async () => ({ init() {}, update() {}, digest: () => answer }),
})

describe('keccak-256', () => {
  it('is the WebAssembly hasher here, with no fallback reason', () => {
    expect(KECCAK.name).toBe('wasm')
    expect(KECCAK.fallbackReason).toBeUndefined()
  })

  it('equals viem and @noble/hashes on inputs of 0 to 600 bytes, and returns fresh bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (input) => {
        const first = keccak256(input)
        expect(bytesToHex(first)).toBe(viemKeccak(input))
        expect(bytesToHex(keccak256(new Uint8Array(7)))).toBe(
          bytesToHex(keccak_256(new Uint8Array(7))),
        )
        // The first digest was not overwritten by the second hash.
        expect(bytesToHex(first)).toBe(bytesToHex(keccak_256(input)))
      }),
    )
  })

  it('falls back to @noble/hashes and says why when hash-wasm does not load', async () => {
    const loaded = await loadKeccak(() => {
      throw new Error("Cannot find module 'hash-wasm'")
    })
    expect(loaded.name).toBe('js')
    expect(loaded.fallbackReason).toBe(
      "keccak-256 uses @noble/hashes: hash-wasm did not load: Cannot find module 'hash-wasm'",
    )
    expect(bytesToHex(loaded.hash(new Uint8Array(3)))).toBe(viemKeccak(new Uint8Array(3)))
  })

  it('falls back when the hasher fails its known answers (one that ignores its input)', async () => {
    const empty = keccak_256(new Uint8Array(0))
    const loaded = await loadKeccak(wrongHasher(empty))
    expect(loaded.name).toBe('js')
    expect(loaded.fallbackReason).toContain('failed its known-answer test')
  })

  it('is reported by loadBackend when it fell back, whatever the ECDSA backend', async () => {
    const slow = await loadKeccak(() => {
      throw new Error('gone')
    })
    expect(loadBackend('native', loadNativeBackend, slow).fallbackReason).toBe(slow.fallbackReason)
    const missing = () => {
      throw new Error('no addon')
    }
    const both = loadBackend('auto', missing, slow)
    expect(both.backend).toBe(jsBackend)
    expect(both.fallbackReason).toContain('no addon')
    expect(both.fallbackReason).toContain(slow.fallbackReason)
    expect(loadBackend('native', loadNativeBackend, KECCAK).fallbackReason).toBeUndefined()
  })
})
