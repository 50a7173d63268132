/** One message of a live source, numbered in the order the source emitted it to this connection. */
export interface LiveMessage {
  readonly seq: number
  readonly body: unknown
}

/**
 * The bounded buffer of a live (push) feed on one connection: latest messages win. It holds at
 * most `capacity` messages; pushing onto a full buffer drops the oldest, which is counted and
 * never sent nor charged. Memory per connection is bounded by `capacity` messages.
 */
export class LiveBuffer {
  private readonly slots: (LiveMessage | undefined)[]
  private head = 0
  private length = 0
  private emitted = 0
  /** Messages dropped because the buffer was full. */
  dropped = 0

  constructor(readonly capacity: number) {
    this.slots = new Array(capacity)
  }

  get size(): number {
    return this.length
  }

  /** Adds a message, numbered `seq` = messages emitted so far (1-based); drops the oldest when full. */
  push(body: unknown): void {
    const message = { seq: ++this.emitted, body }
    if (this.length === this.capacity) {
      this.slots[this.head] = message
      this.head = (this.head + 1) % this.capacity
      this.dropped++
      return
    }
    this.slots[(this.head + this.length) % this.capacity] = message
    this.length++
  }

  /** Takes the oldest message kept, if any. */
  shift(): LiveMessage | undefined {
    if (this.length === 0) return undefined
    const message = this.slots[this.head]
    this.slots[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.length--
    return message
  }

  clear(): void {
    this.slots.fill(undefined)
    this.head = 0
    this.length = 0
  }
}
