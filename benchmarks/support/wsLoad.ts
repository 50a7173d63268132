import { performance } from 'node:perf_hooks'
import type { Address } from 'viem'
import WebSocket from 'ws'
import { keySigner } from '../../src/client/keySigner.js'
import { signVoucher } from '../../src/client/signing.js'
import { type PaymentRequirements, paymentPayload } from '../../src/protocol/index.js'
import { domainSeparator, escrowDomain } from '../../src/verify/index.js'
import { type GeneratorMessage, runGenerator, serveGenerator } from './generatorProcess.js'
import type { LoadChannel } from './loadgen.js'

export interface WsLoadSpec {
  /** The feed, `ws://127.0.0.1:<port>/<path>`. */
  url: string
  /** Pay vouchers (a tollgate feed) or only subscribe (an unbilled feed). */
  billed: boolean
  /** One per connection. */
  channels: LoadChannel[]
  /** Price of one message: billed vouchers step by `price × window`. */
  price: bigint
  /** Messages one voucher pays for. */
  window: number
  /** The escrow's EIP-712 domain. */
  chainId: number
  escrow: Address
  /** Messages each connection receives before the clock starts. */
  warmup: number
  /** The measured phase stops once the connections received this many messages each on average. */
  messages: number
  /** The measured phase stops after this long. */
  durationMs: number
}

export interface WsLoadResult {
  /** `data` frames received in the measured phase, all connections together. */
  messages: number
  wallMs: number
  msgsPerS: number
  /** The generator's CPU time over wall time in the measured phase (1 = one core busy). */
  generatorCpuShare: number
  /** This (the server's) process's CPU time over wall time in the measured phase. */
  serverCpuShare: number
  /** The server's CPU time per measured message, in microseconds. */
  serverCpuUsPerMessage: number
  /** Per connection: every `data` frame received, warm-up and measurement. */
  received: number[]
  /** Per connection (billed): `chargedCumulativeAmount` of the final receipt. */
  finalCharged: (string | undefined)[]
  /** `pay` frames sent, all connections together. */
  vouchers: number
  /** `paused` frames received for credit, all connections together. */
  creditPauses: number
  /** `paused` frames received for backpressure, all connections together. */
  backpressurePauses: number
  /** Error codes received, if any. */
  errors: string[]
  /** Vouchers signed and serialized before the clock started. */
  signed: number
  signMs: number
}

/** Child-side bound on the phases outside the measured one (connect, pay, warm-up, end). */
const STEP_TIMEOUT_MS = 30_000

const CHILD_FLAG = 'TOLLGATE_WSLOAD_CHILD'

// ---------------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------------

/**
 * Runs one measurement in a forked generator process and returns its figures, with this
 * process's CPU share over the same phase (the server runs here).
 *
 * @example
 * const result = await runWsLoad({ url, billed: true, channels, price: 10n, window: 1000, chainId, escrow, warmup: 2000, messages: 200_000, durationMs: 3000 })
 */
export async function runWsLoad(
  spec: WsLoadSpec,
  /** Runs when every connection is open, paid, subscribed and warmed up (see runGenerator). */
  onStarted?: () => void,
): Promise<WsLoadResult> {
  const { result, serverCpuShare, serverCpuUs } = await runGenerator<WsLoadSpec, ChildResult>(
    import.meta.url,
    CHILD_FLAG,
    spec,
    onStarted,
  )
  return {
    ...result,
    serverCpuShare,
    serverCpuUsPerMessage: result.messages > 0 ? serverCpuUs / result.messages : 0,
  }
}

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

type ChildResult = Omit<WsLoadResult, 'serverCpuShare' | 'serverCpuUsPerMessage'>
type ChildMessage = GeneratorMessage<ChildResult>

/** A `data` frame as the server serializes it: `{"type":"data",…`. */
const DATA_PREFIX = Buffer.from('{"type":"data"')

/** One connection's state. */
class Connection {
  received = 0
  creditPauses = 0
  backpressurePauses = 0
  /** Index of the next `pay` frame to send. */
  nextPay = 0
  finalCharged: string | undefined
  accepted: PaymentRequirements | undefined
  /** Pre-serialized `pay` frames, ceilings in order. */
  pays: string[] = []
  receipts = 0
  readonly errors: string[] = []
  readonly closed: Promise<void>
  private waiter: (() => void) | undefined

