/**
 * The exact scheme's EIP-3009 digest and signature check, against viem's own typed-data hashing
 * and signing: the digest is the one a wallet signs, and a signature verifies only for its payer,
 * its token domain and its exact fields.
 */
import { getAddress, type Hex, hashTypedData } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import type { TransferAuthorization } from '../../src/protocol/index.js'
import {
  bytesToHex,
  createAuthorizationVerifier,
  jsBackend,
  loadBackend,
  TRANSFER_WITH_AUTHORIZATION_TYPES,
  tokenDomainSeparator,
  transferAuthorizationDigest,
} from '../../src/verify/index.js'

const payer = privateKeyToAccount(generatePrivateKey())
const domain = {
  name: 'USDC',
  version: '2',
  chainId: 84532,
  verifyingContract: getAddress('0x036cbd53842c5426634e7929541ec2318f3dcf7e'),
}
const message = {
  from: payer.address,
  to: getAddress('0x1111111111111111111111111111111111111111'),
  value: 1000n,
  validAfter: 0n,
  validBefore: 1_900_000_000n,
  nonce: `0x${'ab'.repeat(32)}` as Hex,
}
const authorization: TransferAuthorization = {
  ...message,
  from: message.from.toLowerCase() as Hex,
  to: message.to.toLowerCase() as Hex,
}
const typed = {
  domain,
  types: TRANSFER_WITH_AUTHORIZATION_TYPES,
  primaryType: 'TransferWithAuthorization',
  message,
} as const

describe('transferAuthorizationDigest', () => {
  it('is the EIP-712 hash viem computes', () => {
    const digest = transferAuthorizationDigest(tokenDomainSeparator(domain), authorization)
    expect(bytesToHex(digest)).toBe(hashTypedData(typed))
  })
})

describe('createAuthorizationVerifier', () => {
  for (const backend of [jsBackend, loadBackend('auto').backend]) {
    it(`accepts the payer's signature and nothing changed from it (${backend.name})`, async () => {
      const signature = await payer.signTypedData(typed)
      const verifier = createAuthorizationVerifier({ backend, domain })
      expect(verifier.verify(authorization, signature)).toBe(true)
      // Twice: the second check runs against the cached key.
      expect(verifier.verify(authorization, signature)).toBe(true)
      expect(verifier.verify({ ...authorization, value: 1001n }, signature)).toBe(false)
      expect(verifier.verify({ ...authorization, to: authorization.from }, signature)).toBe(false)
      const other = privateKeyToAccount(generatePrivateKey())
      expect(
        verifier.verify({ ...authorization, from: other.address.toLowerCase() as Hex }, signature),
      ).toBe(false)
      const otherToken = createAuthorizationVerifier({
        backend,
        domain: { ...domain, verifyingContract: other.address },
      })
      expect(otherToken.verify(authorization, signature)).toBe(false)
      expect(verifier.verify(authorization, '0x1234')).toBe(false)
    })
  }
})
