/**
 * Serializes the sends of one account: each takes the account's pending nonce from the node and
 * hands the signed transaction over before the next one starts, so concurrent senders (deposits,
 * refunds, claims) never pick the same nonce, and a failed send leaves no gap behind it.
 */
export interface SendLock {
  run<T>(send: () => Promise<T>): Promise<T>
}

/** Sends retried when the node says another process sending for the account took the nonce. */
export const MAX_NONCE_RETRIES = 3

export function createSendLock(): SendLock {
  let tail: Promise<unknown> = Promise.resolve()
  return {
    run(send) {
      const result = tail.then(send)
      tail = result.catch(() => {})
      return result
    },
  }
}
