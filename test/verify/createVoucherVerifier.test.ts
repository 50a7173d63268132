import fc from 'fast-check'
import type { Address, Hex } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import {
  createVoucherVerifier,
  domainSeparator,
  jsBackend,
  loadNativeBackend,
  type Secp256k1Backend,
  type VoucherVerifier,
} from '../../src/verify/index.js'
import {
  address,
  alice,
  anAccount,
  bob,
  bytes32,
  CANONICAL_ESCROW,
  carol,
  chainId,
  escrowDomain,
  flipV,
  highS,
  signVoucher,
  types,
  uint128,
  zeroOneV,
} from './fixtures.js'

const BACKENDS: readonly Secp256k1Backend[] = [loadNativeBackend(), jsBackend]
const CHAIN = 84532
const SEP = domainSeparator({ chainId: CHAIN, verifyingContract: CANONICAL_ESCROW })
const CHANNEL = `0x${'ab'.repeat(32)}` as Hex

/** Wraps a backend and counts its calls. */
function counting(inner: Secp256k1Backend) {
  const calls = { recover: 0, verify: 0 }
  const backend: Secp256k1Backend = {
    name: inner.name,
    recoverPublicKey(...args) {
      calls.recover++
      return inner.recoverPublicKey(...args)
    },
    verify(...args) {
      calls.verify++
      return inner.verify(...args)
    },
  }
  return { backend, calls }
}

const sign = (account: PrivateKeyAccount, amount: bigint, channelId: Hex = CHANNEL) =>
  signVoucher(account, CHAIN, CANONICAL_ESCROW, channelId, amount)

