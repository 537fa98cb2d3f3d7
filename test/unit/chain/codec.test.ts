import t from 'tap'
import fc from 'fast-check'
import {
  CodecError,
  asArray,
  asBool,
  asBytes,
  asEnum,
  asString,
  asU32,
  asU64Number,
  decodeCanonical,
  encode,
  encodeTrusted,
  u64,
  type Encodable,
} from '../../../src/chain/index.js'
import { concatBytes, fromHex, toHex } from '../../../src/util/index.js'
import { codeOf } from './fixtures.js'

const INT64_MIN = -(2n ** 63n)
const UINT64_MAX = 2n ** 64n - 1n

const encodableArb: fc.Arbitrary<Encodable> = fc.letrec<{ value: Encodable }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -0x80000000, max: 0xffffffff }),
    fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, -1, -32, -33, -128, -129, -32768, -32769, -0x80000000),
    fc.bigInt({ min: INT64_MIN, max: UINT64_MAX }),
    fc.constantFrom(0n, -1n, INT64_MIN, 2n ** 63n - 1n, 2n ** 63n, UINT64_MAX),
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.string({ unit: 'grapheme-ascii', minLength: 250, maxLength: 300 }),
    fc.uint8Array({ maxLength: 80 }),
    fc.uint8Array({ minLength: 250, maxLength: 300 }),
    fc.array(tie('value'), { maxLength: 6 }),
  ),
})).value

/** A typed, comparable view: numbers and bigints stay distinct, bytes become hex. */
function view(v: unknown): unknown {
  if (typeof v === 'bigint') return { bigint: v.toString() }
  if (typeof v === 'number') return { number: v }
  if (v instanceof Uint8Array) return { bytes: toHex(v) }
  if (Array.isArray(v)) return v.map(view)
  return v
}

/** Same typed value (bigint 5 differs from number 5; bytes compare by content). */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(view(a)) === JSON.stringify(view(b))
}

t.test('encode then decodeCanonical returns the same value and the same bytes', async (t) => {
  fc.assert(
    fc.property(encodableArb, (v) => {
      const bytes = encode(v)
      const back = decodeCanonical(bytes)
      return sameValue(back, v) && toHex(encode(back as Encodable)) === toHex(bytes) && toHex(encodeTrusted(v)) === toHex(bytes)
    }),
    { numRuns: 500 },
  )
  t.pass('500 random values, with encodeTrusted agreeing with encode')
})

t.test('decodeCanonical reads a view at an offset inside a larger buffer', async (t) => {
  fc.assert(
    fc.property(encodableArb, fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 }), (v, pre, post) => {
      const bytes = encode(v)
      const big = concatBytes(pre, bytes, post)
      return sameValue(decodeCanonical(big.subarray(pre.length, pre.length + bytes.length)), v)
    }),
    { numRuns: 200 },
  )
  t.pass('200 offset views')
})

t.test('encodings are not clobbered by later encodes (no shared output buffer)', async (t) => {
  fc.assert(
    fc.property(fc.array(encodableArb, { minLength: 2, maxLength: 20 }), (values) => {
      const outs = values.map((v) => encode(v))
      const hex = outs.map(toHex)
      // Encode a lot more to make the encoder roll over its internal buffer.
      for (let i = 0; i < 50; i++) encode(new Uint8Array(500))
      return outs.every((o, i) => toHex(o) === hex[i] && sameValue(decodeCanonical(o), values[i]))
    }),
    { numRuns: 30 },
  )
  t.pass('earlier outputs unchanged')
})

