import type { Address, Hex } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import {
  type ContractSignatureCheck,
  createVoucherVerifier,
  domainSeparator,
  loadNativeBackend,
  verifyVoucherFor,
} from '../../src/verify/index.js'
import {
  alice,
  bob,
  CANONICAL_ESCROW,
  referenceVoucherDigest,
  signVoucher,
  ZERO_ADDRESS,
} from './fixtures.js'

const CHAIN = 31337
const CHANNEL = `0x${'cd'.repeat(32)}` as Hex
const payer = alice
const sessionKey = bob
const WALLET: Address = '0x000000000000000000000000000000000000dEaD'
/** Stands in for an EIP-1271 wallet's opaque signature (e.g. a passkey assertion). */
const WALLET_SIGNATURE = `0x${'42'.repeat(97)}` as Hex

function recordingCheck(answer: boolean | Error) {
  const calls: [Address, Hex, Hex][] = []
  const check: ContractSignatureCheck = async (account, digest, signature) => {
    calls.push([account, digest, signature])
    if (answer instanceof Error) throw answer
    return answer
  }
  return { check, calls }
}

function setup(answer: boolean | Error = true) {
  const verifier = createVoucherVerifier({
    backend: loadNativeBackend(),
    domainSeparator: domainSeparator({ chainId: CHAIN, verifyingContract: CANONICAL_ESCROW }),
  })
  const { check, calls } = recordingCheck(answer)
  return { options: { verifier, contractCheck: check }, calls }
}

const sign = (account: PrivateKeyAccount, amount: bigint) =>
  signVoucher(account, CHAIN, CANONICAL_ESCROW, CHANNEL, amount)

describe('verifyVoucherFor', () => {
  it('non-zero payerAuthorizer: answers synchronously from ECDSA, never calls the contract check', async () => {
    const { options, calls } = setup()
    const config = { payer: WALLET, payerAuthorizer: sessionKey.address }
    const good = verifyVoucherFor(
      config,
      { channelId: CHANNEL, maxClaimableAmount: 5n, signature: await sign(sessionKey, 5n) },
      options,
    )
    expect(good).toBe(true)
    const byPayer = verifyVoucherFor(
      config,
      { channelId: CHANNEL, maxClaimableAmount: 5n, signature: await sign(payer, 5n) },
      options,
    )
    expect(byPayer).toBe(false)
    const opaque = verifyVoucherFor(
      config,
      { channelId: CHANNEL, maxClaimableAmount: 5n, signature: WALLET_SIGNATURE },
      options,
    )
    expect(opaque).toBe(false)
    expect(calls).toHaveLength(0)
  })

  it('zero payerAuthorizer and an EOA payer: accepted by ECDSA without the contract check', async () => {
    const { options, calls } = setup(false)
    const config = { payer: payer.address, payerAuthorizer: ZERO_ADDRESS }
    expect(
      verifyVoucherFor(
        config,
        { channelId: CHANNEL, maxClaimableAmount: 8n, signature: await sign(payer, 8n) },
        options,
      ),
    ).toBe(true)
    expect(calls).toHaveLength(0)
  })

  it('zero payerAuthorizer and a wallet payer: defers to EIP-1271 with the voucher digest', async () => {
    const { options, calls } = setup(true)
    const config = { payer: WALLET, payerAuthorizer: ZERO_ADDRESS }
    const result = verifyVoucherFor(
      config,
      { channelId: CHANNEL, maxClaimableAmount: 9n, signature: WALLET_SIGNATURE },
      options,
    )
    expect(result).toBeInstanceOf(Promise)
    expect(await result).toBe(true)
    expect(calls).toEqual([
      [WALLET, referenceVoucherDigest(CHAIN, CANONICAL_ESCROW, CHANNEL, 9n), WALLET_SIGNATURE],
    ])

    const refused = setup(false)
    expect(
      await verifyVoucherFor(
        config,
        { channelId: CHANNEL, maxClaimableAmount: 9n, signature: WALLET_SIGNATURE },
        refused.options,
      ),
    ).toBe(false)
  })

  it('propagates a failed chain read as a rejection, not as an invalid signature', async () => {
    const { options } = setup(new Error('rpc down'))
    const config = { payer: WALLET, payerAuthorizer: ZERO_ADDRESS }
    await expect(
      verifyVoucherFor(
        config,
        { channelId: CHANNEL, maxClaimableAmount: 1n, signature: WALLET_SIGNATURE },
        options,
      ),
    ).rejects.toThrow('rpc down')
  })

  it('malformed input gives false without calling the contract', () => {
    const { options, calls } = setup(true)
    const voucher = { channelId: CHANNEL, maxClaimableAmount: 1n, signature: WALLET_SIGNATURE }
    expect(verifyVoucherFor({ payer: WALLET, payerAuthorizer: '0x00' }, voucher, options)).toBe(
      false,
    )
    expect(
      verifyVoucherFor({ payer: ZERO_ADDRESS, payerAuthorizer: ZERO_ADDRESS }, voucher, options),
    ).toBe(false)
    expect(
      verifyVoucherFor(
        { payer: WALLET, payerAuthorizer: ZERO_ADDRESS },
        { ...voucher, signature: '0xzz' },
        options,
      ),
    ).toBe(false)
    expect(
      verifyVoucherFor(
        { payer: WALLET, payerAuthorizer: ZERO_ADDRESS },
        { ...voucher, maxClaimableAmount: -1n },
        options,
      ),
    ).toBe(false)
    expect(verifyVoucherFor(null as never, voucher, options)).toBe(false)
    expect(calls).toHaveLength(0)
  })
})
