/**
 * The payee's hot path per voucher, on one process: decode the PAYMENT-SIGNATURE header, match
 * the requirements, verify the signature, run the ledger, store the voucher durably (LevelDB,
 * group commit) and commit the charge. Measured side by side in one run with the same path on
 * an in-memory store and with signature verification alone. Then memory per open channel and
 * reload time with 100 000 channels.
 *
 * `TOLLGATE_BENCH_PROFILE=<path>` adds one more pass of the LevelDB durable path (not counted)
 * under the V8 CPU profiler: it writes `<path>.cpuprofile` and the top 25 functions by self time
 * to `<path>.txt`.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { keccak_256 } from '@noble/hashes/sha3.js'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import type { ChannelRecord } from '../src/ledger/index.js'
import { openPayee } from '../src/payee/index.js'
import {
  buildRequirements,
  CANONICAL_ADDRESSES,
  decodePaymentHeader,
  encodeHeader,
  paymentPayload,
  requirementsEqual,
} from '../src/protocol/index.js'
import type { ChannelConfig } from '../src/protocol/types.js'
import { type ChannelStore, LevelStore, MemoryStore } from '../src/store/index.js'
import {
  bytesToHex,
  channelId,
  createVoucherVerifier,
  domainSeparator,
  KECCAK,
  loadBackend,
  voucherDigest,
} from '../src/verify/index.js'
import type { Log } from './run.js'
import { startCpuProfile, topSelfTime } from './support/cpuProfile.js'

const require = createRequire(import.meta.url)
const native = require('secp256k1') as {
  ecdsaSign(msg32: Uint8Array, key: Uint8Array): { signature: Uint8Array; recid: number }
}

const CHAIN_ID = 31337
const PRICE = 1000n
/** The route's rule, built once as the HTTP plugin builds it once per route. */
const RULE = { kind: 'exact', price: PRICE } as const
const CHANNELS = 1000
const VOUCHERS_PER_CHANNEL = 20
const RELOAD_CHANNELS = 100_000
const PROFILE = process.env.TOLLGATE_BENCH_PROFILE
const IDENTITY = {
  receiver: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  receiverAuthorizer: '0x15d34aaf54267db7d7c367839aaf71a00a2c6a65',
  token: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  withdrawDelay: 3600,
} as const satisfies Record<string, Address | number>
const DOMAIN = domainSeparator({ chainId: CHAIN_ID, verifyingContract: CANONICAL_ADDRESSES.escrow })
const REQUIREMENTS = buildRequirements({
  network: `eip155:${CHAIN_ID}`,
  amount: PRICE,
  asset: IDENTITY.token,
  payTo: IDENTITY.receiver,
  maxTimeoutSeconds: 60,
  receiverAuthorizer: IDENTITY.receiverAuthorizer,
  withdrawDelay: IDENTITY.withdrawDelay,
  name: 'USDC',
  version: '2',
})

interface Channel {
  config: ChannelConfig
  id: Hex
  signer: Address
  headers: string[]
}

const hex = (bytes: Uint8Array): Hex => bytesToHex(bytes)

/** Channels, each with its own session key, and their sequences of signed vouchers as headers. */
function prepareChannels(): Channel[] {
  const out: Channel[] = []
  for (let c = 0; c < CHANNELS; c++) {
    const key = randomBytes(32)
    const signer = privateKeyToAccount(hex(key)).address.toLowerCase() as Address
    const config: ChannelConfig = {
      payer: hex(randomBytes(20)),
      payerAuthorizer: signer,
      ...IDENTITY,
      salt: hex(randomBytes(32)),
    }
    const id = channelId(config, DOMAIN)
    const headers: string[] = []
    for (let k = 1; k <= VOUCHERS_PER_CHANNEL; k++) {
      const max = PRICE * BigInt(k)
      const { signature, recid } = native.ecdsaSign(voucherDigest(DOMAIN, id, max), key)
      const sig = `${hex(signature)}${(27 + recid).toString(16)}` as Hex
      headers.push(
        encodeHeader(
          paymentPayload({
            accepted: REQUIREMENTS,
            payload: {
              type: 'voucher',
              channelConfig: config,
              voucher: { channelId: id, maxClaimableAmount: max, signature: sig },
            },
          }),
        ),
      )
    }
    out.push({ config, id, signer, headers })
  }
  return out
}

