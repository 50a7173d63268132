/**
 * Voucher signing on libsecp256k1 against viem's JavaScript: the same signatures for random keys
 * and digests (both RFC 6979), low s, a recovery id that recovers the signer; and the backend is
 * never slower in silence.
 */
import { randomBytes } from 'node:crypto'
import { type Hex, hexToBigInt, recoverAddress, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { createPayer, keySigner, signingOf } from '../../src/client/index.js'
import { TollgateError } from '../../src/errors/index.js'
import { tempDir } from './fixtures.js'

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

  it('refuses what is not a private key with a configuration error that says what it got', () => {
    const address = privateKeyToAccount(generatePrivateKey()).address
    for (const [key, got] of [
      [address, /got an address/],
      [undefined, /got undefined \(is the environment variable holding it set\?\)/],
      ['0x1234', /got 6 characters/],
    ] as const) {
      expect(() => keySigner(key as Hex)).toThrow(TollgateError)
      expect(() => keySigner(key as Hex)).toThrow(got)
      try {
        keySigner(key as Hex)
      } catch (error) {
        expect((error as TollgateError).code).toBe('tollgate_invalid_config')
      }
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

  it('without the addon: native throws, auto signs in JavaScript and says why, the payer reports it', async () => {
    const key = generatePrivateKey()
    const missing = () => {
      throw new TollgateError('tollgate_invalid_config', 'libsecp256k1 addon did not load: gone')
    }
    expect(() => keySigner(key, 'native', missing)).toThrow(/did not load: gone/)
    const fallback = keySigner(key, 'auto', missing)
    expect(fallback).toMatchObject({ signingBackend: 'js', fallbackReason: /did not load: gone/ })
    const hash = toHex(randomBytes(32))
    expect(await fallback.sign?.({ hash })).toBe(await keySigner(key, 'native').sign?.({ hash }))
    const warnings: string[] = []
    const temp = tempDir()
    try {
      const payer = await createPayer({
        account: fallback,
        rpcUrl: 'http://127.0.0.1:1',
        chainId: 31337,
        dataDir: temp.dir,
        onWarning: (message) => warnings.push(message),
      })
      expect(payer.signing).toMatchObject({ backend: 'js', fallbackReason: /gone/ })
      await payer.close()
    } finally {
      temp.remove()
    }
    expect(warnings).toEqual([expect.stringMatching(/signed in JavaScript.*did not load: gone/)])
  })
})
