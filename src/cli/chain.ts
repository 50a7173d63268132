import { startDevChain } from '../chain/devChain.js'
import { parseCommandArgs, stringOf, usage } from './args.js'
import { aborted, interruptible } from './interruptible.js'

/** The usual JSON-RPC port of a development node. */
const DEFAULT_PORT = 8545

/** The usage line of `tollgate chain`. */
export const CHAIN_USAGE = `  chain [--port N]          start a local chain (default port ${DEFAULT_PORT}) with tollgate's contracts, print the addresses
`

/**
 * `tollgate chain [--port N]`: starts a local anvil with tollgate's escrow, the ERC-3009
 * collector and Multicall3 at their canonical addresses and a test USDC, prints what a client
 * needs, and runs until SIGINT or SIGTERM, which stop anvil (exit code 0).
 *
 * @returns The exit code.
 */
export async function chainCommand(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(argv, { port: { type: 'string' } })
  const portArg = stringOf(args, 'port')
  const port = portArg === undefined ? DEFAULT_PORT : Number(portArg)
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
    usage(`--port needs a port number, got "${portArg}"`)
  }
  return interruptible(
    async (signal) => {
      const dev = await startDevChain({ port })
      try {
        const lines = [
          `Local chain eip155:${dev.anvil.chainId} listening on ${dev.rpcUrl}`,
          '',
          `  escrow (x402BatchSettlement)   ${dev.contracts.escrow}`,
          `  ERC-3009 deposit collector     ${dev.contracts.erc3009Collector}`,
          `  Multicall3                     ${dev.contracts.multicall3}`,
          `  test USDC (USDC / 2, 6 dec.)   ${dev.contracts.usdc}`,
          `  mock price feed (8 dec.)       ${dev.contracts.priceFeed}`,
          '',
          'Funded development accounts (1 000 000 test USDC and 1 000 000 ETH each; keys are public, development only):',
          ...dev.accounts.map((a, i) => `  ${i}  ${a.address}  ${dev.privateKeys[i]}`),
          '',
          'Press Ctrl-C to stop.',
        ]
        console.log(lines.join('\n'))
        await aborted(signal)
      } finally {
        await dev.stop()
      }
      return 0
    },
    { signalIsStop: true },
  )
}
