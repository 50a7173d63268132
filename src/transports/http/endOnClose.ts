import type { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'

/** What a request holds until its charge is committed: ended with nothing charged if never committed. */
export interface Unsent {
  /** Ends the hold with nothing charged; a no-op once it was committed or ended. Never throws. */
  endUnsent(): void
}

const kUnsent = Symbol('tollgate.unsent')

type Holding = ServerResponse & { [kUnsent]?: Unsent | undefined }

/**
 * The safety net of every held request, in one listener function shared by all (no closure per
 * request): when the response closes, because it was sent, hijacked and ended, or the client
 * left, whatever the request still holds is ended with nothing charged. A reply that went out
 * normally was committed in `onSend` before, and this does nothing.
 */
export function endOnClose(reply: FastifyReply, held: Unsent): void {
  const raw = reply.raw as Holding
  raw[kUnsent] = held
  raw.on('close', onClose)
}

function onClose(this: Holding): void {
  const held = this[kUnsent]
  this[kUnsent] = undefined
  held?.endUnsent()
}
