import type { Address, Hex } from 'viem'
import { TollgateError } from '../errors/index.js'
import { sameConfig } from '../ledger/ledger.js'
import type { ChannelRecord } from '../ledger/types.js'
import { parseBytes32 } from '../protocol/parse.js'
import { writeHex as writeHexBytes } from '../verify/hex.js'

type ChannelConfig = ChannelRecord['config']

// Binary layout of a stored ChannelRecord (the channel id is the key, not repeated here).
// Fixed part, then variable-length amounts and signature; all integers big-endian.
//
//   off  size  field
//     0     1  layout version (RECORD_LAYOUT_VERSION)
//     1    20  config.payer
//    21    20  config.payerAuthorizer
//    41    20  config.receiver
//    61    20  config.receiverAuthorizer
//    81    20  config.token
//   101    32  config.salt
//   133     6  config.withdrawDelay        (uint48)
//   139     6  withdrawRequestedAt         (uint48)
//   145     6  syncedAt                    (uint48, ms: good until year 10889)
//   151   1+n  chargedCumulativeAmount     (length byte n <= 32, then n bytes)
//         1+n  signedMaxClaimable
//         1+n  inFlightCumulativeAmount    (layout 2 on; layout 1 records have none)
//         1+n  balance
//         1+n  totalClaimed
//         1+n  refundNonce
//         2+n  signature                   (uint16 length, then bytes)
//
// Hex fields come back lowercase: the protocol layer normalizes them so on decode.

/** Version byte at the start of every encoded record. */
export const RECORD_LAYOUT_VERSION = 2
/** The layout before `inFlightCumulativeAmount`, still read. */
const LEGACY_LAYOUT_VERSION = 1

const ADDRESS_BYTES = 20
const BYTES32 = 32
const UINT48_BYTES = 6
const MAX_UINT48 = 2 ** 48 - 1
const MAX_AMOUNT_BYTES = 32
const MAX_UINT256 = (1n << 256n) - 1n
const MAX_SIGNATURE_BYTES = 0xffff
const FIXED_BYTES = 1 + 5 * ADDRESS_BYTES + BYTES32 + 3 * UINT48_BYTES
/** config.payer to config.withdrawDelay. */
const CONFIG_BYTES = 5 * ADDRESS_BYTES + BYTES32 + UINT48_BYTES
/** Amounts up to this fit a double exactly and take the fast path. */
const MAX_SMALL_AMOUNT = BigInt(MAX_UINT48)

/** The config part of a record (offsets 1 to 139), encoded, with a copy of the fields it was encoded from. */
interface EncodedConfig {
  readonly from: ChannelConfig
  readonly bytes: Buffer
}

/**
 * A channel's config is the same object in each of its records (the ledger keeps it), and it
 * never changes: its bytes are encoded once and copied. Each use compares the fields first, so a
 * config that was changed in place is encoded again.
 */
const encodedConfigs = new WeakMap<ChannelConfig, EncodedConfig>()

/** Key of a channel record: `c` and the 32 bytes of the channel id. */
export function recordKey(channelId: Hex): Buffer {
  const key = Buffer.allocUnsafe(1 + BYTES32)
  key[0] = 0x63
  writeHex(key, 1, channelId, BYTES32, 'channelId')
  return key
}

/** The channel id of a record key. */
export function channelIdOfKey(key: Buffer): Hex {
  return `0x${key.toString('hex', 1, 1 + BYTES32)}`
}

/**
 * Encodes a record in the binary layout above.
 *
 * @throws TollgateError `tollgate_internal` when a field does not fit (negative or above
 * 2^256-1 amount, malformed hex, timestamp outside uint48): a bug upstream, never input.
 */
