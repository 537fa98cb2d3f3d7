import t from 'tap'
import fc from 'fast-check'
import { FrameDecoder, encodeFrame, encodeFrameHeader, FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from '../../../src/p2p/index.js'
import { concatBytes, toHex } from '../../../src/util/index.js'
import { splitAt as split } from '../split.js'

t.test('header is 4-byte big-endian length', async (t) => {
  t.equal(FRAME_HEADER_BYTES, 4)
  t.equal(toHex(encodeFrameHeader(0)), '00000000')
  t.equal(toHex(encodeFrameHeader(0x01020304)), '01020304')
  t.equal(toHex(encodeFrameHeader(MAX_FRAME_BYTES)), 'ffffffff')
  t.equal(toHex(encodeFrame(Uint8Array.of(0xaa, 0xbb))), '00000002aabb')
  t.throws(() => encodeFrameHeader(-1), { name: 'P2PError', code: 'P2P_INVALID_ARGUMENT' })
  t.throws(() => encodeFrameHeader(MAX_FRAME_BYTES + 1), { name: 'P2PError', code: 'P2P_INVALID_ARGUMENT' })
  t.throws(() => encodeFrameHeader(1.5), { name: 'P2PError', code: 'P2P_INVALID_ARGUMENT' })
})

t.test('decodes frames split across chunks at every position', async (t) => {
  const payloads = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.of(9), new Uint8Array(300).fill(5)]
  const wire = concatBytes(...payloads.map(encodeFrame))
  const want = payloads.map(toHex).join('|')
  const wrong: string[] = []
  let cuts = 0
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a, a + 1, a + 7, wire.length]) {
      const dec = new FrameDecoder(1000)
      const got = split(wire, [a, b]).flatMap((c) => dec.push(c))
      cuts++
      if (got.map(toHex).join('|') !== want || dec.inFrame) wrong.push(`cuts ${a},${b}: ${got.length} frame(s), inFrame ${dec.inFrame}`)
    }
  }
  t.same(wrong, [], `the same frames and no partial frame left for each of ${cuts} pairs of cuts`)
})

t.test('byte-at-a-time input and partial state', async (t) => {
  const dec = new FrameDecoder(10)
  const wire = encodeFrame(Uint8Array.of(7, 8, 9))
  const got: Uint8Array[] = []
  for (let i = 0; i < wire.length; i++) {
    got.push(...dec.push(wire.subarray(i, i + 1)))
    if (i < wire.length - 1) {
      t.equal(dec.inFrame, true, `in frame after ${i + 1} bytes`)
      t.equal(got.length, 0)
    }
  }
  t.same(got.map(toHex), ['070809'])
  t.equal(dec.inFrame, false)
  t.equal(dec.buffered, 0)
  t.same(dec.push(new Uint8Array(0)), [], 'empty chunk is a no-op')
})

t.test('payloads are copies, not views of the input', async (t) => {
  const dec = new FrameDecoder(10)
  const wire = encodeFrame(Uint8Array.of(1, 2, 3))
  const [p] = dec.push(wire)
  wire.fill(0)
  t.same([...(p as Uint8Array)], [1, 2, 3])
})

t.test('an oversized length is refused before its payload is buffered', async (t) => {
  const dec = new FrameDecoder(100)
  t.same(dec.push(encodeFrame(new Uint8Array(100))).length, 1, 'exactly the bound is fine')
  t.same(dec.push(Uint8Array.of(0, 0)), [])
  t.throws(() => dec.push(Uint8Array.of(0, 101)), { name: 'P2PError', code: 'P2P_TOO_LARGE', penalize: true })
  t.throws(() => dec.push(Uint8Array.of(1)), { name: 'P2PError', code: 'P2P_MALFORMED' }, 'decoder stays failed')
  const dec2 = new FrameDecoder(100)
  t.throws(() => dec2.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff)), { code: 'P2P_TOO_LARGE' })
  t.equal(dec2.buffered, 0, 'nothing held after the refusal')
})

t.test('frames after an oversized one in the same chunk are not delivered', async (t) => {
  const dec = new FrameDecoder(4)
  t.throws(() => dec.push(concatBytes(encodeFrame(Uint8Array.of(1)), encodeFrame(new Uint8Array(5)), encodeFrame(Uint8Array.of(2)))), { code: 'P2P_TOO_LARGE' })
})

