#!/usr/bin/env node
import { TollgateError } from '../errors/index.js'
import { CHAIN_USAGE, chainCommand } from './chain.js'
import { DEMO_USAGE, demoCommand } from './demo.js'
import { DEBUG_ENV, describeError } from './describeError.js'
import { MCP_USAGE, mcpCommand } from './mcp.js'
import {
  CHANNELS_USAGE,
  channelsCommand,
  FUND_USAGE,
  fundCommand,
  PAY_USAGE,
  PAYER_OPTIONS_USAGE,
  payCommand,
  REFUND_USAGE,
  refundCommand,
  WITHDRAW_USAGE,
  withdrawCommand,
} from './payer.js'
import { SERVE_USAGE, serveCommand } from './serve.js'
import { SETTLE_USAGE, settleCommand } from './settle.js'
import {
  SERVER_CHANNELS_USAGE,
  STATUS_USAGE,
  serverChannelsCommand,
  statusCommand,
} from './status.js'

/** A command: its usage lines and its run, which resolves with the exit code. */
interface Command {
  readonly usage: string
  run(args: readonly string[]): Promise<number>
}

const payer = (usage: string, run: Command['run']): Command => ({
  usage: `${usage}${PAYER_OPTIONS_USAGE}`,
  run,
})

const commands: Record<string, Command> = {
  demo: { usage: DEMO_USAGE, run: demoCommand },
  chain: { usage: CHAIN_USAGE, run: chainCommand },
  serve: { usage: SERVE_USAGE, run: serveCommand },
  settle: { usage: SETTLE_USAGE, run: settleCommand },
  status: { usage: STATUS_USAGE, run: statusCommand },
  pay: payer(PAY_USAGE, payCommand),
  channels: {
    usage: `${CHANNELS_USAGE}${PAYER_OPTIONS_USAGE}${SERVER_CHANNELS_USAGE}`,
    // `--server`: the provider's channels, from the running server; otherwise the payer's.
    run: (args) =>
      args.includes('--server') ? serverChannelsCommand(args) : channelsCommand(args),
  },
  refund: payer(REFUND_USAGE, refundCommand),
  withdraw: payer(WITHDRAW_USAGE, withdrawCommand),
  fund: payer(FUND_USAGE, fundCommand),
  mcp: payer(MCP_USAGE, mcpCommand),
}

const USAGE = `usage: tollgate <command> [options]

commands:
${DEMO_USAGE}${CHAIN_USAGE}${SERVE_USAGE}${SETTLE_USAGE}${STATUS_USAGE}${SERVER_CHANNELS_USAGE}${PAY_USAGE}${CHANNELS_USAGE}${REFUND_USAGE}${WITHDRAW_USAGE}${FUND_USAGE}${MCP_USAGE}${PAYER_OPTIONS_USAGE}
An unknown option exits with 2 and the command's usage; a failure prints one line starting
with its error code and exits with 1. SIGINT or SIGTERM stops a command cleanly, its store
closed and anvil stopped: serve, chain and mcp exit with 0, the others with 130 or 143.
${DEBUG_ENV}=1 prints the whole error with its causes (viem's request details included).
`

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE)
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (!command) {
    process.stderr.write(`tollgate: unknown command "${name}"\n\n${USAGE}`)
    return 2
  }
  try {
    return await command.run(args)
  } catch (err) {
    if (err instanceof TollgateError && err.code === 'tollgate_invalid_arguments') {
      process.stderr.write(
        `tollgate: ${err.details}\n\nusage: tollgate ${command.usage.trimStart()}`,
      )
      return 2
    }
    throw err
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`tollgate: ${describeError(err, process.env[DEBUG_ENV] === '1')}`)
    process.exitCode = 1
  },
)
