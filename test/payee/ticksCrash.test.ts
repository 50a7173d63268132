/**
 * The crash bound of a tick window (src/transports/http/PROTOCOL.md, section 6): a server process
 * is SIGKILLed in the middle of a window; the store it leaves is reopened and what the payer is
 * charged is compared with what was delivered. Bound: `DEFAULT_TICK_PERSIST_EVERY` (64) calls,
 * and never the unused rest of the window.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openPayee } from '../../src/payee/index.js'
import { CANONICAL_ADDRESSES, decodePaymentRequired } from '../../src/protocol/index.js'
import {
  encodeTickHeader,
  encodeTickWindowHeader,
  parseTickReceipt,
  tickCommitmentDigest,
  tickDomainSeparator,
  tickLink,
} from '../../src/protocol/tickWire.js'
import { LevelStore } from '../../src/store/index.js'
import { DEFAULT_TICK_PERSIST_EVERY } from '../../src/transports/http/constants.js'
import { bytesToHex, channelId } from '../../src/verify/index.js'
import { CHAIN_ID, DOMAIN, IDENTITY, makeConfig, sessionKey } from '../ledger/fixtures.js'
import { voucherHeader } from '../transports/http/fixtures.js'
import { startCrashServer } from './crashServerProcess.js'

const PRICE = 10n
const TICKS = 200
const SERVED = 150

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const startServer = (dir: string) => startCrashServer(dir, cleanups)

describe('a tick window after SIGKILL', () => {
  it('charges at most persistEvery calls beyond what was delivered, never the rest of the window', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-ticks-crash-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const server = await startServer(dir)
    const config = makeConfig()
    const id = channelId(config, DOMAIN)
    const unpaid = await fetch(`${server.base}/tick`)
    const required = decodePaymentRequired(unpaid.headers.get('payment-required') ?? '')
    if (!required.ok || !required.value.accepts[0]) throw new Error('no requirements')
    const accepted = required.value.accepts[0]
    expect(accepted.extra?.tickWindow).toBe(TICKS)

    const chain = new Array<Uint8Array>(TICKS)
    chain[TICKS - 1] = new Uint8Array(randomBytes(32))
    for (let i = TICKS - 1; i > 0; i--) chain[i - 1] = tickLink(chain[i] as Uint8Array)
    const ceiling = BigInt(TICKS) * PRICE
    const root = bytesToHex(chain[0] as Uint8Array)
    const digest = tickCommitmentDigest(tickDomainSeparator(CHAIN_ID, CANONICAL_ADDRESSES.escrow), {
      channelId: id,
      maxClaimableAmount: ceiling,
      price: PRICE,
      ticks: TICKS,
      root,
    })
    if (!digest) throw new Error('no digest')
    const opened = await fetch(`${server.base}/tick`, {
      headers: {
        'payment-signature': await voucherHeader(accepted, { config, id }, ceiling),
        'tollgate-tick-window': encodeTickWindowHeader({
          ticks: TICKS,
          root,
          signature: await sessionKey.sign({ hash: bytesToHex(digest) }),
        }),
      },
    })
    expect(opened.status).toBe(200)
    for (let i = 1; i < SERVED; i++) {
      const response = await fetch(`${server.base}/tick`, {
        headers: { 'tollgate-tick': encodeTickHeader(id, i, chain[i] as Uint8Array) },
      })
      expect(response.status).toBe(200)
      const receipt = parseTickReceipt(response.headers.get('tollgate-tick-receipt'))
      expect(receipt.ok && receipt.value.chargedCumulativeAmount).toBe(BigInt(i + 1) * PRICE)
    }
    // The reserve written behind the last ticks gets its fsync.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const exited = new Promise((resolve) => server.child.once('exit', resolve))
    server.child.kill('SIGKILL')
    await exited

    const payee = await openPayee({
      chainId: CHAIN_ID,
      escrow: CANONICAL_ADDRESSES.escrow,
      identity: IDENTITY,
      store: await LevelStore.open(dir),
      readChannel: async () => {
        throw new Error('no chain reads after a restart')
      },
    })
    cleanups.push(() => payee.close())
    expect(payee.recovery.fromCrash).toBe(true)
    const record = payee.ledger.get(id)
    const charged = record?.chargedCumulativeAmount ?? 0n
    const delivered = BigInt(SERVED) * PRICE
    expect(charged).toBeGreaterThanOrEqual(delivered)
    expect(charged - delivered).toBeLessThanOrEqual(BigInt(DEFAULT_TICK_PERSIST_EVERY) * PRICE)
    expect(charged).toBeLessThan(ceiling)
    // The window's voucher is the one kept: it covers every call served.
    expect(record?.signedMaxClaimable).toBe(ceiling)
    expect(payee.ledger.isHeld(id)).toBe(false)
  }, 30_000)
})
