import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { errorMessage, type Logger } from '../util/index.js'
import { scopedSignal } from './signals.js'
import { P2PError } from './errors.js'
import { BoundedQueue } from './bounded-queue.js'
import { FrameDecoder } from './frame.js'
import { PENALTY } from './scores.js'
import { chunksOf, sendFrame, waitDrain } from './stream-io.js'

/** Per-peer, per-channel outbound queue bound: messages. */
export const CHANNEL_QUEUE_MAX_MESSAGES = 1_000
/** Per-peer, per-channel outbound queue bound: bytes. */
export const CHANNEL_QUEUE_MAX_BYTES = 64 * 1024 * 1024
/** A frame begun by a peer must be complete within this time. */
export const FRAME_TIMEOUT_MS = 10_000
/** Longest wait for a peer to take more data before its stream is dropped. */
export const DRAIN_TIMEOUT_MS = 30_000
/** Longest wait for a new stream to be opened and its protocol agreed. */
export const OPEN_STREAM_TIMEOUT_MS = 10_000
// Backoff of reopening a channel stream after a failed open.
const REOPEN_BASE_MS = 500
const REOPEN_MAX_MS = 30_000

/** Reports a protocol violation by the remote peer of one stream. */
export type ViolationReporter = (points: number, reason: string) => void

/**
 * The sending half of one channel towards one peer: a bounded queue drained
 * into one long-lived outbound stream, opened lazily and reopened after a
 * failure, writing frames in order and waiting for 'drain' on backpressure.
 * Delivery is best effort: a message in flight when a stream breaks may be
 * lost, and a full queue drops its oldest messages.
 */
export class ChannelSender {
  readonly #open: (signal: AbortSignal) => Promise<Stream>
  readonly #log: Logger
  readonly #signal: AbortSignal
  readonly #onViolation: ViolationReporter
  readonly #queue: BoundedQueue
  #stream: Stream | undefined
  #pumping: Promise<void> | undefined
  #retry: Uint8Array | undefined
  #closed = false
  #openFailures = 0
  #reopenAt = 0
  #dropped = 0

  constructor(opts: {
    open: (signal: AbortSignal) => Promise<Stream>
    log: Logger
    signal: AbortSignal
    onViolation: ViolationReporter
    maxMessages?: number
    maxBytes?: number
  }) {
    this.#open = opts.open
    this.#log = opts.log
    this.#signal = opts.signal
    this.#onViolation = opts.onViolation
    this.#queue = new BoundedQueue({ maxMessages: opts.maxMessages ?? CHANNEL_QUEUE_MAX_MESSAGES, maxBytes: opts.maxBytes ?? CHANNEL_QUEUE_MAX_BYTES })
  }

  /** Messages waiting to be written. */
  get queued(): number {
    return this.#queue.length + (this.#retry === undefined ? 0 : 1)
  }

  /** Messages dropped so far (queue full, failed stream). */
  get dropped(): number {
    return this.#dropped
  }

  /** Queues `data`; false when the sender is closed, backing off after a failed open, or `data` exceeds the byte bound. */
  enqueue(data: Uint8Array): boolean {
    if (this.#closed) return false
    if (this.#stream === undefined && Date.now() < this.#reopenAt) {
      this.#dropped++
      this.#log.debug('channel message dropped: stream recently failed to open')
      return false
    }
    const dropped = this.#queue.push(data)
    if (dropped < 0) return false
    if (dropped > 0) {
      this.#dropped += dropped
      this.#log.debug('channel queue full: oldest messages dropped', { dropped, queued: this.#queue.length })
    }
    this.#kick()
    return true
  }

  /**
   * Stops the sender. With `graceMs` > 0, queued messages get that long to be
   * written and the stream is closed gracefully; otherwise it is aborted.
   */
  async close(graceMs = 0): Promise<void> {
    if (this.#closed) return
    if (graceMs > 0 && this.#pumping !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        this.#pumping,
        new Promise<void>((r) => {
          timer = setTimeout(r, graceMs)
        }),
      ])
      clearTimeout(timer)
    }
    this.#closed = true
    this.#retry = undefined
    this.#queue.clear()
    const s = this.#stream
    this.#stream = undefined
    if (s === undefined) return
    if (graceMs > 0 && s.status === 'open') {
      try {
        await s.close({ signal: AbortSignal.timeout(graceMs) })
        return
      } catch {
        // fall through to abort
      }
    }
    s.abort(new P2PError('P2P_ABORTED', 'channel sender closed'))
  }