t.test('numbers use the shortest msgpack form; bigints are always 9 bytes', async (t) => {
  const cases: [Encodable, string][] = [
    [0, '00'],
    [0x7f, '7f'],
    [0x80, 'cc80'],
    [0xff, 'ccff'],
    [0x100, 'cd0100'],
    [0xffff, 'cdffff'],
    [0x10000, 'ce00010000'],
    [0xffffffff, 'ceffffffff'],
    [-1, 'ff'],
    [-32, 'e0'],
    [-33, 'd0df'],
    [-128, 'd080'],
    [-129, 'd1ff7f'],
    [-0x80000000, 'd280000000'],
    [0n, 'd30000000000000000'],
    [5n, 'd30000000000000005'],
    [-1n, 'd3ffffffffffffffff'],
    [2n ** 63n, 'cf8000000000000000'],
    [UINT64_MAX, 'cfffffffffffffffff'],
    [null, 'c0'],
    [false, 'c2'],
    [true, 'c3'],
    ['', 'a0'],
    ['a'.repeat(31), 'bf' + '61'.repeat(31)],
    ['a'.repeat(32), 'd920' + '61'.repeat(32)],
    ['é'.repeat(16), 'd920' + 'c3a9'.repeat(16)],
    ['x'.repeat(256), 'da0100' + '78'.repeat(256)],
    [new Uint8Array(0), 'c400'],
    [new Uint8Array(255), 'c4ff' + '00'.repeat(255)],
    [new Uint8Array(256), 'c50100' + '00'.repeat(256)],
    [[], '90'],
    [[[]], '9190'],
    [[1, 'a', null], '9301a161c0'],
    [new Array<Encodable>(16).fill(0), 'dc0010' + '00'.repeat(16)],
  ]
  for (const [v, hex] of cases) t.equal(toHex(encode(v)), hex, JSON.stringify(view(v)).slice(0, 60))
  t.equal(toHex(encode(u64(2 ** 40))), 'd30000010000000000', 'u64 gives the bigint form')
})

t.test('non-canonical encodings are rejected with CODEC_NON_CANONICAL', async (t) => {
  const cases: [string, string][] = [
    ['ce00000005', '5 as uint32'],
    ['cd0005', '5 as uint16'],
    ['cc05', '5 as uint8'],
    ['d005', '5 as int8'],
    ['d1ffff', '-1 as int16'],
    ['d2ffffff80', '-128 as int32'],
    ['cf0000000000000005', 'bigint 5 as uint64 (int64 is canonical)'],
    ['d9016161'.slice(0, 6), 'one-char string as str8'],
    ['da000161', 'one-char string as str16'],
    ['db0000000161', 'one-char string as str32'],
    ['c5000201 02'.replace(' ', ''), 'two bytes as bin16'],
    ['c600000002 0102'.replace(' ', ''), 'two bytes as bin32'],
    ['dc000101', 'one-item array as array16'],
    ['dd0000000101', 'one-item array as array32'],
    ['cb4014000000000000', '5.0 as float64'],
    ['ca40a00000', '5.0 as float32'],
    ['a2c328', 'invalid UTF-8 in a string'],
    ['a3eda080', 'UTF-8-encoded lone surrogate'],
  ]
  for (const [hex, what] of cases) t.throws(() => decodeCanonical(fromHex(hex)), { name: 'CodecError', code: 'CODEC_NON_CANONICAL' }, what)
})

t.test('trailing bytes, truncation and empty input are rejected', async (t) => {
  for (const [hex, what] of [
    ['a16100', 'string then a byte'],
    ['c0c0', 'two values'],
    ['9101' + '00', 'array then a byte'],
    ['', 'empty'],
    ['92c0', 'array missing an item'],
    ['c40301', 'bin shorter than its length'],
    ['d300000000', 'truncated int64'],
  ] as const) {
    const code = codeOf(() => decodeCanonical(fromHex(hex)))
    t.ok(code === 'CODEC_MALFORMED' || code === 'CODEC_NON_CANONICAL', `${what}: ${String(code)}`)
  }
})

t.test('maps, floats, undefined, extensions are rejected', async (t) => {
  const cases: [string, string][] = [
    ['80', 'empty fixmap'],
    ['81a161c0', 'fixmap {a: null}'],
    ['de0000', 'map16'],
    ['df00000000', 'map32'],
    ['cb3ff8000000000000', '1.5 as float64'],
    ['ca3fc00000', '1.5 as float32'],
    ['cb7ff8000000000000', 'NaN'],
    ['cb4200000000000000', '2^33 as float64 (outside 32 bits)'],
    ['d40000', 'undefined (fixext1 type 0)'],
    ['d6ff00000000', 'timestamp32'],
    ['d7ff0000000000000000', 'timestamp64'],
    ['c1', 'never-used byte'],
    ['91' + '80', 'map inside an array'],
  ]
  for (const [hex, what] of cases) {
    const code = codeOf(() => decodeCanonical(fromHex(hex)))
    t.ok(code === 'CODEC_SCHEMA' || code === 'CODEC_NON_CANONICAL' || code === 'CODEC_MALFORMED', `${what}: ${String(code)}`)
    t.not(code, undefined, `${what} rejected`)
  }
  t.throws(() => decodeCanonical(fromHex('80')), { name: 'CodecError', code: 'CODEC_SCHEMA' }, 'a map is a schema error')
  t.throws(() => decodeCanonical(fromHex('cb3ff8000000000000')), { name: 'CodecError', code: 'CODEC_SCHEMA' }, 'a fraction is a schema error')
})

