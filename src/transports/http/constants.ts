/**
 * Defaults of the HTTP transport. Each is a named, frozen constant so that operators can see
 * what they get without options, and tests can refer to it.
 */

/**
 * `extra.minDeposit` of a route with no configured `minDeposit`: this many times its price, as
 * the stock x402 servers advertise (x402.md section 3: stock clients deposit what is advertised).
 */
export const DEFAULT_MIN_DEPOSIT_MULTIPLIER = 10n

/** One rate-limit rule: at most `max` requests per `timeWindowMs` milliseconds per key. */
export interface RateLimitRule {
  readonly max: number
  readonly timeWindowMs: number
}

/**
 * Paid calls (requests carrying a payment header) per client IP to priced routes: 5 000 per
 * 10 s. Bounds the signature checks one address can make the server do (the JS fallback checks
 * about 800/s). Behind a reverse proxy, set Fastify's `trustProxy` so that the client's address
 * is used, not the proxy's.
 */
export const DEFAULT_RATE_LIMIT_PER_IP: RateLimitRule = Object.freeze({
  max: 5000,
  timeWindowMs: 10_000,
})

/**
 * Unpaid requests (answered 402) per client IP to priced routes: 5 000 per 10 s, so a stock
 * client, which sends each call unpaid first, still makes 500 paid calls a second.
 */
export const DEFAULT_RATE_LIMIT_UNPAID_PER_IP: RateLimitRule = Object.freeze({
  max: 5000,
  timeWindowMs: 10_000,
})

/**
 * Accepted vouchers per payer (the channel's `payer`, over all its channels): 5 000 per 10 s.
 * Only accepted vouchers count, so a header naming someone else's address with a forged
 * signature cannot use up that payer's allowance.
 */
export const DEFAULT_RATE_LIMIT_PER_PAYER: RateLimitRule = Object.freeze({
  max: 5000,
  timeWindowMs: 10_000,
})

/** Calls one tick window covers on a route with `config.ticks: true` (PROTOCOL.md, ticks). */
export const DEFAULT_TICK_WINDOW = 100

/**
 * Ticks of a window that may be served ahead of a durable record (the crash bound of a window,
 * as `persistEvery` is a WebSocket session's): a crash charges a payer at most this many calls
 * beyond what was delivered, never more than the rest of its window.
 */
export const DEFAULT_TICK_PERSIST_EVERY = 64

/** A window with no tick for this long is ended (its channel is held meanwhile). */
export const DEFAULT_TICK_IDLE_MS = 30_000
