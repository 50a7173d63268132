import { describe, expect, it } from 'vitest'
import {
  buildRequirements,
  paymentRequired,
  paymentRequiredOfResult,
  paymentRequiredResult,
} from '../../src/protocol/index.js'
import { REQUIREMENTS_PARAMETERS } from './fixtures.js'

const required = paymentRequired({
  resource: { url: 'mcp://tool/forecast' },
  accepts: [buildRequirements(REQUIREMENTS_PARAMETERS)],
})

describe('the 402 of the x402 MCP transport as a tool result', () => {
  it('carries the PaymentRequired in structuredContent and as the JSON of content[0].text', () => {
    const result = paymentRequiredResult(required)
    expect(result.isError).toBe(true)
    expect(result.structuredContent).toEqual(required)
    expect(result.content).toEqual([{ type: 'text', text: JSON.stringify(required) }])
    expect(paymentRequiredOfResult(result)).toEqual(required)
  })

  it('is read from content[0].text when structuredContent is missing, as clients must', () => {
    const { structuredContent: _, ...textOnly } = paymentRequiredResult(required)
    expect(paymentRequiredOfResult(textOnly)).toEqual(required)
  })

  it.each([
    ['a successful result', { content: [{ type: 'text', text: JSON.stringify(required) }] }],
    [
      'a tool error in plain words',
      { isError: true, content: [{ type: 'text', text: 'no data' }] },
    ],
    ['an error with no content', { isError: true, content: [] }],
    [
      'an x402 version 1 body',
      { isError: true, structuredContent: { ...required, x402Version: 1 }, content: [] },
    ],
    ['not an object', 'oops'],
  ])('is not found in %s', (_, result) => {
    expect(paymentRequiredOfResult(result)).toBeUndefined()
  })
})