describe.each(BACKENDS)('voucher verifier on the $name backend', (inner) => {
  const fresh = (cacheSize?: number): VoucherVerifier =>
    createVoucherVerifier({
      backend: inner,
      domainSeparator: SEP,
      ...(cacheSize ? { cacheSize } : {}),
    })

  it('accepts vouchers signed with viem for random channels, amounts, chains and escrows', async () => {
    await fc.assert(
      fc.asyncProperty(
        anAccount,
        bytes32,
        uint128,
        uint128,
        chainId,
        address,
        async (account, id, a, b, chain, escrow) => {
          const verifier = createVoucherVerifier({
            backend: inner,
            domainSeparator: domainSeparator({ chainId: chain, verifyingContract: escrow }),
          })
          for (const amount of [a, b]) {
            const signature = await signVoucher(account, chain, escrow, id, amount)
            // Second iteration runs on the cached key.
            expect(
              verifier.verifyVoucher({
                channelId: id,
                maxClaimableAmount: amount,
                signature,
                signer: account.address,
              }),
            ).toBe(true)
            expect(
              verifier.verifyVoucher({
                channelId: id,
                maxClaimableAmount: amount + 1n,
                signature,
                signer: account.address,
              }),
            ).toBe(false)
          }
        },
      ),
      { numRuns: 30 },
    )
  })

  it('accepts the signer address in lowercase or checksummed form, and v as 0/1', async () => {
    const verifier = fresh()
    const signature = await sign(alice, 10n)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 10n,
        signature,
        signer: alice.address.toLowerCase() as Address,
      }),
    ).toBe(true)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 10n,
        signature: zeroOneV(signature),
        signer: alice.address,
      }),
    ).toBe(true)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL.toUpperCase().replace('0X', '0x') as Hex,
        maxClaimableAmount: 10n,
        signature: signature.toUpperCase().replace('0X', '0x') as Hex,
        signer: alice.address,
      }),
    ).toBe(true)
  })

  it('refuses a voucher signed for another chain id or another escrow', async () => {
    const verifier = fresh()
    const amount = 1_000n
    const otherChain = await signVoucher(alice, 8453, CANONICAL_ESCROW, CHANNEL, amount)
    const otherEscrow = await signVoucher(
      alice,
      CHAIN,
      '0x4020806089470a89826cB9fB1f4059150b550004',
      CHANNEL,
      amount,
    )
    for (const cached of [false, true]) {
      expect(
        verifier.verifyVoucher({
          channelId: CHANNEL,
          maxClaimableAmount: amount,
          signature: otherChain,
          signer: alice.address,
        }),
      ).toBe(false)
      expect(
        verifier.verifyVoucher({
          channelId: CHANNEL,
          maxClaimableAmount: amount,
          signature: otherEscrow,
          signer: alice.address,
        }),
      ).toBe(false)
      if (!cached)
        expect(
          verifier.verifyVoucher({
            channelId: CHANNEL,
            maxClaimableAmount: 1n,
            signature: await sign(alice, 1n),
            signer: alice.address,
          }),
        ).toBe(true)
    }
  })

  it('refuses the high-s twin and a flipped v, before and after the key is cached', async () => {
    const verifier = fresh()
    const signature = await sign(alice, 77n)
    const voucher = { channelId: CHANNEL, maxClaimableAmount: 77n, signer: alice.address }
    expect(verifier.verifyVoucher({ ...voucher, signature: highS(signature) })).toBe(false)
    expect(verifier.verifyVoucher({ ...voucher, signature: flipV(signature) })).toBe(false)
    expect(verifier.cachedSigners).toBe(0)
    expect(verifier.verifyVoucher({ ...voucher, signature })).toBe(true)
    expect(verifier.cachedSigners).toBe(1)
    expect(verifier.verifyVoucher({ ...voucher, signature: highS(signature) })).toBe(false)
    // ecrecover with the other v yields another address, so the escrow would refuse it.
    expect(verifier.verifyVoucher({ ...voucher, signature: flipV(signature) })).toBe(false)
  })

  it('refuses a voucher from the wrong signer', async () => {
    const verifier = fresh()
    const signature = await sign(bob, 5n)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 5n,
        signature,
        signer: alice.address,
      }),
    ).toBe(false)
    expect(verifier.cachedSigners).toBe(0)
  })

  it('verifies a signer’s later vouchers against the cached key, without recovering', async () => {
    const { backend, calls } = counting(inner)
    const verifier = createVoucherVerifier({ backend, domainSeparator: SEP })
    const first = await sign(alice, 1_000n)
    const second = await sign(alice, 2_000n)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 1_000n,
        signature: first,
        signer: alice.address,
      }),
    ).toBe(true)
    expect(calls).toEqual({ recover: 1, verify: 0 })
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 2_000n,
        signature: second,
        signer: alice.address,
      }),
    ).toBe(true)
    expect(calls).toEqual({ recover: 1, verify: 1 })

    // Bob signs for Alice's channel: checked against Alice's cached key, refused, nothing recovered or cached.
    const forged = await sign(bob, 3_000n)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 3_000n,
        signature: forged,
        signer: alice.address,
      }),
    ).toBe(false)
    expect(calls).toEqual({ recover: 1, verify: 2 })
    expect(verifier.cachedSigners).toBe(1)
  })

  it('bounds the cache, evicting the least recently used signer', async () => {
    const { backend, calls } = counting(inner)
    const verifier = createVoucherVerifier({ backend, domainSeparator: SEP, cacheSize: 2 })
    const check = async (account: PrivateKeyAccount, amount: bigint) =>
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: amount,
        signature: await sign(account, amount),
        signer: account.address,
      })
    expect(await check(alice, 1n)).toBe(true)
    expect(await check(bob, 1n)).toBe(true)
    expect(await check(alice, 2n)).toBe(true) // Alice is now the most recent.
    expect(await check(carol, 1n)).toBe(true) // evicts Bob
    expect(verifier.cachedSigners).toBe(2)
    expect(calls.recover).toBe(3)
    expect(await check(alice, 3n)).toBe(true)
    expect(calls.recover).toBe(3)
    expect(await check(bob, 2n)).toBe(true)
    expect(calls.recover).toBe(4)
  })

  it('checks refunds signed by the receiver authorizer', async () => {
    const verifier = fresh()
    const refund = { channelId: CHANNEL, nonce: 3n, amount: 250n }
    const signature = await bob.signTypedData({
      domain: escrowDomain(CHAIN, CANONICAL_ESCROW),
      types,
      primaryType: 'Refund',
      message: refund,
    })
    expect(verifier.verifyRefund({ ...refund, signature, signer: bob.address })).toBe(true)
    expect(verifier.verifyRefund({ ...refund, nonce: 4n, signature, signer: bob.address })).toBe(
      false,
    )
    expect(verifier.verifyRefund({ ...refund, signature, signer: alice.address })).toBe(false)
  })

  it('returns false and never throws on garbage', async () => {
    const verifier = fresh()
    const good = await sign(alice, 9n)
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 9n,
        signature: good,
        signer: alice.address,
      }),
    ).toBe(true)
    const hexish = fc.oneof(
      fc.string(),
      fc
        .string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFxX'.split('')) })
        .map((s) => `0x${s}`),
      fc.uint8Array({ maxLength: 70 }).map((b) => `0x${Buffer.from(b).toString('hex')}`),
    )
    const field = fc.oneof(hexish, fc.anything(), fc.bigInt())
    fc.assert(
      fc.property(
        fc.record({
          channelId: field,
          maxClaimableAmount: fc.oneof(fc.bigInt(), fc.anything()),
          signature: field,
          signer: fc.oneof(field, fc.constant(alice.address)),
        }),
        (voucher) => {
          const call = () => verifier.verifyVoucher(voucher as never)
          expect(call).not.toThrow()
          expect(call()).toBe(false)
        },
      ),
      { numRuns: 500 },
    )
    // Random well-formed 65-byte signatures, on the cached signer and on fresh ones.
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 65, maxLength: 65 }),
        fc.oneof(fc.constant(alice.address), address),
        (bytes, signer) => {
          const signature = `0x${Buffer.from(bytes).toString('hex')}` as Hex
          expect(
            verifier.verifyVoucher({
              channelId: CHANNEL,
              maxClaimableAmount: 9n,
              signature,
              signer,
            }),
          ).toBe(false)
        },
      ),
      { numRuns: inner.name === 'js' ? 30 : 300 },
    )
    for (const bad of [null, undefined, 42, 'x', [], {}])
      expect(verifier.verifyVoucher(bad as never)).toBe(false)
    expect(verifier.verifyDigest(new Uint8Array(31), good, alice.address)).toBe(false)
    // The good voucher still passes afterwards: garbage left no state behind.
    expect(
      verifier.verifyVoucher({
        channelId: CHANNEL,
        maxClaimableAmount: 9n,
        signature: good,
        signer: alice.address,
      }),
    ).toBe(true)
  })

  it('refuses misconfiguration at creation', () => {
    expect(() => createVoucherVerifier({ backend: inner, domainSeparator: '0x12' })).toThrow(
      /domainSeparator/,
    )
    expect(() =>
      createVoucherVerifier({ backend: inner, domainSeparator: SEP, cacheSize: 0 }),
    ).toThrow(/cache size/)
  })
})
