/**
 * Serializes the sends of one account: each takes the account's pending nonce from the node and
 * hands the signed transaction over before the next one starts, so concurrent senders (deposits,
 * refunds, claims) never pick the same nonce, and a failed send leaves no gap behind it. Waiting
 * sends go in priority order, then in order of arrival: a claim never waits behind deposits that
 * payers asked for.
 */
export interface SendLock {
  run<T>(send: () => Promise<T>, priority?: SendPriority): Promise<T>
}

/**
 * Who goes first among waiting sends: a claim racing a withdrawal's deadline, then other claims
 * and settles, then transactions payers asked for (deposits, refunds).
 */
export const SEND_PRIORITY = Object.freeze({ withdrawal: 2, claim: 1, payer: 0 })
export type SendPriority = (typeof SEND_PRIORITY)[keyof typeof SEND_PRIORITY]

/** Sends retried when the node says another process sending for the account took the nonce. */
export const MAX_NONCE_RETRIES = 3

interface Waiting {
  readonly priority: number
  readonly start: () => void
}

export function createSendLock(): SendLock {
  const waiting: Waiting[] = []
  let busy = false
  const next = () => {
    let best = -1
    for (let i = 0; i < waiting.length; i++) {
      if (best < 0 || (waiting[i] as Waiting).priority > (waiting[best] as Waiting).priority)
        best = i
    }
    if (best < 0) {
      busy = false
      return
    }
    const [chosen] = waiting.splice(best, 1)
    chosen?.start()
  }
  return {
    run(send, priority = SEND_PRIORITY.payer) {
      return new Promise((resolve, reject) => {
        const start = () => {
          busy = true
          Promise.resolve().then(send).then(resolve, reject).finally(next)
        }
        if (busy) waiting.push({ priority, start })
        else start()
      })
    },
  }
}
