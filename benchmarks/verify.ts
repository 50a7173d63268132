/**
 * Voucher verification throughput, single-threaded, in one run: tollgate's verifier on the
 * native backend (libsecp256k1, key cached per signer) and on the pure-JS fallback
 * (@noble/secp256k1), next to viem's `recoverTypedDataAddress` as the reference. Every
 * iteration hashes its voucher digest afresh from a pre-signed voucher with its own amount.
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { type Hex, hashTypedData, recoverTypedDataAddress, toHex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import {
  BATCH_SETTLEMENT_TYPES,
  channelId,
  createVoucherVerifier,
  domainSeparator,
  escrowDomain,
  jsBackend,
  loadBackend,
  type Secp256k1Backend,
  voucherDigest,
} from '../src/verify/index.js'
import type { Log } from './run.js'

/** Seconds measured per contender, after a short warm-up. */
const SECONDS = 3
const WARMUP_SECONDS = 0.3
const POOL_SIZE = 20_000
const CHAIN_ID = 84532
const ESCROW = '0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003' as const

const domain = escrowDomain(CHAIN_ID, ESCROW)
const types = BATCH_SETTLEMENT_TYPES

interface SignedVoucher {
  maxClaimableAmount: bigint
  signature: Hex
}

/** Calls `step(i)` for `seconds`, returning calls per second; every call must return true. */
async function measure(
  seconds: number,
  step: (i: number) => boolean | Promise<boolean>,
): Promise<number> {
  const warmEnd = performance.now() + WARMUP_SECONDS * 1000
  let i = 0
  while (performance.now() < warmEnd)
    if (!(await step(i++))) throw new Error(`voucher ${i - 1} did not verify`)
  const start = performance.now()
  const end = start + seconds * 1000
  let n = 0
  let now = start
  while (now < end) {
    for (let k = 0; k < 32; k++, n++)
      if (!(await step(i++))) throw new Error(`voucher ${i - 1} did not verify`)
    now = performance.now()
  }
  return (n * 1000) / (now - start)
}

/** Same as {@link measure} for a synchronous step, without an await per call. */
function measureSync(seconds: number, step: (i: number) => boolean): number {
  const warmEnd = performance.now() + WARMUP_SECONDS * 1000
  let i = 0
  while (performance.now() < warmEnd)
    if (!step(i++)) throw new Error(`voucher ${i - 1} did not verify`)
  const start = performance.now()
  const end = start + seconds * 1000
  let n = 0
  let now = start
  while (now < end) {
    for (let k = 0; k < 32; k++, n++)
      if (!step(i++)) throw new Error(`voucher ${i - 1} did not verify`)
    now = performance.now()
  }
  return (n * 1000) / (now - start)
}

/** Signs the pool with libsecp256k1 when it loads (fast), else with viem (a smaller pool). */
async function signPool(
  privateKey: Hex,
  id: Hex,
  size: number,
  log: Log,
): Promise<SignedVoucher[]> {
  const sep = domainSeparator({ chainId: CHAIN_ID, verifyingContract: ESCROW })
  const pool: SignedVoucher[] = []
  let lib:
    | { ecdsaSign(msg: Uint8Array, key: Uint8Array): { signature: Uint8Array; recid: number } }
    | undefined
  try {
    lib = createRequire(import.meta.url)('secp256k1/bindings')
  } catch {
    log('libsecp256k1 missing: signing a smaller pool with viem')
  }
  const account = privateKeyToAccount(privateKey)
  const key = Uint8Array.from(Buffer.from(privateKey.slice(2), 'hex'))
  for (let i = 0; i < (lib ? size : 2_000); i++) {
    const maxClaimableAmount = 1_000n * BigInt(i + 1) + BigInt(i % 7)
    if (lib) {
      const { signature, recid } = lib.ecdsaSign(voucherDigest(sep, id, maxClaimableAmount), key)
      pool.push({
        maxClaimableAmount,
        signature: `${toHex(signature)}${recid === 0 ? '1b' : '1c'}` as Hex,
      })
    } else {
      const signature = await account.signTypedData({
        domain,
        types,
        primaryType: 'Voucher',
        message: { channelId: id, maxClaimableAmount },
      })
      pool.push({ maxClaimableAmount, signature })
    }
  }
  return pool
}

export async function run(log: Log) {
  const privateKey = toHex(randomBytes(32))
  const signer = privateKeyToAccount(privateKey).address
  const config = {
    payer: signer,
    payerAuthorizer: signer,
    receiver: '0x000000000000000000000000000000000000bEEF',
    receiverAuthorizer: '0x000000000000000000000000000000000000bEEF',
    token: '0x036CbD53842c5426634e7929541eC2318f3dCF7e',
    withdrawDelay: 3600,
    salt: toHex(randomBytes(32)),
  } as const
  const sep = domainSeparator({ chainId: CHAIN_ID, verifyingContract: ESCROW })
  const id = channelId(config, sep)

  const started = performance.now()
  const pool = await signPool(privateKey, id, POOL_SIZE, log)
  log(
    `signed ${pool.length} vouchers with distinct amounts in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  )
  const at = (i: number) => pool[i % pool.length] as SignedVoucher

  const loaded = loadBackend('auto')
  if (loaded.fallbackReason) log(`native backend unavailable: ${loaded.fallbackReason}`)

  const throughput = (backend: Secp256k1Backend, seconds: number) => {
    const verifier = createVoucherVerifier({ backend, domainSeparator: sep })
    return measureSync(seconds, (i) => {
      const v = at(i)
      return verifier.verifyVoucher({
        channelId: id,
        maxClaimableAmount: v.maxClaimableAmount,
        signature: v.signature,
        signer,
      })
    })
  }

  const native_per_s = loaded.backend.name === 'native' ? throughput(loaded.backend, SECONDS) : 0
  log(
    `native (libsecp256k1, cached key, digest hashed per call): ${native_per_s.toFixed(0)} vouchers/s`,
  )
  const js_fallback_per_s = throughput(jsBackend, SECONDS)
  log(`js fallback (@noble/secp256k1, cached key): ${js_fallback_per_s.toFixed(0)} vouchers/s`)
  const viem_recover_per_s = await measure(SECONDS, async (i) => {
    const v = at(i)
    const recovered = await recoverTypedDataAddress({
      domain,
      types,
      primaryType: 'Voucher',
      message: { channelId: id, maxClaimableAmount: v.maxClaimableAmount },
      signature: v.signature,
    })
    return recovered === signer
  })
  log(`viem recoverTypedDataAddress (reference): ${viem_recover_per_s.toFixed(0)} vouchers/s`)
  log(
    `ratios: native/viem ${(native_per_s / viem_recover_per_s).toFixed(1)}x (target >= 25x), ` +
      `js/viem ${(js_fallback_per_s / viem_recover_per_s).toFixed(2)}x, native/js ${(native_per_s / js_fallback_per_s).toFixed(1)}x`,
  )

  // Channel id hashing, which the protocol layer does per payload: informational.
  const ours = measureSync(1, () => channelId(config, sep) === id)
  const theirs = measureSync(
    1,
    () => hashTypedData({ domain, types, primaryType: 'ChannelConfig', message: config }) === id,
  )
  log(
    `channelId: ${ours.toFixed(0)}/s here, ${theirs.toFixed(0)}/s with viem hashTypedData (${(ours / theirs).toFixed(1)}x)`,
  )

  return {
    native_per_s: Math.round(native_per_s),
    js_fallback_per_s: Math.round(js_fallback_per_s),
    viem_recover_per_s: Math.round(viem_recover_per_s),
  }
}
