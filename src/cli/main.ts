#!/usr/bin/env node
import { chainCommand } from './chain.js'

const USAGE = `usage: tollgate <command> [options]

commands:
  chain [--port N]   (default 8545) start a local chain with tollgate's contracts deployed, print the addresses
`

const commands: Record<string, (args: readonly string[]) => Promise<void>> = {
  chain: chainCommand,
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
