import type { Hex } from 'viem'
import WebSocket from 'ws'
import { TollgateError } from '../errors/index.js'
import {
  decodePaymentRequiredObject,
  decodeSettleResponseObject,
  type PaymentRequired,
  type PaymentRequirements,
  paymentPayload,
} from '../protocol/index.js'
import { WS_SUBPROTOCOL } from '../transports/ws/constants.js'
import type { ServerFrame } from '../transports/ws/frames.js'
import type { PayerCore } from './payerCore.js'
import { receiptMismatch } from './verifyReceipt.js'

/** Messages per voucher when the server names no `extra.creditWindow`. */
export const DEFAULT_CLIENT_CREDIT_WINDOW = 10n

/** A paid WebSocket session: iterate it for feed messages, or `request()` on a request route. */
export interface PaidSession extends AsyncIterable<unknown> {
  readonly channelId: Hex
  /** Charged in this session so far: the sum of the `charged` of its messages. */
  readonly charged: bigint
  /** Starts a feed route's delivery. */
  subscribe(params?: unknown): void
  /** One billed request; resolves with the response body. */
  request(body?: unknown): Promise<unknown>
  /** Ends the session: waits for the final receipt and the close. */
  close(): Promise<void>
}

interface Waiting {
  resolve(value: unknown): void
  reject(error: Error): void
}

/**
 * Opens a paid session on a tollgate WebSocket route: pays the `payment-required` with a voucher
 * covering a credit window (depositing on chain first when the balance does not cover it: a
 * WebSocket takes no deposit payload), answers `voucher-needed` and credit pauses with the next
 * window as long as the spend limits allow, checks every receipt against the messages received,
 * and holds the channel's lock until the session closes. A spend limit, or a receipt that does
 * not add up (the channel is then blocked), ends the session: the iterator and pending requests
 * reject with the code.
 *
 * @returns Once the first voucher was accepted.
 * @example
 * const feed = await payer.connect('wss://api.example.com/ticks')
 * feed.subscribe({ symbol: 'BTC-USD' })
 * for await (const tick of feed) console.log(tick)
 */
