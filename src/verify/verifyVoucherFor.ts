import type { Address, Hex } from 'viem'
import type { ChannelConfig } from './channelId.js'
import type { VoucherVerifier } from './createVoucherVerifier.js'
import { bytesToHex, isHex, writeHex } from './hex.js'
import { voucherDigest } from './voucherDigest.js'

/**
 * An EIP-1271 check, injected by the chain layer: resolves whether `account` (a contract)
 * returns the magic value `0x1626ba7e` from `isValidSignature(digest, signature)`. It must
 * resolve `false` for an account without code, and reject (not resolve false) when the
 * chain could not be read, so the caller can answer `rpc_read_failed` rather than
 * `voucher_signature`.
 */
export type ContractSignatureCheck = (
  account: Address,
  digest: Hex,
  signature: Hex,
) => Promise<boolean>

/** A voucher as carried in the payload. */
export interface Voucher {
  channelId: Hex
  maxClaimableAmount: bigint
  /** 65-byte ECDSA for EOAs; any length for EIP-1271 wallets. */
  signature: Hex
}

/** Options of {@link verifyVoucherFor}. */
export interface VerifyVoucherForOptions {
  verifier: VoucherVerifier
  contractCheck: ContractSignatureCheck
}

const ADDRESS_BUF = /* @__PURE__ */ new Uint8Array(20)

/** 1: non-zero address, 0: the zero address, -1: malformed. */
function addressKind(value: unknown): number {
  if (!writeHex(value, 20, ADDRESS_BUF, 0)) return -1
  for (let i = 0; i < 20; i++) if (ADDRESS_BUF[i] !== 0) return 1
  return 0
}

/**
 * Verifies a voucher against its channel's signer, the way the escrow does
 * (`_isVoucherSigner`):
 * - `payerAuthorizer` non-zero: ECDSA by that EOA, synchronously through the verifier's
 *   cached key (the hot path, no RPC). Returns a `boolean`.
 * - `payerAuthorizer` zero: `payer` signs (OpenZeppelin `SignatureChecker`): first ECDSA by
 *   `payer` (sync, `true` when it matches), otherwise the injected EIP-1271 check, which
 *   costs an RPC call and returns a `Promise`. Keep such channels off the fast path
 *   (or remember their verdict per voucher) in the caller.
 *
 * Check `channelId == channelId(config, domain)` before calling: this function trusts it.
 *
 * @param config - The channel's `payer` and `payerAuthorizer`.
 * @param voucher - The voucher from the payload.
 * @param options - The verifier (its domain is used) and the EIP-1271 check.
 * @returns `boolean`, or `Promise<boolean>` when the EIP-1271 check runs. Malformed input
 *   gives `false`; the promise rejects only when `contractCheck` rejects.
 * @example
 * const ok = await verifyVoucherFor(config, payload.voucher, { verifier, contractCheck })
 */
export function verifyVoucherFor(
  config: Pick<ChannelConfig, 'payer' | 'payerAuthorizer'>,
  voucher: Voucher,
  options: VerifyVoucherForOptions,
): boolean | Promise<boolean> {
  if (
    typeof config !== 'object' ||
    config === null ||
    typeof voucher !== 'object' ||
    voucher === null
  )
    return false
  const { verifier, contractCheck } = options
  const authorizer = addressKind(config.payerAuthorizer)
  if (authorizer === 1)
    return verifier.verifyVoucher({ ...voucher, signer: config.payerAuthorizer })
  if (authorizer < 0 || addressKind(config.payer) !== 1) return false

  if (verifier.verifyVoucher({ ...voucher, signer: config.payer })) return true
  if (!isHex(voucher.signature) || voucher.signature.length === 2) return false
  let digest: Hex
  try {
    digest = bytesToHex(
      voucherDigest(verifier.domainSeparator, voucher.channelId, voucher.maxClaimableAmount),
    )
  } catch {
    return false
  }
  return contractCheck(config.payer, digest, voucher.signature)
}
