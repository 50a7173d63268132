import type { Address, Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import type { BackendName, Secp256k1Backend } from './backend.js'
import type { DomainSeparator } from './domainSeparator.js'
import { newDigestBuffer } from './eip712.js'
import { bytesToHex, writeHex } from './hex.js'
import { keccak256 } from './keccak.js'
import { newRefundBuffer, writeRefund } from './refundDigest.js'
import { readSignature } from './signature.js'
import { DEFAULT_SIGNER_CACHE_SIZE, SignerCache } from './signerCache.js'
import { newVoucherBuffer, writeVoucher } from './voucherDigest.js'

/** Options of {@link createVoucherVerifier}. */
export interface VoucherVerifierOptions {
  /** From {@link loadBackend}. */
  backend: Secp256k1Backend
  /** The escrow domain: from {@link domainSeparator} or {@link domainSeparatorBytes}. */
  domainSeparator: DomainSeparator
  /** Most signer public keys kept. @default DEFAULT_SIGNER_CACHE_SIZE */
  cacheSize?: number
}

/** A voucher and the EOA expected to have signed it (the channel's `payerAuthorizer`). */
export interface SignedVoucher {
  channelId: Hex
  maxClaimableAmount: bigint
  /** 65-byte `r ‖ s ‖ v` hex. */
  signature: Hex
  /** The expected signer address, lowercase or checksummed. */
  signer: Address
}

/** A refund authorization and the EOA expected to have signed it (the `receiverAuthorizer`). */
export interface SignedRefund {
  channelId: Hex
  nonce: bigint
  amount: bigint
  signature: Hex
  signer: Address
}

/** ECDSA checks of EIP-712 messages under one escrow domain, with a per-signer key cache. */
export interface VoucherVerifier {
  /** The backend in use. */
  readonly backend: BackendName
  /** The domain separator, lowercase hex. */
  readonly domainSeparator: Hex
  /** Number of signer public keys currently cached. */
  readonly cachedSigners: number
  /** Whether `signer` signed the voucher (low-s, v bound). False on any malformed input; never throws. */
  verifyVoucher(voucher: SignedVoucher): boolean
  /** Whether `signer` signed the refund. False on any malformed input; never throws. */
  verifyRefund(refund: SignedRefund): boolean
  /** Whether `signer` signed the 32-byte `digest`. False on any malformed input; never throws. */
  verifyDigest(digest: Uint8Array, signature: Hex, signer: Address): boolean
}

/**
 * Creates the hot-path verifier. The first signature from a signer is checked by
 * recovering its public key and comparing keccak256(key)[12:] with the signer address;
 * the key is then cached (LRU, bounded) and later signatures from that signer are
 * verified against it, with no recovery and no address derivation. A cached key is
 * exactly the signer's key, so a signature it rejects is invalid for that signer.
 *
 * Encoding buffers are allocated once per verifier; a call allocates only the keccak
 * outputs. Not re-entrant across threads (JS has none here).
 *
 * @param options - Backend, escrow domain separator, cache bound.
 * @returns The verifier.
 * @throws TollgateError `tollgate_invalid_config` for a malformed domain separator or cache size.
 * @example
 * const { backend } = loadBackend('auto')
 * const verifier = createVoucherVerifier({ backend, domainSeparator: domainSeparator({ chainId, verifyingContract }) })
 * verifier.verifyVoucher({ channelId, maxClaimableAmount, signature, signer: config.payerAuthorizer })
 */
export function createVoucherVerifier(options: VoucherVerifierOptions): VoucherVerifier {
  const { backend, cacheSize = DEFAULT_SIGNER_CACHE_SIZE } = options
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 1) {
    throw new TollgateError(
      'tollgate_invalid_config',
      `signer cache size must be a positive integer, not ${cacheSize}`,
    )
  }
  if (typeof backend?.verify !== 'function' || typeof backend.recoverPublicKey !== 'function') {
    throw new TollgateError(
      'tollgate_invalid_config',
      'a secp256k1 backend is required (see loadBackend)',
    )
  }
  const digestBuf = newDigestBuffer(options.domainSeparator)
  const separator = bytesToHex(digestBuf, 2, 32)
  const voucherBuf = newVoucherBuffer()
  const refundBuf = newRefundBuffer()
  const compact = new Uint8Array(64)
  const signerBytes = new Uint8Array(20)
  const cache = new SignerCache(cacheSize)

  function digestOf(structBuf: Uint8Array): Uint8Array {
    digestBuf.set(keccak256(structBuf), 34)
    return keccak256(digestBuf)
  }

  function verifyDigest(digest: Uint8Array, signature: Hex, signer: Address): boolean {
    const recid = readSignature(signature, compact)
    if (recid < 0 || typeof signer !== 'string') return false
    const key = signer.toLowerCase()
    const publicKey = cache.get(key)
    if (publicKey !== undefined) return backend.verify(digest, compact, recid, publicKey)

    if (!writeHex(key, 20, signerBytes, 0)) return false
    const recovered = backend.recoverPublicKey(digest, compact, recid)
    if (recovered === null || recovered.length !== 65 || recovered[0] !== 4) return false
    // Ethereum address: the last 20 bytes of keccak256(x ‖ y) (Yellow Paper, eq. 326).
    const hash = keccak256(recovered.subarray(1))
    for (let i = 0; i < 20; i++) if (hash[12 + i] !== signerBytes[i]) return false
    cache.set(key, recovered)
    return true
  }

  return {
    backend: backend.name,
    domainSeparator: separator,
    get cachedSigners() {
      return cache.size
    },
    verifyVoucher(voucher) {
      if (typeof voucher !== 'object' || voucher === null) return false
      if (!writeVoucher(voucherBuf, voucher.channelId, voucher.maxClaimableAmount)) return false
      return verifyDigest(digestOf(voucherBuf), voucher.signature, voucher.signer)
    },
    verifyRefund(refund) {
      if (typeof refund !== 'object' || refund === null) return false
      if (!writeRefund(refundBuf, refund.channelId, refund.nonce, refund.amount)) return false
      return verifyDigest(digestOf(refundBuf), refund.signature, refund.signer)
    },
    verifyDigest(digest, signature, signer) {
      if (!(digest instanceof Uint8Array) || digest.length !== 32) return false
      return verifyDigest(digest, signature, signer)
    },
  }
}
