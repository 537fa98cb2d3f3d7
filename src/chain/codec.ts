import { Packr } from 'msgpackr'
import { RadError, equalBytes, type ErrorCodes } from '../util/index.js'

/**
 * The one codec for consensus-critical bytes. Objects are fixed-order arrays;
 * integers that may exceed 2^32 are bigint (msgpack uint64/int64, always 9
 * bytes); smaller integers are JS numbers in msgpack's shortest form.
 * Decoding re-encodes and rejects input whose bytes differ, so every value
 * has exactly one encoding.
 */

/** Failure codes of the codec. */
export type CodecCode = ErrorCodes<'CODEC_MALFORMED' | 'CODEC_NON_CANONICAL' | 'CODEC_SCHEMA'>

/** A decoding failure; input from a peer that fails here is penalized. */
export class CodecError extends RadError<CodecCode> {
  constructor(code: CodecCode, message: string) {
    super(code, message, { penalize: true })
    this.name = 'CodecError'
  }
}

/** A value the codec accepts. Maps, floats and undefined are not among them. */
export type Encodable = null | boolean | number | bigint | string | Uint8Array | readonly Encodable[]

const packr = new Packr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: false, variableMapSize: false, moreTypes: false })

function checkEncodable(v: unknown, depth: number): void {
  if (depth > 32) throw new CodecError('CODEC_SCHEMA', 'value nested too deeply')
  if (v === null || typeof v === 'boolean' || v instanceof Uint8Array) return
  if (typeof v === 'string') {
    // A lone surrogate would be written as U+FFFD: the bytes would not say what was signed.
    if (!(v as unknown as { isWellFormed(): boolean }).isWellFormed()) throw new CodecError('CODEC_SCHEMA', 'strings must be well-formed Unicode')
    return
  }
  if (typeof v === 'bigint') {
    if (v < -(1n << 63n) || v >= 1n << 64n) throw new CodecError('CODEC_SCHEMA', 'bigint outside the 64-bit range')
    return
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff)
      throw new CodecError('CODEC_SCHEMA', 'numbers must be 32-bit integers; use bigint for wider ones')
    return
  }
  if (Array.isArray(v)) {
    for (const x of v) checkEncodable(x, depth + 1)
    return
  }
  throw new CodecError('CODEC_SCHEMA', `cannot encode a value of type ${typeof v}`)
}

/** Canonical bytes of `v`. Throws CODEC_SCHEMA for values outside Encodable. */
export function encode(v: Encodable): Uint8Array {
  checkEncodable(v, 0)
  return packr.pack(v)
}

/** Encodes without the type walk, for values built by this codebase's own encoders. */
export function encodeTrusted(v: Encodable): Uint8Array {
  return packr.pack(v)
}

/**
 * Decodes `bytes` and checks that re-encoding gives the same bytes
 * (CODEC_NON_CANONICAL otherwise). Returns the raw decoded value, to be
 * checked by a schema function.
 */
export function decodeCanonical(bytes: Uint8Array): unknown {
  let v: unknown
  try {
    v = packr.unpack(bytes)
  } catch (err) {
    throw new CodecError('CODEC_MALFORMED', `malformed encoding: ${err instanceof Error ? err.message : String(err)}`)
  }
  let again: Uint8Array
  try {
    again = encode(v as Encodable)
  } catch (err) {
    if (err instanceof CodecError) throw err
    throw new CodecError('CODEC_MALFORMED', 'undecodable value')
  }
  if (!equalBytes(again, bytes)) throw new CodecError('CODEC_NON_CANONICAL', 'non-canonical encoding')
  return v
}

/** Decodes bytes this node wrote itself (its own store) without the canonical check. */
export function decodeTrusted(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new CodecError('CODEC_MALFORMED', `malformed encoding: ${err instanceof Error ? err.message : String(err)}`)
  }
}

// Schema helpers: each checks one field of a decoded value and names it in the error.

/** `v` as an array of exactly `len` items (any length when omitted, at most `max`). */
export function asArray(v: unknown, what: string, len?: number, max = 1 << 20): unknown[] {
  if (!Array.isArray(v)) throw new CodecError('CODEC_SCHEMA', `${what}: expected an array`)
  if (len !== undefined && v.length !== len) throw new CodecError('CODEC_SCHEMA', `${what}: expected ${len} fields, got ${v.length}`)
  if (v.length > max) throw new CodecError('CODEC_SCHEMA', `${what}: more than ${max} items`)
  return v
}

/** `v` as bytes of exactly `len` (or between `min` and `max`). */
export function asBytes(v: unknown, what: string, len?: number, max = Number.MAX_SAFE_INTEGER): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new CodecError('CODEC_SCHEMA', `${what}: expected bytes`)
  if (len !== undefined && v.length !== len) throw new CodecError('CODEC_SCHEMA', `${what}: expected ${len} bytes, got ${v.length}`)
  if (v.length > max) throw new CodecError('CODEC_SCHEMA', `${what}: more than ${max} bytes`)
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
}

/** `v` as a string of at most `maxBytes` UTF-8 bytes. */
export function asString(v: unknown, what: string, maxBytes = 1024): string {
  if (typeof v !== 'string') throw new CodecError('CODEC_SCHEMA', `${what}: expected a string`)
  if (Buffer.byteLength(v) > maxBytes) throw new CodecError('CODEC_SCHEMA', `${what}: longer than ${maxBytes} bytes`)
  return v
}

/** `v` as a 32-bit unsigned number. */
export function asU32(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new CodecError('CODEC_SCHEMA', `${what}: expected a 32-bit unsigned integer`)
  return v
}

/** `v` (a bigint on the wire) as a safe JS integer >= 0. */
export function asU64Number(v: unknown, what: string): number {
  if (typeof v !== 'bigint' || v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new CodecError('CODEC_SCHEMA', `${what}: expected a 64-bit unsigned integer`)
  return Number(v)
}

/** `v` as a boolean. */
export function asBool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new CodecError('CODEC_SCHEMA', `${what}: expected a boolean`)
  return v
}

/** `v` as one of `options`. */
export function asEnum<T extends string>(v: unknown, what: string, options: readonly T[]): T {
  if (typeof v !== 'string' || !(options as readonly string[]).includes(v))
    throw new CodecError('CODEC_SCHEMA', `${what}: expected one of ${options.join(', ')}`)
  return v as T
}

/** Wire form of a safe JS integer that may grow past 2^32. */
export function u64(n: number): bigint {
  return BigInt(n)
}