t.test('encode refuses values outside Encodable with CODEC_SCHEMA', async (t) => {
  const bad: [unknown, string][] = [
    [1.5, 'fraction'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [2 ** 32, '2^32 as number'],
    [-(2 ** 31) - 1, '-2^31-1 as number'],
    [undefined, 'undefined'],
    [{}, 'object'],
    [new Map(), 'Map'],
    [new Date(0), 'Date'],
    [[1, [2, { a: 1 }]], 'object nested in arrays'],
    [Symbol('x'), 'symbol'],
    [() => 1, 'function'],
  ]
  for (const [v, what] of bad) t.throws(() => encode(v as Encodable), { name: 'CodecError', code: 'CODEC_SCHEMA' }, what)
  let deep: Encodable = []
  for (let i = 0; i < 40; i++) deep = [deep]
  t.throws(() => encode(deep), { name: 'CodecError', code: 'CODEC_SCHEMA' }, 'nesting deeper than 32')
  let ok: Encodable = []
  for (let i = 0; i < 32; i++) ok = [ok]
  t.doesNotThrow(() => decodeCanonical(encode(ok)), 'nesting of 32 is fine')
})

t.test('deeply nested input is rejected without a stack overflow escaping', async (t) => {
  const bytes = new Uint8Array(200_000).fill(0x91)
  bytes[bytes.length - 1] = 0xc0
  t.throws(() => decodeCanonical(bytes), { name: 'CodecError' })
  const forty = concatBytes(new Uint8Array(40).fill(0x91), fromHex('90'))
  t.throws(() => decodeCanonical(forty), { name: 'CodecError', code: 'CODEC_SCHEMA' }, '41 levels decode but fail the schema walk')
})

t.test('random bytes: decodeCanonical throws nothing but CodecError, and what it accepts is canonical', async (t) => {
  let accepted = 0
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      let v: unknown
      try {
        v = decodeCanonical(bytes)
      } catch (err) {
        return err instanceof CodecError && ['CODEC_MALFORMED', 'CODEC_NON_CANONICAL', 'CODEC_SCHEMA'].includes(err.code)
      }
      accepted++
      return toHex(encode(v as Encodable)) === toHex(bytes)
    }),
    { numRuns: 5000 },
  )
  t.ok(accepted > 0, `${accepted} random inputs happened to be canonical`)
})

t.test('mutated valid encodings: CodecError or a canonical value', async (t) => {
  fc.assert(
    fc.property(encodableArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (v, pos, x) => {
      const bytes = new Uint8Array(encode(v))
      const i = pos % bytes.length
      bytes[i] = (bytes[i] as number) ^ x
      try {
        const back = decodeCanonical(bytes)
        return toHex(encode(back as Encodable)) === toHex(bytes)
      } catch (err) {
        return err instanceof CodecError
      }
    }),
    { numRuns: 1000 },
  )
  t.pass('1000 single-byte mutations')
})

