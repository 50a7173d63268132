/**
 * The wire of HTTP ticks (src/transports/http/PROTOCOL.md): the headers a payer sends to open a
 * tick window and to spend one tick of it, and the EIP-712 type of the window's commitment. Both
 * the payer and the server speak it. Pure: no I/O.
 */
import type { Address, Hex } from 'viem'
import { accept, type Result, reject, TollgateError } from '../errors/index.js'
import { keccak256 } from '../verify/keccak.js'

/** Header names of ticks, as sent (HTTP header names are case-insensitive). */
export const TICK_HEADERS = Object.freeze({
  /** Request: `<channelId> <index> <preimage>`, one tick of the channel's open window. */
  tick: 'TOLLGATE-TICK',
  /** Request, beside a `PAYMENT-SIGNATURE` voucher: `<ticks> <root> <signature>`, opens a window. */
  window: 'TOLLGATE-TICK-WINDOW',
  /** Response to a tick served: `<channelId> <index> <chargedAmount> <chargedCumulativeAmount>`. */
  receipt: 'TOLLGATE-TICK-RECEIPT',
  /** Response to a refused tick (`tollgate_tick_invalid`): the index the window expects next. */
  expected: 'TOLLGATE-TICK-EXPECTED',
} as const)

/** The most calls one window may cover (the index is a uint32 in the commitment). */
export const MAX_TICKS = 1_000_000

/** The EIP-712 domain of tick commitments: tollgate's own name, bound to the chain and escrow. */
export const TICK_DOMAIN_NAME = 'tollgate ticks'
export const TICK_DOMAIN_VERSION = '1'

/** The commitment's EIP-712 type, as typed-data fields (viem `signTypedData`). */
export const TICK_WINDOW_TYPES = Object.freeze({
  TickWindow: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'maxClaimableAmount', type: 'uint128' },
    { name: 'price', type: 'uint128' },
    { name: 'ticks', type: 'uint32' },
    { name: 'root', type: 'bytes32' },
  ],
} as const)

const TYPE_STRING =
  'TickWindow(bytes32 channelId,uint128 maxClaimableAmount,uint128 price,uint32 ticks,bytes32 root)'
const DOMAIN_TYPE_STRING =
  'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'
const encoder = new TextEncoder()
const TYPEHASH = keccak256(encoder.encode(TYPE_STRING))

/** The EIP-712 domain of tick commitments on a chain, for `signTypedData`. */
export function tickDomain(chainId: number, verifyingContract: Address) {
  return {
    name: TICK_DOMAIN_NAME,
    version: TICK_DOMAIN_VERSION,
    chainId,
    verifyingContract,
  } as const
}

/**
 * The domain separator of tick commitments under the escrow `verifyingContract` on `chainId`.
 *
 * @throws TollgateError `tollgate_invalid_config` for a malformed chain id or address.
 */
export function tickDomainSeparator(chainId: number, verifyingContract: Address): Uint8Array {
  if (
    !Number.isSafeInteger(chainId) ||
    chainId <= 0 ||
    !/^0x[0-9a-fA-F]{40}$/.test(verifyingContract)
  ) {
    throw new TollgateError(
      'tollgate_invalid_config',
      'a tick domain needs a chain id and an address',
    )
  }
  const buf = new Uint8Array(160)
  buf.set(keccak256(encoder.encode(DOMAIN_TYPE_STRING)), 0)
  buf.set(keccak256(encoder.encode(TICK_DOMAIN_NAME)), 32)
  buf.set(keccak256(encoder.encode(TICK_DOMAIN_VERSION)), 64)
  writeUint(buf, 96, BigInt(chainId))
  buf.set(Buffer.from(verifyingContract.slice(2), 'hex'), 140)
  return keccak256(buf)
}

/** What the payer signs when it opens a window: the voucher's channel and ceiling, the price, the chain's root. */
export interface TickCommitment {
  readonly channelId: Hex
  readonly maxClaimableAmount: bigint
  /** The price of each call of the window (the route's `amount`). */
  readonly price: bigint
  /** Calls the window covers, the opening one included (indexes 0 to `ticks - 1`). */
  readonly ticks: number
  /** w_0 of the hash chain: w_(i-1) = keccak256(w_i). */
  readonly root: Hex
}

/**
 * The EIP-712 digest of a {@link TickCommitment}: keccak256(0x1901 ‖ separator ‖ hashStruct).
 *
 * @returns 32 bytes, or undefined when a field is out of its type.
 */
