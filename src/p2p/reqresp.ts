import type { Limiter } from './limiter.js'
import type { Stream } from '@libp2p/interface'
import { RadError, errorMessage, type Logger } from '../util/index.js'
import { scopedSignal } from './signals.js'
import { P2PError } from './errors.js'
import { PENALTY } from './scores.js'
import { abortError, readOneFrame, waitClosed, waitRemoteEnd, writeFrame } from './stream-io.js'
import type { ViolationReporter } from './channel.js'

/**
 * Request/response exchange on a fresh stream per request:
 *   requester -> frame(request)
 *   responder -> frame(status byte || body)   status 0 = ok, 1 = error (body = ASCII code)
 *   requester closes its writable end: the acknowledgement that the whole
 *             response arrived; only then does the responder close its end.
 * The responder's close therefore never races a transfer still in flight
 * (closing and stopping at once was seen to truncate responses).
 */

/** Response status: the body is the handler's answer. */
export const STATUS_OK = 0
/** Response status: the body is an error code. */
export const STATUS_ERROR = 1
/** Longest error code carried in an error response. */
export const MAX_ERROR_CODE_CHARS = 64
/** How long a responder waits for the requester's acknowledgement after the response. */
export const ACK_TIMEOUT_MS = 10_000

const ERROR_CODE_RE = /^[A-Za-z0-9_.:-]{1,64}$/

/**
 * Requests of one peer on one protocol handled at once, by default: from the
 * handler's start until its answer is read (or the stream is gone). Further
 * requests of that peer wait their turn within their deadline, so a peer that
 * opens many streams and reads no answer holds at most this many answers.
 */
export const INBOUND_PER_PEER = 4

/** A request handler and its bounds. */
export interface RequestHandlerOpts {
  /** Largest request accepted; a longer one penalizes the requester. */
  maxRequestBytes: number
  /** Largest response this handler may return (the requester's default bound too). */
  maxResponseBytes: number
  /** Deadline of the whole exchange on the responder: reading, handling and writing. */
  timeoutMs: number
  /** Requests of one peer handled at once (INBOUND_PER_PEER by default); the answers they hold are bounded by it. */
  perPeer?: number
  /**
   * Answers `req` from peer `from`. Throw a RadError to answer with its code;
   * one with `penalize` also penalizes the requester. `signal` aborts at the
   * deadline or when the node stops.
   */
  handler(from: Uint8Array, req: Uint8Array, signal: AbortSignal): Promise<Uint8Array>
}

/** What a server of inbound streams is given besides its handler: the node's stop signal, how to penalize the peer, the log. */
export interface ServeContext {
  readonly signal: AbortSignal
  readonly onViolation: ViolationReporter
  readonly log: Logger
}

/** Serves one inbound request stream. Never throws. */
export async function serveRequest(stream: Stream, from: Uint8Array, h: RequestHandlerOpts, ctx: ServeContext & { slots?: Limiter }): Promise<void> {
  // The handler stops when the requester goes away, not only at the deadline.
  const gone = new AbortController()
  const onGone = (): void => gone.abort(new P2PError('P2P_STREAM_ERROR', 'requester closed the stream'))
  stream.addEventListener('close', onGone, { once: true })
  const deadline = scopedSignal(h.timeoutMs, ctx.signal, gone.signal)
  try {
    await serve(stream, from, h, ctx, deadline.signal)
  } finally {
    deadline.dispose()
    stream.removeEventListener('close', onGone)
  }
}

async function serve(stream: Stream, from: Uint8Array, h: RequestHandlerOpts, ctx: ServeContext & { slots?: Limiter }, signal: AbortSignal): Promise<void> {
  let req: Uint8Array
  try {
    req = await readOneFrame(stream, h.maxRequestBytes, signal)
  } catch (err) {
    if (err instanceof P2PError && err.penalize) {
      ctx.onViolation(err.code === 'P2P_TOO_LARGE' ? PENALTY.FRAME_TOO_LARGE : PENALTY.MALFORMED, `bad request frame: ${err.code}`)
    }
    ctx.log.debug('request not read', { error: errorMessage(err) })
    stream.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'request not read'))
    return
  }

  // One of the peer's slots on this protocol, held until the answer is read or the stream is gone.
  const slots = ctx.slots
  if (slots !== undefined) {
    try {
      await slots.acquire(signal)
    } catch (err) {
      ctx.log.debug('request not served: the peer has too many', { error: errorMessage(err) })
      stream.abort(err instanceof Error ? err : new P2PError('P2P_REFUSED', 'too many requests from this peer'))
      return
    }
  }
  try {
    await answer(stream, from, req, h, ctx, signal)
  } finally {
    slots?.release()
  }
}

