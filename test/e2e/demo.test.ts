/**
 * `npm run demo`, shortened: its own anvil, server, upstreams and payers, run to the end. The
 * summary must be true to the chain: what the escrow shows claimed equals what the server
 * charged, the receiver's wallet gained exactly that, and the charges are the calls and
 * messages at their prices.
 */
import { describe, expect, it } from 'vitest'
import { formatSummary, runDemo } from '../../src/cli/demo.js'

const CALL_UNITS = 1000n
const MESSAGE_UNITS = 100n

describe('the demo', () => {
  it('pays calls and a feed, claims before a withdrawal, settles, and its summary adds up with the chain', async () => {
    const lines: string[] = []
    const summary = await runDemo({
      agents: 2,
      calls: 20,
      streamers: 1,
      messages: 150,
      log: (line) => lines.push(line),
    })

    expect(summary.calls).toBe(40)
    expect(summary.messagesRead).toBe(150)
    expect(summary.messages).toBeGreaterThanOrEqual(150)
    expect(summary.charged).toBe(
      BigInt(summary.calls) * CALL_UNITS + BigInt(summary.messages) * MESSAGE_UNITS,
    )
    expect(summary.claimed).toBe(summary.charged)
    expect(summary.settled).toBe(summary.claimed)
    expect(summary.withdrawal.claimed).toBe(20n * CALL_UNITS)
    expect(summary.withdrawal.secondsLeft).toBeGreaterThan(0)
    expect(summary.claimedChannels).toBeGreaterThanOrEqual(3)
    expect(summary.gasPerClaimedChannel).toBeGreaterThan(0)
    expect(summary.transactions).toBeLessThan(summary.calls + summary.messages)

    expect(lines.some((l) => l.includes('agent 2: 20/20 calls paid'))).toBe(true)
    const text = formatSummary(summary)
    expect(text).toContain('paid HTTP calls           40')
    expect(text).toContain(
      `settled to the receiver   $${(Number(summary.settled) / 1e6).toFixed(4)}`,
    )
  }, 90_000)
})
