import { describe, expect, it } from 'vitest'
import { checkDeposit, checkSpend, originOf, resolveLimits } from '../../src/client/index.js'
import type { SpendRecord } from '../../src/client/spendPolicy.js'
import { TollgateError } from '../../src/errors/index.js'

const nothingSpent: SpendRecord = { originTotals: new Map(), spentSince: () => 0n }
const check = { origin: 'https://api.example.com', price: 1000n, increase: 1000n, now: 0 }

describe('origins', () => {
  it.each([
    ['HTTPS://API.example.com:443/joke?x=1', 'https://api.example.com'],
    ['http://127.0.0.1:4020/mcp', 'http://127.0.0.1:4020'],
    ['mcp://weather', 'mcp://weather'],
    ['mcp://weather/tools/forecast', 'mcp://weather'],
  ])('%s is counted under %s', (url, origin) => {
    expect(originOf(url)).toBe(origin)
  })
})

describe('allowedOrigins', () => {
  const limits = resolveLimits({
    perRequest: '1',
    allowedOrigins: ['https://API.example.com/any/path', 'mcp://weather'],
  })

  it('pays the origins it lists, however they were written', () => {
    expect(checkSpend(limits, nothingSpent, { ...check, price: 1n }).ok).toBe(true)
    expect(
      checkSpend(limits, nothingSpent, { ...check, origin: 'mcp://weather', price: 1n }).ok,
    ).toBe(true)
  })

  it('refuses any other origin first, naming the limit', () => {
    const verdict = checkSpend(limits, nothingSpent, { ...check, origin: 'https://evil.example' })
    expect(verdict).toMatchObject({ ok: false, code: 'tollgate_spend_limit' })
    expect(!verdict.ok && verdict.message).toMatch(
      /allowedOrigins does not list https:\/\/evil.example/,
    )
  })

  it.each([[['api.example.com']], [['localhost:8080']], ['https://api.example.com']])(
    'refuses %j as a list of origins',
    (allowedOrigins) => {
      expect(() => resolveLimits({ allowedOrigins: allowedOrigins as string[] })).toThrow(
        TollgateError,
      )
    },
  )
})

describe('maxDeposit', () => {
  const limits = resolveLimits({ maxDeposit: '$1' })

  it('takes a deposit up to the cap and refuses one above it, naming the limit', () => {
    expect(checkDeposit(limits, 1_000_000n).ok).toBe(true)
    const verdict = checkDeposit(limits, 1_000_001n)
    expect(verdict).toMatchObject({ ok: false, code: 'tollgate_spend_limit' })
    expect(!verdict.ok && verdict.message).toMatch(/maxDeposit is 1000000 token units/)
  })

  it('takes any deposit when unset', () => {
    expect(checkDeposit(resolveLimits({}), 10n ** 30n).ok).toBe(true)
  })
})
