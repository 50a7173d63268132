/**
 * The HTTP load generator of the benchmarks, the same code for tollgate and for the stock x402
 * server. One payment channel per connection (a keep-alive HTTP/1.1 connection on a bare
 * socket), each channel's requests in order, all connections at once. Every request carries an
 * x402 `PAYMENT-SIGNATURE` built with tollgate's protocol codecs (`paymentPayload` +
 * `encodeHeader`) around a cumulative voucher: `accepted` is the server's own requirements, as
 * its 402 issued them, and the k-th request of a channel carries the ceiling `charged + k * price`.
 *
 * The generator runs in a child process of its own (forked with tsx), so that it does not share
 * an event loop with the server and its CPU time can be told apart. The child signs every
 * voucher (native libsecp256k1) and writes every request's bytes before the clock starts, sends
 * a warm-up, then measures: requests per second, per-request latency (from the write of the
 * request to the end of the response) and its own CPU share (process.cpuUsage over wall time).
 * Bounded both in count (requests per channel) and in time.
 */
import { randomBytes } from 'node:crypto'
import { createConnection, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { type Account, type Address, type Hex, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { BatchSettlement } from '../../src/chain/contracts.generated.js'
import { keySigner } from '../../src/client/keySigner.js'
import { signVoucher } from '../../src/client/signing.js'
import {
  type ChannelConfig,
  decodeSettleResponse,
  encodeHeader,
  type PaymentRequirements,
  paymentPayload,
} from '../../src/protocol/index.js'
import { bytesToHex, channelId, domainSeparator, escrowDomain } from '../../src/verify/index.js'
import type { EscrowHarness } from '../../test/helpers/escrow.js'
import { type GeneratorMessage, runGenerator, serveGenerator } from './generatorProcess.js'

/** A channel the generator pays on, opened beforehand; its session key signs the vouchers. */
export interface LoadChannel {
  config: ChannelConfig
  channelId: Hex
  /** Private key of `config.payerAuthorizer`. */
  sessionKey: Hex
  /** What the server has charged on it already: the first voucher is `charged + price`. */
  charged: bigint
}

export interface LoadSpec {
  /** The route, `http://127.0.0.1:<port>/<path>`. */
  url: string
  /** The requirements the vouchers pay, exactly as the server issued them in its 402. */
  accepted: PaymentRequirements
  /** Per-request price: the step between consecutive vouchers. */
  price: bigint
  /** The escrow's EIP-712 domain. */
  chainId: number
  escrow: Address
  /** One per connection. */
  channels: LoadChannel[]
  /** Requests per channel before the clock starts (JIT, sockets, first sight of the channel). */
  warmup: number
  /** At most this many measured requests per channel. */
  requests: number
  /** The measured phase stops sending after this long. */
  durationMs: number
  /** Total requests per second, spread evenly over the connections; unset: each connection sends as fast as it is answered. */
  rate?: number
  /**
   * The route ignores payments (a free route): sign a short sequence per channel and send it
   * round and round, instead of one fresh voucher per request.
   */
  reuse?: boolean
}

export interface LoadResult {
  /** Measured requests completed (any status). */
  requests: number
  /** Measured requests answered 200 (and, when paid, with a `PAYMENT-RESPONSE`). */
  ok: number
  errors: number
  /** The first unexpected answer: status and the start of its body. */
  firstError?: string
  /** Measured responses carrying a `PAYMENT-RESPONSE`. */
  receipts: number
  wallMs: number
  rps: number
  meanMs: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  /** The generator's CPU time over wall time in the measured phase (1 = one core busy). */
  generatorCpuShare: number
  /** This (the server's) process's CPU time over wall time in the measured phase. */
  serverCpuShare: number
  /** The server's CPU time per measured request, in microseconds. */
  serverCpuUsPerRequest: number
  /** Per channel: answers 200 in warm-up and measurement (what the server charged, when paid). */
  served: number[]
  /** Per channel: the last `PAYMENT-RESPONSE` received. */
  lastReceipts: (string | undefined)[]
  /** Vouchers signed and encoded before the clock started. */
  signed: number
  signMs: number
}

/** A free route is answered round a sequence this long per channel. */
const REUSED_SEQUENCE = 64

/** Child-side bound on one request, so that a stuck server cannot hang the benchmark. */
const REQUEST_TIMEOUT_MS = 30_000

const CHILD_FLAG = 'TOLLGATE_LOADGEN_CHILD'

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

/**
 * Runs one measurement in a forked generator process and returns its figures, with this
 * process's CPU share over the same phase (the server runs here).
 *
 * @example
 * const result = await runLoad({ url, accepted, price: 1000n, chainId, escrow, channels, warmup: 5, requests: 500, durationMs: 10_000 })
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const { result, serverCpuShare, serverCpuUs } = await runGenerator<LoadSpec, ChildResult>(
    import.meta.url,
    CHILD_FLAG,
    spec,
  )
  return {
    ...result,
    serverCpuShare,
    serverCpuUsPerRequest: result.requests > 0 ? serverCpuUs / result.requests : 0,
  }
}

/**
 * Opens `count` channels for the route whose requirements are `accepted`, each a payer of its
 * own: a fresh key is both the channel's `payer` and its `payerAuthorizer` (it signs the
 * vouchers). `funder`, who must have approved the escrow, deposits `deposit` on each by direct
 * deposit. The channel's receiver, receiver authorizer, token and withdraw delay are the
 * requirements'. The deposits are sent back to back (a local node mines each on arrival), then
 * their receipts are awaited together.
 */
export async function openChannels(
  harness: EscrowHarness,
  funder: Account,
  accepted: PaymentRequirements,
  count: number,
  deposit: bigint,
): Promise<LoadChannel[]> {
  const extra = accepted.extra as { receiverAuthorizer: string; withdrawDelay: number }
  const domain = domainSeparator({
    chainId: harness.chain.id,
    verifyingContract: harness.escrow,
  })
  const lower = (a: string) => a.toLowerCase() as Address
  const wallet = harness.wallet(funder)
  const channels: LoadChannel[] = []
  const hashes: Hex[] = []
  for (let i = 0; i < count; i++) {
    const sessionKey = bytesToHex(randomBytes(32))
    const payer = lower(privateKeyToAccount(sessionKey).address)
    const config: ChannelConfig = {
      payer,
      payerAuthorizer: payer,
      receiver: lower(accepted.payTo),
      receiverAuthorizer: lower(extra.receiverAuthorizer),
      token: lower(accepted.asset),
      withdrawDelay: Number(extra.withdrawDelay),
      salt: bytesToHex(randomBytes(32)),
    }
    hashes.push(
      await wallet.writeContract({
        address: harness.escrow,
        abi: BatchSettlement.abi,
        functionName: 'deposit',
        args: [config, deposit, zeroAddress, '0x'],
        chain: harness.chain,
        account: funder,
      }),
    )
    channels.push({ config, channelId: channelId(config, domain), sessionKey, charged: 0n })
  }
  const receipts = await Promise.all(
    hashes.map((hash) => harness.publicClient.waitForTransactionReceipt({ hash })),
  )
  const failed = receipts.filter((r) => r.status !== 'success').length
  if (failed > 0) throw new Error(`${failed} of ${count} deposits reverted`)
  return channels
}

/**
 * Checks a paid run against the server's own receipts: on every channel the last
 * `PAYMENT-RESPONSE` reports `chargedCumulativeAmount = charged + served * price`.
 *
 * @returns The channels whose receipts disagree (empty when all agree).
 */
export function receiptMismatches(spec: LoadSpec, result: LoadResult): string[] {
  const problems: string[] = []
  spec.channels.forEach((channel, i) => {
    const expected = channel.charged + BigInt(result.served[i] ?? 0) * spec.price
    const decoded = decodeSettleResponse(result.lastReceipts[i])
    const got = decoded.ok ? decoded.value.channelState?.chargedCumulativeAmount : undefined
    if (got !== expected)
      problems.push(`${channel.channelId}: receipt ${got}, expected ${expected}`)
  })
  return problems
}

/** The first entry of a route's 402, exactly as sent (the vouchers pay it verbatim). */
export async function requirementsOf(url: string): Promise<PaymentRequirements> {
  const response = await fetch(url)
  const header = response.headers.get('payment-required')
  if (response.status !== 402 || header === null) {
    throw new Error(`${url} answered ${response.status} without PAYMENT-REQUIRED`)
  }
  await response.arrayBuffer()
  const required = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as {
    accepts: PaymentRequirements[]
  }
  const [accepted] = required.accepts
  if (!accepted) throw new Error(`${url} offers no requirements`)
  return accepted
}

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

type ChildResult = Omit<LoadResult, 'serverCpuShare' | 'serverCpuUsPerRequest'>
type ChildMessage = GeneratorMessage<ChildResult>

/**
 * Every channel's requests, in order, as the bytes sent on the wire: the k-th carries a voucher
 * for the ceiling `charged + k * price`.
 */
async function signSequences(spec: LoadSpec, url: URL): Promise<Buffer[][]> {
  const separator = domainSeparator({ chainId: spec.chainId, verifyingContract: spec.escrow })
  const typedDomain = escrowDomain(spec.chainId, spec.escrow)
  const total = spec.warmup + spec.requests
  const length = spec.reuse ? Math.min(total, REUSED_SEQUENCE) : total
  const head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\npayment-signature: `
  const out: Buffer[][] = []
  for (const channel of spec.channels) {
    const signer = keySigner(channel.sessionKey)
    const requests: Buffer[] = []
    for (let k = 1; k <= length; k++) {
      const maxClaimableAmount = channel.charged + BigInt(k) * spec.price
      const signature = await signVoucher(
        signer,
        separator,
        typedDomain,
        channel.channelId,
        maxClaimableAmount,
      )
      const header = encodeHeader(
        paymentPayload({
          accepted: spec.accepted,
          payload: {
            type: 'voucher',
            channelConfig: channel.config,
            voucher: { channelId: channel.channelId, maxClaimableAmount, signature },
          },
        }),
      )
      requests.push(Buffer.from(`${head}${header}\r\n\r\n`, 'latin1'))
    }
    out.push(requests)
  }
  return out
}

interface Answer {
  status: number
  receipt: string | undefined
  body?: string
}

const HEAD_END = Buffer.from('\r\n\r\n')
const CRLF = Buffer.from('\r\n')

/**
 * One keep-alive HTTP/1.1 connection on a bare socket, one request at a time: it writes the
 * request's prebuilt bytes and reads just enough of the answer (status, `PAYMENT-RESPONSE`, a
 * `content-length` or chunked body), so that the generator spends little CPU per request.
 */
class Connection {
  private readonly socket: Socket
  private buffered: Buffer = Buffer.alloc(0)
  private waiting:
    | { resolve: (answer: Answer) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
    | undefined
  private failure: Error | undefined

  constructor(url: URL) {
    this.socket = createConnection({ host: url.hostname, port: Number(url.port) })
    this.socket.setNoDelay(true)
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
      this.parse()
    })
    const fail = (err: Error) => {
      this.failure ??= err
      const waiting = this.waiting
      this.waiting = undefined
      if (waiting) {
        clearTimeout(waiting.timer)
        waiting.reject(err)
      }
    }
    this.socket.on('error', fail)
    this.socket.on('close', () => fail(new Error('connection closed by the server')))
  }

  send(request: Buffer): Promise<Answer> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(
        () => this.socket.destroy(new Error('request timed out')),
        REQUEST_TIMEOUT_MS,
      )
      this.waiting = { resolve, reject, timer }
      this.socket.write(request)
    })
  }

  close(): void {
    this.socket.destroy()
  }

  /** Completes the waiting request once its whole answer is buffered. */
  private parse(): void {
    const end = this.buffered.indexOf(HEAD_END)
    if (end < 0) return
    const head = this.buffered.toString('latin1', 0, end)
    const status = Number(head.slice(9, 12))
    let length = -1
    let chunked = false
    let receipt: string | undefined
    for (const line of head.split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon < 0) continue
      const name = line.slice(0, colon).toLowerCase()
      if (name === 'content-length') length = Number(line.slice(colon + 1))
      else if (name === 'payment-response') receipt = line.slice(colon + 1).trim()
      else if (name === 'transfer-encoding') chunked = line.toLowerCase().includes('chunked')
    }
    const bodyStart = end + HEAD_END.length
    let body: Buffer
    let consumed: number
    if (chunked) {
      const parts: Buffer[] = []
      let at = bodyStart
      for (;;) {
        const lineEnd = this.buffered.indexOf(CRLF, at)
        if (lineEnd < 0) return
        const size = Number.parseInt(this.buffered.toString('latin1', at, lineEnd), 16)
        const dataEnd = lineEnd + CRLF.length + size
        if (this.buffered.length < dataEnd + CRLF.length) return
        if (size === 0) {
          consumed = dataEnd + CRLF.length
          break
        }
        parts.push(this.buffered.subarray(lineEnd + CRLF.length, dataEnd))
        at = dataEnd + CRLF.length
      }
      body = Buffer.concat(parts)
    } else {
      const size = Math.max(length, 0)
      if (this.buffered.length < bodyStart + size) return
      body = this.buffered.subarray(bodyStart, bodyStart + size)
      consumed = bodyStart + size
    }
    this.buffered = this.buffered.subarray(consumed)
    const waiting = this.waiting
    this.waiting = undefined
    if (!waiting) return
    clearTimeout(waiting.timer)
    waiting.resolve(
      status === 200
        ? { status, receipt }
        : { status, receipt, body: body.toString('utf8', 0, 400) },
    )
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function measure(spec: LoadSpec, send: (m: ChildMessage) => void): Promise<ChildResult> {
  const paid = !spec.reuse
  const url = new URL(spec.url)
  const signStart = performance.now()
  const sequences = await signSequences(spec, url)
  const signMs = performance.now() - signStart
  const conns = spec.channels.map(() => new Connection(url))
  const served = spec.channels.map(() => 0)
  const lastReceipts: (string | undefined)[] = spec.channels.map(() => undefined)
  const broken = spec.channels.map(() => false)
  let firstError: string | undefined
  let errors = 0
  let receipts = 0
  let ok = 0
  let count = 0
  const capacity = spec.channels.length * spec.requests
  const latencies = new Float64Array(Math.min(capacity, 5_000_000))

  /** Sends the channel's i-th request; true when it was answered as expected. */
  const call = async (c: number, i: number, measured: boolean): Promise<boolean> => {
    const sequence = sequences[c] as Buffer[]
    const request = sequence[i % sequence.length] as Buffer
    const sent = performance.now()
    let answer: Answer
    try {
      answer = await (conns[c] as Connection).send(request)
    } catch (err) {
      answer = { status: 0, receipt: undefined, body: String(err) }
    }
    const good = answer.status === 200 && (!paid || answer.receipt !== undefined)
    if (good) {
      served[c] = (served[c] ?? 0) + 1
      if (answer.receipt !== undefined) lastReceipts[c] = answer.receipt
    } else {
      firstError ??= `HTTP ${answer.status}${paid && answer.status === 200 ? ' without PAYMENT-RESPONSE' : ''}: ${answer.body ?? ''}`
    }
    if (measured) {
      if (count < latencies.length) latencies[count] = performance.now() - sent
      count += 1
      if (good) ok += 1
      else errors += 1
      if (answer.receipt !== undefined) receipts += 1
    }
    return good
  }

  // Warm-up, off the clock. A paid channel whose request failed is out of step with the server
  // (the next voucher would not match what it charged): it sends nothing more.
  await Promise.all(
    spec.channels.map(async (_channel, c) => {
      for (let i = 0; i < spec.warmup && !broken[c]; i++) {
        if (!(await call(c, i, false)) && paid) broken[c] = true
      }
    }),
  )

  send({ kind: 'started' })
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const deadline = start + spec.durationMs
  const interval = spec.rate ? (spec.channels.length * 1000) / spec.rate : 0
  await Promise.all(
    spec.channels.map(async (_channel, c) => {
      for (let k = 0; k < spec.requests && !broken[c]; k++) {
        if (spec.rate) {
          const due = start + (c * interval) / spec.channels.length + k * interval
          if (due >= deadline) break
          const wait = due - performance.now()
          if (wait > 1) await sleep(wait)
        } else if (performance.now() >= deadline) {
          break
        }
        if (!(await call(c, spec.warmup + k, true)) && paid) broken[c] = true
      }
    }),
  )
  const wallMs = performance.now() - start
  const used = process.cpuUsage(cpu0)
  send({ kind: 'stopped' })
  for (const conn of conns) conn.close()

  const measured = latencies.subarray(0, Math.min(count, latencies.length)).sort()
  const at = (q: number) => measured[Math.floor(q * (measured.length - 1))] ?? 0
  let sum = 0
  for (const v of measured) sum += v
  return {
    requests: count,
    ok,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    receipts,
    wallMs,
    rps: (count * 1000) / wallMs,
    meanMs: measured.length > 0 ? sum / measured.length : 0,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: measured.length > 0 ? (measured[measured.length - 1] ?? 0) : 0,
    generatorCpuShare: (used.user + used.system) / 1000 / wallMs,
    served,
    lastReceipts,
    signed: sequences.reduce((n, s) => n + s.length, 0),
    signMs,
  }
}

serveGenerator(CHILD_FLAG, measure)
