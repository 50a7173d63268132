/**
 * keccak-256 for the hashing hot path. The WebAssembly Keccak of `hash-wasm` where it loads (about
 * 1 µs per voucher hash against about 7 µs for @noble/hashes, measured by
 * `npm run bench -- ledger`), else @noble/hashes; never silently the slower one: the reason is in
 * {@link KECCAK}.`fallbackReason`, which {@link loadBackend} reports. Both are checked against
 * known answers at load.
 */
import { createRequire } from 'node:module'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** Which keccak-256 implementation is in use. */
export type KeccakName = 'wasm' | 'js'

/** The keccak-256 in use. */
export interface Keccak {
  readonly name: KeccakName
  /** keccak-256 of `input`, 32 bytes, freshly allocated (the caller may keep it). */
  readonly hash: (input: Uint8Array) => Uint8Array
  /** Set when the WebAssembly hasher did not load: why, for the operator. */
  readonly fallbackReason?: string
}

/** The slice of `hash-wasm`'s Keccak hasher used here. */
interface WasmHasher {
  init(): unknown
  update(data: Uint8Array): unknown
  digest(outputType: 'binary'): Uint8Array
}

/** The module loaded: its Keccak with 256-bit output is keccak-256 (original padding, not SHA3-256). */
export const WASM_KECCAK_MODULE = 'hash-wasm'

/**
 * Known answers of keccak-256 (as Ethereum uses it; the second computed by @noble/hashes and by
 * the `keccak` package's libkeccak binding alike): the empty input, and the 200 bytes 0..199,
 * which span two 136-byte blocks.
 */
const KNOWN = [
  {
    input: new Uint8Array(0),
    hex: 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
  },
  {
    input: Uint8Array.from({ length: 200 }, (_, i) => i),
    hex: 'bfb0aa97863e797943cf7c33bb7e880bb4543f3d2703c0923c6901c2af57b890',
  },
] as const

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Whether `hash` gives the known answers, twice (a hasher reused must start afresh). */
function passes(hash: (input: Uint8Array) => Uint8Array): boolean {
  for (let round = 0; round < 2; round++)
    for (const { input, hex } of KNOWN) if (hexOf(hash(input)) !== hex) return false
  return true
}

const nobleKeccak = (reason: string): Keccak =>
  Object.freeze({ name: 'js', hash: keccak_256, fallbackReason: reason })

/**
 * Loads the WebAssembly keccak-256 and checks it against known answers; @noble/hashes with the
 * reason when it does not load or fails.
 *
 * @param load - The `hash-wasm` loader; replaceable for tests. @default require('hash-wasm')
 * @returns The keccak-256 to use.
 * @example
 * const keccak = await loadKeccak()
 * if (keccak.fallbackReason) log.warn(keccak.fallbackReason)
 */
export async function loadKeccak(
  load: () => { createKeccak(bits: 256): Promise<WasmHasher> } = () =>
    createRequire(import.meta.url)(WASM_KECCAK_MODULE),
): Promise<Keccak> {
  let hasher: WasmHasher
  try {
    hasher = await load().createKeccak(256)
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause)
    return nobleKeccak(
      `keccak-256 uses @noble/hashes: ${WASM_KECCAK_MODULE} did not load: ${reason}`,
    )
  }
  const hash = (input: Uint8Array): Uint8Array => {
    hasher.init()
    hasher.update(input)
    return hasher.digest('binary')
  }
  if (!passes(hash)) {
    return nobleKeccak(
      `keccak-256 uses @noble/hashes: ${WASM_KECCAK_MODULE} failed its known-answer test`,
    )
  }
  return Object.freeze({ name: 'wasm', hash })
}

/** The keccak-256 of this process, loaded once when the module is first imported. */
export const KECCAK: Keccak = await loadKeccak()

/** keccak-256 of `input` with {@link KECCAK}: 32 bytes, freshly allocated. */
export const keccak256: (input: Uint8Array) => Uint8Array = KECCAK.hash
