import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { type UpstreamFeed, upstreamFeed } from '../../src/server/upstreamFeed.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function upstream(port = 0): Promise<WebSocketServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port })
  await once(server, 'listening')
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resolve())
      }),
  )
  return server
}

function portOf(server: WebSocketServer): number {
  return (server.address() as AddressInfo).port
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return
    await sleep(10)
  }
  throw new Error(`timed out waiting for ${what}`)
}

function follow(feed: UpstreamFeed): unknown[] {
  const seen: unknown[] = []
  feed.source.on(feed.event, (message) => seen.push(message))
  return seen
}

describe('upstream feed', () => {
  it('re-emits JSON as values, other text as strings and binary as base64', async () => {
    const server = await upstream()
    const feed = upstreamFeed(`ws://127.0.0.1:${portOf(server)}`)
    cleanups.push(() => feed.close())
    const seen = follow(feed)
    expect(feed.connected).toBe(false)
    feed.start()
    const [socket] = await once(server, 'connection')
    await until(() => feed.connected, 'the connection')
    socket.send(JSON.stringify({ symbol: 'ETH-USD', priceCents: 350_000 }))
    socket.send('not json')
    socket.send(Buffer.from([1, 2, 3]), { binary: true })
    await until(() => seen.length === 3, 'three messages')
    expect(seen).toEqual([{ symbol: 'ETH-USD', priceCents: 350_000 }, 'not json', 'AQID'])
  })

  it('reconnects with backoff after the upstream goes away, and stops for good on close', async () => {
    const first = await upstream()
    const port = portOf(first)
    const downs: number[] = []
    const feed = upstreamFeed(`ws://127.0.0.1:${port}`, {
      onDown: (_url, _cause, retryInMs) => downs.push(retryInMs),
    })
    cleanups.push(() => feed.close())
    const seen = follow(feed)
    feed.start()
    await once(first, 'connection')
    await until(() => feed.connected, 'the connection')

    for (const client of first.clients) client.terminate()
    await new Promise<void>((resolve) => first.close(() => resolve()))
    await until(() => downs.length >= 2, 'two failed reconnections')
    expect(feed.connected).toBe(false)
    expect(downs[1]).toBeGreaterThan(downs[0] as number)

    const second = await upstream(port)
    const [socket] = await once(second, 'connection')
    await until(() => feed.connected, 'the reconnection')
    socket.send('"back"')
    await until(() => seen.length === 1, 'a message after the reconnection')
    expect(seen).toEqual(['back'])

    feed.close()
    await until(() => second.clients.size === 0, 'the close')
    await sleep(700)
    expect(second.clients.size).toBe(0)
  })
})
