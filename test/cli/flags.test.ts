/**
 * Every command parses its flags strictly before it reads, opens or sends anything: an unknown
 * or mistyped flag exits with 2, one line naming it (with the flag it is closest to), and the
 * command's usage.
 */
import { describe, expect, it } from 'vitest'
import { chainCommand } from '../../src/cli/chain.js'
import { demoCommand } from '../../src/cli/demo.js'
import { mcpCommand } from '../../src/cli/mcp.js'
import {
  channelsCommand,
  fundCommand,
  payCommand,
  refundCommand,
  withdrawCommand,
} from '../../src/cli/payer.js'
import { serveCommand } from '../../src/cli/serve.js'
import { settleCommand } from '../../src/cli/settle.js'
import { TollgateError } from '../../src/errors/index.js'
import { run } from './run.js'

/** What a command refuses its line with: the code and the detail, or undefined when it ran. */
async function refusal(
  command: (args: readonly string[]) => Promise<number>,
  args: string[],
): Promise<string | undefined> {
  try {
    await command(args)
    return undefined
  } catch (err) {
    if (err instanceof TollgateError) return `${err.code}: ${err.details}`
    throw err
  }
}

const CHANNEL = `0x${'ab'.repeat(32)}`

describe('strict command-line flags', () => {
  // Nothing else is set up: a command that read its config, key or journal first would fail otherwise.
  it.each([
    [settleCommand, ['--dryrun'], 'unknown option --dryrun (did you mean --dry-run?)'],
    [settleCommand, ['--config'], '--config needs a value'],
    [serveCommand, ['--confg', 'x.json'], 'unknown option --confg (did you mean --config?)'],
    [serveCommand, ['extra'], 'unexpected argument extra'],
    [chainCommand, ['--prot', '8545'], 'unknown option --prot (did you mean --port?)'],
    [chainCommand, ['--port', 'x'], '--port needs a port number, got "x"'],
    [demoCommand, ['--agent', '2'], 'unknown option --agent (did you mean --agents?)'],
    [demoCommand, ['--calls', 'many'], '--calls needs a whole number, got "many"'],
    [
      demoCommand,
      ['--calls', '-3'],
      '--calls needs a value (write --calls=VALUE for one starting with -)',
    ],
    [
      payCommand,
      ['http://x/', '--heder', 'a: b'],
      'unknown option --heder (did you mean --header?)',
    ],
    [payCommand, ['http://x/', 'http://y/'], 'unexpected argument http://y/'],
    [payCommand, [], 'pay needs a URL'],
    [channelsCommand, ['--jsn'], 'unknown option --jsn (did you mean --json?)'],
    [
      mcpCommand,
      ['--max-dposit', '1'],
      'unknown option --max-dposit (did you mean --max-deposit?)',
    ],
    [mcpCommand, ['--json'], 'unknown option --json'],
    [mcpCommand, ['stdio'], 'unexpected argument stdio'],
    [
      mcpCommand,
      ['--allow-origin', 'localhost:8080'],
      '--allow-origin needs an origin such as https://api.example.com, got "localhost:8080"',
    ],
    [channelsCommand, ['--method', 'GET'], 'unknown option --method'],
    [
      refundCommand,
      ['http://x', '--ammount', '5'],
      'unknown option --ammount (did you mean --amount?)',
    ],
    [
      refundCommand,
      ['http://x', '--amount', '1.5'],
      '--amount needs a whole number of token units, got "1.5"',
    ],
    [
      withdrawCommand,
      [CHANNEL, '--finalise'],
      'unknown option --finalise (did you mean --finalize?)',
    ],
    [
      fundCommand,
      ['--max-per-dya', '$1'],
      'unknown option --max-per-dya (did you mean --max-per-day?)',
    ],
    [fundCommand, ['--network', 'mainnet'], '--network must be one of base, base-sepolia, local'],
    [channelsCommand, ['--totally-different'], 'unknown option --totally-different'],
  ])('%o %j', async (command, args, message) => {
    expect(await refusal(command, args)).toBe(`tollgate_invalid_arguments: ${message}`)
  })

  it('exits with 2, one line and the usage of the command', async () => {
    const result = await run(['settle', '--dryrun', '--config', '/nonexistent/tollgate.json'])
    expect(result.code).toBe(2)
    const [first, blank, usage] = result.stderr.split('\n')
    expect(first).toBe('tollgate: unknown option --dryrun (did you mean --dry-run?)')
    expect(blank).toBe('')
    expect(usage).toMatch(/^usage: tollgate settle \[--config FILE\] \[--dry-run\] \[--json\]/)
    expect(result.stdout).toBe('')

    const payer = await run(['pay', 'http://127.0.0.1:1/', '--hedaer', 'a: b'])
    expect(payer.code).toBe(2)
    expect(payer.stderr).toMatch(
      /^tollgate: unknown option --hedaer \(did you mean --header\?\)\n\nusage: tollgate pay <url>/,
    )
    expect(payer.stderr).toContain('payer options:')
  })

  it('documents TOLLGATE_DEBUG in the help', async () => {
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('TOLLGATE_DEBUG=1')
  })
})
