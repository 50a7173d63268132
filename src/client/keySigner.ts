import { createRequire } from 'node:module'
import type { Hex, LocalAccount } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { NATIVE_MODULE } from '../verify/index.js'

/** The slice of `secp256k1/bindings` (libsecp256k1 through N-API) used to sign. */
interface Libsecp256k1Signer {
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number }
}

function loadSigner(): Libsecp256k1Signer | undefined {
  try {
    return createRequire(import.meta.url)(NATIVE_MODULE) as Libsecp256k1Signer
  } catch {
    return undefined
  }
}

/**
 * A viem local account for a private key whose raw-digest `sign` runs on libsecp256k1 when the
 * addon loads (about ten times viem's speed: what a payer signing a voucher per call wants),
 * and on viem otherwise. libsecp256k1 signs deterministically (RFC 6979) with a low s, as the
 * escrow requires; the result is `r ‖ s ‖ v` with v in {27, 28}, as viem's.
 *
 * @param privateKey 32-byte hex.
 * @example
 * const payer = await createPayer({ account, payerAuthorizer: keySigner(sessionKey), ... })
 */
export function keySigner(privateKey: Hex): LocalAccount {
  const account = privateKeyToAccount(privateKey)
  const lib = loadSigner()
  if (!lib) return account
  const key = Buffer.from(privateKey.slice(2), 'hex')
  return {
    ...account,
    async sign({ hash }) {
      const { signature, recid } = lib.ecdsaSign(Buffer.from(hash.slice(2), 'hex'), key)
      return `0x${Buffer.from(signature).toString('hex')}${(27 + recid).toString(16)}` as Hex
    },
  }
}
