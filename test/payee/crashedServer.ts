/**
 * Child process of payee.test.ts: a server that accepted a voucher (stored durably) and
 * charged the request before it, then dies without closing its store. Prints the channel id.
 */
import { LevelStore } from '../../src/store/index.js'
import { channelId } from '../../src/verify/index.js'
import { DOMAIN, makeConfig, sessionKey, sign } from '../ledger/fixtures.js'

const [location] = process.argv.slice(2)
if (location === undefined) throw new Error('usage: crashedServer.ts <location>')
const store = await LevelStore.open(location)
const config = makeConfig()
const id = channelId(config, DOMAIN)
await store.put({
  channelId: id,
  config,
  chargedCumulativeAmount: 1000n,
  signedMaxClaimable: 2000n,
  // A request priced 1000 was in flight when the process died.
  inFlightCumulativeAmount: 2000n,
  signature: await sign(sessionKey, id, 2000n),
  balance: 10_000n,
  totalClaimed: 0n,
  withdrawRequestedAt: 0,
  refundNonce: 0n,
  syncedAt: 1,
})
process.stdout.write(`stored ${id}\n`)
process.exit(0)
