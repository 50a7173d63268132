/**
 * Child process of crash.test.ts: a settler over a LevelDB store that runs once and prints each
 * log line as JSON, so that the parent can SIGKILL it at a chosen point (after a claim is sent).
 * Usage: settlerChild.ts <dataDir> <json {rpcUrl, chainId, contracts, identity}>; key in SETTLER_KEY.
 */
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { evmChain } from '../../src/chain/evmChain.js'
import { LevelStore } from '../../src/store/index.js'
import { EscrowHarness } from '../helpers/escrow.js'
import { openRig } from './rig.js'

const [dataDir, json] = process.argv.slice(2)
if (dataDir === undefined || json === undefined)
  throw new Error('usage: settlerChild.ts <dir> <json>')
const params = JSON.parse(json)
const h = new EscrowHarness(
  params.rpcUrl,
  evmChain(params.rpcUrl, params.chainId),
  params.contracts.escrow,
  params.contracts.usdc,
  params.contracts.erc3009Collector,
)
const print = (level: string) => (obj: object, msg: string) =>
  process.stdout.write(`${JSON.stringify({ level, msg, ...obj })}\n`)
const store = await LevelStore.open(dataDir)
const { settler } = await openRig({
  h,
  store,
  identity: params.identity,
  sender: privateKeyToAccount(process.env.SETTLER_KEY as Hex),
  settler: { log: { info: print('info'), warn: print('warn'), error: print('error') } },
})
const report = await settler.run({ sweep: true })
process.stdout.write(`${JSON.stringify({ msg: 'done', ok: report.ok })}\n`)
await store.close()
