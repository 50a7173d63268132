#!/usr/bin/env node
import { chainCommand } from './chain.js'
import { demoCommand } from './demo.js'
import {
  channelsCommand,
  fundCommand,
  PAYER_USAGE,
  payCommand,
  refundCommand,
  withdrawCommand,
} from './payer.js'
import { serveCommand } from './serve.js'
import { settleCommand } from './settle.js'

const USAGE = `usage: tollgate <command> [options]

commands:
  demo                      the whole flow on a local chain in under a minute: paid calls, a billed
                            feed, a withdrawal, claims and settlement, and a summary read from the chain
  chain [--port N]          start a local chain (default port 8545) with tollgate's contracts, print the addresses
  serve [--config FILE]     run the paid gateway from a JSON config (default tollgate.json);
                            the key comes from TOLLGATE_PRIVATE_KEY or TOLLGATE_KEY_FILE
  settle [--config FILE] [--dry-run] [--json]
                            claim and settle revenue once (for cron); through the running
                            server's admin listener when it holds the data directory
${PAYER_USAGE}`

const commands: Record<string, (args: readonly string[]) => Promise<void>> = {
  demo: demoCommand,
  chain: chainCommand,
  serve: serveCommand,
  settle: settleCommand,
  pay: payCommand,
  channels: channelsCommand,
  refund: refundCommand,
  withdraw: withdrawCommand,
  fund: fundCommand,
}

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
  await command(args)
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`tollgate: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
