/**
 * The abuse benchmark's flood: hostile payment headers (forged vouchers, random signatures, tiny
 * deposits) sent as fast as the server answers, over a few keep-alive connections, from a child
 * process of its own (benchmarks/support/generatorProcess.ts). Bounded in time.
 */
import { performance } from 'node:perf_hooks'
import { serveGenerator } from './generatorProcess.js'

export interface FloodSpec {
  url: string
  /** `PAYMENT-SIGNATURE` values, sent round and round. */
  headers: string[]
  connections: number
  durationMs: number
}

export interface FloodResult {
  requests: number
  /** Answers by HTTP status. */
  statuses: Record<string, number>
  wallMs: number
}

const FLAG = 'TOLLGATE_FLOOD_CHILD'

serveGenerator<FloodSpec, FloodResult>(FLAG, async (spec, send) => {
  const statuses: Record<string, number> = {}
  let requests = 0
  let next = 0
  send({ kind: 'started' })
  const started = performance.now()
  const until = started + spec.durationMs
  await Promise.all(
    Array.from({ length: spec.connections }, async () => {
      while (performance.now() < until) {
        const header = spec.headers[next++ % spec.headers.length] as string
        try {
          const response = await fetch(spec.url, { headers: { 'payment-signature': header } })
          await response.arrayBuffer()
          statuses[response.status] = (statuses[response.status] ?? 0) + 1
        } catch {
          statuses.error = (statuses.error ?? 0) + 1
        }
        requests++
      }
    }),
  )
  const wallMs = performance.now() - started
  send({ kind: 'stopped' })
  return { requests, statuses, wallMs }
})

export { FLAG as FLOOD_FLAG }
