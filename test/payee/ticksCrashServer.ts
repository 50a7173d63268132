/**
 * A tollgate app with a tick route in its own process, for a test that SIGKILLs it: the HTTP
 * plugin over a payee on a real LevelStore in durable mode, channels read from a fake chain (every
 * channel holds 10 USDC). Route: `GET /tick` (price 10, windows of 200 calls). Prints
 * `listening <port>` once it serves.
 * Usage: ticksCrashServer.ts <store directory>
 */
import Fastify from 'fastify'
import { openPayee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { CHAIN_ID, IDENTITY } from '../ledger/fixtures.js'

const location = process.argv[2]
if (location === undefined) throw new Error('usage: ticksCrashServer.ts <location>')
const payee = await openPayee({
  chainId: CHAIN_ID,
  escrow: CANONICAL_ADDRESSES.escrow,
  identity: IDENTITY,
  store: await LevelStore.open(location),
  readChannel: async () => ({
    balance: 10_000_000n,
    totalClaimed: 0n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
  }),
})
const app = Fastify({ logger: false })
await app.register(tollgate, {
  payee,
  network: `eip155:${CHAIN_ID}`,
  asset: { address: IDENTITY.token, name: 'USDC', version: '2', decimals: 6 },
  payTo: IDENTITY.receiver,
  receiverAuthorizer: IDENTITY.receiverAuthorizer,
  withdrawDelay: IDENTITY.withdrawDelay,
  rateLimit: false,
})
app.get('/tick', { config: { price: '10', ticks: 200 } }, async () => ({ ok: true }))
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`)
