import { P2PError } from './errors.js'

/**
 * Framing of radchain streams: each message is a 4-byte big-endian unsigned
 * length followed by that many payload bytes. Readers bound the length before
 * buffering anything, so a peer can never make us hold more than one frame of
 * the protocol's maximum size.
 */

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4
/** Largest length the prefix can carry. */
export const MAX_FRAME_BYTES = 0xffff_ffff

/** The 4-byte big-endian length prefix of a `length`-byte payload. */
export function encodeFrameHeader(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_BYTES) {
    throw new P2PError('P2P_INVALID_ARGUMENT', `frame length ${length} is out of range`)
  }
  const h = new Uint8Array(FRAME_HEADER_BYTES)
  new DataView(h.buffer).setUint32(0, length, false)
  return h
}

/** Prefix and payload in one buffer (one copy of `payload`). */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length)
  out.set(encodeFrameHeader(payload.length), 0)
  out.set(payload, FRAME_HEADER_BYTES)
  return out
}

/**
 * Incremental decoder: feed chunks as they arrive, get whole payloads back.
 * A length above `maxBytes` throws P2P_TOO_LARGE (penalize) as soon as the
 * prefix is complete, before any of the payload is buffered; after a throw the
 * decoder refuses all further input. push() returns payloads as fresh copies,
 * never views of the input chunks; pushParts() returns each payload as the
 * views of the input chunks that hold it, without copying.
 */
export class FrameDecoder {
  readonly maxBytes: number
  // Pending chunks from index #head on; a head index instead of shift() keeps
  // a flood of tiny chunks linear.
  #chunks: Uint8Array[] = []
  #head = 0
  #bytes = 0
  #expected: number | undefined
  #failed = false

  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > MAX_FRAME_BYTES) {
      throw new P2PError('P2P_INVALID_ARGUMENT', `frame bound ${maxBytes} is out of range`)
    }
    this.maxBytes = maxBytes
  }

  /** Bytes held for a frame not yet complete (prefix bytes included). */
  get buffered(): number {
    return this.#bytes
  }

  /** True while part of a frame (even one prefix byte) has been received but not the whole. */
  get inFrame(): boolean {
    return this.#bytes > 0 || this.#expected !== undefined
  }

  /** Appends `chunk` and returns every payload it completes, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    return this.#push(chunk, (n) => this.#take(n))
  }

  /**
   * Appends `chunk` and returns every payload it completes, in order, each
   * as consecutive views of the input chunks (an empty payload is an empty
   * list). For a caller that consumes a large payload at once (hashes it,
   * writes it): it saves assembling a copy. The views keep the input chunks'
   * buffers alive and see any later change to them; input must not be
   * reused by its producer.
   */
  pushParts(chunk: Uint8Array): Uint8Array[][] {
    return this.#push(chunk, (n) => this.#takeParts(n))
  }

  #push<T>(chunk: Uint8Array, take: (n: number) => T): T[] {
    if (this.#failed) throw new P2PError('P2P_MALFORMED', 'frame decoder already failed', { penalize: true })
    const out: T[] = []
    if (chunk.length === 0) return out
    this.#chunks.push(chunk)
    this.#bytes += chunk.length
    for (;;) {
      if (this.#expected === undefined) {
        if (this.#bytes < FRAME_HEADER_BYTES) break
        const h = this.#take(FRAME_HEADER_BYTES)
        const length = new DataView(h.buffer, h.byteOffset, h.byteLength).getUint32(0, false)
        if (length > this.maxBytes) {
          this.#failed = true
          this.#clear()
          throw new P2PError('P2P_TOO_LARGE', `frame of ${length} bytes exceeds the bound of ${this.maxBytes}`, { penalize: true })
        }
        this.#expected = length
      }
      if (this.#bytes < this.#expected) break
      out.push(take(this.#expected))
      this.#expected = undefined
    }
    return out
  }

  /**
   * Declares the end of input: throws P2P_MALFORMED (penalize) when it falls
   * inside a frame (a truncated frame).
   */
  end(): void {
    if (this.inFrame) {
      const held = this.#bytes
      this.#failed = true
      this.#clear()
      throw new P2PError('P2P_MALFORMED', `input ended inside a frame (${held} bytes held)`, { penalize: true })
    }
  }

  #clear(): void {
    this.#chunks = []
    this.#head = 0
    this.#bytes = 0
  }

  // Removes the first n buffered bytes (n <= #bytes) into a fresh array.
  #take(n: number): Uint8Array {
    // Every byte of `out` is written below, so a large one need not be zero-filled first.
    const out = n >= UNFILLED_MIN_BYTES ? unfilled(n) : new Uint8Array(n)
    let o = 0
    this.#consume(n, (piece) => {
      out.set(piece, o)
      o += piece.length
    })
    return out
  }

  // Removes the first n buffered bytes (n <= #bytes) as views of the chunks holding them.
  #takeParts(n: number): Uint8Array[] {
    const out: Uint8Array[] = []
    this.#consume(n, (piece) => out.push(piece))
    return out
  }

  // Hands the first n buffered bytes (n <= #bytes) to `sink`, piece by piece in order, and drops them.
  #consume(n: number, sink: (piece: Uint8Array) => void): void {
    let o = 0
    while (o < n) {
      const c = this.#chunks[this.#head] as Uint8Array
      const k = Math.min(c.length, n - o)
      sink(k === c.length ? c : c.subarray(0, k))
      o += k
      if (k === c.length) this.#head++
      else this.#chunks[this.#head] = c.subarray(k)
    }
    this.#bytes -= n
    if (this.#head === this.#chunks.length) {
      this.#chunks = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head)
      this.#head = 0
    }
  }
}

/** Frames at least this long are assembled in memory that is not zeroed first. */
const UNFILLED_MIN_BYTES = 64 * 1024

/** A plain Uint8Array of `n` bytes whose contents are not initialized (the caller overwrites all of it). */
function unfilled(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n)
  return new Uint8Array(b.buffer, b.byteOffset, n)
}
