/**
 * Voucher signing on libsecp256k1 against viem's JavaScript: the same signatures for random keys
 * and digests (both RFC 6979), low s, a recovery id that recovers the signer; and the backend is
 * never slower in silence.
 */
import { randomBytes } from 'node:crypto'
import { type Hex, hexToBigInt, recoverAddress, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { keySigner, signingOf } from '../../src/client/index.js'

/** The order of secp256k1 (SEC 2 §2.4.1). */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

describe('keySigner', () => {
  it('signs on libsecp256k1 exactly as viem does, low-s, with the right recovery id', async () => {
    for (let i = 0; i < 64; i++) {
      const key = generatePrivateKey()
      const hash = toHex(randomBytes(32))
      const native = keySigner(key, 'native')
      const js = keySigner(key, 'js')
      expect(native.signingBackend).toBe('native')
      expect(js.signingBackend).toBe('js')
      const signature = (await native.sign?.({ hash })) as Hex
      expect(signature).toBe(await js.sign?.({ hash }))
      expect(signature).toBe(await privateKeyToAccount(key).sign({ hash }))
      expect(hexToBigInt(`0x${signature.slice(66, 130)}`) <= N / 2n).toBe(true)
      expect(['1b', '1c']).toContain(signature.slice(130))
      expect(await recoverAddress({ hash, signature })).toBe(native.address)
    }
  })

  it('prefers native where it loads, and reports every JavaScript signer with its reason', () => {
    const key = generatePrivateKey()
    expect(keySigner(key).signingBackend).toBe('native')
    expect(signingOf(keySigner(key))).toEqual({ backend: 'native' })
    expect(signingOf(keySigner(key, 'js'))).toMatchObject({
      backend: 'js',
      fallbackReason: expect.stringMatching(/js backend/),
    })
    expect(signingOf(privateKeyToAccount(key))).toMatchObject({
      backend: 'js',
      fallbackReason: expect.stringMatching(/not a keySigner/),
    })
    expect(() => keySigner(key, 'fast' as 'native')).toThrow(/auto, native or js/)
  })
})