export function tickCommitmentDigest(
  separator: Uint8Array,
  commitment: TickCommitment,
): Uint8Array | undefined {
  const { channelId, maxClaimableAmount, price, ticks, root } = commitment
  const id = hex32(channelId)
  const r = hex32(root)
  if (!id || !r || !Number.isSafeInteger(ticks) || ticks < 1 || ticks > MAX_TICKS) return undefined
  if (maxClaimableAmount < 0n || maxClaimableAmount >= 1n << 128n) return undefined
  if (price < 0n || price >= 1n << 128n) return undefined
  const struct = new Uint8Array(192)
  struct.set(TYPEHASH, 0)
  struct.set(id, 32)
  writeUint(struct, 64, maxClaimableAmount)
  writeUint(struct, 96, price)
  writeUint(struct, 128, BigInt(ticks))
  struct.set(r, 160)
  const digest = new Uint8Array(66)
  digest[0] = 0x19
  digest[1] = 0x01
  digest.set(separator, 2)
  digest.set(keccak256(struct), 34)
  return keccak256(digest)
}

/** One tick as a request carries it. */
export interface TickPresentation {
  /** Lowercase hex. */
  readonly channelId: Hex
  readonly index: number
  /** w_index, 32 bytes. */
  readonly preimage: Uint8Array
}

/** Length of a 32-byte `0x` hex word. */
const WORD = 66

/**
 * Encodes a `TOLLGATE-TICK` header: `<channelId> <index> <preimage>`.
 *
 * @example
 * headers.set(TICK_HEADERS.tick, encodeTickHeader(channelId, 3, chain[3]))
 */
export function encodeTickHeader(channelId: Hex, index: number, preimage: Uint8Array): string {
  return `${channelId.toLowerCase()} ${index} 0x${Buffer.from(preimage.buffer, preimage.byteOffset, preimage.length).toString('hex')}`
}

/**
 * Parses a `TOLLGATE-TICK` header with no hashing: fixed-width words and a decimal index.
 *
 * @returns The tick, or `tollgate_tick_invalid` for anything malformed.
 */
export function parseTickHeader(value: string | undefined): Result<TickPresentation> {
  if (typeof value !== 'string' || value.length < 2 * WORD + 3 || value.length > 2 * WORD + 9) {
    return malformedTick('it is not `<channelId> <index> <preimage>`')
  }
  const first = value.indexOf(' ')
  const last = value.lastIndexOf(' ')
  if (first !== WORD || last !== value.length - WORD - 1 || last <= first + 1) {
    return malformedTick('it is not `<channelId> <index> <preimage>`')
  }
  const channelId = value.slice(0, WORD).toLowerCase() as Hex
  if (!HEX_WORD.test(channelId)) return malformedTick('the channel id is not 32 bytes of hex')
  const digits = value.slice(first + 1, last)
  if (!DECIMAL.test(digits)) return malformedTick('the index is not a decimal')
  const index = Number(digits)
  if (index > MAX_TICKS) return malformedTick('the index is too large')
  const preimage = hex32(value.slice(last + 1) as Hex)
  if (!preimage) return malformedTick('the preimage is not 32 bytes of hex')
  return accept({ channelId, index, preimage })
}

/** What a `TOLLGATE-TICK-WINDOW` header carries (the voucher is in `PAYMENT-SIGNATURE`). */
export interface TickWindowHeader {
  readonly ticks: number
  readonly root: Hex
  /** 65-byte ECDSA signature of the {@link TickCommitment} by the channel's `payerAuthorizer`. */
  readonly signature: Hex
}

/** Encodes a `TOLLGATE-TICK-WINDOW` header: `<ticks> <root> <signature>`. */
export function encodeTickWindowHeader(header: TickWindowHeader): string {
  return `${header.ticks} ${header.root.toLowerCase()} ${header.signature.toLowerCase()}`
}

/**
 * Parses a `TOLLGATE-TICK-WINDOW` header.
 *
 * @returns The window's fields, or `tollgate_tick_invalid` for anything malformed.
 */
