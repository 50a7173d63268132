import { request } from 'node:http'
import { request as requestTls } from 'node:https'

/** How long a health check waits for an upstream to answer. */
export const UPSTREAM_PROBE_TIMEOUT_MS = 2_000
/** How long one probe's answer is reused, so that a busy health check does not flood the upstream. */
export const UPSTREAM_PROBE_CACHE_MS = 1_000

/** What a health check found of an HTTP upstream. */
export interface UpstreamHealth {
  readonly upstream: string
  /** Whether it answered HTTP at all (any status: a 404 at its root is still an upstream). */
  readonly reachable: boolean
  /** Why not, when it did not: the connection error's code and message, or a timeout. */
  readonly error?: string
}

/** Probes an HTTP upstream for `/health`: a `HEAD` of its base URL, reused for a second. */
export function upstreamProbe(upstream: string): { check(): Promise<UpstreamHealth> } {
  let last: { at: number; result: Promise<UpstreamHealth> } | undefined
  return {
    check() {
      const now = Date.now()
      if (!last || now - last.at >= UPSTREAM_PROBE_CACHE_MS) {
        last = { at: now, result: probe(upstream) }
      }
      return last.result
    },
  }
}

function probe(upstream: string): Promise<UpstreamHealth> {
  return new Promise((resolve) => {
    const url = new URL(upstream)
    const send = url.protocol === 'https:' ? requestTls : request
    const req = send(url, { method: 'HEAD', timeout: UPSTREAM_PROBE_TIMEOUT_MS }, (res) => {
      res.resume()
      resolve({ upstream, reachable: true })
    })
    req.on('timeout', () =>
      req.destroy(new Error(`no answer within ${UPSTREAM_PROBE_TIMEOUT_MS} ms`)),
    )
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({
        upstream,
        reachable: false,
        error: err.code ? `${err.code}: ${err.message}` : err.message,
      }),
    )
    req.end()
  })
}
