import type { Stream } from '@libp2p/interface'
import { FrameDecoder, encodeFrame } from '../../../src/p2p/index.js'

/**
 * One end of an in-memory stream, for the parts of stream-io, reqresp and
 * pipe that use only events and send/close/abort: the test plays the remote
 * end (`deliver`, `endRemote`, `onFrame` for what this end sends).
 */
export class FakeStream extends EventTarget {
  status: 'open' | 'closing' | 'closed' | 'aborted' = 'open'
  remoteWriteStatus: 'writable' | 'closed' = 'writable'
  writableNeedsDrain = false
  /** While true the remote takes nothing: send() buffers and asks for a drain. */
  stalled = false
  /** Bytes sent while stalled, not yet taken by the remote. */
  buffered = 0
  readBufferLength = 0
  /** Set when this end aborted the stream. */
  abortedWith: Error | undefined
  /** Called with each whole frame this end sends. */
  onFrame: (payload: Uint8Array) => void = () => undefined
  readonly #decoder = new FrameDecoder(64 * 1024 * 1024)
  readonly #held: Uint8Array[] = []

  /** This end as the Stream the code under test takes. */
  get stream(): Stream {
    return this as unknown as Stream
  }

  send(b: Uint8Array): boolean {
    if (this.status !== 'open') throw new Error('stream not writable')
    if (this.stalled) {
      this.buffered += b.length
      this.#held.push(b)
      this.writableNeedsDrain = true
      return false
    }
    for (const f of this.#decoder.push(b)) this.onFrame(f)
    return true
  }

  /** The remote reads again: what was held is taken, and a drain is signalled. */
  drain(): void {
    this.stalled = false
    for (const b of this.#held.splice(0)) for (const f of this.#decoder.push(b)) this.onFrame(f)
    this.buffered = 0
    this.writableNeedsDrain = false
    this.dispatchEvent(new Event('drain'))
  }

  /** The remote sends `b` (raw bytes: frame it with encodeFrame or {@link frame}). */
  deliver(b: Uint8Array): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: b }))
  }

  /** The remote closes its writable end. */
  endRemote(): void {
    this.remoteWriteStatus = 'closed'
    this.dispatchEvent(new Event('remoteCloseWrite'))
  }

  async close(): Promise<void> {
    if (this.status !== 'open') return
    this.status = 'closed'
    this.dispatchEvent(new Event('close'))
  }

  abort(err: Error): void {
    if (this.status === 'closed' || this.status === 'aborted') return
    this.abortedWith = err
    this.status = 'aborted'
    this.dispatchEvent(Object.assign(new Event('close'), { error: err }))
  }
}

/** One length-prefixed frame of the given parts. */
export function frame(...parts: Uint8Array[]): Uint8Array {
  return encodeFrame(Buffer.concat(parts))
}
