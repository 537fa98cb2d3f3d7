import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { RadError, dropBytes, errorMessage, headBytes, joinBytes } from '../util/index.js'
import { P2PError } from './errors.js'
import { FrameDecoder } from './frame.js'
import { PENALTY } from './scores.js'
import { scopedSignal } from './signals.js'
import { abortError, chunksOf, sendFrame, waitDrain } from './stream-io.js'
import type { RequestHandlerOpts, ServeContext } from './reqresp.js'
import { DRAIN_TIMEOUT_MS, FRAME_TIMEOUT_MS } from './channel.js'

/*
 * Pipelined request/response on one long-lived stream per peer and protocol,
 * for bulk transfers where a fresh stream per request costs more than the
 * transfer (measured: about 2 ms per request on loopback against about 1 ms
 * for a 1 MiB body). Frames (frame.ts):
 *   request   u32 id || request bytes
 *   response  u32 id || u8 status (0 ok, 1 error) || body (ok: the answer; error: ASCII code)
 * The responder runs at most `concurrency` handlers at once and answers in
 * completion order; the requester matches answers by id. Either side may
 * close the stream; pending requests then fail with P2P_STREAM_ERROR and
 * the next request opens a new stream.
 */

/** Requests a responder queues beyond its concurrency before it treats the peer as flooding. */
export const PIPE_MAX_QUEUED = 256
/**
 * Bytes of answers built but not yet taken by the requester, per pipe (at
 * least twice the largest answer): above it no further request starts until
 * the requester reads, so a requester that stops reading holds the server to
 * this, plus the answers of the handlers already running.
 */
export const PIPE_MAX_UNSENT_BYTES = 8 * 1024 * 1024

/**
 * What all the pipes of one peer on one protocol share: the handlers
 * running and the bytes of answers not yet sent. The bounds (`concurrency`
 * handlers, PIPE_MAX_UNSENT_BYTES) hold per peer, so a peer that opens many
 * streams (up to the protocol's inbound stream limit) gains nothing over one.
 */
export class PipeBudget {
  /** Handlers running, over all the peer's pipes. */
  active = 0
  /** Bytes of answers handed over and not yet sent whole, over all the peer's pipes. */
  unsent = 0
  readonly #waiting = new Set<() => void>()

  /** Registers a pipe's pump, called when another pipe frees part of the budget; returns its removal. */
  join(pump: () => void): () => void {
    this.#waiting.add(pump)
    return () => this.#waiting.delete(pump)
  }

  /** Wakes every pipe of the peer: part of the budget was freed. */
  freed(): void {
    for (const p of [...this.#waiting]) p()
  }

  /** Pipes using the budget. */
  get pipes(): number {
    return this.#waiting.size
  }
}
const ERROR_CODE_RE = /^[A-Za-z0-9_.:-]{1,64}$/

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, false)
  return b
}

function readU32(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, false)
}

