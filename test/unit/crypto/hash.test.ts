import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { DOMAIN, taggedHash, signingBytes, sha256 } from '../../../src/crypto/index.js'
import type { DomainTag } from '../../../src/crypto/index.js'
import { fromHex, toHex, concatBytes, utf8 } from '../../../src/util/index.js'

const hex = z.string().regex(/^(?:[0-9a-f]{2})*$/)
const Vectors = z.object({
  tx: z.array(z.object({ name: z.string(), parts: z.array(hex), hash: hex.length(64) })).min(1),
  emptyInputByTag: z.record(z.string(), z.object({ tag: z.string(), hash: hex.length(64) })),
})
const vectors = Vectors.parse(JSON.parse(readFileSync(new URL('../../vectors/tagged-hash.json', import.meta.url), 'utf8')))

const TAGS: DomainTag[] = Object.values(DOMAIN)
const tagArb = fc.constantFrom(...TAGS)
const partsArb = fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 6 })

/** The definition, on an independent SHA-256: sha256(utf8(tag) || 0x00 || concat(parts)). */
function reference(tag: string, parts: Uint8Array[]): Uint8Array {
  return nobleSha256(concatBytes(utf8(tag), new Uint8Array([0]), ...parts))
}

t.test('sha256: FIPS 180-4 examples', async (t) => {
  t.equal(toHex(sha256(new Uint8Array(0))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  t.equal(toHex(sha256(utf8('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.equal(toHex(sha256(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1')
})

t.test('sha256 agrees with @noble/hashes, including on offset views', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 500 }), fc.nat({ max: 7 }), (data, off) => {
      const view = concatBytes(new Uint8Array(off), data).subarray(off)
      return toHex(sha256(data)) === toHex(nobleSha256(data)) && toHex(sha256(view)) === toHex(nobleSha256(data))
    }),
    { numRuns: 200 },
  )
  t.pass('200 random inputs')
})

t.test('DOMAIN tags: distinct, NUL-free (so tag || 0x00 is prefix-free), pinned strings', async (t) => {
  t.equal(new Set(TAGS).size, TAGS.length, 'distinct')
  for (const tag of TAGS) t.notOk(tag.includes('\0'), `${tag} has no NUL`)
  const keys = Object.keys(DOMAIN)
  t.same(Object.keys(vectors.emptyInputByTag).sort(), [...keys].sort(), 'every DOMAIN tag has a pinned vector, and no more')
  for (const [key, v] of Object.entries(vectors.emptyInputByTag)) {
    const tag = (DOMAIN as Record<string, DomainTag>)[key]
    t.equal(tag, v.tag, `DOMAIN.${key} string`)
    if (tag !== undefined) t.equal(toHex(taggedHash(tag)), v.hash, `taggedHash(DOMAIN.${key})`)
  }
})

t.test('pinned DOMAIN.TX vectors', async (t) => {
  for (const v of vectors.tx) {
    const parts = v.parts.map(fromHex)
    t.equal(toHex(taggedHash(DOMAIN.TX, ...parts)), v.hash, v.name)
    t.equal(toHex(reference(DOMAIN.TX, parts)), v.hash, `${v.name} (reference)`)
  }
})

t.test('taggedHash == sha256(utf8(tag) || 0x00 || concat(parts)) on @noble/hashes', async (t) => {
  fc.assert(
    fc.property(tagArb, partsArb, (tag, parts) => toHex(taggedHash(tag, ...parts)) === toHex(reference(tag, parts))),
    { numRuns: 300 },
  )
  t.pass('300 random tags and part lists')
})

t.test('taggedHash depends only on the concatenation of parts', async (t) => {
  fc.assert(
    fc.property(tagArb, partsArb, (tag, parts) => toHex(taggedHash(tag, ...parts)) === toHex(taggedHash(tag, concatBytes(...parts)))),
    { numRuns: 200 },
  )
  t.pass('callers must length-prefix parts themselves when boundaries matter')
})

t.test('different tags give different hashes of the same bytes', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (data) => {
      const hashes = TAGS.map((tag) => toHex(taggedHash(tag, data)))
      return new Set(hashes).size === TAGS.length && !hashes.includes(toHex(sha256(data)))
    }),
    { numRuns: 100 },
  )
  t.pass('no two tags collide, and no tagged hash equals the plain hash')
})

t.test('taggedHash is not sha256(tag || data) without the separator', async (t) => {
  const data = utf8('x')
  t.not(toHex(taggedHash(DOMAIN.TX, data)), toHex(nobleSha256(concatBytes(utf8(DOMAIN.TX), data))))
  t.equal(toHex(taggedHash(DOMAIN.TX, data)), toHex(nobleSha256(concatBytes(utf8(DOMAIN.TX), new Uint8Array([0]), data))))
})

t.test('signingBytes layout: utf8(tag) || 0x00 || msg', async (t) => {
  const msg = fromHex('deadbeef')
  const out = signingBytes(DOMAIN.TX_SIGN, msg)
  const tagBytes = utf8('radchain/tx-sign/v1')
  t.equal(out.length, tagBytes.length + 1 + msg.length)
  t.equal(toHex(out.subarray(0, tagBytes.length)), toHex(tagBytes), 'tag first')
  t.equal(out[tagBytes.length], 0, 'then one 0x00')
  t.equal(toHex(out.subarray(tagBytes.length + 1)), 'deadbeef', 'then the message')
  t.equal(toHex(signingBytes(DOMAIN.VOTE, new Uint8Array(0))), toHex(concatBytes(utf8(DOMAIN.VOTE), new Uint8Array([0]))), 'empty message')

  fc.assert(
    fc.property(tagArb, fc.uint8Array({ maxLength: 300 }), (tag, m) => {
      const b = signingBytes(tag, m)
      return toHex(b) === toHex(concatBytes(utf8(tag), new Uint8Array([0]), m)) && toHex(sha256(b)) === toHex(taggedHash(tag, m))
    }),
    { numRuns: 200 },
  )
})

t.test('signingBytes returns a fresh copy: mutating it does not leak into later calls or hashes', async (t) => {
  const msg = utf8('m')
  const before = toHex(taggedHash(DOMAIN.BLOCK_HEADER, msg))
  const a = signingBytes(DOMAIN.BLOCK_HEADER, msg)
  a.fill(0xff)
  t.equal(msg[0], 0x6d, 'input untouched')
  t.equal(toHex(signingBytes(DOMAIN.BLOCK_HEADER, msg)), toHex(concatBytes(utf8(DOMAIN.BLOCK_HEADER), new Uint8Array([0]), msg)))
  t.equal(toHex(taggedHash(DOMAIN.BLOCK_HEADER, msg)), before)
})

t.test('outputs are 32-byte Uint8Arrays', async (t) => {
  const h = taggedHash(DOMAIN.STATE, utf8('s'))
  t.ok(h instanceof Uint8Array)
  t.equal(h.length, 32)
  t.equal(sha256(utf8('s')).length, 32)
})
