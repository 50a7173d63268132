/**
 * The pure tick window: a PayWord chain checked one keccak at a time, each preimage good once,
 * in order, on its own channel only.
 */
import { randomBytes } from 'node:crypto'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import {
  checkTick,
  consumeTick,
  openTickWindow,
  type TickWindow,
  tickWindowUsed,
} from '../../src/ledger/tickWindow.js'
import { tickLink } from '../../src/protocol/tickWire.js'

const A = `0x${'aa'.repeat(32)}` as Hex
const B = `0x${'bb'.repeat(32)}` as Hex

/** w_0 … w_(n-1) with w_(i-1) = keccak256(w_i). */
function chain(n: number): Uint8Array[] {
  const out = new Array<Uint8Array>(n)
  out[n - 1] = new Uint8Array(randomBytes(32))
  for (let i = n - 1; i > 0; i--) out[i - 1] = tickLink(out[i] as Uint8Array)
  return out
}

function at(c: Uint8Array[], i: number): Uint8Array {
  return c[i] as Uint8Array
}

describe('tick window', () => {
  it('takes every preimage of its chain in order, then is used up', () => {
    const c = chain(5)
    let window: TickWindow = openTickWindow(A, 10n, 5, at(c, 0))
    for (let i = 1; i < 5; i++) {
      expect(tickWindowUsed(window)).toBe(false)
      expect(checkTick(window, A, i, at(c, i))).toBeUndefined()
      window = consumeTick(window, i, at(c, i))
    }
    expect(tickWindowUsed(window)).toBe(true)
    const after = checkTick(window, A, 5, new Uint8Array(32))
    expect(after?.code).toBe('tollgate_tick_window_ended')
    expect(after?.expected).toBeUndefined()
  })

  it('refuses a replayed preimage, naming the index it expects', () => {
    const c = chain(4)
    const window = consumeTick(openTickWindow(A, 10n, 4, at(c, 0)), 1, at(c, 1))
    const replay = checkTick(window, A, 1, at(c, 1))
    expect(replay).toMatchObject({ code: 'tollgate_tick_invalid', expected: 2 })
    expect(replay?.message).toContain('used already')
  })

  it('refuses a preimage out of order, even one of its own chain', () => {
    const c = chain(4)
    const window = openTickWindow(A, 10n, 4, at(c, 0))
    expect(checkTick(window, A, 2, at(c, 2))).toMatchObject({
      code: 'tollgate_tick_invalid',
      expected: 1,
    })
    // The right index with a later preimage does not hash to the link either.
    expect(checkTick(window, A, 1, at(c, 2))).toMatchObject({
      code: 'tollgate_tick_invalid',
      expected: 1,
    })
  })

  it("refuses another channel's preimage and another channel's window", () => {
    const mine = chain(3)
    const theirs = chain(3)
    const window = openTickWindow(A, 10n, 3, at(mine, 0))
    expect(checkTick(window, A, 1, at(theirs, 1))?.code).toBe('tollgate_tick_invalid')
    expect(checkTick(window, B, 1, at(mine, 1))?.code).toBe('tollgate_tick_invalid')
    expect(checkTick(window, A, 1, at(mine, 1))).toBeUndefined()
  })

  it('keeps its own copy of the links it is given', () => {
    const c = chain(3)
    const root = new Uint8Array(at(c, 0))
    const window = openTickWindow(A, 10n, 3, root)
    root.fill(0)
    expect(checkTick(window, A, 1, at(c, 1))).toBeUndefined()
  })
})