export function encodeRecord(record: ChannelRecord): Buffer {
  const { config } = record
  const signatureBytes = hexBytes(record.signature, 'signature')
  const buf = Buffer.allocUnsafe(FIXED_BYTES + 6 * (1 + MAX_AMOUNT_BYTES) + 2 + signatureBytes)
  buf[0] = RECORD_LAYOUT_VERSION
  encodedConfig(config).bytes.copy(buf, 1)
  writeUint48(buf, 139, record.withdrawRequestedAt, 'withdrawRequestedAt')
  writeUint48(buf, 145, record.syncedAt, 'syncedAt')
  let off = writeAmount(buf, FIXED_BYTES, record.chargedCumulativeAmount, 'chargedCumulativeAmount')
  off = writeAmount(buf, off, record.signedMaxClaimable, 'signedMaxClaimable')
  off = writeAmount(buf, off, record.inFlightCumulativeAmount, 'inFlightCumulativeAmount')
  off = writeAmount(buf, off, record.balance, 'balance')
  off = writeAmount(buf, off, record.totalClaimed, 'totalClaimed')
  off = writeAmount(buf, off, record.refundNonce, 'refundNonce')
  buf.writeUInt16BE(signatureBytes, off)
  off += 2
  writeHex(buf, off, record.signature, signatureBytes, 'signature')
  return buf.subarray(0, off + signatureBytes)
}

function encodedConfig(config: ChannelConfig): EncodedConfig {
  const known = encodedConfigs.get(config)
  if (known !== undefined && sameConfig(known.from, config)) return known
  const bytes = Buffer.alloc(CONFIG_BYTES)
  writeHex(bytes, 0, config.payer, ADDRESS_BYTES, 'config.payer')
  writeHex(bytes, 20, config.payerAuthorizer, ADDRESS_BYTES, 'config.payerAuthorizer')
  writeHex(bytes, 40, config.receiver, ADDRESS_BYTES, 'config.receiver')
  writeHex(bytes, 60, config.receiverAuthorizer, ADDRESS_BYTES, 'config.receiverAuthorizer')
  writeHex(bytes, 80, config.token, ADDRESS_BYTES, 'config.token')
  writeHex(bytes, 100, config.salt, BYTES32, 'config.salt')
  writeUint48(bytes, 132, config.withdrawDelay, 'config.withdrawDelay')
  const encoded: EncodedConfig = { from: { ...config }, bytes }
  encodedConfigs.set(config, encoded)
  return encoded
}

/**
 * Decodes a record written by {@link encodeRecord}, or by the layout before it, which kept no
 * in-flight amount: `legacyInFlight` says what to take for it (the held ceiling after a crash,
 * the charged total after a clean close).
 *
 * @throws TollgateError `tollgate_store_failed` when the bytes are not a record of this layout.
 */
export function decodeRecord(
  channelId: Hex,
  buf: Buffer,
  legacyInFlight: 'charged' | 'ceiling' = 'charged',
): ChannelRecord {
  const version = buf[0]
  if (
    buf.length < FIXED_BYTES + 5 + 2 ||
    (version !== RECORD_LAYOUT_VERSION && version !== LEGACY_LAYOUT_VERSION)
  ) {
    throw corrupt(channelId)
  }
  const cursor = { off: FIXED_BYTES }
  const chargedCumulativeAmount = readAmount(buf, cursor, channelId)
  const signedMaxClaimable = readAmount(buf, cursor, channelId)
  const inFlightCumulativeAmount =
    version === LEGACY_LAYOUT_VERSION
      ? legacyInFlight === 'ceiling'
        ? signedMaxClaimable
        : chargedCumulativeAmount
      : readAmount(buf, cursor, channelId)
  const balance = readAmount(buf, cursor, channelId)
  const totalClaimed = readAmount(buf, cursor, channelId)
  const refundNonce = readAmount(buf, cursor, channelId)
  if (cursor.off + 2 > buf.length) throw corrupt(channelId)
  const signatureEnd = cursor.off + 2 + buf.readUInt16BE(cursor.off)
  if (signatureEnd !== buf.length) throw corrupt(channelId)
  return {
    channelId,
    config: {
      payer: `0x${buf.toString('hex', 1, 21)}` as Address,
      payerAuthorizer: `0x${buf.toString('hex', 21, 41)}` as Address,
      receiver: `0x${buf.toString('hex', 41, 61)}` as Address,
      receiverAuthorizer: `0x${buf.toString('hex', 61, 81)}` as Address,
      token: `0x${buf.toString('hex', 81, 101)}` as Address,
      withdrawDelay: buf.readUIntBE(133, UINT48_BYTES),
      salt: `0x${buf.toString('hex', 101, 133)}`,
    },
    chargedCumulativeAmount,
    signedMaxClaimable,
    inFlightCumulativeAmount,
    signature: `0x${buf.toString('hex', cursor.off + 2, signatureEnd)}`,
    balance,
    totalClaimed,
    withdrawRequestedAt: buf.readUIntBE(139, UINT48_BYTES),
    refundNonce,
    syncedAt: buf.readUIntBE(145, UINT48_BYTES),
  }
}

