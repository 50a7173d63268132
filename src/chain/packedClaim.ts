import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem'
import { TollgateError } from '../errors/index.js'

/** The channel fields every row of one `claimPacked` call shares: one server's channels. */
export interface PackedClaimHeader {
  receiver: Address
  receiverAuthorizer: Address
  token: Address
  withdrawDelay: number
}

/** One row of `claimPacked`: an EOA-signed voucher and the channel's new cumulative claim. */
export interface PackedClaimRow {
  payer: Address
  /** Must be non-zero: packed claims carry ECDSA signatures only. */
  payerAuthorizer: Address
  salt: Hex
  maxClaimableAmount: bigint
  totalClaimed: bigint
  /** 65-byte `r ‖ s ‖ v` signature, low-s. */
  signature: Hex
}

const HEADER_BYTES = 65
const ROW_BYTES = 168
const UINT128_MAX = (1n << 128n) - 1n
const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000'

/**
 * Encodes the argument of the escrow's `claimPacked(bytes)` (layout documented on the contract):
 * about 40% less gas per channel than the x402 `claim` ABI. Throws on rows that do not fit
 * (a bug in the caller, not untrusted input).
 */
export function encodePackedClaim(header: PackedClaimHeader, rows: readonly PackedClaimRow[]): Hex {
  if (rows.length === 0)
    throw new TollgateError('tollgate_internal', 'a packed claim needs at least one row')
  const out = new Uint8Array(HEADER_BYTES + ROW_BYTES * rows.length)
  out.set(hexToBytes(header.receiver), 0)
  out.set(hexToBytes(header.receiverAuthorizer), 20)
  out.set(hexToBytes(header.token), 40)
  writeUint(out, 60, 5, BigInt(header.withdrawDelay))
  let o = HEADER_BYTES
  for (const row of rows) {
    if (row.payerAuthorizer.toLowerCase() === ZERO_ADDRESS) {
      throw new TollgateError(
        'tollgate_internal',
        'packed claims need an EOA payerAuthorizer; use claim for EIP-1271 payers',
      )
    }
    const sig = hexToBytes(row.signature)
    if (sig.length !== 65)
      throw new TollgateError('tollgate_internal', 'packed claims need 65-byte signatures')
    out.set(hexToBytes(row.payer), o)
    out.set(hexToBytes(row.payerAuthorizer), o + 20)
    out.set(hexToBytes(row.salt, { size: 32 }), o + 40)
    writeUint(out, o + 72, 16, row.maxClaimableAmount)
    writeUint(out, o + 88, 16, row.totalClaimed)
    out.set(sig.subarray(0, 32), o + 104)
    // EIP-2098: yParity in the top bit of s (s is low, so its top bit is free).
    const v = sig[64] ?? 0
    const yParity = v >= 27 ? v - 27 : v
    out.set(sig.subarray(32, 64), o + 136)
    out[o + 136] = (out[o + 136] ?? 0) | (yParity << 7)
    o += ROW_BYTES
  }
  return bytesToHex(out)
}

function writeUint(out: Uint8Array, offset: number, size: number, value: bigint): void {
  if (value < 0n || value > UINT128_MAX || value >> BigInt(size * 8) !== 0n) {
    throw new TollgateError('tollgate_internal', `value ${value} does not fit ${size} bytes`)
  }
  let v = value
  for (let i = size - 1; i >= 0; i--) {
    out[offset + i] = Number(v & 0xffn)
    v >>= 8n
  }
}
