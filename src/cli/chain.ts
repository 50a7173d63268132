import { startDevChain } from '../chain/devChain.js'

/** The usual JSON-RPC port of a development node. */
const DEFAULT_PORT = 8545

/**
 * `tollgate chain`: starts a local anvil with tollgate's escrow, the ERC-3009 collector and
 * Multicall3 at their canonical addresses and a test USDC, prints what a client needs, and runs
 * until interrupted.
 */
export async function chainCommand(args: readonly string[]): Promise<void> {
  const portArg = args.indexOf('--port')
  const port = portArg >= 0 ? Number(args[portArg + 1]) : DEFAULT_PORT
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new Error(`--port needs a port number, got "${args[portArg + 1]}"`)
  }
  const dev = await startDevChain({ port })
  const lines = [
    `Local chain eip155:${dev.anvil.chainId} listening on ${dev.rpcUrl}`,
    '',
    `  escrow (x402BatchSettlement)   ${dev.contracts.escrow}`,
    `  ERC-3009 deposit collector     ${dev.contracts.erc3009Collector}`,
    `  Multicall3                     ${dev.contracts.multicall3}`,
    `  test USDC (USDC / 2, 6 dec.)   ${dev.contracts.usdc}`,
    '',
    'Funded development accounts (1 000 000 test USDC and 1 000 000 ETH each; keys are public, development only):',
    ...dev.accounts.map((a, i) => `  ${i}  ${a.address}  ${dev.privateKeys[i]}`),
    '',
    'Press Ctrl-C to stop.',
  ]
  console.log(lines.join('\n'))
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await dev.stop()
}
