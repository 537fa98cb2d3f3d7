/** Byte helpers shared by every layer. */

/** Lower-case hex of `b`. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/

/** Bytes of a lower- or upper-case hex string; throws on odd length or bad digits. */
export function fromHex(s: string): Uint8Array {
  const lower = s.toLowerCase()
  if (!HEX_RE.test(lower)) throw new TypeError('invalid hex string')
  return new Uint8Array(Buffer.from(lower, 'hex'))
}

/** True when `s` is hex of exactly `len` bytes. */
export function isHex(s: unknown, len?: number): s is string {
  if (typeof s !== 'string' || !HEX_RE.test(s.toLowerCase())) return false
  return len === undefined || s.length === len * 2
}

/** Concatenation of byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** Constant-length byte equality (not constant-time; do not use for secrets). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return Buffer.compare(asBuffer(a), asBuffer(b)) === 0
}

/** A Buffer view of `b` without copying. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/**
 * Bytes held as one array or as consecutive parts (views of received
 * buffers, for example), to hash and write large payloads without first
 * copying them into one array.
 */
export type Bytes = Uint8Array | readonly Uint8Array[]

/** The parts of `b`: itself as the only part, or its list. */
export function partsOf(b: Bytes): readonly Uint8Array[] {
  return b instanceof Uint8Array ? [b] : b
}

/** Total length of `b`. */
export function bytesLength(b: Bytes): number {
  if (b instanceof Uint8Array) return b.length
  let n = 0
  for (const p of b) n += p.length
  return n
}

/** `b` as one array: itself, its only part, or a copy joining its parts. */
export function joinBytes(b: Bytes): Uint8Array {
  if (b instanceof Uint8Array) return b
  if (b.length === 1) return b[0] as Uint8Array
  return concatBytes(...b)
}

/** The parts of `b` after its first `n` bytes (views, no copy); `n` must not pass its length. */
export function dropBytes(b: Bytes, n: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let skip = n
  for (const p of partsOf(b)) {
    if (skip >= p.length) {
      skip -= p.length
      continue
    }
    out.push(skip === 0 ? p : p.subarray(skip))
    skip = 0
  }
  if (skip > 0) throw new RangeError(`cannot drop ${n} bytes from ${bytesLength(b)}`)
  return out
}

/** A copy of the first `n` bytes of `b` (or all of it when shorter). */
export function headBytes(b: Bytes, n: number): Uint8Array {
  const out = new Uint8Array(Math.min(n, bytesLength(b)))
  let o = 0
  for (const p of partsOf(b)) {
    if (o === out.length) break
    const k = Math.min(p.length, out.length - o)
    out.set(k === p.length ? p : p.subarray(0, k), o)
    o += k
  }
  return out
}
