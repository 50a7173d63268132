import { x402ResourceServer } from '@x402/core/server'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type ErrorCode, TollgateError } from '../../src/errors/index.js'
import {
  type BuildRequirementsParameters,
  buildRequirements,
  correctiveRequired,
  type PaymentRequirements,
  requirementsEqual,
} from '../../src/protocol/index.js'
import {
  CHANNEL_STATE,
  clone,
  NETWORK,
  REQUIREMENTS_PARAMETERS,
  SIGNATURE,
  USDC_CHECKSUMMED,
} from './fixtures.js'

const issued = buildRequirements(REQUIREMENTS_PARAMETERS)

describe('buildRequirements', () => {
  it('builds the wire object byte for byte', () => {
    expect(JSON.stringify(issued)).toBe(
      '{"scheme":"batch-settlement","network":"eip155:84532","amount":"1000",' +
        '"asset":"0x036cbd53842c5426634e7929541ec2318f3dcf7e",' +
        '"payTo":"0x1111111111111111111111111111111111111111","maxTimeoutSeconds":60,' +
        '"extra":{"receiverAuthorizer":"0x2222222222222222222222222222222222222222",' +
        '"withdrawDelay":900,"name":"USDC","version":"2"}}',
    )
  })

  it('gives the same bytes whatever the key order and address case of its parameters', () => {
    const reordered: BuildRequirementsParameters = {
      version: '2',
      name: 'USDC',
      withdrawDelay: 900,
      receiverAuthorizer: REQUIREMENTS_PARAMETERS.receiverAuthorizer,
      maxTimeoutSeconds: 60,
      payTo: REQUIREMENTS_PARAMETERS.payTo,
      asset: USDC_CHECKSUMMED,
      amount: 1000n,
      network: NETWORK,
    }
    expect(JSON.stringify(buildRequirements(reordered))).toBe(JSON.stringify(issued))
  })

  it('appends assetTransferMethod and minDeposit last, only when given', () => {
    const withOptions = buildRequirements({
      ...REQUIREMENTS_PARAMETERS,
      assetTransferMethod: 'eip3009',
      minDeposit: 10_000n,
    })
    expect(Object.keys(withOptions.extra)).toEqual([
      'receiverAuthorizer',
      'withdrawDelay',
      'name',
      'version',
      'assetTransferMethod',
      'minDeposit',
    ])
    expect(withOptions.extra.minDeposit).toBe('10000')
    expect(Object.keys(issued.extra)).toEqual([
      'receiverAuthorizer',
      'withdrawDelay',
      'name',
      'version',
    ])
  })

  it('writes the largest uint128 amount in full', () => {
    const max = (1n << 128n) - 1n
    expect(buildRequirements({ ...REQUIREMENTS_PARAMETERS, amount: max }).amount).toBe(
      max.toString(),
    )
  })

  const MISUSE: readonly [
    string,
    Partial<Record<keyof BuildRequirementsParameters, unknown>>,
    ErrorCode,
  ][] = [
    ['a network that is not eip155', { network: 'base-sepolia' }, 'tollgate_invalid_config'],
    ['a negative amount', { amount: -1n }, 'tollgate_invalid_config'],
    ['an amount above uint128', { amount: 1n << 128n }, 'tollgate_invalid_config'],
    ['a short asset', { asset: '0x1234' }, 'tollgate_invalid_config'],
    ['a payTo that is not hex', { payTo: `0x${'zz'.repeat(20)}` }, 'tollgate_invalid_config'],
    [
      'a zero receiverAuthorizer',
      { receiverAuthorizer: `0x${'00'.repeat(20)}` },
      'tollgate_invalid_config',
    ],
    ['a zero timeout', { maxTimeoutSeconds: 0 }, 'tollgate_invalid_config'],
    ['a fractional timeout', { maxTimeoutSeconds: 1.5 }, 'tollgate_invalid_config'],
    ['withdrawDelay 899', { withdrawDelay: 899 }, 'tollgate_invalid_config'],
    ['withdrawDelay 2592001', { withdrawDelay: 2_592_001 }, 'tollgate_invalid_config'],
    ['an empty token name', { name: '' }, 'invalid_batch_settlement_evm_missing_eip712_domain'],
    [
      'an empty token version',
      { version: '' },
      'invalid_batch_settlement_evm_missing_eip712_domain',
    ],
    [
      'an unknown assetTransferMethod',
      { assetTransferMethod: 'permit3' },
      'tollgate_invalid_config',
    ],
    ['a minDeposit below amount', { minDeposit: 999n }, 'tollgate_invalid_config'],
  ]

  it.each(MISUSE)('throws on %s', (_, override, code) => {
    const parameters = { ...REQUIREMENTS_PARAMETERS, ...override } as BuildRequirementsParameters
    expect(() => buildRequirements(parameters)).toThrow(
      expect.objectContaining({ name: 'TollgateError', code }),
    )
    expect(() => buildRequirements(parameters)).toThrow(TollgateError)
  })
})