t.test('schema helpers accept the right shape and reject the wrong one with CODEC_SCHEMA', async (t) => {
  const schema = { name: 'CodecError', code: 'CODEC_SCHEMA' }
  t.same(asArray([1, 2], 'a', 2), [1, 2])
  t.same(asArray([], 'a'), [])
  t.throws(() => asArray([1], 'a', 2), schema, 'wrong length')
  t.throws(() => asArray([1, 2, 3], 'a', undefined, 2), schema, 'over max')
  t.throws(() => asArray(new Uint8Array(2), 'a'), schema, 'bytes are not an array')
  t.throws(() => asArray('ab', 'a'), schema, 'string is not an array')
  t.throws(() => asArray(null, 'a'), schema, 'null')

  const b = asBytes(Buffer.from([1, 2, 3]), 'b', 3)
  t.equal(toHex(b), '010203')
  t.equal(Object.getPrototypeOf(b), Uint8Array.prototype, 'a plain Uint8Array view, not a Buffer')
  t.equal(asBytes(new Uint8Array(5), 'b', undefined, 5).length, 5, 'max is inclusive')
  t.throws(() => asBytes(new Uint8Array(31), 'b', 32), schema, 'wrong length')
  t.throws(() => asBytes(new Uint8Array(6), 'b', undefined, 5), schema, 'over max')
  t.throws(() => asBytes([1, 2], 'b'), schema, 'array of numbers')
  t.throws(() => asBytes('0102', 'b'), schema, 'hex string')
  t.throws(() => asBytes(new Uint16Array(2), 'b'), schema, 'other typed array')

  t.equal(asU64Number(0n, 'n'), 0)
  t.equal(asU64Number(2n ** 40n, 'n'), 2 ** 40)
  t.equal(asU64Number(BigInt(Number.MAX_SAFE_INTEGER), 'n'), Number.MAX_SAFE_INTEGER)
  t.throws(() => asU64Number(5, 'n'), schema, 'a plain number')
  t.throws(() => asU64Number(-1n, 'n'), schema, 'negative')
  t.throws(() => asU64Number(BigInt(Number.MAX_SAFE_INTEGER) + 1n, 'n'), schema, 'beyond 2^53 - 1')
  t.throws(() => asU64Number('5', 'n'), schema, 'string')

  t.equal(asU32(0, 'u'), 0)
  t.equal(asU32(0xffffffff, 'u'), 0xffffffff)
  for (const v of [-1, 2 ** 32, 1.5, NaN, 5n, '5', null]) t.throws(() => asU32(v, 'u'), schema, `asU32(${typeof v} ${String(v)})`)

  t.equal(asString('é'.repeat(512), 's', 1024), 'é'.repeat(512), 'exactly maxBytes UTF-8 bytes')
  t.throws(() => asString('é'.repeat(513), 's', 1024), schema, 'limit counts UTF-8 bytes, not characters')
  t.throws(() => asString('x'.repeat(1025), 's'), schema, 'default limit 1024')
  t.throws(() => asString(new Uint8Array(1), 's'), schema, 'bytes')
  t.throws(() => asString(1, 's'), schema, 'number')

  t.equal(asBool(true, 'x'), true)
  t.throws(() => asBool(1, 'x'), schema)
  t.equal(asEnum('b', 'e', ['a', 'b'] as const), 'b')
  t.throws(() => asEnum('c', 'e', ['a', 'b'] as const), schema)
  t.throws(() => asEnum(0, 'e', ['a', 'b'] as const), schema)
})

t.test('CodecError penalizes the peer and names the field', async (t) => {
  try {
    asBytes(1, 'header.parentHash', 32)
    t.fail('should throw')
  } catch (err) {
    t.ok(err instanceof CodecError)
    t.equal((err as CodecError).penalize, true)
    t.match((err as CodecError).message, /header\.parentHash/)
  }
})

// Found while writing these tests; see the report. encode() documents
// "Throws CODEC_SCHEMA for values outside Encodable", but a string holding a
// lone UTF-16 surrogate is silently turned into U+FFFD, so the decoded value
// differs from the encoded one, and bigints outside int64/uint64 escape as a
// msgpackr RangeError.
t.test('unrepresentable strings and bigints must fail with CODEC_SCHEMA', async (t) => {
  for (const s of ['\ud800', 'a\udc00', 'x'.repeat(70) + '\udbff']) {
    t.throws(() => encode(s), { name: 'CodecError', code: 'CODEC_SCHEMA' }, `lone surrogate in ${JSON.stringify(s.slice(-2))}`)
  }
  for (const n of [2n ** 64n, INT64_MIN - 1n]) t.throws(() => encode(n), { name: 'CodecError', code: 'CODEC_SCHEMA' }, `bigint ${n}`)
})
