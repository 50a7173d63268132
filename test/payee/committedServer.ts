/**
 * Child process of payee.test.ts: a server that served three requests on one channel at their
 * full price and one on another at less than its price (dynamic pricing), committed them all, then
 * dies without closing its store. Prints both channel ids.
 */
import { openPayee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/constants.js'
import { LevelStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, payment } from '../ledger/fixtures.js'

const [location] = process.argv.slice(2)
if (location === undefined) throw new Error('usage: committedServer.ts <location>')
const store = await LevelStore.open(location)
const payee = await openPayee({
  chainId: CHAIN_ID,
  escrow: CANONICAL_ADDRESSES.escrow,
  identity: IDENTITY,
  store,
  readChannel: async () => ({
    balance: 10_000n,
    totalClaimed: 0n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
  }),
})
const serve = async (config: ReturnType<typeof makeConfig>, ceiling: bigint, actual: bigint) => {
  const decision = await payee.decide(await payment(config, channelId(config, DOMAIN), ceiling), {
    kind: 'exact',
    price: 1000n,
  })
  if (!decision.ok) throw new Error(decision.message)
  const committed = payee.commit(decision.hold, actual)
  if (!committed.ok) throw new Error(committed.message)
}
const full = makeConfig()
for (let k = 1n; k <= 3n; k++) await serve(full, 1000n * k, 1000n)
const lower = makeConfig()
await serve(lower, 1000n, 400n)
// What was written behind (the lower charge's commit) reaches the disk; nothing is closed.
await store.flush()
process.stdout.write(`${channelId(full, DOMAIN)} ${channelId(lower, DOMAIN)}\n`)
process.exit(0)
