/** Boundary assertions. */

/** Throws TypeError unless `b` is a Uint8Array of `len` bytes (any length when omitted). */
export function assertBytes(b: unknown, len?: number, what = 'value'): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${what} must be bytes`)
  if (len !== undefined && b.length !== len) throw new TypeError(`${what} must be ${len} bytes, got ${b.length}`)
}

/** Throws TypeError unless `n` is an integer in [min, max]. */
export function assertInt(n: unknown, min: number, max: number, what = 'value'): asserts n is number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new TypeError(`${what} must be an integer in [${min}, ${max}]`)
  }
}

/** Compile-time exhaustiveness check. */
export function unreachable(x: never): never {
  throw new Error(`unreachable: ${String(x)}`)
}