  #kick(): void {
    if (this.#pumping !== undefined) return
    this.#pumping = this.#pump()
      .catch((err: unknown) => this.#log.error('channel sender failed', { error: errorMessage(err) }))
      .finally(() => {
        this.#pumping = undefined
        // A message queued while the pump was finishing starts a new one.
        if (!this.#closed && !this.#signal.aborted && this.queued > 0 && (this.#stream !== undefined || Date.now() >= this.#reopenAt)) this.#kick()
      })
  }

  async #pump(): Promise<void> {
    while (!this.#closed && !this.#signal.aborted) {
      const msg = this.#retry ?? this.#queue.shift()
      if (msg === undefined) return
      const isRetry = this.#retry !== undefined
      this.#retry = undefined
      let stream: Stream
      try {
        stream = await this.#ensureStream()
      } catch (err) {
        const n = 1 + this.#queue.clear()
        this.#dropped += n
        this.#openFailures++
        const delay = Math.min(REOPEN_MAX_MS, REOPEN_BASE_MS * 2 ** Math.min(this.#openFailures - 1, 16))
        this.#reopenAt = Date.now() + delay
        this.#log.debug('channel stream open failed: queued messages dropped', { dropped: n, retryInMs: delay, error: errorMessage(err) })
        return
      }
      let ready: boolean
      try {
        ready = sendFrame(stream, msg)
      } catch (err) {
        // Refused before any byte was buffered: tried once more on a new stream.
        this.#dropStream(stream, err)
        if (!isRetry) this.#retry = msg
        else this.#lost(err)
        continue
      }
      if (ready) continue
      const drain = scopedSignal(DRAIN_TIMEOUT_MS, this.#signal)
      try {
        await waitDrain(stream, drain.signal)
      } catch (err) {
        this.#dropStream(stream, err)
        this.#lost(err)
      } finally {
        drain.dispose()
      }
    }
  }

  async #ensureStream(): Promise<Stream> {
    const cur = this.#stream
    if (cur !== undefined && cur.status === 'open' && cur.writeStatus === 'writable') return cur
    if (cur !== undefined) this.#dropStream(cur, undefined)
    const open = scopedSignal(OPEN_STREAM_TIMEOUT_MS, this.#signal)
    let s: Stream
    try {
      s = await this.#open(open.signal)
    } finally {
      open.dispose()
    }
    if (this.#closed) {
      s.abort(new P2PError('P2P_ABORTED', 'channel sender closed'))
      throw new P2PError('P2P_ABORTED', 'channel sender closed')
    }
    const onMessage = (): void => {
      // The receiving side never writes on a channel stream.
      this.#onViolation(PENALTY.MALFORMED, 'data on the reverse direction of a channel stream')
      this.#dropStream(s, new P2PError('P2P_MALFORMED', 'unexpected data', { penalize: true }))
    }
    s.addEventListener('message', onMessage)
    s.addEventListener(
      'close',
      () => {
        s.removeEventListener('message', onMessage)
        if (this.#stream === s) this.#stream = undefined
      },
      { once: true },
    )
    this.#openFailures = 0
    this.#reopenAt = 0
    this.#stream = s
    return s
  }

  #lost(err: unknown): void {
    this.#dropped++
    this.#log.debug('channel message lost with its stream', { error: errorMessage(err) })
  }

  #dropStream(s: Stream, err: unknown): void {
    if (this.#stream === s) this.#stream = undefined
    if (s.status === 'open' || s.status === 'closing') s.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'channel stream dropped'))
  }
}

/**
 * Reads frames from one inbound channel stream and hands each payload to
 * `onMessage`, synchronously and in order. Oversized or malformed framing,
 * and a frame left unfinished for `frameTimeoutMs`, penalize the sender and
 * close the stream. Exceptions of `onMessage` are logged, never propagated.
 */
export function receiveChannel(
  stream: Stream,
  opts: {
    maxMessageBytes: number
    onMessage: (data: Uint8Array) => void
    onViolation: ViolationReporter
    log: Logger
    frameTimeoutMs?: number
  },
): void {
  const frameTimeoutMs = opts.frameTimeoutMs ?? FRAME_TIMEOUT_MS
  const decoder = new FrameDecoder(opts.maxMessageBytes)
  let timer: ReturnType<typeof setTimeout> | undefined
  let done = false

  const stopTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  const finish = (): void => {
    done = true
    stopTimer()
    stream.removeEventListener('message', onMessage)
  }
  const fail = (points: number, reason: string, err: P2PError): void => {
    if (done) return
    finish()
    opts.onViolation(points, reason)
    stream.abort(err)
  }
  const deliver = (data: Uint8Array): void => {
    try {
      opts.onMessage(data)
    } catch (err) {
      opts.log.error('channel message handler threw', { error: errorMessage(err) })
    }
  }
  const onMessage = (evt: StreamMessageEvent): void => {
    if (done) return
    try {
      let completed = 0
      for (const chunk of chunksOf(evt.data)) {
        for (const frame of decoder.push(chunk)) {
          completed++
          deliver(frame)
          if (done) return
        }
      }
      if (!decoder.inFrame) stopTimer()
      else if (completed > 0 || timer === undefined) {
        stopTimer()
        timer = setTimeout(() => {
          fail(PENALTY.FRAME_TIMEOUT, 'channel frame not completed in time', new P2PError('P2P_TIMEOUT', 'frame not completed in time'))
        }, frameTimeoutMs)
      }
    } catch (err) {
      if (err instanceof P2PError && err.code === 'P2P_TOO_LARGE') fail(PENALTY.FRAME_TOO_LARGE, 'channel frame too large', err)
      else
        fail(
          PENALTY.MALFORMED,
          'malformed channel framing',
          err instanceof P2PError ? err : new P2PError('P2P_MALFORMED', 'malformed framing', { cause: err, penalize: true }),
        )
    }
  }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('remoteCloseWrite', () => {
    // Let data delivered in the same tick reach onMessage before judging.
    setTimeout(() => {
      if (done) return
      if (decoder.inFrame) {
        fail(PENALTY.MALFORMED, 'channel stream ended inside a frame', new P2PError('P2P_MALFORMED', 'truncated frame', { penalize: true }))
        return
      }
      finish()
      stream.close().catch(() => stream.abort(new P2PError('P2P_STREAM_ERROR', 'close failed')))
    }, 0)
  })
  stream.addEventListener('close', finish, { once: true })
}