export function parseTickWindowHeader(value: string | undefined): Result<TickWindowHeader> {
  if (typeof value !== 'string' || value.length > 256) {
    return malformedTick('the window header is not `<ticks> <root> <signature>`')
  }
  const parts = value.split(' ')
  if (parts.length !== 3)
    return malformedTick('the window header is not `<ticks> <root> <signature>`')
  const [digits, root, signature] = parts as [string, string, string]
  if (!DECIMAL.test(digits) || Number(digits) < 1 || Number(digits) > MAX_TICKS) {
    return malformedTick(`ticks must be an integer in [1, ${MAX_TICKS}]`)
  }
  if (!HEX_WORD.test(root.toLowerCase())) return malformedTick('the root is not 32 bytes of hex')
  if (!/^0x[0-9a-f]{130}$/.test(signature.toLowerCase())) {
    return malformedTick('the signature is not 65 bytes of hex')
  }
  return accept({
    ticks: Number(digits),
    root: root.toLowerCase() as Hex,
    signature: signature.toLowerCase() as Hex,
  })
}

/** What a tick's receipt reports: the index charged, its charge, and the channel's charged total after it. */
export interface TickReceipt {
  /** Lowercase hex. */
  readonly channelId: Hex
  readonly index: number
  /** What this call was charged, at most the window's price. */
  readonly chargedAmount: bigint
  /** The channel's `chargedCumulativeAmount` after the charge. */
  readonly chargedCumulativeAmount: bigint
}

/**
 * Encodes a `TOLLGATE-TICK-RECEIPT` header: `<channelId> <index> <chargedAmount>
 * <chargedCumulativeAmount>`, the receipt of one tick (the opening call's is x402's
 * `PAYMENT-RESPONSE`). Plain words, no JSON: it is written once per call.
 */
export function encodeTickReceipt(receipt: TickReceipt): string {
  return `${receipt.channelId} ${receipt.index} ${receipt.chargedAmount} ${receipt.chargedCumulativeAmount}`
}

/**
 * Parses a `TOLLGATE-TICK-RECEIPT` header, on the payer's side.
 *
 * @returns The receipt, or `tollgate_invalid_payment_response` for anything malformed.
 */
export function parseTickReceipt(value: string | null | undefined): Result<TickReceipt> {
  const parts = typeof value === 'string' && value.length <= 200 ? value.split(' ') : []
  const [id, index, charged, cumulative] = parts as [string, string, string, string]
  if (
    parts.length !== 4 ||
    !HEX_WORD.test(id.toLowerCase()) ||
    !DECIMAL.test(index) ||
    !UINT.test(charged) ||
    !UINT.test(cumulative)
  ) {
    return reject(
      'tollgate_invalid_payment_response',
      'the tick receipt is not `<channelId> <index> <chargedAmount> <chargedCumulativeAmount>`.',
    )
  }
  return accept({
    channelId: id.toLowerCase() as Hex,
    index: Number(index),
    chargedAmount: BigInt(charged),
    chargedCumulativeAmount: BigInt(cumulative),
  })
}

/** The chain's link function: w_(i-1) = keccak256(w_i). */
export function tickLink(preimage: Uint8Array): Uint8Array {
  return keccak256(preimage)
}

/** Whether keccak256(`preimage`) is `link`: the check of one tick, one 32-byte hash. */
export function linksTo(preimage: Uint8Array, link: Uint8Array): boolean {
  if (preimage.length !== 32 || link.length !== 32) return false
  const hash = keccak256(preimage)
  let diff = 0
  for (let i = 0; i < 32; i++) diff |= (hash[i] as number) ^ (link[i] as number)
  return diff === 0
}

const HEX_WORD = /^0x[0-9a-f]{64}$/
const DECIMAL = /^(0|[1-9][0-9]{0,9})$/
/** A uint128 in decimal: at most 39 digits. */
const UINT = /^(0|[1-9][0-9]{0,38})$/

/** 32 bytes from `0x` + 64 hex digits (either case), or undefined. */
function hex32(value: Hex): Uint8Array | undefined {
  if (typeof value !== 'string' || value.length !== WORD || value[0] !== '0' || value[1] !== 'x') {
    return undefined
  }
  // Buffer stops at the first pair that is not hex: a short result means a bad digit.
  const bytes = Buffer.from(value.slice(2), 'hex')
  return bytes.length === 32 ? new Uint8Array(bytes.buffer, bytes.byteOffset, 32) : undefined
}

function writeUint(buf: Uint8Array, at: number, value: bigint): void {
  let v = value
  for (let i = at + 31; i >= at; i--) {
    buf[i] = Number(v & 0xffn)
    v >>= 8n
  }
}

function malformedTick(detail: string) {
  return reject('tollgate_tick_invalid', `the tick header is malformed: ${detail}.`)
}
