/**
 * A tollgate app in its own process, for tests that SIGKILL it: the HTTP and WebSocket plugins over
 * a payee on a real LevelStore in durable mode, channels read from a fake chain (every channel
 * holds 10 USDC). Routes: `POST /work` (price 11 000, charges 30), `GET /hang` (price 11 000,
 * never answers), `GET /tick` (price 10, tick windows of 200 calls), and the feed `/ticks` (10 a
 * message, credit window 500, 150 messages, then quiet). Prints `listening <port>` once it serves, and `hang` when `/hang` is being served.
 * Usage: crashServer.ts <store directory>
 */
import Fastify from 'fastify'
import { openPayee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES } from '../../src/protocol/index.js'
import { LevelStore } from '../../src/store/index.js'
import { tollgate } from '../../src/transports/http/index.js'
import { tollgateWs } from '../../src/transports/ws/index.js'
import { CHAIN_ID, IDENTITY } from '../ledger/fixtures.js'

const location = process.argv[2]
if (location === undefined) throw new Error('usage: crashServer.ts <location>')
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
const terms = {
  payee,
  network: `eip155:${CHAIN_ID}` as const,
  asset: { address: IDENTITY.token, name: 'USDC', version: '2', decimals: 6 },
  payTo: IDENTITY.receiver,
  receiverAuthorizer: IDENTITY.receiverAuthorizer,
  withdrawDelay: IDENTITY.withdrawDelay,
}
const app = Fastify({ logger: false })
await app.register(tollgate, { ...terms, rateLimit: false })
await app.register(tollgateWs, terms)
app.post('/work', { config: { price: '11000' } }, async (_request, reply) => {
  reply.charge(30n)
  return { done: true }
})
app.get('/hang', { config: { price: '11000' } }, async () => {
  process.stdout.write('hang\n')
  await new Promise(() => {})
})
app.get('/tick', { config: { price: '10', ticks: 200 } }, async () => ({ ok: true }))
app.tollgateFeed('/ticks', {
  price: '10',
  creditWindow: 500,
  source: async function* ticks() {
    for (let i = 0; i < 150; i++) yield { i }
    await new Promise(() => {})
  },
})
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`)
