import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { P2PError } from './errors.js'
import { FrameDecoder, encodeFrameHeader } from './frame.js'

/** What a stream's 'message' event carries: one buffer, or a list of them. */
export type StreamData = StreamMessageEvent['data']

/** The buffers of a 'message' event payload, without copying. */
export function chunksOf(data: StreamData): Iterable<Uint8Array> {
  return data instanceof Uint8Array ? [data] : data
}

/** A P2PError for an aborted `signal`: P2P_TIMEOUT when a deadline fired, P2P_ABORTED otherwise. */
export function abortError(signal: AbortSignal, what: string): P2PError {
  const reason: unknown = signal.reason
  if (reason instanceof P2PError) return reason
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError'
  return timedOut ? new P2PError('P2P_TIMEOUT', `${what} timed out`, { cause: reason }) : new P2PError('P2P_ABORTED', `${what} aborted`, { cause: reason })
}

/**
 * Waits until `stream` may be written again after `send()` returned false: the
 * 'drain' event (not `onDrain()`, which can resolve while the buffer is still
 * full). Rejects when the stream closes or `signal` aborts first.
 */
export function waitDrain(stream: Stream, signal: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => {
      done()
      resolve()
    }
    const onClose = (): void => {
      done()
      reject(new P2PError('P2P_STREAM_ERROR', 'stream closed while waiting to send'))
    }
    const onAbort = (): void => {
      done()
      reject(abortError(signal, 'send'))
    }
    if (signal.aborted) {
      onAbort()
      return
    }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

/** Parts of a frame at most this long are copied together with the prefix into one send. */
const COALESCE_BYTES = 16 * 1024

/**
 * Hands one frame (length prefix, then the payload given as one buffer or as
 * consecutive parts) to `stream` without waiting. Returns false when the
 * caller must wait for 'drain' (see waitDrain) before sending more. Throws
 * P2P_STREAM_ERROR when the stream is not writable.
 */
export function sendFrame(stream: Stream, payload: Uint8Array | Uint8Array[]): boolean {
  const parts = payload instanceof Uint8Array ? [payload] : payload
  let length = 0
  for (const p of parts) length += p.length
  let ok = true
  try {
    // Every send() becomes its own muxer frame, encrypted message and socket
    // write (and a window update from the receiver), so the prefix and the
    // small parts are joined into one buffer; large parts are sent as they
    // are, not copied.
    let small: Uint8Array[] = [encodeFrameHeader(length)]
    const flush = (): void => {
      if (small.length > 0) ok = stream.send(small.length === 1 ? (small[0] as Uint8Array) : Buffer.concat(small))
      small = []
    }
    for (const p of parts) {
      if (p.length === 0) continue
      if (p.length <= COALESCE_BYTES) {
        small.push(p)
        continue
      }
      flush()
      ok = stream.send(p)
    }
    flush()
  } catch (err) {
    throw new P2PError('P2P_STREAM_ERROR', 'stream is not writable', { cause: err })
  }
  return ok && !stream.writableNeedsDrain
}

/** sendFrame, then waits for 'drain' when the stream reports a full buffer, so a fast writer never piles data up in memory. */
export async function writeFrame(stream: Stream, payload: Uint8Array | Uint8Array[], signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw abortError(signal, 'send')
  if (!sendFrame(stream, payload)) await waitDrain(stream, signal)
}

/**
 * Reads exactly one frame of at most `maxBytes` from `stream`. Rejects with
 * P2P_TOO_LARGE (penalize) for a longer prefix, P2P_MALFORMED (penalize) for
 * bytes after the frame or for an end inside the frame, P2P_STREAM_ERROR when
 * the stream ends or resets before the frame, and P2P_TIMEOUT / P2P_ABORTED
 * from `signal`. Leaves no listener on the stream.
 */
export function readOneFrame(stream: Stream, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(maxBytes)
    let settled = false
    let endTimer: ReturnType<typeof setTimeout> | undefined
    const finish = (err: P2PError | undefined, frame?: Uint8Array): void => {
      if (settled) return
      settled = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onRemoteEnd)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (endTimer !== undefined) clearTimeout(endTimer)
      if (err !== undefined) reject(err)
      else resolve(frame as Uint8Array)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      let frame: Uint8Array | undefined
      try {
        for (const chunk of chunksOf(evt.data)) {
          if (frame !== undefined && chunk.length > 0) throw new P2PError('P2P_MALFORMED', 'bytes after the frame', { penalize: true })
          const frames = decoder.push(chunk)
          if (frames.length > 1 || (frames.length === 1 && decoder.inFrame)) {
            throw new P2PError('P2P_MALFORMED', 'bytes after the frame', { penalize: true })
          }
          frame ??= frames[0]
        }
      } catch (err) {
        finish(err instanceof P2PError ? err : new P2PError('P2P_MALFORMED', 'undecodable frame', { cause: err, penalize: true }))
        return
      }
      if (frame !== undefined) finish(undefined, frame)
    }
    const onRemoteEnd = (): void => {
      // Let data delivered in the same tick reach onMessage before judging.
      endTimer = setTimeout(() => {
        if (decoder.inFrame) finish(new P2PError('P2P_MALFORMED', `stream ended inside a frame (${decoder.buffered} bytes)`, { penalize: true }))
        else finish(new P2PError('P2P_STREAM_ERROR', 'stream ended before a frame'))
      }, 0)
    }
    const onClose = (evt: Event): void => {
      const error = (evt as Event & { error?: Error }).error
      if (error === undefined && endTimer !== undefined) return // graceful end: judged by onRemoteEnd
      finish(new P2PError('P2P_STREAM_ERROR', `stream closed before the frame${error === undefined ? '' : `: ${error.name}`}`, { cause: error }))
    }
    const onAbort = (): void => {
      finish(abortError(signal, 'read'))
    }
    if (signal.aborted) {
      onAbort()
      return
    }
    signal.addEventListener('abort', onAbort)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onRemoteEnd)
    // Adding the listener delivers anything already buffered on the stream.
    stream.addEventListener('message', onMessage)
    if (stream.remoteWriteStatus === 'closed' && stream.readBufferLength === 0) onRemoteEnd()
  })
}

