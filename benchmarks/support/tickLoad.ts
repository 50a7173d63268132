/**
 * Tick throughput for `npm run bench -- http` (src/transports/http/PROTOCOL.md): a Fastify app
 * with the tollgate plugin serving a tick route (`config.ticks`) and its free twin (the same
 * handler, no price), on the payee of the HTTP benchmark. A load generator in a child process
 * drives both with the same bytes: on every connection's channel, windows of `TICK_WINDOW` calls,
 * each an opening request (a voucher for the window and a signed chain commitment) then one
 * `TOLLGATE-TICK` request per call, all signed and hashed before the clock starts. The free twin
 * ignores the headers. The two routes alternate over a few rounds; the best round of each counts.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import type { Account, Address, Hex } from 'viem'
import { keySigner } from '../../src/client/keySigner.js'
import { signVoucher } from '../../src/client/signing.js'
import type { Payee } from '../../src/payee/index.js'
import { encodeHeader, type PaymentRequirements, paymentPayload } from '../../src/protocol/index.js'
import {
  encodeTickHeader,
  encodeTickWindowHeader,
  tickCommitmentDigest,
  tickDomainSeparator,
  tickLink,
} from '../../src/protocol/tickWire.js'
import { type TollgateOptions, tollgate } from '../../src/transports/http/index.js'
import { bytesToHex, domainSeparator, escrowDomain } from '../../src/verify/index.js'
import type { EscrowHarness } from '../../test/helpers/escrow.js'
import { HANDLER_BODY } from '../../test/helpers/stockServer.js'
import type { Log } from '../run.js'
import { startCpuProfile, topSelfTime } from './cpuProfile.js'
import { type GeneratorMessage, runGenerator, serveGenerator } from './generatorProcess.js'
import { type LoadChannel, openChannels, requirementsOf } from './loadgen.js'

/** Calls per window on the tick route. */
export const TICK_WINDOW = 100
const CONNECTIONS = 32
const ROUNDS = 3
/** Calls per connection before each clock starts: one whole window. */
const WARMUP = TICK_WINDOW
/** Measured calls per connection at most, per phase. */
const REQUESTS = 3000
const PHASE_MS = 4_000
const REQUEST_TIMEOUT_MS = 30_000
const CHILD_FLAG = 'TOLLGATE_TICKLOAD_CHILD'

/** What the HTTP benchmark hands over: its plugin options (rate limits, metrics) and chain. */
export interface TickBenchParameters {
  readonly log: Log
  readonly plugin: TollgateOptions
  readonly harness: EscrowHarness
  readonly funder: Account
  readonly price: bigint
  /** Where one more paid phase, after the rounds and not counted, writes its CPU profile; unset: none. */
  readonly profile?: string
}

/** The figures added to the HTTP benchmark's JSON line. */
export interface TickFigures {
  tick_rps: number
  tick_unpaid_rps: number
  tick_vs_unpaid: number
  tick_window: number
  tick_server_cpu_us_per_request: number
}

interface TickSpec {
  url: string
  accepted: PaymentRequirements
  price: string
  chainId: number
  escrow: Address
  channels: { config: LoadChannel['config']; channelId: Hex; sessionKey: Hex; charged: string }[]
  warmup: number
  requests: number
  durationMs: number
  /** The route ignores the headers: nothing is charged. */
  free: boolean
}

interface TickResult {
  requests: number
  ok: number
  errors: number
  firstError?: string
  wallMs: number
  rps: number
  /** Per channel: calls answered 200 with a receipt (paid) or 200 (free), warm-up included. */
  served: number[]
}

/**
 * Measures paid tick calls against the free twin; checks after every paid phase that each
 * channel's charged total is exactly its calls times the price.
 */