async function answer(stream: Stream, from: Uint8Array, req: Uint8Array, h: RequestHandlerOpts, ctx: ServeContext, signal: AbortSignal): Promise<void> {
  let status = STATUS_OK
  let body: Uint8Array
  try {
    const res: unknown = await h.handler(from, req, signal)
    if (!(res instanceof Uint8Array)) throw new TypeError('request handler must return bytes')
    if (res.length > h.maxResponseBytes) {
      ctx.log.error('request handler returned more than maxResponseBytes', { bytes: res.length, max: h.maxResponseBytes })
      status = STATUS_ERROR
      body = ascii('P2P_TOO_LARGE')
    } else body = res
  } catch (err) {
    status = STATUS_ERROR
    if (signal.aborted) body = ascii(abortError(signal, 'request').code)
    else if (err instanceof RadError && ERROR_CODE_RE.test(err.code)) {
      body = ascii(err.code)
      if (err.penalize) ctx.onViolation(PENALTY.BAD_REQUEST, `request refused: ${err.code}`)
      ctx.log.debug('request refused', { code: err.code })
    } else {
      body = ascii('INTERNAL')
      ctx.log.error('request handler failed', { error: errorMessage(err) })
    }
  }

  try {
    await writeFrame(stream, [Uint8Array.of(status), body], signal)
    // Wait for the requester's acknowledgement, with its own grace period: a
    // slow handler must not leave the response without time to arrive.
    const ack = scopedSignal(ACK_TIMEOUT_MS, ctx.signal)
    try {
      await waitRemoteEnd(stream, ack.signal)
      await stream.close({ signal: ack.signal })
    } finally {
      ack.dispose()
    }
  } catch (err) {
    if (err instanceof P2PError && err.penalize) ctx.onViolation(PENALTY.MALFORMED, `bad request stream: ${err.code}`)
    ctx.log.debug('response not completed', { error: errorMessage(err) })
    stream.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'response not completed'))
  }
}

/**
 * Sends `req` on a fresh `stream` and returns the response body. Errors:
 * P2P_TOO_LARGE (an answer above `maxResponseBytes`; `penalize` only with
 * `penalizeOversize`, when the bound is the protocol's for this request
 * rather than the caller's own), P2P_MALFORMED (penalize),
 * P2P_REMOTE_ERROR (with `remoteCode`; an error code up to
 * MAX_ERROR_CODE_CHARS always fits, whatever the bound), P2P_STREAM_ERROR,
 * P2P_TIMEOUT, P2P_ABORTED. Always leaves the stream closing or aborted.
 */
export async function exchange(
  stream: Stream,
  req: Uint8Array,
  maxResponseBytes: number,
  signal: AbortSignal,
  opts: { penalizeOversize?: boolean } = {},
): Promise<Uint8Array> {
  const tooLarge = (cause?: unknown): P2PError =>
    new P2PError('P2P_TOO_LARGE', `response exceeds ${maxResponseBytes} bytes`, { cause, penalize: opts.penalizeOversize === true })
  let frame: Uint8Array
  try {
    await writeFrame(stream, req, signal)
    // Status byte, then the answer or an error code.
    frame = await readOneFrame(stream, Math.max(maxResponseBytes, MAX_ERROR_CODE_CHARS) + 1, signal)
  } catch (err) {
    stream.abort(err instanceof Error ? err : new P2PError('P2P_STREAM_ERROR', 'request failed'))
    if (err instanceof P2PError && err.code === 'P2P_TOO_LARGE') throw tooLarge(err)
    throw err
  }
  // Acknowledge: the whole response is here. Then let the responder close.
  void stream
    .close()
    .then(
      () => waitClosed(stream, ACK_TIMEOUT_MS),
      () => false,
    )
    .then((closed) => {
      if (!closed) stream.abort(new P2PError('P2P_TIMEOUT', 'responder did not close'))
    })
  if (frame.length === 0) throw new P2PError('P2P_MALFORMED', 'empty response frame', { penalize: true })
  const status = frame[0]
  const body = frame.subarray(1)
  if (status === STATUS_OK) {
    if (body.length > maxResponseBytes) throw tooLarge()
    return body
  }
  if (status === STATUS_ERROR) {
    const code = Buffer.from(body).toString('latin1')
    const remoteCode = ERROR_CODE_RE.test(code) ? code : 'INVALID'
    throw new P2PError('P2P_REMOTE_ERROR', `peer answered with error ${remoteCode}`, { remoteCode })
  }
  throw new P2PError('P2P_MALFORMED', `unknown response status ${String(status)}`, { penalize: true })
}

function ascii(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.slice(0, MAX_ERROR_CODE_CHARS), 'latin1'))
}