/** Resolves when `stream` has closed (both directions, or reset), or after `ms`; reports which. */
export function waitClosed(stream: Stream, ms: number): Promise<boolean> {
  if (stream.status !== 'open' && stream.status !== 'closing') return Promise.resolve(true)
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    const timer = setTimeout(() => {
      stream.removeEventListener('close', onClose)
      resolve(false)
    }, ms)
    stream.addEventListener('close', onClose, { once: true })
  })
}

/**
 * Waits for the remote to close its writable end, which in radchain's
 * request/response exchange is the requester's acknowledgement that the whole
 * response arrived. Rejects with P2P_MALFORMED (penalize) if the remote sends
 * bytes instead, P2P_STREAM_ERROR on a reset, and P2P_TIMEOUT / P2P_ABORTED
 * from `signal`.
 */
export function waitRemoteEnd(stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false
    const finish = (err?: P2PError): void => {
      if (settled) return
      settled = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onMessage = (): void => finish(new P2PError('P2P_MALFORMED', 'bytes where the end of the stream was expected', { penalize: true }))
    const onEnd = (): void => finish()
    const onClose = (evt: Event): void => {
      const error = (evt as Event & { error?: Error }).error
      finish(error === undefined ? undefined : new P2PError('P2P_STREAM_ERROR', `stream reset: ${error.name}`, { cause: error }))
    }
    const onAbort = (): void => finish(abortError(signal, 'waiting for the end of the stream'))
    if (stream.remoteWriteStatus === 'closed' || stream.status === 'closed') {
      finish()
      return
    }
    if (stream.status !== 'open' && stream.status !== 'closing') {
      finish(new P2PError('P2P_STREAM_ERROR', `stream is ${stream.status}`))
      return
    }
    if (signal.aborted) {
      onAbort()
      return
    }
    signal.addEventListener('abort', onAbort)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onEnd)
    stream.addEventListener('message', onMessage)
  })
}
