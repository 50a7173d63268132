/**
 * One message of a live source as every connection shares it: the end of its `data` frame after
 * `seq` (`,"body":<json>,"charged":"<price>"}`, serialized once for all connections), or the error
 * that made it impossible to serialize.
 */
export type LiveMessage = string | Error

/** Slots a buffer starts with; it doubles up to its capacity when a connection falls behind. */
const INITIAL_SLOTS = 4

/**
 * The bounded buffer of a live (push) feed on one connection: latest messages win. It holds at
 * most `capacity` messages; pushing onto a full buffer drops the oldest, which is counted and
 * never sent nor charged. Messages are numbered in the order the source emitted them to this
 * connection (`seq`, from 1), sent at once or kept here: the buffer always holds the latest ones
 * in a row, so the oldest kept is `emitted - size + 1`. Memory per connection is bounded by
 * `capacity` slots, each a reference to a message shared by every connection.
 */
export class LiveBuffer {
  private slots: (LiveMessage | undefined)[] = []
  private head = 0
  private length = 0
  /** Messages emitted to this connection so far: sent, kept or dropped. */
  emitted = 0
  /** Messages dropped because the buffer was full. */
  dropped = 0

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.length
  }

  /** The `seq` of the oldest message kept (meaningful when `size > 0`). */
  get headSeq(): number {
    return this.emitted - this.length + 1
  }

  /** Counts a message that was sent at once, never kept (the buffer must be empty). */
  skip(): void {
    this.emitted++
  }

  /** Keeps a message, numbered `seq` = messages emitted so far; drops the oldest when full. */
  push(message: LiveMessage): void {
    this.emitted++
    if (this.length === this.capacity) {
      this.slots[this.head] = message
      this.head = (this.head + 1) % this.capacity
      this.dropped++
      return
    }
    if (this.length === this.slots.length) this.grow()
    this.slots[(this.head + this.length) % this.slots.length] = message
    this.length++
  }

  /** Takes the oldest message kept, if any (its `seq` is {@link headSeq} before the call). */
  shift(): LiveMessage | undefined {
    if (this.length === 0) return undefined
    const message = this.slots[this.head]
    this.slots[this.head] = undefined
    this.head = (this.head + 1) % this.slots.length
    this.length--
    return message
  }

  clear(): void {
    this.slots = []
    this.head = 0
    this.length = 0
  }

  /** Doubles the slots (at most to the capacity), oldest first. */
  private grow(): void {
    const size = Math.min(this.capacity, Math.max(INITIAL_SLOTS, this.slots.length * 2))
    const next: (LiveMessage | undefined)[] = new Array(size)
    for (let i = 0; i < this.length; i++) {
      next[i] = this.slots[(this.head + i) % this.slots.length]
    }
    this.slots = next
    this.head = 0
  }
}
