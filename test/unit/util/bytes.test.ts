import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { sha256 } from '../../../src/crypto/index.js'
import { bytesLength, concatBytes, dropBytes, headBytes, joinBytes, partsOf, toHex } from '../../../src/util/index.js'
import { splitAt } from '../split.js'

t.test('bytes held as parts: length, join, head, drop', async (t) => {
  const parts = [Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3, 4, 5)]
  t.equal(bytesLength(parts), 5)
  t.equal(bytesLength(Uint8Array.of(9)), 1)
  t.same([...joinBytes(parts)], [1, 2, 3, 4, 5])
  const one = Uint8Array.of(7, 8)
  t.equal(joinBytes(one), one, 'an array is its own join')
  t.equal(joinBytes([one]), one, 'a single part is not copied')
  t.same([...headBytes(parts, 3)], [1, 2, 3])
  t.same([...headBytes(parts, 9)], [1, 2, 3, 4, 5], 'shorter than asked: all of it')
  t.same(
    dropBytes(parts, 3).map((p) => [...p]),
    [[4, 5]],
  )
  t.same(
    dropBytes(parts, 2).map((p) => [...p]),
    [[3, 4, 5]],
  )
  t.same(dropBytes(parts, 5), [])
  t.throws(() => dropBytes(parts, 6), RangeError)
  const dropped = dropBytes(parts, 3)
  ;(parts[2] as Uint8Array)[1] = 0xee
  t.equal(dropped[0]?.[0], 0xee, 'drop returns views, not copies')
  t.same(partsOf(one), [one])
})

t.test('property: parts agree with the joined bytes, and SHA-256 of parts is that of the whole', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }), fc.nat(), (b, cuts, n) => {
      const parts = splitAt(b, cuts)
      const k = n % (b.length + 1)
      return (
        bytesLength(parts) === b.length &&
        toHex(joinBytes(parts)) === toHex(b) &&
        toHex(headBytes(parts, k)) === toHex(b.subarray(0, k)) &&
        toHex(concatBytes(...dropBytes(parts, k))) === toHex(b.subarray(k)) &&
        toHex(sha256(parts)) === createHash('sha256').update(b).digest('hex')
      )
    }),
  )
})
