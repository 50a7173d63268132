/**
 * verify: EIP-712 hashing of the x402 batch-settlement messages and ECDSA checks against a
 * per-signer cached public key. Pure: no I/O (the EIP-1271 check is injected).
 */
export type { BackendName, Secp256k1Backend } from './backend.js'
export { type ChannelConfig, channelId, channelIdBytes } from './channelId.js'
export { type ClaimEntry, claimBatchDigest } from './claimBatchDigest.js'
export {
  createVoucherVerifier,
  type SignedRefund,
  type SignedVoucher,
  type VoucherVerifier,
  type VoucherVerifierOptions,
} from './createVoucherVerifier.js'
export {
  type DomainSeparator,
  domainSeparator,
  domainSeparatorBytes,
  type EscrowDomain,
} from './domainSeparator.js'
export { bytesToHex } from './hex.js'
export { jsBackend } from './jsBackend.js'
export {
  KECCAK,
  type Keccak,
  type KeccakName,
  keccak256,
  loadKeccak,
  WASM_KECCAK_MODULE,
} from './keccak.js'
export { type BackendPreference, type LoadedBackend, loadBackend } from './loadBackend.js'
export { loadNativeBackend, NATIVE_MODULE } from './nativeBackend.js'
export { refundDigest } from './refundDigest.js'
export {
  claimableSignature,
  normalizeSignature,
  type ParsedSignature,
  parseSignature,
} from './signature.js'
export { DEFAULT_SIGNER_CACHE_SIZE } from './signerCache.js'
export {
  type AuthorizationVerifier,
  createAuthorizationVerifier,
  type TokenDomain,
  TRANSFER_WITH_AUTHORIZATION_TYPE,
  tokenDomainSeparator,
  transferAuthorizationDigest,
} from './transferAuthorization.js'
export {
  BATCH_SETTLEMENT_TYPES,
  escrowDomain,
  RECEIVE_WITH_AUTHORIZATION_TYPES,
  TRANSFER_WITH_AUTHORIZATION_TYPES,
} from './typedData.js'
export { DOMAIN_NAME, DOMAIN_VERSION, TYPE_STRINGS, TYPEHASHES } from './typehashes.js'
export {
  type ContractSignatureCheck,
  type VerifyVoucherForOptions,
  type Voucher,
  verifyVoucherFor,
} from './verifyVoucherFor.js'
export { voucherDigest } from './voucherDigest.js'