/** Serves pipelined requests on an inbound stream until it closes. Never throws. */
export function servePipe(
  stream: Stream,
  from: Uint8Array,
  h: RequestHandlerOpts & { concurrency: number },
  ctx: ServeContext & {
    /** How long a requester may leave an answer untaken, and a request frame unfinished (tests shorten them). */
    drainTimeoutMs?: number
    frameTimeoutMs?: number
    /** Shared with the peer's other pipes on this protocol (a pipe alone gets its own). */
    budget?: PipeBudget
  },
): Promise<void> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder(h.maxRequestBytes + 4)
    const maxUnsent = Math.max(PIPE_MAX_UNSENT_BYTES, 2 * h.maxResponseBytes)
    const drainTimeoutMs = ctx.drainTimeoutMs ?? DRAIN_TIMEOUT_MS
    const frameTimeoutMs = ctx.frameTimeoutMs ?? FRAME_TIMEOUT_MS
    const budget = ctx.budget ?? new PipeBudget()
    let frameTimer: ReturnType<typeof setTimeout> | undefined
    const queue: { id: number; req: Uint8Array }[] = []
    const life = new AbortController()
    /** Handlers of this pipe running. */
    let active = 0
    let closed = false
    let writing: Promise<void> = Promise.resolve()
    /** Waiting for nothing to be queued or running, or for the pipe to close. */
    const idleWaiters: (() => void)[] = []
    const checkIdle = (): void => {
      if (!closed && (active > 0 || queue.length > 0)) return
      for (const w of idleWaiters.splice(0)) w()
    }
    const stop = (err?: Error): void => {
      if (closed) return
      closed = true
      if (frameTimer !== undefined) clearTimeout(frameTimer)
      leave()
      checkIdle()
      life.abort(new P2PError('P2P_STREAM_ERROR', 'pipe closed'))
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onRemoteEnd)
      ctx.signal.removeEventListener('abort', onStop)
      if (err !== undefined) stream.abort(err)
      resolve()
    }
    const respond = (id: number, status: number, body: Uint8Array): void => {
      budget.unsent += body.length
      writing = writing
        .then(async () => {
          if (closed) return
          if (sendFrame(stream, [u32(id), Uint8Array.of(status), body])) return
          // A requester that stops reading gets a deadline, then loses the stream and points.
          const wait = scopedSignal(drainTimeoutMs, life.signal)
          try {
            await waitDrain(stream, wait.signal)
          } catch (err) {
            if (!life.signal.aborted && wait.signal.aborted) {
              ctx.onViolation(PENALTY.FRAME_TIMEOUT, 'pipe answers left unread')
              throw new P2PError('P2P_TIMEOUT', 'the requester did not read its answers in time', { penalize: true })
            }
            throw err
          } finally {
            wait.dispose()
          }
        })
        .catch((err: unknown) => {
          ctx.log.debug('pipe response not sent', { error: errorMessage(err) })
          stop(err instanceof Error ? err : undefined)
        })
        .finally(() => {
          // Sent, or never to be: either way it no longer counts against the peer.
          budget.unsent -= body.length
          budget.freed()
        })
    }
    const pump = (): void => {
      while (!closed && budget.active < h.concurrency && queue.length > 0 && budget.unsent < maxUnsent) {
        const { id, req } = queue.shift() as { id: number; req: Uint8Array }
        active++
        budget.active++
        const deadline = scopedSignal(h.timeoutMs, life.signal, ctx.signal)
        void h
          .handler(from, req, deadline.signal)
          .then(
            (res) => {
              if (res.length > h.maxResponseBytes) {
                ctx.log.error('pipe handler returned more than maxResponseBytes', { bytes: res.length, max: h.maxResponseBytes })
                respond(id, 1, ascii('P2P_TOO_LARGE'))
              } else respond(id, 0, res)
            },
            (err: unknown) => {
              if (deadline.signal.aborted) respond(id, 1, ascii(abortError(deadline.signal, 'request').code))
              else if (err instanceof RadError && ERROR_CODE_RE.test(err.code)) {
                if (err.penalize) ctx.onViolation(PENALTY.BAD_REQUEST, `request refused: ${err.code}`)
                respond(id, 1, ascii(err.code))
              } else {
                ctx.log.error('pipe handler failed', { error: errorMessage(err) })
                respond(id, 1, ascii('INTERNAL'))
              }
            },
          )
          .finally(() => {
            deadline.dispose()
            active--
            budget.active--
            budget.freed()
            checkIdle()
          })
      }
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        for (const chunk of chunksOf(evt.data)) {
          for (const f of decoder.push(chunk)) {
            if (f.length < 4) throw new P2PError('P2P_MALFORMED', 'pipe request without an id', { penalize: true })
            queue.push({ id: readU32(f), req: f.subarray(4) })
          }
        }
        if (queue.length > PIPE_MAX_QUEUED) throw new P2PError('P2P_MALFORMED', 'too many pipelined requests', { penalize: true })
        // A request frame begun must be finished in time, as on the other protocols.
        if (!decoder.inFrame) {
          if (frameTimer !== undefined) clearTimeout(frameTimer)
          frameTimer = undefined
        } else if (frameTimer === undefined) {
          frameTimer = setTimeout(() => {
            frameTimer = undefined
            ctx.onViolation(PENALTY.FRAME_TIMEOUT, 'pipe request frame not completed in time')
            stop(new P2PError('P2P_TIMEOUT', 'request frame not completed in time', { penalize: true }))
          }, frameTimeoutMs)
        }
      } catch (err) {
        const e = err instanceof P2PError ? err : new P2PError('P2P_MALFORMED', 'undecodable pipe frame', { cause: err, penalize: true })
        ctx.onViolation(e.code === 'P2P_TOO_LARGE' ? PENALTY.FRAME_TOO_LARGE : PENALTY.MALFORMED, `bad pipe frame: ${e.code}`)
        stop(e)
        return
      }
      pump()
    }
    const onRemoteEnd = (): void => {
      // The requester is done: finish what is queued and running (each handler
      // within its deadline), then close; the stream closing or the node
      // stopping ends the wait too.
      void (async () => {
        await new Promise<void>((resolve) => {
          idleWaiters.push(resolve)
          checkIdle()
        })
        await writing
        if (!closed) {
          await stream.close().catch(() => undefined)
          stop()
        }
      })()
    }
    const leave = budget.join(pump)
    const onClose = (): void => stop()
    const onStop = (): void => stop(new P2PError('P2P_ABORTED', 'node stopping'))
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onRemoteEnd)
    if (ctx.signal.aborted) onStop()
    else ctx.signal.addEventListener('abort', onStop)
  })
}

