// Fuzzing the canonical codec (src/chain/codec.ts): decodeCanonical, decodeTrusted and the as* readers.
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
  decodeTrusted,
  encode,
  type Encodable,
} from '../../src/chain/index.js'
import { equalBytes } from '../../src/util/index.js'
import { SMALL_GROWTH_BYTES, arrayBufferGrowth, encodableArb, mutated, noteSeed, params, typedOrValue } from './fuzz.js'

noteSeed(t)
const CODEC = [CodecError]

t.test('decodeCanonical of any bytes: a value whose encoding is those bytes, or a CodecError', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
      const v = typedOrValue(() => decodeCanonical(b), CODEC)
      if (v !== undefined) return equalBytes(encode(v as Encodable), b)
      return true
    }),
    params(3000),
  )
  t.pass('no other error escaped')
})

t.test('decodeCanonical of mutated encodings: a value that re-encodes to the same bytes, or a CodecError', async (t) => {
  fc.assert(
    fc.property(
      encodableArb.chain((v) => mutated(encode(v))),
      (b) => {
        const v = typedOrValue(() => decodeCanonical(b), CODEC)
        return v === undefined || equalBytes(encode(v as Encodable), b)
      },
    ),
    params(3000),
  )
  t.pass('no other error escaped')
})

t.test('every encodable value round-trips: same bytes again, through decodeCanonical and decodeTrusted', async (t) => {
  fc.assert(
    fc.property(encodableArb, (v) => {
      const b = encode(v)
      return equalBytes(encode(decodeCanonical(b) as Encodable), b) && equalBytes(encode(decodeTrusted(b) as Encodable), b)
    }),
    params(2000),
  )
  t.pass('round trips held')
})

t.test('decodeTrusted of any bytes: a value or a CodecError', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        encodableArb.chain((v) => mutated(encode(v))),
      ),
      (b) => {
        typedOrValue(() => decodeTrusted(b), CODEC)
      },
    ),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('the as* readers take any decoded value: the value checked, or a CodecError', async (t) => {
  const anyValue = fc.oneof(encodableArb, fc.anything(), fc.float(), fc.double(), fc.constant(undefined))
  fc.assert(
    fc.property(anyValue, fc.option(fc.nat(40), { nil: undefined }), fc.nat(64), (v, len, max) => {
      const a = typedOrValue(() => asArray(v, 'x', len, max), CODEC)
      if (a !== undefined && (!Array.isArray(a) || (len !== undefined && a.length !== len) || a.length > max)) return false
      const b = typedOrValue(() => asBytes(v, 'x', len, max), CODEC)
      if (b !== undefined && (!(b instanceof Uint8Array) || (len !== undefined && b.length !== len) || b.length > max)) return false
      const s = typedOrValue(() => asString(v, 'x', max), CODEC)
      if (s !== undefined && (typeof s !== 'string' || Buffer.byteLength(s) > max)) return false
      const n = typedOrValue(() => asU32(v, 'x'), CODEC)
      if (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) return false
      const u = typedOrValue(() => asU64Number(v, 'x'), CODEC)
      if (u !== undefined && !(Number.isSafeInteger(u) && u >= 0)) return false
      const bool = typedOrValue(() => asBool(v, 'x'), CODEC)
      if (bool !== undefined && typeof bool !== 'boolean') return false
      const e = typedOrValue(() => asEnum(v, 'x', ['a', 'b'] as const), CODEC)
      return e === undefined || e === 'a' || e === 'b'
    }),
    params(3000),
  )
  t.pass('every reader returned a checked value or a CodecError')
})

t.test('a short input declaring a huge length fails at once, without allocating for it', async (t) => {
  // msgpack headers declaring 2^32-1 (or 2^31-1) items or bytes, followed by a few bytes only.
  const heads = [
    [0xc6, 0xff, 0xff, 0xff, 0xff], // bin32
    [0xdb, 0xff, 0xff, 0xff, 0xff], // str32
    [0xdd, 0xff, 0xff, 0xff, 0xff], // array32
    [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
    [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32
    [0xc5, 0xff, 0xff], // bin16
    [0xdc, 0xff, 0xff], // array16
    [0x92, 0xdd, 0x7f, 0xff, 0xff, 0xff], // an array holding an array32 of 2^31-1
  ]
  fc.assert(
    fc.property(fc.constantFrom(...heads), fc.uint8Array({ maxLength: 64 }), (head, tail) => {
      const b = new Uint8Array([...head, ...tail])
      for (const decode of [decodeCanonical, decodeTrusted]) {
        const { growth, error } = arrayBufferGrowth(() => decode(b))
        if (!(error instanceof CodecError)) return false
        if (growth > SMALL_GROWTH_BYTES) return false
      }
      return true
    }),
    params(300),
  )
  t.pass('CodecError each time, with little memory')
})
