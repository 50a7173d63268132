/**
 * A JSON-RPC proxy in front of the dev node that misbehaves on request: per method, it can fail
 * a call with HTTP 500 before forwarding it, after forwarding it (the node did the work, the
 * caller never hears), or scale the gas of an `eth_estimateGas` or `eth_fillTransaction` answer
 * down (the transaction then runs out of gas on chain and reverts).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Fault = 'failBefore' | 'failAfter' | { readonly scaleEstimate: number }

export interface FaultyRpc {
  readonly url: string
  /** Queues faults for the next calls of `method`, in order. */
  inject(method: string, ...faults: Fault[]): void
  /** Calls seen per method. */
  readonly calls: Map<string, number>
  close(): Promise<void>
}

export async function startFaultyRpc(upstream: string): Promise<FaultyRpc> {
  const queued = new Map<string, Fault[]>()
  const calls = new Map<string, number>()
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString()
      const request = JSON.parse(body) as { id: number; method: string }
      const method = Array.isArray(request) ? 'batch' : request.method
      calls.set(method, (calls.get(method) ?? 0) + 1)
      const fault = queued.get(method)?.shift()
      if (fault === 'failBefore') {
        res.writeHead(500).end('injected failure')
        return
      }
      const answer = await fetch(upstream, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })
      let text = await answer.text()
      if (fault === 'failAfter') {
        res.writeHead(500).end('injected failure after forwarding')
        return
      }
      if (fault && typeof fault === 'object') {
        const scale = (hex: string) =>
          `0x${Math.floor(Number(BigInt(hex)) * fault.scaleEstimate).toString(16)}`
        const parsed = JSON.parse(text) as { result?: string | { tx?: { gas?: string } } }
        const { result } = parsed
        if (typeof result === 'string') parsed.result = scale(result)
        else if (result?.tx?.gas) result.tx.gas = scale(result.tx.gas)
        text = JSON.stringify(parsed)
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(text)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    inject(method, ...faults) {
      queued.set(method, [...(queued.get(method) ?? []), ...faults])
    },
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}
