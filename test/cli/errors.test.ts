/**
 * What the CLI prints when a command fails: one line starting with a stable code, never viem's
 * screens of request details (unless TOLLGATE_DEBUG=1).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BaseError, encodeErrorResult, HttpRequestError, RawContractError } from 'viem'
import { afterAll, describe, expect, it } from 'vitest'
import { BatchSettlement } from '../../src/chain/contracts.generated.js'
import { describeError } from '../../src/cli/describeError.js'
import { TollgateError } from '../../src/errors/index.js'
import { run } from './run.js'

const CHANNEL = `0x${'cd'.repeat(32)}` as const
const KEY = `0x${'11'.repeat(32)}`
const DATA_DIR = mkdtempSync(join(tmpdir(), 'tollgate-cli-'))
afterAll(() => rmSync(DATA_DIR, { recursive: true, force: true }))

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  return typeof address === 'object' && address ? address.port : 1
}

describe('one line per failure', () => {
  it('names an unreachable node by its origin, hiding the path (an API key)', () => {
    const err = new HttpRequestError({
      url: 'https://rpc.example/v2/SECRET',
      body: { method: 'eth_blockNumber' },
      details: 'fetch failed',
    })
    expect(
      describeError(
        new TollgateError('invalid_batch_settlement_evm_rpc_read_failed', 'x', { cause: err }),
      ),
    ).toBe('tollgate_chain_unavailable: https://rpc.example could not be reached\n')
  })

  it('decodes an escrow revert to its custom error and arguments', () => {
    const data = encodeErrorResult({
      abi: BatchSettlement.abi,
      errorName: 'ChannelNotFound',
      args: [CHANNEL],
    })
    const err = new BaseError('Execution reverted.', { cause: new RawContractError({ data }) })
    expect(describeError(err)).toBe(
      `invalid_batch_settlement_evm_transaction_reverted: ChannelNotFound(${CHANNEL})\n`,
    )
    const wrapped = new TollgateError(
      'invalid_batch_settlement_evm_refund_simulation_failed',
      'no',
      { cause: err },
    )
    expect(describeError(wrapped)).toBe(
      `invalid_batch_settlement_evm_refund_simulation_failed: ChannelNotFound(${CHANNEL})\n`,
    )
  })

  it('prints a tollgate error as its code and details, and everything under debug', () => {
    const err = new TollgateError('tollgate_invalid_config', 'tollgate.json: unknown key rotues')
    expect(describeError(err)).toBe('tollgate_invalid_config: tollgate.json: unknown key rotues\n')
    const debug = describeError(err, true)
    expect(debug.split('\n')[0]).toBe('tollgate_invalid_config: tollgate.json: unknown key rotues')
    expect(debug).toContain('at ')
  })

  it('fails a payer command on an unreachable chain with one line and exit code 1', async () => {
    const port = await closedPort()
    const result = await run(
      ['channels', '--rpc', `http://127.0.0.1:${port}`, '--data-dir', DATA_DIR],
      {
        TOLLGATE_PAYER_KEY: KEY,
      },
    )
    // No channels in a fresh journal: nothing to read from chain. Fund reads the chain at once.
    expect(result.code).toBe(0)
    const fund = await run(['fund', '--rpc', `http://127.0.0.1:${port}`, '--data-dir', DATA_DIR], {
      TOLLGATE_PAYER_KEY: KEY,
    })
    expect(fund.code).toBe(1)
    expect(fund.stderr).toBe(
      `tollgate: tollgate_chain_unavailable: http://127.0.0.1:${port} could not be reached\n`,
    )
    const debug = await run(['fund', '--rpc', `http://127.0.0.1:${port}`, '--data-dir', DATA_DIR], {
      TOLLGATE_PAYER_KEY: KEY,
      TOLLGATE_DEBUG: '1',
    })
    expect(debug.code).toBe(1)
    expect(debug.stderr.split('\n').length).toBeGreaterThan(5)
  })
})