export async function measureTicks(parameters: TickBenchParameters): Promise<TickFigures> {
  const { log, plugin, harness, funder, price } = parameters
  const app = Fastify()
  try {
    await app.register(tollgate, plugin)
    app.get('/tick', { config: { price, ticks: TICK_WINDOW } }, async () => HANDLER_BODY)
    app.get('/tick-free', async () => HANDLER_BODY)
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    const accepted = await requirementsOf(`${base}/tick`)
    const paidPhases = ROUNDS + (parameters.profile ? 1 : 0)
    const deposit = price * BigInt((WARMUP + REQUESTS) * paidPhases + TICK_WINDOW)
    await harness.approve(funder, deposit * BigInt(CONNECTIONS))
    const channels = await openChannels(harness, funder, accepted, CONNECTIONS, deposit)
    const payee = plugin.payee as Payee
    const specOf = (free: boolean): TickSpec => ({
      url: `${base}${free ? '/tick-free' : '/tick'}`,
      accepted,
      price: price.toString(),
      chainId: harness.chain.id,
      escrow: harness.escrow,
      channels: channels.map((c) => ({ ...c, charged: c.charged.toString() })),
      warmup: WARMUP,
      requests: REQUESTS,
      durationMs: PHASE_MS,
      free,
    })
    let best = { free: 0, paid: 0, cpu: 0 }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const free of [true, false]) {
        globalThis.gc?.()
        const spec = specOf(free)
        const { result, serverCpuUs } = await runGenerator<TickSpec, TickResult>(
          import.meta.url,
          CHILD_FLAG,
          spec,
        )
        const name = `tollgate ${free ? 'tick route free twin' : 'paid ticks'}, round ${round}`
        const cpu = result.requests > 0 ? serverCpuUs / result.requests : 0
        log(
          `${name}: ${Math.round(result.rps)} req/s (${result.requests} in ${(result.wallMs / 1000).toFixed(1)} s), server CPU ${Math.round(cpu)} µs/req`,
        )
        if (result.errors > 0 || result.ok === 0) {
          throw new Error(`${name}: ${result.errors} errors; first: ${result.firstError}`)
        }
        if (free) {
          best = { ...best, free: Math.max(best.free, result.rps) }
          continue
        }
        channels.forEach((channel, i) => {
          channel.charged += BigInt(result.served[i] ?? 0) * price
          const charged = payee.ledger.get(channel.channelId)?.chargedCumulativeAmount
          if (charged !== channel.charged) {
            throw new Error(
              `${name}: channel ${channel.channelId} charged ${charged}, served ${channel.charged}`,
            )
          }
        })
        if (result.rps > best.paid) best = { ...best, paid: result.rps, cpu }
      }
    }
    if (parameters.profile) {
      const stop = await startCpuProfile()
      const { result } = await runGenerator<TickSpec, TickResult>(
        import.meta.url,
        CHILD_FLAG,
        specOf(false),
      )
      const profile = await stop()
      writeFileSync(`${parameters.profile}.cpuprofile`, JSON.stringify(profile))
      writeFileSync(`${parameters.profile}.txt`, `${topSelfTime(profile)}\n`)
      log(`paid ticks, profiled: ${Math.round(result.rps)} req/s; top: ${parameters.profile}.txt`)
    }
    return {
      tick_rps: Math.round(best.paid),
      tick_unpaid_rps: Math.round(best.free),
      tick_vs_unpaid: Math.round((best.paid / best.free) * 1000) / 1000,
      tick_window: TICK_WINDOW,
      tick_server_cpu_us_per_request: Math.round(best.cpu),
    }
  } finally {
    await app.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

/**
 * Every channel's calls as the bytes sent: window w opens with a voucher for
 * `charged + (w + 1) * TICK_WINDOW * price` and the commitment to a fresh chain, then presents its
 * preimages w_1 … w_(TICK_WINDOW-1) in order.
 */
async function sequences(spec: TickSpec, url: URL): Promise<Buffer[][]> {
  const separator = domainSeparator({ chainId: spec.chainId, verifyingContract: spec.escrow })
  const typed = escrowDomain(spec.chainId, spec.escrow)
  const tickSeparator = tickDomainSeparator(spec.chainId, spec.escrow)
  const price = BigInt(spec.price)
  const total = spec.warmup + spec.requests
  const head = `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n`
  const out: Buffer[][] = []
  for (const channel of spec.channels) {
    const signer = keySigner(channel.sessionKey)
    const requests: Buffer[] = []
    for (let w = 0; w * TICK_WINDOW < total; w++) {
      const chain = new Array<Uint8Array>(TICK_WINDOW)
      chain[TICK_WINDOW - 1] = new Uint8Array(randomBytes(32))
      for (let i = TICK_WINDOW - 1; i > 0; i--) chain[i - 1] = tickLink(chain[i] as Uint8Array)
      const maxClaimableAmount = BigInt(channel.charged) + BigInt((w + 1) * TICK_WINDOW) * price
      const voucher = await signVoucher(
        signer,
        separator,
        typed,
        channel.channelId,
        maxClaimableAmount,
      )
      const root = bytesToHex(chain[0] as Uint8Array)
      const digest = tickCommitmentDigest(tickSeparator, {
        channelId: channel.channelId,
        maxClaimableAmount,
        price,
        ticks: TICK_WINDOW,
        root,
      })
      if (!digest || !signer.sign) throw new Error('cannot sign the commitment')
      const commitment = await signer.sign({ hash: bytesToHex(digest) })
      const payment = encodeHeader(
        paymentPayload({
          accepted: spec.accepted,
          payload: {
            type: 'voucher',
            channelConfig: channel.config,
            voucher: { channelId: channel.channelId, maxClaimableAmount, signature: voucher },
          },
        }),
      )
      const window = encodeTickWindowHeader({ ticks: TICK_WINDOW, root, signature: commitment })
      requests.push(
        Buffer.from(
          `${head}payment-signature: ${payment}\r\ntollgate-tick-window: ${window}\r\n\r\n`,
          'latin1',
        ),
      )
      for (let i = 1; i < TICK_WINDOW && requests.length < total; i++) {
        const tick = encodeTickHeader(channel.channelId, i, chain[i] as Uint8Array)
        requests.push(Buffer.from(`${head}tollgate-tick: ${tick}\r\n\r\n`, 'latin1'))
      }
    }
    out.push(requests.slice(0, total))
  }
  return out
}

interface Answer {
  status: number
  receipt: boolean
  body?: string
}

const HEAD_END = Buffer.from('\r\n\r\n')

/** One keep-alive connection, one request at a time; answers with a `content-length` body. */
class Connection {
  private readonly socket: Socket
  private buffered: Buffer = Buffer.alloc(0)
  private waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined

  constructor(url: URL) {
    this.socket = createConnection({ host: url.hostname, port: Number(url.port) })
    this.socket.setNoDelay(true)
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
      this.parse()
    })
    const fail = (err: Error) => {
      const waiting = this.waiting
      this.waiting = undefined
      waiting?.reject(err)
    }
    this.socket.on('error', fail)
    this.socket.on('close', () => fail(new Error('connection closed by the server')))
  }

  send(request: Buffer): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(
        () => this.socket.destroy(new Error('request timed out')),
        REQUEST_TIMEOUT_MS,
      )
      this.waiting = {
        resolve: (a) => {
          clearTimeout(timer)
          resolve(a)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.socket.write(request)
    })
  }

  close(): void {
    this.socket.destroy()
  }

  private parse(): void {
    const end = this.buffered.indexOf(HEAD_END)
    if (end < 0) return
    const head = this.buffered.toString('latin1', 0, end).toLowerCase()
    const at = head.indexOf('\r\ncontent-length:')
    const length =
      at < 0 ? 0 : Number.parseInt(head.slice(at + 17, head.indexOf('\r\n', at + 2)), 10)
    const bodyStart = end + HEAD_END.length
    if (this.buffered.length < bodyStart + length) return
    const status = Number(head.slice(9, 12))
    const body = this.buffered.toString('utf8', bodyStart, bodyStart + Math.min(length, 400))
    this.buffered = this.buffered.subarray(bodyStart + length)
    const waiting = this.waiting
    this.waiting = undefined
    waiting?.resolve({
      status,
      receipt:
        head.includes('\r\ntollgate-tick-receipt:') || head.includes('\r\npayment-response:'),
      body,
    })
  }
}