/** The stock x402 server's own matching of `accepted` against what it issues. */
function stockMatches(accepted: unknown, requirements: PaymentRequirements): boolean {
  const server = new x402ResourceServer([])
  const payload = { x402Version: 2, accepted, payload: {} }
  return server.findMatchingRequirements([requirements] as never, payload as never) !== undefined
}

const corrective = correctiveRequired({
  resource: { url: 'https://api.test/data' },
  accepts: [issued],
  network: NETWORK,
  channelState: CHANNEL_STATE,
  voucherState: { signedMaxClaimable: 5000n, signature: SIGNATURE },
}).accepts[0] as PaymentRequirements

function mutated(change: (value: Record<string, unknown>) => void): PaymentRequirements {
  const value = clone(issued) as unknown as Record<string, unknown>
  change(value)
  return value as unknown as PaymentRequirements
}

const extraOf = (value: Record<string, unknown>) => value.extra as Record<string, unknown>

describe('requirementsEqual', () => {
  const EQUAL: readonly [string, PaymentRequirements][] = [
    ['the issued object itself', issued],
    ['a JSON round trip', clone(issued)],
    [
      'the same values in another key order',
      JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(clone(issued)).reverse()))),
    ],
    ['the corrective 402 entry, echoed with channelState and voucherState', corrective],
  ]

  it.each(EQUAL)('matches %s, as the stock server does', (_, accepted) => {
    expect(requirementsEqual(accepted, issued)).toBe(true)
    expect(stockMatches(accepted, issued)).toBe(true)
  })

  const DIFFERENT: readonly [string, PaymentRequirements][] = [
    ['a checksummed asset', mutated((v) => (v.asset = USDC_CHECKSUMMED))],
    ['an upper-case payTo', mutated((v) => (v.payTo = `0x${'AA'.repeat(20)}`))],
    ['another amount', mutated((v) => (v.amount = '999'))],
    ['another network', mutated((v) => (v.network = 'eip155:8453'))],
    ['another timeout', mutated((v) => (v.maxTimeoutSeconds = 61))],
    ['withdrawDelay as a string', mutated((v) => (extraOf(v).withdrawDelay = '900'))],
    ['another token name', mutated((v) => (extraOf(v).name = 'USD Coin'))],
    ['extra.version missing', mutated((v) => delete extraOf(v).version)],
    ['extra missing', mutated((v) => delete v.extra)],
    ['an added top-level key', mutated((v) => (v.memo = 'x'))],
  ]

  it.each(DIFFERENT)('refuses %s, as the stock server does', (_, accepted) => {
    expect(requirementsEqual(accepted, issued)).toBe(false)
    expect(stockMatches(accepted, issued)).toBe(false)
  })

  it('refuses an unknown extra key that the stock server would let through', () => {
    const accepted = mutated((v) => (extraOf(v).paymentFlow = 'x'))
    expect(stockMatches(accepted, issued)).toBe(true)
    expect(requirementsEqual(accepted, issued)).toBe(false)
  })

  it('refuses issued values nested in an array or object on one side only', () => {
    const withList = { ...issued, extra: { ...issued.extra, tags: ['a', 'b'] } }
    expect(requirementsEqual(clone(withList), withList)).toBe(true)
    expect(
      requirementsEqual({ ...withList, extra: { ...withList.extra, tags: ['a'] } }, withList),
    ).toBe(false)
    expect(
      requirementsEqual(
        { ...withList, extra: { ...withList.extra, tags: { 0: 'a', 1: 'b' } } },
        withList,
      ),
    ).toBe(false)
  })

  it('never throws and never matches a random accepted object', () => {
    fc.assert(
      fc.property(fc.anything(), (accepted) => {
        expect(requirementsEqual(accepted as PaymentRequirements, issued)).toBe(false)
      }),
    )
  })

  it('matches only if the stock server matches too', () => {
    const field = fc.constantFrom(
      'scheme',
      'network',
      'amount',
      'asset',
      'payTo',
      'maxTimeoutSeconds',
    )
    const extraField = fc.constantFrom(
      'receiverAuthorizer',
      'withdrawDelay',
      'name',
      'version',
      'channelState',
    )
    let matched = 0
    const known = fc.constantFrom(...Object.values(issued), ...Object.values(issued.extra))
    fc.assert(
      fc.property(
        fc.boolean(),
        field,
        extraField,
        fc.oneof(known, fc.jsonValue()),
        (inExtra, key, extraKey, value) => {
          const accepted = mutated((v) => {
            if (inExtra) extraOf(v)[extraKey] = value
            else v[key] = value
          })
          if (!requirementsEqual(accepted, issued)) return
          matched++
          expect(stockMatches(accepted, issued)).toBe(true)
        },
      ),
      { numRuns: 500 },
    )
    expect(matched).toBeGreaterThan(0)
  })
})
