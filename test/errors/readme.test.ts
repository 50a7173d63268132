/**
 * The README documents every error code with its HTTP status (the table between the
 * `error-codes` markers). `UPDATE_README=1 npx vitest run test/errors` rewrites that table from
 * src/errors/codes.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../../src/errors/index.js'

const README = join(import.meta.dirname, '..', '..', 'README.md')
const START = '<!-- error-codes:start -->'
const END = '<!-- error-codes:end -->'

function table(): string {
  const rows = Object.entries(ERROR_CODES).map(
    ([code, [status, text]]) => `| \`${code}\` | ${status} | ${text} |`,
  )
  return ['| code | HTTP | meaning |', '| --- | ---: | --- |', ...rows].join('\n')
}

describe('README error code table', () => {
  it('lists every code with its status, as in src/errors/codes.ts', () => {
    const readme = readFileSync(README, 'utf8')
    const start = readme.indexOf(START)
    const end = readme.indexOf(END)
    expect(start, `README.md needs ${START} and ${END}`).toBeGreaterThan(-1)
    expect(end).toBeGreaterThan(start)
    const expected = `${START}\n${table()}\n${END}`
    if (process.env.UPDATE_README === '1') {
      writeFileSync(README, readme.slice(0, start) + expected + readme.slice(end + END.length))
      return
    }
    expect(readme.slice(start, end + END.length)).toBe(expected)
  })
})