async function measure(
  spec: TickSpec,
  send: (message: GeneratorMessage<TickResult>) => void,
): Promise<TickResult> {
  const url = new URL(spec.url)
  const calls = await sequences(spec, url)
  const conns = spec.channels.map(() => new Connection(url))
  const served = spec.channels.map(() => 0)
  const broken = spec.channels.map(() => false)
  let firstError: string | undefined
  let ok = 0
  let errors = 0
  let count = 0
  const call = async (c: number, i: number, measured: boolean): Promise<boolean> => {
    let answer: Answer
    try {
      answer = await (conns[c] as Connection).send((calls[c] as Buffer[])[i] as Buffer)
    } catch (err) {
      answer = { status: 0, receipt: false, body: String(err) }
    }
    const good = answer.status === 200 && (spec.free || answer.receipt)
    if (good) served[c] = (served[c] ?? 0) + 1
    else firstError ??= `HTTP ${answer.status}: ${answer.body ?? ''}`
    if (measured) {
      count += 1
      if (good) ok += 1
      else errors += 1
    }
    return good
  }
  await Promise.all(
    spec.channels.map(async (_c, c) => {
      for (let i = 0; i < spec.warmup && !broken[c]; i++) {
        if (!(await call(c, i, false))) broken[c] = true
      }
    }),
  )
  send({ kind: 'started' })
  const start = performance.now()
  const deadline = start + spec.durationMs
  await Promise.all(
    spec.channels.map(async (_c, c) => {
      for (let k = 0; k < spec.requests && !broken[c] && performance.now() < deadline; k++) {
        if (!(await call(c, spec.warmup + k, true))) broken[c] = true
      }
    }),
  )
  const wallMs = performance.now() - start
  send({ kind: 'stopped' })
  for (const conn of conns) conn.close()
  return {
    requests: count,
    ok,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    wallMs,
    rps: (count * 1000) / wallMs,
    served,
  }
}

serveGenerator(CHILD_FLAG, measure)
