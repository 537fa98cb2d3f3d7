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
