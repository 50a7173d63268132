/**
 * Revenue in dollars: at one dollar a token for a dollar stablecoin, at the oracle's rate of each
 * charge for a token that is not one (not at the rate of the scrape), in token units only for a
 * token without a peg or a rate; charges made while the rate is unusable are counted apart.
 */
import { describe, expect, it } from 'vitest'
import { accept, type Result, reject } from '../../src/errors/index.js'
import { TollgateMetrics } from '../../src/metrics/index.js'
import type { TokenRate } from '../../src/payee/index.js'

const TOKEN = '0x00000000000000000000000000000000000000aa' as const

/** The value of the one series of `name` with `route`, or undefined when there is none. */
async function series(metrics: TollgateMetrics, name: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{route="/quote"`))
  return line === undefined ? undefined : Number(line.split(' ').pop())
}

describe('revenue in dollars', () => {
  it('counts a dollar stablecoin one dollar a token', async () => {
    const metrics = new TollgateMetrics({ token: { address: TOKEN, decimals: 6 } })
    const meter = metrics.route('http', '/quote')
    meter.charge(1000n)
    meter.charge(2500n)
    expect(await series(metrics, 'tollgate_revenue_dollars_total')).toBeCloseTo(0.0035, 12)
    expect(await series(metrics, 'tollgate_revenue_token_units_total')).toBe(3500)
  })

  it("counts a token priced by an oracle at each charge's rate, and apart while it is unusable", async () => {
    const metrics = new TollgateMetrics({ token: { address: TOKEN, decimals: 18 } })
    let rate: Result<TokenRate> = accept({ answer: 3000_00000000n, decimals: 8 })
    metrics.priceDollars(() => rate)
    const meter = metrics.route('ws', '/quote')
    // $0.001 at $3 000 a token, rounded up to a whole unit.
    meter.charge(333_333_333_334n)
    rate = accept({ answer: 2000_00000000n, decimals: 8 })
    // $0.001 at $2 000.
    meter.charge(500_000_000_000n)
    // Both charges were worth $0.001 when made: $0.002, not their units at today's $2 000.
    expect(await series(metrics, 'tollgate_revenue_dollars_total')).toBeCloseTo(0.002, 12)
    rate = reject('tollgate_price_stale')
    meter.charge(7n)
    expect(await series(metrics, 'tollgate_revenue_dollars_total')).toBeCloseTo(0.002, 12)
    expect(await series(metrics, 'tollgate_revenue_unpriced_token_units_total')).toBe(7)
    expect(await series(metrics, 'tollgate_revenue_token_units_total')).toBe(833_333_333_341)
  })

  it('reports a token without a dollar peg or a rate in token units only', async () => {
    const metrics = new TollgateMetrics({
      token: { address: TOKEN, decimals: 18, dollarPeg: false },
    })
    metrics.route('http', '/quote').charge(10n ** 18n)
    expect(await series(metrics, 'tollgate_revenue_dollars_total')).toBeUndefined()
    expect(await series(metrics, 'tollgate_revenue_unpriced_token_units_total')).toBeUndefined()
    expect(await series(metrics, 'tollgate_revenue_token_units_total')).toBe(1e18)
  })
})
