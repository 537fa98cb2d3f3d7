// Shared settings and tools of the decoder fuzz tests (test/fuzz/*.test.ts); not a test file itself.
//
// Under `npm test` every property runs with a fixed seed and its own small run
// count, so the whole folder adds well under a minute. `npm run fuzz`
// (test/fuzz/run.ts) runs the same files with RADCHAIN_FUZZ_RUNS runs per
// property and the seed in RADCHAIN_FUZZ_SEED (a random one it prints when
// unset); a failure prints its seed and path, and the same environment
// replays it.
import fc from 'fast-check'
import type { Test } from 'tap'
import { encode, type Encodable } from '../../src/chain/index.js'
import { ERROR_CODES, type RadError } from '../../src/util/index.js'

/** Seed of `npm test` runs. */
export const DEFAULT_SEED = 0x5eed_2026

function envInt(name: string): number | undefined {
  const v = process.env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`)
  return n
}

/** Runs per property given in the environment (`npm run fuzz`), or undefined under `npm test`. */
export const FUZZ_RUNS = envInt('RADCHAIN_FUZZ_RUNS')
/** The seed every property of this process uses. */
export const FUZZ_SEED = envInt('RADCHAIN_FUZZ_SEED') ?? DEFAULT_SEED

/**
 * fast-check parameters of one property: `runs` under `npm test`; under
 * `npm run fuzz`, RADCHAIN_FUZZ_RUNS divided by `cost` (a property that does
 * costly work per run, such as parsing a whole DICOM file, says how many
 * cheap runs one of its runs is worth), and never fewer than `runs`.
 */
export function params(runs: number, cost = 1): fc.Parameters<unknown> {
  const numRuns = FUZZ_RUNS === undefined ? runs : Math.max(runs, Math.floor(FUZZ_RUNS / cost))
  return { seed: FUZZ_SEED, numRuns, endOnFailure: FUZZ_RUNS === undefined }
}

/** Notes the seed in the test output, so that any failure can be replayed. */
export function noteSeed(t: Test): void {
  t.comment(`fuzz seed ${FUZZ_SEED}${FUZZ_RUNS === undefined ? '' : `, ${FUZZ_RUNS} runs per property`}`)
}

/** An error class with the `name` the project gives it. */
export type ErrorClass = abstract new (...args: never[]) => RadError

/**
 * Calls `fn` and returns its value, or undefined when it threw an instance
 * of one of `allowed` whose code is in the registry. Anything else thrown
 * (a TypeError, a RangeError, a RadError of another domain or with an
 * unregistered code) is rethrown wrapped, naming what was expected, so the
 * property fails with the input that caused it.
 */
export function typedOrValue<T>(fn: () => T, allowed: readonly ErrorClass[]): T | undefined {
  try {
    return fn()
  } catch (err) {
    checkTyped(err, allowed)
    return undefined
  }
}

/** As {@link typedOrValue}, for an async `fn`. */
export async function typedOrValueAsync<T>(fn: () => Promise<T>, allowed: readonly ErrorClass[]): Promise<T | undefined> {
  try {
    return await fn()
  } catch (err) {
    checkTyped(err, allowed)
    return undefined
  }
}

/** Throws unless `err` is an instance of one of `allowed` with a registered code. */
export function checkTyped(err: unknown, allowed: readonly ErrorClass[]): void {
  const names = allowed.map((c) => c.name).join(' or ')
  if (!allowed.some((c) => err instanceof c)) {
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    throw new Error(`expected ${names}, got ${what}`, { cause: err })
  }
  const code = (err as RadError).code
  if (!Object.hasOwn(ERROR_CODES, code)) throw new Error(`${names} with code ${code}, which is not in ERROR_CODES`, { cause: err })
}

/** The code `fn` throws (a typed error of `allowed`), or undefined when it returns. */
export function codeOf(fn: () => unknown, allowed: readonly ErrorClass[]): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    checkTyped(err, allowed)
    return (err as RadError).code
  }
}

// Mutations of valid encodings: each is applied to the bytes of a valid value.

type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'delete'; readonly at: number; readonly n: number }
  | { readonly kind: 'set'; readonly at: number; readonly bytes: Uint8Array }

/** Byte runs that make a length or count field huge, negative or odd wherever they land. */
const LOUD_BYTES = [
  new Uint8Array([0xff, 0xff, 0xff, 0xff]),
  new Uint8Array([0x7f, 0xff, 0xff, 0xff]),
  new Uint8Array([0x80, 0x00, 0x00, 0x00]),
  new Uint8Array([0xff, 0xff, 0xff, 0xfe]),
  new Uint8Array([0x00, 0x00, 0x00, 0x00]),
  new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // msgpack array32 of 2^32-1 items
  new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff]), // msgpack bin32 of 2^32-1 bytes
  new Uint8Array([0xdb, 0x7f, 0xff, 0xff, 0xff]), // msgpack str32 of 2^31-1 bytes
]

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(),
      bytes: fc.oneof(fc.constantFrom(...LOUD_BYTES), fc.uint8Array({ minLength: 1, maxLength: 4 })),
    }),
  },
)

function applyMutation(b: Uint8Array, m: Mutation): Uint8Array {
  const at = b.length === 0 ? 0 : m.at % (b.length + (m.kind === 'insert' ? 1 : 0))
  switch (m.kind) {
    case 'flip': {
      if (b.length === 0) return b
      const out = b.slice()
      out[at] = (out[at] as number) ^ (1 << m.bit)
      return out
    }
    case 'truncate':
      return b.slice(0, at)
    case 'insert':
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
    case 'delete':
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)])
    case 'set': {
      const out = b.slice()
      out.set(m.bytes.subarray(0, Math.max(0, out.length - at)), at)
      return out
    }
  }
}

/** `base` changed by one to `maxSteps` mutations: bit flips, truncation, insertion, deletion, and overwrites with huge length fields. */
export function mutated(base: Uint8Array, maxSteps = 3): fc.Arbitrary<Uint8Array> {
  // A plain copy: Buffer#slice (the seeds are often Buffers) would give views, and flips would change the seed.
  const plain = Uint8Array.from(base)
  return fc.array(mutationArb, { minLength: 1, maxLength: maxSteps }).map((ms) => ms.reduce(applyMutation, plain))
}

/** One of `bases`, mutated (see {@link mutated}). */
export function mutatedOneOf(bases: readonly Uint8Array[], maxSteps = 3): fc.Arbitrary<Uint8Array> {
  return fc.constantFrom(...bases).chain((b) => mutated(b, maxSteps))
}

/**
 * A value shaped like `v` (a decoded canonical value: arrays, bytes, strings,
 * numbers, bigints, booleans, null) with some leaves replaced by other
 * values of the same kind: bytes of the same length (sometimes another),
 * other strings, 32-bit numbers, 64-bit bigints. Decoders given such values
 * meet the field layout they expect with values it may or may not accept,
 * whatever that layout is.
 */
export function reshaped(v: unknown): fc.Arbitrary<unknown> {
  const keep = <T>(x: T, other: fc.Arbitrary<T>): fc.Arbitrary<T> => fc.oneof({ weight: 3, arbitrary: fc.constant(x) }, { weight: 1, arbitrary: other })
  if (v instanceof Uint8Array) {
    return keep(v, fc.oneof(fc.uint8Array({ minLength: v.length, maxLength: v.length }), fc.uint8Array({ maxLength: v.length + 40 })))
  }
  if (Array.isArray(v)) return fc.tuple(...v.map(reshaped))
  if (typeof v === 'string') return keep(v, fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 8 })))
  if (typeof v === 'number') return keep(v, fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 0xffffffff)))
  if (typeof v === 'bigint') return keep(v, fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 2n ** 53n, 2n ** 64n - 1n)))
  if (typeof v === 'boolean') return fc.boolean()
  return fc.constant(v)
}

/**
 * Calls `fn` and returns how far `process.memoryUsage().arrayBuffers` grew
 * meanwhile, with what it threw. A buffer `fn` allocated and dropped is
 * still counted unless a garbage collection freed it before `fn` returned,
 * which a single large allocation does not give time for.
 */
export function arrayBufferGrowth(fn: () => unknown): { growth: number; error: unknown } {
  const before = process.memoryUsage().arrayBuffers
  let error: unknown
  try {
    fn()
  } catch (err) {
    error = err
  }
  return { growth: process.memoryUsage().arrayBuffers - before, error }
}

/** Bound on what a decoder may allocate for a short input that declares a huge length. */
export const SMALL_GROWTH_BYTES = 16 * 1024 * 1024

const INT64_MIN = -(2n ** 63n)
const UINT64_MAX = 2n ** 64n - 1n

/** Any value the canonical codec encodes (see `Encodable` in src/chain/codec.ts), including its edge integers. */
export const encodableArb: fc.Arbitrary<Encodable> = fc.letrec<{ value: Encodable }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -0x80000000, max: 0xffffffff }),
    fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, -1, -32, -33, -128, -129, -32768, -32769, -0x80000000),
    fc.bigInt({ min: INT64_MIN, max: UINT64_MAX }),
    fc.constantFrom(0n, -1n, INT64_MIN, 2n ** 63n - 1n, 2n ** 63n, UINT64_MAX),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.array(tie('value'), { maxLength: 8 }),
  ),
})).value

/** Bytes for a decoder of canonical values: random bytes, or the encoding of a random value (often well-formed, rarely the right shape). */
export const wireBytesArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  encodableArb.map((v) => encode(v)),
)

/**
 * A JSON document shaped like `v` with some values replaced by any JSON
 * value, some keys dropped and some unknown keys added: what a hand-edited or
 * damaged config, genesis or keystore file may hold.
 */
export function jsonReshaped(v: unknown): fc.Arbitrary<unknown> {
  const other = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, 0, 1e300, '', 'x'.repeat(300), [], {}))
  const replace = <T>(inner: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: inner }, { weight: 1, arbitrary: other })
  if (Array.isArray(v)) return replace(fc.tuple(...v.map(jsonReshaped)))
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v)
    return replace(
      fc
        .tuple(
          fc.tuple(...entries.map(([k, x]) => fc.tuple(fc.constant(k), jsonReshaped(x), fc.nat(9)))),
          fc.option(fc.tuple(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })), { freq: 8 }),
        )
        .map(([kept, extra]) => {
          // Each key is dropped one time in ten.
          const out: Record<string, unknown> = Object.fromEntries(kept.filter(([, , drop]) => drop !== 0).map(([k, x]) => [k, x]))
          // defineProperty, as JSON.parse does: a key "__proto__" is an own key, not the prototype.
          if (extra !== null) Object.defineProperty(out, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true })
          return out
        }),
    )
  }
  return replace(fc.constant(v))
}
