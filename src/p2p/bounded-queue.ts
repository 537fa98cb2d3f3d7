/**
 * FIFO of byte messages bounded by count and total bytes. When a push would
 * exceed either bound, the oldest messages are dropped to make room (the
 * newest message matters most for a live protocol); a single message larger
 * than the byte bound is refused.
 */
export class BoundedQueue {
  readonly maxMessages: number
  readonly maxBytes: number
  #items: Uint8Array[] = []
  #head = 0
  #bytes = 0

  constructor(opts: { maxMessages: number; maxBytes: number }) {
    if (!(opts.maxMessages >= 1) || !(opts.maxBytes >= 1)) throw new RangeError('queue bounds must be >= 1')
    this.maxMessages = opts.maxMessages
    this.maxBytes = opts.maxBytes
  }

  /** Messages queued. */
  get length(): number {
    return this.#items.length - this.#head
  }

  /** Payload bytes queued. */
  get bytes(): number {
    return this.#bytes
  }

  /**
   * Appends `msg`, dropping the oldest messages as needed. Returns how many
   * were dropped, or -1 when `msg` alone exceeds the byte bound (nothing changes).
   */
  push(msg: Uint8Array): number {
    if (msg.length > this.maxBytes) return -1
    let dropped = 0
    while (this.length >= this.maxMessages || this.#bytes + msg.length > this.maxBytes) {
      this.shift()
      dropped++
    }
    this.#items.push(msg)
    this.#bytes += msg.length
    return dropped
  }

  /** The oldest message, left in place. */
  peek(): Uint8Array | undefined {
    return this.#items[this.#head]
  }

  /** Removes and returns the oldest message. */
  shift(): Uint8Array | undefined {
    if (this.length === 0) return undefined
    const m = this.#items[this.#head] as Uint8Array
    this.#items[this.#head] = EMPTY
    this.#head++
    this.#bytes -= m.length
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return m
  }

  /** Empties the queue; returns how many messages were discarded. */
  clear(): number {
    const n = this.length
    this.#items = []
    this.#head = 0
    this.#bytes = 0
    return n
  }
}

const EMPTY = new Uint8Array(0)