t.test('end() inside a frame is a truncation', async (t) => {
  const ok = new FrameDecoder(10)
  ok.push(encodeFrame(Uint8Array.of(1)))
  t.doesNotThrow(() => ok.end(), 'end on a boundary')
  const inHeader = new FrameDecoder(10)
  inHeader.push(Uint8Array.of(0, 0))
  t.throws(() => inHeader.end(), { name: 'P2PError', code: 'P2P_MALFORMED', penalize: true })
  const inPayload = new FrameDecoder(10)
  inPayload.push(Uint8Array.of(0, 0, 0, 5, 1, 2))
  t.equal(inPayload.buffered, 2)
  t.throws(() => inPayload.end(), { code: 'P2P_MALFORMED' })
  const emptyFrameHeader = new FrameDecoder(10)
  emptyFrameHeader.push(Uint8Array.of(0, 0, 0))
  t.equal(emptyFrameHeader.inFrame, true)
})

t.test('bound checks on construction', async (t) => {
  t.throws(() => new FrameDecoder(-1), { code: 'P2P_INVALID_ARGUMENT' })
  t.throws(() => new FrameDecoder(MAX_FRAME_BYTES + 1), { code: 'P2P_INVALID_ARGUMENT' })
  const zero = new FrameDecoder(0)
  t.same(zero.push(encodeFrame(new Uint8Array(0))).map(toHex), [''], 'empty frames under a zero bound')
  t.throws(() => zero.push(encodeFrame(Uint8Array.of(1))), { code: 'P2P_TOO_LARGE' })
})

t.test('many tiny chunks decode in linear time', async (t) => {
  const payload = new Uint8Array(200_000).fill(3)
  const wire = encodeFrame(payload)
  const dec = new FrameDecoder(payload.length)
  const start = Date.now()
  const got: Uint8Array[] = []
  for (let i = 0; i < wire.length; i++) got.push(...dec.push(wire.subarray(i, i + 1)))
  t.equal(got.length, 1)
  t.equal(got[0]?.length, payload.length)
  t.ok(Date.now() - start < 2_000, 'no quadratic blow-up')
})

t.test('property: any chunking of any frames decodes to the same frames, with push and with pushParts', async () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (payloads, cuts) => {
      const wire = concatBytes(...payloads.map(encodeFrame))
      const dec = new FrameDecoder(64)
      const decParts = new FrameDecoder(64)
      const got = split(wire, cuts).flatMap((c) => dec.push(c))
      const gotParts = split(wire, cuts)
        .flatMap((c) => decParts.pushParts(c))
        .map((parts) => concatBytes(...parts))
      dec.end()
      decParts.end()
      const want = payloads.map(toHex).join('|')
      return got.map(toHex).join('|') === want && gotParts.map(toHex).join('|') === want
    }),
  )
})

t.test('pushParts: payloads as views of the input, no copy', async (t) => {
  const dec = new FrameDecoder(1000)
  const wire = concatBytes(encodeFrame(Uint8Array.of(1, 2, 3, 4, 5, 6)), encodeFrame(new Uint8Array(0)), encodeFrame(Uint8Array.of(7)))
  // The first payload arrives in three pieces, the header of the second with its tail.
  const pieces = [wire.subarray(0, 6), wire.subarray(6, 8), wire.subarray(8, 13), wire.subarray(13)]
  const got = pieces.flatMap((c) => dec.pushParts(c))
  t.equal(got.length, 3)
  t.same(
    got.map((f) => f.map((p) => [...p])),
    [
      [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      [],
      [[7]],
    ],
    'each payload as the pieces that hold it',
  )
  t.equal(dec.inFrame, false)
  // Views: a later change to the input shows through.
  pieces[1]?.fill(0xee)
  t.same([...(got[0]?.[1] ?? [])], [0xee, 0xee])
  t.throws(() => new FrameDecoder(2).pushParts(encodeFrame(Uint8Array.of(1, 2, 3))), { code: 'P2P_TOO_LARGE' })
})

t.test('property: a cut inside the last frame is always detected by end()', async () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 32 }), { minLength: 1, maxLength: 6 }), fc.nat(), (payloads, cut) => {
      const wire = concatBytes(...payloads.map(encodeFrame))
      const last = encodeFrame(payloads[payloads.length - 1] as Uint8Array).length
      const keep = wire.length - 1 - (cut % (last - 1)) // drop 1 to last-1 bytes: the cut falls inside the last frame
      const dec = new FrameDecoder(32)
      dec.push(wire.subarray(0, keep))
      try {
        dec.end()
        return false
      } catch (err) {
        return (err as { code?: string }).code === 'P2P_MALFORMED'
      }
    }),
  )
})
