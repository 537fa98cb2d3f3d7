import type { ServerResponse } from 'node:http'
import { errorMessage, type Logger } from '../util/index.js'
import type { NodeEvent } from './views.js'
import { stringify } from './response.js'
import { SSE_KEEPALIVE, encodeSseEvent } from './sse.js'

/** Interval of the `: keepalive` comment on event streams. */
export const SSE_KEEPALIVE_MS = 15_000
/** Events an event stream may hold back while its socket is full before it is closed. */
export const SSE_MAX_QUEUED = 1_000
/** How long an event stream may stay over SSE_MAX_QUEUED with no drain before it is closed. */
export const SSE_STALL_MS = 5_000
/** Hard bound on the bytes an event stream holds back: past it the stream is closed at once. */
export const SSE_MAX_QUEUED_BYTES = 16 * 1024 * 1024

/**
 * One server-sent-events response. Writes respect backpressure: while the
 * socket is full (res.write returned false), events wait in a queue. A stream
 * whose queue holds more than SSE_MAX_QUEUED events and sees no drain for
 * `sseStallMs`, or holds more than SSE_MAX_QUEUED_BYTES, is cut; the client
 * reconnects and re-reads what it missed.
 *
 * Why the grace: Node corks a response's socket for the rest of the tick, so
 * res.write returns false after ~16 KiB of one synchronous burst (a block of
 * many transactions) even for a client that keeps up; such a burst drains on
 * the next turns and must not cut the stream.
 */
export class EventStream {
  // queue[head..] waits to be written; the written prefix is dropped in bulk (shift() per item is O(n)).
  private queue: string[] = []
  private head = 0
  private queuedBytes = 0
  private blocked = false
  private closed = false
  private unsubscribe: (() => void) | undefined
  private readonly keepalive: NodeJS.Timeout
  private stall: NodeJS.Timeout | undefined
  private readonly stallMs: number
  private readonly done: Promise<void>

  constructor(
    private readonly res: ServerResponse,
    private readonly logger: Logger,
    timing: { sseKeepaliveMs: number; sseStallMs: number },
    private readonly onClose: () => void,
  ) {
    this.stallMs = timing.sseStallMs
    this.done = new Promise((resolve) => res.once('close', resolve))
    res.on('drain', () => {
      this.blocked = false
      clearTimeout(this.stall)
      this.stall = undefined
      this.pump()
    })
    res.once('close', () => void this.close())
    this.keepalive = setInterval(() => {
      // Only when idle: anything queued already shows the connection is alive.
      if (!this.blocked && this.waiting() === 0) this.enqueue(SSE_KEEPALIVE)
    }, timing.sseKeepaliveMs)
  }

  /** Hands the stream the unsubscribe function of its subscription (called at once if already closed). */
  attach(unsubscribe: () => void): void {
    if (this.closed) unsubscribe()
    else this.unsubscribe = unsubscribe
  }

  /** Called from the backend's emitter: must never throw into it. */
  push(ev: NodeEvent): void {
    if (this.closed) return
    let data: string
    try {
      data = stringify(ev.data)
    } catch (err) {
      this.logger.error('api event not serializable', { type: ev.type, error: errorMessage(err) })
      return
    }
    this.enqueue(encodeSseEvent(ev.type, data))
  }

  /**
   * Stops the stream: `end` finishes the response, `cut` destroys it (stalled
   * consumer), `none` leaves the response alone. Resolves once the response is closed.
   */
  close(how: 'end' | 'cut' | 'none' = 'end'): Promise<void> {
    if (!this.closed) {
      this.closed = true
      clearInterval(this.keepalive)
      clearTimeout(this.stall)
      this.queue = []
      this.head = 0
      this.queuedBytes = 0
      try {
        this.unsubscribe?.()
      } catch (err) {
        this.logger.error('api unsubscribe failed', { error: errorMessage(err) })
      }
      this.unsubscribe = undefined
      this.onClose()
      if (how === 'cut') this.res.destroy()
      else if (how === 'end' && !this.res.writableEnded && !this.res.destroyed) this.res.end()
    }
    return this.done
  }

  private enqueue(chunk: string): void {
    this.queue.push(chunk)
    this.queuedBytes += chunk.length
    if (!this.blocked) {
      this.pump()
      return
    }
    if (this.queuedBytes > SSE_MAX_QUEUED_BYTES) {
      this.cut()
    } else if (this.waiting() > SSE_MAX_QUEUED && this.stall === undefined) {
      this.stall = setTimeout(() => {
        this.stall = undefined
        if (this.blocked && this.waiting() > SSE_MAX_QUEUED) this.cut()
      }, this.stallMs)
    }
  }

  private cut(): void {
    this.logger.warn('api event stream too slow, closing it', { queued: this.waiting(), bytes: this.queuedBytes })
    void this.close('cut')
  }

  private waiting(): number {
    return this.queue.length - this.head
  }

  private pump(): void {
    while (!this.closed && !this.blocked && this.head < this.queue.length) {
      const chunk = this.queue[this.head] as string
      this.head++
      this.queuedBytes -= chunk.length
      if (!this.res.write(chunk)) this.blocked = true
    }
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }
}