/** Runs every channel's vouchers in order, all channels at once; returns vouchers per second. */
async function fullPath(
  channels: Channel[],
  store: ChannelStore,
): Promise<{ perSecond: number; cpuPerVoucherUs: number }> {
  const payee = await openPayee({
    chainId: CHAIN_ID,
    escrow: CANONICAL_ADDRESSES.escrow,
    identity: IDENTITY,
    store,
    readChannel: async () => ({
      balance: 10n ** 12n,
      totalClaimed: 0n,
      withdrawRequestedAt: 0,
      refundNonce: 0n,
    }),
  })
  const cpu = process.cpuUsage()
  const started = performance.now()
  await Promise.all(
    channels.map(async (channel) => {
      for (const header of channel.headers) {
        const decoded = decodePaymentHeader(header)
        if (!decoded.ok) throw new Error(decoded.message)
        if (!requirementsEqual(decoded.value.accepted, REQUIREMENTS))
          throw new Error('requirements differ')
        const payload = decoded.value.payload
        if (payload.type !== 'voucher') throw new Error('not a voucher')
        const decision = await payee.decide(payload, RULE)
        if (!decision.ok) throw new Error(`${decision.code}: ${decision.message}`)
        payee.commit(decision.hold, PRICE)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  await payee.close()
  const total = channels.length * VOUCHERS_PER_CHANNEL
  return {
    perSecond: Math.round(total / seconds),
    cpuPerVoucherUs: Math.round((used.user + used.system) / total),
  }
}

/** Signature checks alone (digest + verify against the cached key), for scale. */
function verifyOnly(channels: Channel[]): number {
  const { backend } = loadBackend('native')
  const verifier = createVoucherVerifier({ backend, domainSeparator: DOMAIN })
  const vouchers = channels.flatMap((channel) =>
    channel.headers.map((header) => {
      const decoded = decodePaymentHeader(header)
      if (!decoded.ok || decoded.value.payload.type !== 'voucher') throw new Error('bad fixture')
      return { ...decoded.value.payload.voucher, signer: channel.signer }
    }),
  )
  const started = performance.now()
  for (const voucher of vouchers)
    if (!verifier.verifyVoucher(voucher)) throw new Error('invalid voucher')
  return Math.round(vouchers.length / ((performance.now() - started) / 1000))
}

const KECCAK_ROUNDS = 3
const KECCAK_VOUCHERS = 50_000

/**
 * µs per voucher of its two keccak-256 (the 96-byte struct hash, the 66-byte digest) with the
 * keccak in use and with @noble/hashes, alternating, the best of {@link KECCAK_ROUNDS} rounds each.
 */
function keccakMicro(): { inUse: number; noble: number } {
  const struct = Uint8Array.from({ length: 96 }, (_, i) => i * 7)
  const digest = Uint8Array.from({ length: 66 }, (_, i) => i * 3)
  const time = (hash: (input: Uint8Array) => Uint8Array): number => {
    let sink = 0
    const started = performance.now()
    for (let i = 0; i < KECCAK_VOUCHERS; i++) {
      sink ^= hash(struct)[0] ?? 0
      sink ^= hash(digest)[0] ?? 0
    }
    const us = ((performance.now() - started) * 1000) / KECCAK_VOUCHERS
    if (sink > 255) throw new Error('unreachable')
    return us
  }
  let inUse = Number.POSITIVE_INFINITY
  let noble = Number.POSITIVE_INFINITY
  for (let round = 0; round < KECCAK_ROUNDS; round++) {
    inUse = Math.min(inUse, time(KECCAK.hash))
    noble = Math.min(noble, time(keccak_256))
  }
  return { inUse, noble }
}

function syntheticRecord(): ChannelRecord {
  const config: ChannelConfig = {
    payer: hex(randomBytes(20)),
    payerAuthorizer: hex(randomBytes(20)),
    ...IDENTITY,
    salt: hex(randomBytes(32)),
  }
  return {
    channelId: hex(randomBytes(32)),
    config,
    chargedCumulativeAmount: 123_000n,
    signedMaxClaimable: 124_000n,
    inFlightCumulativeAmount: 123_000n,
    signature: hex(randomBytes(65)),
    balance: 10_000_000n,
    totalClaimed: 100_000n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
    syncedAt: Date.now(),
  }
}

function collect(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with node --expose-gc (npm run bench does)')
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

export async function run(log: Log) {
  const keccak = keccakMicro()
  log(
    `keccak-256, two per voucher: ${keccak.inUse.toFixed(2)} µs (${KECCAK.name}${KECCAK.fallbackReason ? `: ${KECCAK.fallbackReason}` : ''}), @noble/hashes ${keccak.noble.toFixed(2)} µs`,
  )
  log(`signing ${CHANNELS * VOUCHERS_PER_CHANNEL} vouchers on ${CHANNELS} channels`)
  const channels = prepareChannels()
  const verifyPerSecond = verifyOnly(channels)
  log(`signature verification alone: ${verifyPerSecond}/s`)
  const memory = await fullPath(channels, await MemoryStore.open())
  log(
    `full path, memory store: ${memory.perSecond}/s (${memory.cpuPerVoucherUs} µs CPU per voucher)`,
  )
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'))
  try {
    const durable = await fullPath(channels, await LevelStore.open(join(dir, 'hot')))
    log(
      `full path, LevelDB durable: ${durable.perSecond}/s (${durable.cpuPerVoucherUs} µs CPU per voucher)`,
    )
    if (PROFILE) {
      const stop = await startCpuProfile()
      await fullPath(channels, await LevelStore.open(join(dir, 'profiled')))
      const profile = await stop()
      writeFileSync(`${PROFILE}.cpuprofile`, JSON.stringify(profile))
      writeFileSync(`${PROFILE}.txt`, `${topSelfTime(profile, 25)}\n`)
      log(`profile: ${PROFILE}.cpuprofile, top: ${PROFILE}.txt`)
    }

    log(`writing ${RELOAD_CHANNELS} channels to LevelDB`)
    const reloadDir = join(dir, 'reload')
    const writer = await LevelStore.open(reloadDir)
    await Promise.all(Array.from({ length: RELOAD_CHANNELS }, () => writer.put(syntheticRecord())))
    await writer.close()

    const before = collect()
    const started = performance.now()
    const payee = await openPayee({
      chainId: CHAIN_ID,
      escrow: CANONICAL_ADDRESSES.escrow,
      identity: IDENTITY,
      store: await LevelStore.open(reloadDir),
      readChannel: async () => {
        throw new Error('no chain in this benchmark')
      },
    })
    const reloadMs = Math.round(performance.now() - started)
    const bytesPerChannel = Math.round((collect() - before) / payee.ledger.size)
    log(
      `reload of ${payee.ledger.size} channels: ${reloadMs} ms; ${bytesPerChannel} bytes of heap per channel`,
    )
    await payee.close()

    const lines = [
      '| figure | tollgate | reference (same run) | ratio |',
      '|---|---:|---:|---:|',
      `| vouchers/s, decode+verify+ledger+LevelDB durable | ${durable.perSecond} | ${verifyPerSecond} (verification alone) | ${(durable.perSecond / verifyPerSecond).toFixed(2)} |`,
      `| vouchers/s, same path, memory store | ${memory.perSecond} | ${verifyPerSecond} | ${(memory.perSecond / verifyPerSecond).toFixed(2)} |`,
      `| keccak-256 µs per voucher (2 hashes), ${KECCAK.name} | ${keccak.inUse.toFixed(2)} | ${keccak.noble.toFixed(2)} (@noble/hashes) | ${(keccak.inUse / keccak.noble).toFixed(2)} |`,
      `| heap bytes per open channel | ${bytesPerChannel} | 1024 (target) | ${(bytesPerChannel / 1024).toFixed(2)} |`,
      `| reload of 100 000 channels, ms | ${reloadMs} | 2000 (target) | ${(reloadMs / 2000).toFixed(2)} |`,
    ]
    for (const line of lines) log(line)
    return {
      vouchers_per_s: durable.perSecond,
      bytes_per_channel: bytesPerChannel,
      reload_100k_ms: reloadMs,
      memory_store_vouchers_per_s: memory.perSecond,
      verify_only_per_s: verifyPerSecond,
      cpu_us_per_voucher: durable.cpuPerVoucherUs,
      keccak: KECCAK.name,
      keccak_us_per_voucher: Number(keccak.inUse.toFixed(2)),
      keccak_noble_us_per_voucher: Number(keccak.noble.toFixed(2)),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
