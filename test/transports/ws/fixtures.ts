/**
 * A Fastify app with the tollgateWs plugin over a real Payee (MemoryStore, real signature checks)
 * and a fake chain reader, a frame client on `injectWS` (no port), and a payer that signs real
 * vouchers.
 */

import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import type { Payee, PayeeOptions } from '../../../src/payee/payee.js'
import type { PaymentRequirements } from '../../../src/protocol/index.js'
import {
  type ServerFrame,
  type TollgateWsOptions,
  tollgateWs,
} from '../../../src/transports/ws/index.js'
import { IDENTITY } from '../../ledger/fixtures.js'
import {
  type Channel,
  fixturePayee,
  NETWORK,
  type TestApp,
  voucherPayment,
} from '../http/fixtures.js'

export {
  type Channel,
  fixturePayee,
  NETWORK,
  openChannel,
  type TestApp,
  voucherPayment,
} from '../http/fixtures.js'

export const ASSET = { address: IDENTITY.token, name: 'USDC', version: '2' }
export const PRICE = 10n
/** How long a test waits for one frame before failing. */
export const FRAME_TIMEOUT_MS = 3_000

export function pluginOptions(payee: Payee): TollgateWsOptions {
  return {
    payee,
    network: NETWORK,
    asset: ASSET,
    payTo: IDENTITY.receiver,
    receiverAuthorizer: IDENTITY.receiverAuthorizer,
    withdrawDelay: IDENTITY.withdrawDelay,
  }
}

/** Builds (does not listen) an app; `routes` adds routes after the plugin. */
export async function makeApp(
  routes: (app: FastifyInstance) => void,
  options: Partial<TollgateWsOptions> = {},
  payeeOptions: Partial<PayeeOptions> = {},
): Promise<TestApp> {
  const { payee, store, chain } = await fixturePayee(payeeOptions)
  const app = Fastify({ logger: false })
  await app.register(tollgateWs, { ...pluginOptions(payee), ...options })
  routes(app)
  await app.ready()
  return { app, payee, store, chain }
}

const listens = new WeakMap<FastifyInstance, Promise<string>>()

type FrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>

/**
 * A WebSocket client that records every frame. `next(type)` takes the first unread frame of that
 * type (frames of other types stay unread), waiting up to {@link FRAME_TIMEOUT_MS}.
 */
export class FrameClient {
  /** Every frame received, in order. */
  readonly log: ServerFrame[] = []
  private readonly unread: ServerFrame[] = []
  private waiter: (() => void) | undefined
  readonly closed: Promise<{ code: number; reason: string }>

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ServerFrame
      this.log.push(frame)
      this.unread.push(frame)
      this.waiter?.()
    })
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() })
        this.waiter?.()
      })
    })
  }

  /** Connects over a real socket on 127.0.0.1 (the app listens on port 0 on first use). */
  static async connect(
    app: FastifyInstance,
    path: string,
    protocols?: string | string[],
  ): Promise<FrameClient> {
    let listening = listens.get(app)
    if (!listening) {
      listening = app.listen({ port: 0, host: '127.0.0.1' })
      listens.set(app, listening)
    }
    await listening
    const { port } = app.server.address() as AddressInfo
    return FrameClient.open(`ws://127.0.0.1:${port}${path}`, protocols)
  }

  /** Connects to a server at `url` (in another process, say). */
  static async open(url: string, protocols?: string | string[]): Promise<FrameClient> {
    const ws = new WebSocket(url, protocols)
    const client = new FrameClient(ws)
    await once(ws, 'open')
    return client
  }

  /** Connects through `injectWS` (an in-memory pipe, no port). */
  static async inject(app: FastifyInstance, path: string): Promise<FrameClient> {
    let client: FrameClient | undefined
    await app.injectWS(path, {}, { onInit: (ws) => (client = new FrameClient(ws)) })
    if (!client) throw new Error('no client')
    return client
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The first unread frame of `type`, taken from the unread list. */
  async next<T extends ServerFrame['type']>(
    type: T,
    timeoutMs = FRAME_TIMEOUT_MS,
  ): Promise<FrameOf<T>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const index = this.unread.findIndex((frame) => frame.type === type)
      if (index >= 0) return this.unread.splice(index, 1)[0] as FrameOf<T>
      const left = deadline - Date.now()
      if (left <= 0 || this.ws.readyState === this.ws.CLOSED) {
        throw new Error(`no ${type} frame; got ${JSON.stringify(this.log.map((f) => f.type))}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(timer)
          this.waiter = undefined
          resolve()
        }
      })
    }
  }

  /** Takes the next `count` unread frames of `type`. */
  async take<T extends ServerFrame['type']>(type: T, count: number): Promise<FrameOf<T>[]> {
    const frames: FrameOf<T>[] = []
    for (let i = 0; i < count; i++) frames.push(await this.next(type))
    return frames
  }

  /** Waits until `count` frames of `type` were received in all (read or not). */
  async count(
    type: ServerFrame['type'],
    count: number,
    timeoutMs = FRAME_TIMEOUT_MS,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.all(type).length < count) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`${this.all(type).length} ${type} frames, wanted ${count}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(timer)
          this.waiter = undefined
          resolve()
        }
      })
    }
  }

  /** Every frame of `type` received. */
  all<T extends ServerFrame['type']>(type: T): FrameOf<T>[] {
    return this.log.filter((frame): frame is FrameOf<T> => frame.type === type)
  }

  /** The requirements of the connection's first `payment-required` frame. */
  async accepted(): Promise<PaymentRequirements> {
    const frame = await this.next('payment-required')
    const [accepted] = frame.paymentRequired.accepts
    if (!accepted) throw new Error('no requirements')
    return accepted
  }

  /** Pays a voucher of ceiling `max` and returns the receipt (or throws with the error frame). */
  async pay(accepted: PaymentRequirements, channel: Channel, max: bigint) {
    this.send({ type: 'pay', payment: await voucherPayment(accepted, channel, max) })
    return this.next('receipt')
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000)
    return this.closed
  }
}

/** Waits until `check` holds, polling every 5 ms, up to `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = FRAME_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