export async function connectPaid(core: PayerCore, wsUrl: string): Promise<PaidSession> {
  const url = new URL(wsUrl)
  const origin = url.origin
  const socket = new WebSocket(url, WS_SUBPROTOCOL)
  const queue: unknown[] = []
  const readers: Waiting[] = []
  const requests = new Map<string | number, Waiting>()
  let nextId = 1
  let failure: Error | undefined
  let closed = false
  let requirements: PaymentRequirements | undefined
  /** `requirements.amount`, parsed once: every data frame is checked against it. */
  let price = 0n
  let channelId: Hex | undefined
  let sessionCharged = 0n
  /** The channel's charged total as counted from this session's messages. */
  let charged = 0n
  /** The ceiling of the last voucher sent. */
  let ceiling = 0n
  /** The server's charged total at the last verified receipt. */
  let receipted: bigint | undefined
  let paying = false
  let release: () => void = () => {}
  const done = new Promise<void>((resolve) => socket.once('close', () => resolve()))

  const send = (frame: Record<string, unknown>) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame))
  }
  let opened: () => void = () => {}
  let refused: (error: Error) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    opened = resolve
    refused = reject
  })
  // A session that fails after it opened rejects its readers instead.
  ready.catch(() => {})

  const fail = (error: Error) => {
    failure ??= error
    refused(error)
    for (const reader of readers.splice(0)) reader.reject(error)
    for (const waiting of requests.values()) waiting.reject(error)
    requests.clear()
    if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'payer stopped')
  }
  const window = (): bigint => {
    const raw = requirements?.extra?.creditWindow
    return typeof raw === 'number' && Number.isSafeInteger(raw) && raw > 0
      ? BigInt(raw)
      : DEFAULT_CLIENT_CREDIT_WINDOW
  }

  /**
   * Signs and sends the next credit window's voucher. A top-up ahead of time (`early`) that a
   * spend limit refuses lets the session use up the credit it has; one the session needs now
   * ends it.
   */
  const pay = async (early = false) => {
    if (paying || !requirements || !channelId || failure) return
    paying = true
    try {
      const next = charged + window() * price
      if (next <= ceiling) return
      const prepared = await core.prepare(channelId, requirements, origin, {
        ceiling: next,
        method: 'direct',
      })
      ceiling = next
      send({
        type: 'pay',
        payment: paymentPayload({ accepted: requirements, payload: prepared.payload }),
      })
    } catch (err) {
      const limited = err instanceof TollgateError && err.code === 'tollgate_spend_limit'
      if (!(early && limited)) fail(err instanceof Error ? err : new Error(String(err)))
    } finally {
      paying = false
    }
  }

  const onReceipt = async (frame: Extract<ServerFrame, { type: 'receipt' }>) => {
    if (!channelId) return
    const decoded = decodeSettleResponseObject(frame.paymentResponse)
    if (!decoded.ok) return core.block(channelId, decoded)
    const { chargedAmount = 0n, channelState } = decoded.value
    const cumulative = channelState?.chargedCumulativeAmount
    const channel = core.current(channelId)
    if (receipted === undefined) {
      // The first receipt gives the server's figure: the voucher just sent must still cover a message.
      if (cumulative === undefined || chargedAmount !== 0n || cumulative + price > ceiling) {
        return core.block(
          channelId,
          receiptMismatch(
            `The session's first receipt claims ${cumulative} charged, not covered by the vouchers signed.`,
          ),
        )
      }
      charged = cumulative
    } else if (
      cumulative !== receipted + chargedAmount ||
      cumulative !== charged ||
      cumulative > ceiling
    ) {
      return core.block(
        channelId,
        receiptMismatch(
          `The receipt claims ${cumulative} charged; the messages received add up to ${charged}.`,
        ),
      )
    }
    receipted = charged
    await core.journal.putChannel({ ...channel, charged }, false)
    opened()
  }

  const onFrame = async (frame: ServerFrame) => {
    switch (frame.type) {
      case 'payment-required':
        return onPaymentRequired(frame.paymentRequired)
      case 'receipt':
        return onReceipt(frame)
      case 'voucher-needed':
        return pay(true)
      case 'paused':
        if (frame.reason === 'credit') return pay()
        return
      case 'resumed':
        return
      case 'data':
      case 'response': {
        const amount = BigInt(frame.charged)
        if (!requirements || amount < 0n || amount > price || charged + amount > ceiling) {
          if (channelId) {
            return core.block(
              channelId,
              receiptMismatch(
                `A message was charged ${frame.charged}, beyond the price or the credit signed for.`,
              ),
            )
          }
          return
        }
        charged += amount
        sessionCharged += amount
        if (frame.type === 'data') {
          const reader = readers.shift()
          if (reader) reader.resolve(frame.body)
          else queue.push(frame.body)
        } else {
          requests.get(frame.id)?.resolve(frame.body)
          requests.delete(frame.id)
        }
        return
      }
      case 'error': {
        const required = frame.paymentRequired
        if (
          frame.code === 'invalid_batch_settlement_evm_cumulative_amount_mismatch' &&
          required &&
          channelId
        ) {
          const adopted = await core.adoptCorrective(channelId, required)
          charged = adopted.charged
          ceiling = 0n
          return pay()
        }
        if (frame.code === 'tollgate_ws_no_credit') {
          await pay()
        }
        const error = new TollgateError(frame.code, frame.message)
        if (frame.id !== undefined) {
          requests.get(frame.id)?.reject(error)
          requests.delete(frame.id)
          return
        }
        if (frame.code !== 'tollgate_ws_no_credit') fail(error)
        return
      }
    }
  }

  const onPaymentRequired = async (value: PaymentRequired) => {
    const decoded = decodePaymentRequiredObject(value)
    const offered = decoded.ok ? core.select(decoded.value) : undefined
    if (!offered) {
      return fail(
        new TollgateError('unsupported_scheme', `${wsUrl} offers no payment this payer can make.`),
      )
    }
    requirements = offered
    price = BigInt(offered.amount)
    const channel = await core.channelFor(offered, origin)
    channelId = channel.channelId
    // The session holds the channel until it closes, as the server does.
    await new Promise<void>((acquired) => {
      void core.withChannel(channel.channelId, async () => {
        acquired()
        await new Promise<void>((resolve) => {
          release = resolve
        })
      })
    })
    charged = core.current(channel.channelId).charged
    await pay()
  }

  let frames = Promise.resolve()
  socket.on('message', (data, isBinary) => {
    if (isBinary) return
    let frame: ServerFrame
    try {
      frame = JSON.parse(data.toString()) as ServerFrame
    } catch {
      return fail(
        new TollgateError('tollgate_ws_bad_frame', 'The server sent a frame that is not JSON.'),
      )
    }
    frames = frames
      .then(() => onFrame(frame))
      .catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))))
  })
  socket.on('error', (err) => fail(err))
  socket.once('close', () => {
    closed = true
    void frames.finally(() => {
      release()
      refused(
        failure ??
          new TollgateError('tollgate_internal', `${wsUrl} closed before a voucher was accepted.`),
      )
      for (const reader of readers.splice(0)) {
        if (failure) reader.reject(failure)
        else reader.resolve(END)
      }
      for (const waiting of requests.values())
        waiting.reject(failure ?? new Error('the session closed'))
    })
  })

  // The first receipt (the first voucher accepted) opens the session.
  await ready

  return {
    get channelId() {
      return channelId as Hex
    },
    get charged() {
      return sessionCharged
    },
    subscribe(params) {
      send({ type: 'subscribe', ...(params === undefined ? {} : { params }) })
    },
    async request(body) {
      if (failure) throw failure
      if (closed) throw new Error('the session is closed')
      const id = nextId++
      const answer = new Promise<unknown>((resolve, reject) =>
        requests.set(id, { resolve, reject }),
      )
      send({ type: 'request', id, ...(body === undefined ? {} : { body }) })
      return answer
    },
    async close() {
      send({ type: 'end' })
      await done
      await frames
      if (failure && !(failure instanceof TollgateError && failure.code === 'tollgate_internal')) {
        throw failure
      }
    },
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      return {
        next: async () => {
          if (queue.length > 0) return { done: false, value: queue.shift() }
          if (failure) throw failure
          if (closed) return { done: true, value: undefined }
          const value = await new Promise<unknown>((resolve, reject) =>
            readers.push({ resolve, reject }),
          )
          return value === END ? { done: true, value: undefined } : { done: false, value }
        },
      }
    },
  }
}

/** Marks the end of the feed for a waiting reader. */
const END = Symbol('end')