  constructor(
    readonly ws: WebSocket,
    private readonly onData: () => void,
  ) {
    ws.on('message', (data: Buffer) => this.onMessage(data))
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()))
    ws.once('close', () => this.wake())
  }

  sendPay(): void {
    const frame = this.pays[this.nextPay]
    if (frame === undefined) return
    this.nextPay++
    this.ws.send(frame)
  }

  /** Resolves once `check` holds: checked again on every frame but `data`, and every 100 ms. */
  async until(check: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + STEP_TIMEOUT_MS
    while (!check()) {
      if (Date.now() > deadline || this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`waited for ${what}: ${this.errors.join(', ')}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  private wake(): void {
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.()
  }

  private onMessage(data: Buffer): void {
    if (
      data.length > DATA_PREFIX.length &&
      data.compare(DATA_PREFIX, 0, DATA_PREFIX.length, 0, DATA_PREFIX.length) === 0
    ) {
      this.received++
      this.onData()
      return
    }
    const frame = JSON.parse(data.toString()) as {
      type: string
      code?: string
      reason?: string
      final?: boolean
      paymentRequired?: { accepts: PaymentRequirements[] }
      paymentResponse?: { extra?: { channelState?: { chargedCumulativeAmount?: string } } }
    }
    switch (frame.type) {
      case 'payment-required':
        this.accepted = frame.paymentRequired?.accepts[0]
        break
      case 'voucher-needed':
        this.sendPay()
        break
      case 'receipt':
        this.receipts++
        if (frame.final) {
          this.finalCharged = frame.paymentResponse?.extra?.channelState?.chargedCumulativeAmount
        }
        break
      case 'paused':
        if (frame.reason === 'credit') this.creditPauses++
        else this.backpressurePauses++
        break
      case 'error':
        this.errors.push(frame.code ?? 'unknown')
        break
    }
    this.wake()
  }
}

async function connect(url: string, onData: () => void): Promise<Connection> {
  const ws = new WebSocket(url, 'tollgate.v1', { perMessageDeflate: false })
  const connection = new Connection(ws, onData)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  return connection
}

/** Every channel's `pay` frames, in order: the k-th carries the ceiling `charged + k × window × price`. */
async function signPays(spec: WsLoadSpec, accepted: PaymentRequirements): Promise<string[][]> {
  const separator = domainSeparator({ chainId: spec.chainId, verifyingContract: spec.escrow })
  const typedDomain = escrowDomain(spec.chainId, spec.escrow)
  // Enough for the warm-up and the quota, plus the window in flight when the clock stops.
  const count = Math.ceil((spec.warmup + spec.messages * 2) / spec.window) + 2
  const step = spec.price * BigInt(spec.window)
  const out: string[][] = []
  for (const channel of spec.channels) {
    const signer = keySigner(channel.sessionKey)
    const frames: string[] = []
    for (let k = 1; k <= count; k++) {
      const maxClaimableAmount = channel.charged + BigInt(k) * step
      const signature = await signVoucher(
        signer,
        separator,
        typedDomain,
        channel.channelId,
        maxClaimableAmount,
      )
      const payment = paymentPayload({
        accepted,
        payload: {
          type: 'voucher',
          channelConfig: channel.config,
          voucher: { channelId: channel.channelId, maxClaimableAmount, signature },
        },
      })
      frames.push(JSON.stringify({ type: 'pay', payment }))
    }
    out.push(frames)
  }
  return out
}

async function measure(spec: WsLoadSpec, send: (m: ChildMessage) => void): Promise<ChildResult> {
  let measuring = false
  let measured = 0
  const target = spec.messages * spec.channels.length
  let stop: (() => void) | undefined
  const onData = () => {
    if (measuring && ++measured >= target) stop?.()
  }
  const connections = await Promise.all(spec.channels.map(() => connect(spec.url, onData)))

  let signMs = 0
  let signed = 0
  if (spec.billed) {
    await Promise.all(
      connections.map((c) => c.until(() => c.accepted !== undefined, 'requirements')),
    )
    const accepted = connections[0]?.accepted
    if (!accepted) throw new Error('no requirements')
    const started = performance.now()
    const pays = await signPays(spec, accepted)
    signMs = performance.now() - started
    connections.forEach((c, i) => {
      c.pays = pays[i] ?? []
      signed += c.pays.length
      c.sendPay()
    })
    await Promise.all(connections.map((c) => c.until(() => c.receipts > 0, 'the first receipt')))
  }
  for (const c of connections) c.ws.send('{"type":"subscribe"}')
  await Promise.all(connections.map((c) => c.until(() => c.received >= spec.warmup, 'the warm-up')))

  send({ kind: 'started' })
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  measuring = true
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, spec.durationMs)
    stop = () => {
      clearTimeout(timer)
      resolve()
    }
  })
  measuring = false
  const wallMs = performance.now() - start
  const used = process.cpuUsage(cpu0)
  send({ kind: 'stopped' })

  for (const c of connections) {
    if (spec.billed) c.ws.send('{"type":"end"}')
    else c.ws.close(1000)
  }
  await Promise.race([
    Promise.all(connections.map((c) => c.closed)),
    new Promise((_resolve, reject) =>
      setTimeout(() => reject(new Error('sessions did not end')), STEP_TIMEOUT_MS),
    ),
  ])
  return {
    messages: measured,
    wallMs,
    msgsPerS: (measured * 1000) / wallMs,
    generatorCpuShare: (used.user + used.system) / 1000 / wallMs,
    received: connections.map((c) => c.received),
    finalCharged: connections.map((c) => c.finalCharged),
    vouchers: connections.reduce((n, c) => n + c.nextPay, 0),
    creditPauses: connections.reduce((n, c) => n + c.creditPauses, 0),
    backpressurePauses: connections.reduce((n, c) => n + c.backpressurePauses, 0),
    errors: connections.flatMap((c) => c.errors),
    signed,
    signMs,
  }
}

serveGenerator(CHILD_FLAG, measure)