interface Pending {
  resolve(b: Uint8Array[]): void
  reject(e: Error): void
}

/** The requester's side of one pipe: one stream, opened on first use and again after it closes. */
export class PipeClient {
  readonly #open: (signal: AbortSignal) => Promise<Stream>
  readonly #maxResponseBytes: number
  readonly #pending = new Map<number, Pending>()
  #stream: Stream | undefined
  #opening: Promise<Stream> | undefined
  #nextId = 1

  constructor(open: (signal: AbortSignal) => Promise<Stream>, opts: { maxResponseBytes: number }) {
    this.#open = open
    this.#maxResponseBytes = opts.maxResponseBytes
  }

  /** Requests in flight. */
  get pending(): number {
    return this.#pending.size
  }

  async #ensure(signal: AbortSignal): Promise<Stream> {
    if (this.#stream !== undefined) return this.#stream
    this.#opening ??= this.#open(signal)
      .then((s) => {
        this.#attach(s)
        return s
      })
      .finally(() => {
        this.#opening = undefined
      })
    return this.#opening
  }

  #attach(stream: Stream): void {
    this.#stream = stream
    const decoder = new FrameDecoder(this.#maxResponseBytes + 5)
    const fail = (err: P2PError): void => {
      if (this.#stream !== stream) return
      this.#stream = undefined
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      for (const p of this.#pending.values()) p.reject(err)
      this.#pending.clear()
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        for (const chunk of chunksOf(evt.data)) {
          // Responses are taken as views of the received buffers: a chunk body is hashed and
          // written from them, never assembled into one copy.
          for (const f of decoder.pushParts(chunk)) {
            const head = headBytes(f, 5)
            if (head.length < 5) throw new P2PError('P2P_MALFORMED', 'pipe response too short', { penalize: true })
            const id = readU32(head)
            const p = this.#pending.get(id)
            if (p === undefined) continue // answered after the requester gave up
            this.#pending.delete(id)
            const status = head[4]
            const body = dropBytes(f, 5)
            if (status === 0) p.resolve(body)
            else if (status === 1) {
              const code = Buffer.from(joinBytes(body)).toString('latin1')
              const remoteCode = ERROR_CODE_RE.test(code) ? code : 'INVALID'
              p.reject(new P2PError('P2P_REMOTE_ERROR', `peer answered with error ${remoteCode}`, { remoteCode }))
            } else {
              // This request is off the pending list already: fail it here, the others in fail().
              const err = new P2PError('P2P_MALFORMED', `unknown pipe status ${String(status)}`, { penalize: true })
              p.reject(err)
              throw err
            }
          }
        }
      } catch (err) {
        const e = err instanceof P2PError ? err : new P2PError('P2P_MALFORMED', 'undecodable pipe frame', { cause: err, penalize: true })
        fail(e)
        stream.abort(e)
      }
    }
    const onClose = (): void => fail(new P2PError('P2P_STREAM_ERROR', 'pipe closed'))
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
  }

  /**
   * Sends `req` and resolves with the answer (a view of the received buffer
   * when it arrived in one piece, else a copy joining the pieces);
   * P2P_REMOTE_ERROR, P2P_STREAM_ERROR, P2P_MALFORMED, P2P_TIMEOUT, P2P_ABORTED
   * as for request().
   */
  async request(req: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    return joinBytes(await this.requestParts(req, signal))
  }

  /** As request(), with the answer as consecutive views of the received buffers (no copy joins them). */
  async requestParts(req: Uint8Array, signal: AbortSignal): Promise<Uint8Array[]> {
    const stream = await this.#ensure(signal)
    const id = this.#nextId
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1
    return new Promise<Uint8Array[]>((resolve, reject) => {
      const onAbort = (): void => {
        this.#pending.delete(id)
        reject(abortError(signal, 'request'))
      }
      this.#pending.set(id, {
        resolve: (b) => {
          signal.removeEventListener('abort', onAbort)
          resolve(b)
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      })
      if (signal.aborted) {
        onAbort()
        return
      }
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        if (!sendFrame(stream, [u32(id), req])) void waitDrain(stream, signal).catch(() => undefined)
      } catch (err) {
        this.#pending.delete(id)
        signal.removeEventListener('abort', onAbort)
        reject(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'pipe not writable'))
      }
    })
  }

  /** Closes the stream (pending requests fail). */
  close(): void {
    const s = this.#stream
    this.#stream = undefined
    for (const p of this.#pending.values()) p.reject(new P2PError('P2P_STREAM_ERROR', 'pipe closed'))
    this.#pending.clear()
    s?.abort(new P2PError('P2P_ABORTED', 'pipe closed'))
  }
}

function ascii(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.slice(0, 64), 'latin1'))
}
