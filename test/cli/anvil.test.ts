/**
 * `tollgate chain` from an npm install: anvil comes from the optional dependency
 * `@foundry-rs/anvil-linux-amd64`, PATH or ANVIL_PATH; when it is in none of them, the error
 * has a stable code and names what to install, instead of `spawn anvil ENOENT`.
 */
import { describe, expect, it } from 'vitest'
import { startAnvil } from '../../src/chain/anvil.js'
import { run } from './run.js'

describe('anvil not found', () => {
  it('rejects with tollgate_anvil_not_found naming the package, PATH and ANVIL_PATH', async () => {
    await expect(startAnvil({ binary: '/nonexistent/anvil' })).rejects.toMatchObject({
      code: 'tollgate_anvil_not_found',
      details:
        '/nonexistent/anvil not found: npm install @foundry-rs/anvil-linux-amd64 (linux x64), or put anvil on PATH or set ANVIL_PATH.',
    })
  })

  it('makes `tollgate chain` print that in one line and exit with 1', async () => {
    const result = await run(['chain'], { ANVIL_PATH: '/nonexistent/anvil' })
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      'tollgate: tollgate_anvil_not_found: /nonexistent/anvil not found: npm install @foundry-rs/anvil-linux-amd64 (linux x64), or put anvil on PATH or set ANVIL_PATH.\n',
    )
  })
})
