import {
  type Address,
  encodeAbiParameters,
  getAddress,
  type Hex,
  keccak256,
  type LocalAccount,
  recoverAddress,
  toHex,
} from 'viem'
import type { Erc3009Authorization } from '../protocol/index.js'
import {
  BATCH_SETTLEMENT_TYPES,
  bytesToHex,
  type DomainSeparator,
  type escrowDomain,
  RECEIVE_WITH_AUTHORIZATION_TYPES,
  voucherDigest,
} from '../verify/index.js'

/** The escrow's EIP-712 domain, as `escrowDomain` builds it. */
type EscrowDomain = ReturnType<typeof escrowDomain>

/**
 * Signs a cumulative voucher: the EIP-712 digest is hashed here (the keccak-256 of src/verify) and
 * signed as a raw digest when the signer can (`sign`, a viem local account); otherwise the
 * signer signs the typed data itself.
 *
 * @example
 * const signature = await signVoucher(sessionKey, separator, escrowDomain(chainId, escrow), channelId, 5000n)
 */
export async function signVoucher(
  signer: LocalAccount,
  separator: DomainSeparator,
  domain: EscrowDomain,
  channelId: Hex,
  maxClaimableAmount: bigint,
): Promise<Hex> {
  if (signer.sign) {
    return signer.sign({
      hash: bytesToHex(voucherDigest(separator, channelId, maxClaimableAmount)),
    })
  }
  return signer.signTypedData({
    domain,
    types: { Voucher: BATCH_SETTLEMENT_TYPES.Voucher },
    primaryType: 'Voucher',
    message: { channelId, maxClaimableAmount },
  })
}

/**
 * Whether `signature` is `signer`'s voucher for `(channelId, maxClaimableAmount)`: how a payer
 * checks the voucher a corrective 402 shows before adopting the server's figure.
 */
export async function isOwnVoucher(
  signer: Address,
  separator: DomainSeparator,
  channelId: Hex,
  maxClaimableAmount: bigint,
  signature: Hex,
): Promise<boolean> {
  try {
    const hash = bytesToHex(voucherDigest(separator, channelId, maxClaimableAmount))
    const recovered = await recoverAddress({ hash, signature })
    return recovered.toLowerCase() === signer.toLowerCase()
  } catch {
    return false
  }
}

/** Parameters of {@link signDepositAuthorization}. */
export interface DepositAuthorizationParameters {
  /** The funding wallet: `from` of the transfer. */
  payer: LocalAccount
  chainId: number
  /** The token and its EIP-712 domain (`extra.name` / `extra.version` of the requirements). */
  token: { address: Address; name: string; version: string }
  /** The ERC-3009 deposit collector: `to` of the transfer. */
  collector: Address
  channelId: Hex
  amount: bigint
  /** Unix seconds after which the authorization is void. */
  validBefore: bigint
}

/**
 * Signs the ERC-3009 `ReceiveWithAuthorization` of a gasless deposit: the server submits it,
 * the collector pulls `amount` from the payer into the channel. Its nonce binds it to the
 * channel: `keccak256(abi.encode(channelId, salt))` with a fresh random salt.
 */
export async function signDepositAuthorization(
  parameters: DepositAuthorizationParameters,
): Promise<Erc3009Authorization> {
  const { payer, chainId, token, collector, channelId, amount, validBefore } = parameters
  const salt = toHex(crypto.getRandomValues(new Uint8Array(32)))
  const nonce = keccak256(
    encodeAbiParameters([{ type: 'bytes32' }, { type: 'uint256' }], [channelId, BigInt(salt)]),
  )
  const signature = await payer.signTypedData({
    domain: {
      name: token.name,
      version: token.version,
      chainId,
      verifyingContract: getAddress(token.address),
    },
    types: RECEIVE_WITH_AUTHORIZATION_TYPES,
    primaryType: 'ReceiveWithAuthorization',
    message: {
      from: getAddress(payer.address),
      to: getAddress(collector),
      value: amount,
      validAfter: 0n,
      validBefore,
      nonce,
    },
  })
  return { validAfter: 0n, validBefore, salt, signature }
}
