/**
 * The state of one HTTP tick window as pure functions (src/transports/http/PROTOCOL.md): a
 * voucher's window of `ticks` calls and a PayWord hash chain committed to by its root. The money
 * of the window lives in the ledger's record of the channel (a credit hold, as a WebSocket
 * session's); this is only which preimage comes next. No I/O.
 */
import type { Hex } from 'viem'
import { type Rejection, reject } from '../errors/index.js'
import { linksTo } from '../protocol/tickWire.js'

/** Which call of a window comes next, and the link its preimage must hash to. */
export interface TickWindow {
  readonly channelId: Hex
  /** The price of each call, as signed in the commitment. */
  readonly price: bigint
  /** Calls the window covers, the opening one (index 0) included. */
  readonly ticks: number
  /** The last index consumed: 0 once the opening call was charged. */
  readonly index: number
  /** w_index: the next preimage must hash to it. */
  readonly link: Uint8Array
}

/** A refused tick, with the index the window expects when it still has one. */
export type TickRefusal = Rejection & { readonly expected?: number }

/**
 * A window whose opening call (index 0, paid by the voucher itself) was charged: the next tick
 * is index 1, whose preimage hashes to `root`.
 */
export function openTickWindow(
  channelId: Hex,
  price: bigint,
  ticks: number,
  root: Uint8Array,
): TickWindow {
  return { channelId, price, ticks, index: 0, link: new Uint8Array(root) }
}

/** Whether every call of the window was charged. */
export function tickWindowUsed(window: TickWindow): boolean {
  return window.index + 1 >= window.ticks
}

/**
 * Checks one tick: the window's next index, of this channel, whose preimage hashes (one
 * keccak-256) to the last link. A preimage is good once, in order, on its channel only.
 *
 * @returns A refusal (`tollgate_tick_window_ended` when nothing is left, else
 *   `tollgate_tick_invalid` with the index expected), or undefined when the tick is good.
 */
export function checkTick(
  window: TickWindow,
  channelId: Hex,
  index: number,
  preimage: Uint8Array,
): TickRefusal | undefined {
  if (tickWindowUsed(window)) {
    return reject('tollgate_tick_window_ended', `all ${window.ticks} calls of the window were used`)
  }
  const expected = window.index + 1
  if (channelId !== window.channelId) {
    return { ...reject('tollgate_tick_invalid', 'the window is of another channel'), expected }
  }
  if (index !== expected) {
    const why = index < expected ? 'was used already' : 'skips ticks'
    return {
      ...reject('tollgate_tick_invalid', `tick ${index} ${why}; expected ${expected}`),
      expected,
    }
  }
  if (linksTo(preimage, window.link)) return undefined
  return {
    ...reject('tollgate_tick_invalid', `the preimage of tick ${index} is not of this chain`),
    expected,
  }
}

/** The window after tick `index` was charged. Precondition: {@link checkTick} passed for it. */
export function consumeTick(window: TickWindow, index: number, preimage: Uint8Array): TickWindow {
  // Field by field, not a spread: this runs once per call.
  return {
    channelId: window.channelId,
    price: window.price,
    ticks: window.ticks,
    index,
    link: new Uint8Array(preimage),
  }
}