/** Byte length of a `0x` hex string, checked to be whole bytes. */
function hexBytes(hex: string, field: string): number {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !hex.startsWith('0x')) {
    throw unencodable(field)
  }
  const bytes = (hex.length - 2) / 2
  if (bytes > MAX_SIGNATURE_BYTES) throw unencodable(field)
  return bytes
}

/** Writes exactly `bytes` bytes of `0x` hex (any case) at `off`, with no copy of the string. */
function writeHex(buf: Buffer, off: number, hex: string, bytes: number, field: string): void {
  if (!writeHexBytes(hex, bytes, buf, off)) throw unencodable(field)
}

function writeUint48(buf: Buffer, off: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_UINT48) throw unencodable(field)
  buf.writeUIntBE(value, off, UINT48_BYTES)
}

function writeAmount(buf: Buffer, off: number, value: bigint, field: string): number {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT256) throw unencodable(field)
  if (value <= MAX_SMALL_AMOUNT) {
    const n = Number(value)
    const len = byteLength(n)
    buf[off] = len
    if (len > 0) buf.writeUIntBE(n, off + 1, len)
    return off + 1 + len
  }
  const hex = value.toString(16)
  const padded = hex.length % 2 === 0 ? hex : `0${hex}`
  const len = padded.length / 2
  buf[off] = len
  buf.write(padded, off + 1, len, 'hex')
  return off + 1 + len
}

/** Bytes needed for an integer in [0, 2^48). */
function byteLength(n: number): number {
  if (n === 0) return 0
  if (n < 0x100) return 1
  if (n < 0x1_0000) return 2
  if (n < 0x100_0000) return 3
  if (n < 0x1_0000_0000) return 4
  if (n < 0x100_0000_0000) return 5
  return 6
}

function readAmount(buf: Buffer, cursor: { off: number }, channelId: Hex): bigint {
  const start = cursor.off + 1
  const len = buf[cursor.off]
  if (len === undefined || len > MAX_AMOUNT_BYTES || start + len > buf.length) {
    throw corrupt(channelId)
  }
  cursor.off = start + len
  if (len === 0) return 0n
  if (len <= UINT48_BYTES) return BigInt(buf.readUIntBE(start, len))
  return BigInt(`0x${buf.toString('hex', start, start + len)}`)
}

function unencodable(field: string): TollgateError {
  return new TollgateError('tollgate_internal', `The channel record's ${field} cannot be stored.`)
}

function corrupt(channelId: Hex): TollgateError {
  return new TollgateError('tollgate_store_failed', `The stored record of ${channelId} is corrupt.`)
}

/**
 * The channel id of a record in the form stores key it by: 32-byte hex, lowercase.
 *
 * @throws TollgateError `tollgate_internal` when it is not 32-byte hex.
 */
export function normalizeChannelId(channelId: string): Hex {
  const normalized = parseBytes32(channelId)
  if (normalized === undefined) throw unencodable('channelId')
  return normalized
}
