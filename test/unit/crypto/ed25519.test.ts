import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { randomBytes, createHash } from 'node:crypto'
import { z } from 'zod'
import { ed25519 } from '@noble/curves/ed25519.js'
import { Ed25519Signer, verifyEd25519, ED25519_PUBLIC_KEY_BYTES, ED25519_SEED_BYTES, ED25519_SIGNATURE_BYTES } from '../../../src/crypto/index.js'
import { fromHex, toHex, concatBytes, utf8 } from '../../../src/util/index.js'

// RFC 8032 section 5.1: group order L and field prime p.
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const P = 2n ** 255n - 19n

const hex = z.string().regex(/^(?:[0-9a-f]{2})*$/)
const Vectors = z.object({
  rfc8032: z.array(z.object({ name: z.string(), seed: hex, pub: hex, msg: hex, sig: hex })).length(5),
  edge: z
    .array(
      z.object({
        name: z.string(),
        pub: hex,
        msg: hex,
        sig: hex,
        expect: z.object({ verifyEd25519: z.boolean(), nobleStrict: z.boolean(), nobleZip215: z.boolean() }),
      }),
    )
    .min(1),
})
const vectors = Vectors.parse(JSON.parse(readFileSync(new URL('../../vectors/ed25519.json', import.meta.url), 'utf8')))

function leToBig(b: Uint8Array): bigint {
  let n = 0n
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] ?? 0)
  return n
}

function bigToLe(n: bigint, len = 32): Uint8Array {
  const out = new Uint8Array(len)
  for (let i = 0; i < len; i++) {
    out[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return out
}

function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(b)
  const i = Math.floor(bit / 8) % out.length
  out[i] = (out[i] ?? 0) ^ (1 << (bit % 8))
  return out
}

/** noble's verdict; noble throws on wrong lengths where verifyEd25519 returns false. */
function nobleVerify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array, zip215: boolean): boolean {
  try {
    return ed25519.verify(sig, msg, pub, { zip215 })
  } catch {
    return false
  }
}

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const message = fc.uint8Array({ minLength: 0, maxLength: 300 })

t.test('constants', async (t) => {
  t.equal(ED25519_PUBLIC_KEY_BYTES, 32)
  t.equal(ED25519_SEED_BYTES, 32)
  t.equal(ED25519_SIGNATURE_BYTES, 64)
})

t.test('RFC 8032 section 7.1 vectors', async (t) => {
  t.same(
    vectors.rfc8032.map((v) => v.name),
    ['TEST 1', 'TEST 2', 'TEST 3', 'TEST 1024', 'TEST SHA(abc)'],
  )
  for (const v of vectors.rfc8032) {
    t.test(v.name, async (t) => {
      const seed = fromHex(v.seed)
      const pub = fromHex(v.pub)
      const msg = fromHex(v.msg)
      const sig = fromHex(v.sig)
      const signer = new Ed25519Signer(seed)
      t.equal(toHex(signer.publicKey), v.pub, 'public key')
      t.equal(signer.publicKey.length, 32)
      t.equal(toHex(signer.sign(msg)), v.sig, 'signature')
      t.equal(verifyEd25519(pub, msg, sig), true, 'verifies')
      // The vector file itself agrees with an independent implementation.
      t.equal(toHex(ed25519.getPublicKey(seed)), v.pub, 'noble public key')
      t.equal(nobleVerify(sig, msg, pub, false), true, 'noble verifies')

      const mBit = msg.length === 0 ? null : flipBit(msg, 8 * (msg.length - 1))
      if (mBit !== null) t.equal(verifyEd25519(pub, mBit, sig), false, 'flipped message bit')
      t.equal(verifyEd25519(pub, concatBytes(msg, new Uint8Array([0])), sig), false, 'appended byte')
      t.equal(verifyEd25519(pub, msg, flipBit(sig, 0)), false, 'flipped bit in R')
      t.equal(verifyEd25519(pub, msg, flipBit(sig, 256)), false, 'flipped bit in S')
      t.equal(verifyEd25519(pub, msg, flipBit(sig, 511)), false, 'flipped top bit of S')
      t.equal(verifyEd25519(flipBit(pub, 0), msg, sig), false, 'flipped bit in public key')
      t.equal(verifyEd25519(flipBit(pub, 255), msg, sig), false, 'flipped sign bit of public key')
    })
  }
  t.equal(fromHex(vectors.rfc8032[3]?.msg ?? '').length, 1023, 'TEST 1024 message is 1023 bytes')
  t.equal(vectors.rfc8032[4]?.msg, createHash('sha512').update('abc').digest('hex'), 'TEST SHA(abc) message is SHA-512("abc")')
})

t.test('the RFC vectors cross-verify only with their own key', async (t) => {
  const vs = vectors.rfc8032
  for (const a of vs) {
    for (const b of vs) {
      if (a === b) continue
      t.equal(verifyEd25519(fromHex(b.pub), fromHex(a.msg), fromHex(a.sig)), false, `${a.name} sig under ${b.name} key`)
    }
  }
})

t.test('wrong lengths verify false and never throw', async (t) => {
  const v = vectors.rfc8032[1]
  if (v === undefined) throw new Error('missing vector')
  const pub = fromHex(v.pub)
  const msg = fromHex(v.msg)
  const sig = fromHex(v.sig)
  t.equal(verifyEd25519(pub, msg, sig), true)
  t.equal(verifyEd25519(pub.subarray(0, 31), msg, sig), false, '31-byte key')
  t.equal(verifyEd25519(concatBytes(pub, new Uint8Array(1)), msg, sig), false, '33-byte key')
  t.equal(verifyEd25519(new Uint8Array(0), msg, sig), false, 'empty key')
  t.equal(verifyEd25519(pub, msg, sig.subarray(0, 63)), false, '63-byte signature')
  t.equal(verifyEd25519(pub, msg, concatBytes(sig, new Uint8Array(1))), false, '65-byte signature')
  t.equal(verifyEd25519(pub, msg, new Uint8Array(0)), false, 'empty signature')
  t.equal(verifyEd25519(new Uint8Array(32), msg, new Uint8Array(64)), false, 'all-zero key and signature')
})

t.test('the signer rejects seeds of the wrong length or type', async (t) => {
  t.throws(() => new Ed25519Signer(new Uint8Array(31)), TypeError)
  t.throws(() => new Ed25519Signer(new Uint8Array(33)), TypeError)
  t.throws(() => new Ed25519Signer(new Uint8Array(64)), TypeError, 'a 64-byte seed||pub secret key is not a seed')
  t.throws(() => new Ed25519Signer(Array.from({ length: 32 }, () => 1) as unknown as Uint8Array), TypeError)
})

t.test('byte views with an offset sign and verify like copies', async (t) => {
  const v = vectors.rfc8032[2]
  if (v === undefined) throw new Error('missing vector')
  const pad = (b: Uint8Array): Uint8Array => concatBytes(new Uint8Array([0xaa, 0xbb, 0xcc]), b, new Uint8Array([0xdd])).subarray(3, 3 + b.length)
  const seed = pad(fromHex(v.seed))
  const msg = pad(fromHex(v.msg))
  const signer = new Ed25519Signer(seed)
  t.equal(toHex(signer.publicKey), v.pub)
  t.equal(toHex(signer.sign(msg)), v.sig)
  t.equal(verifyEd25519(pad(fromHex(v.pub)), msg, pad(fromHex(v.sig))), true)
})

t.test('generate() returns a seed that rebuilds the same signer', async (t) => {
  const a = Ed25519Signer.generate()
  const b = Ed25519Signer.generate()
  t.equal(a.seed.length, 32)
  t.not(toHex(a.seed), toHex(b.seed), 'fresh randomness')
  t.not(toHex(a.signer.publicKey), toHex(b.signer.publicKey))
  const again = new Ed25519Signer(a.seed)
  t.equal(toHex(again.publicKey), toHex(a.signer.publicKey))
  const msg = utf8('generated')
  t.equal(toHex(again.sign(msg)), toHex(a.signer.sign(msg)))
  t.equal(toHex(a.signer.publicKey), toHex(ed25519.getPublicKey(a.seed)))
})

t.test('non-canonical S = S + L is rejected (computed here from TEST 1)', async (t) => {
  const v = vectors.rfc8032[0]
  if (v === undefined) throw new Error('missing vector')
  const sig = fromHex(v.sig)
  const s = leToBig(sig.subarray(32))
  t.ok(s < L, 'the RFC signature has canonical S')
  const forged = concatBytes(sig.subarray(0, 32), bigToLe(s + L))
  // Same point equation, different bytes: a verifier without the S < L check accepts it.
  t.equal(verifyEd25519(fromHex(v.pub), fromHex(v.msg), forged), false)
  t.equal(verifyEd25519(fromHex(v.pub), fromHex(v.msg), concatBytes(sig.subarray(0, 32), bigToLe(L))), false, 'S = L')
  const pinned = vectors.edge.find((e) => e.name.startsWith('non-canonical S'))
  t.equal(pinned?.sig, toHex(forged), 'the pinned S + L vector is TEST 1 with S + L')
})

t.test('pinned edge vectors (encodings on which verifiers differ)', async (t) => {
  for (const e of vectors.edge) {
    const pub = fromHex(e.pub)
    const msg = fromHex(e.msg)
    const sig = fromHex(e.sig)
    t.equal(verifyEd25519(pub, msg, sig), e.expect.verifyEd25519, `verifyEd25519: ${e.name}`)
    t.equal(nobleVerify(sig, msg, pub, false), e.expect.nobleStrict, `noble zip215:false: ${e.name}`)
    t.equal(nobleVerify(sig, msg, pub, true), e.expect.nobleZip215, `noble zip215:true: ${e.name}`)
  }
  // The edge vectors are what their names claim.
  const id = toHex(bigToLe(1n))
  const idNonCanonical = toHex(bigToLe(P + 1n))
  t.equal(idNonCanonical, 'ee' + 'ff'.repeat(30) + '7f')
  t.ok(
    vectors.edge.some((e) => e.pub === id && e.sig === idNonCanonical + '00'.repeat(32) && e.expect.nobleZip215 && !e.expect.verifyEd25519),
    'a vector that noble zip215:true accepts and OpenSSL rejects is pinned',
  )
})

t.test('a small-order public key verifies nothing, though the RFC 8032 equation holds for every message', async (t) => {
  // With R = identity and S = 0, [S]B = R + [k]A holds for A = identity and
  // any message, and OpenSSL accepts it; radchain refuses such keys outright.
  const id = bigToLe(1n)
  const sig = concatBytes(id, new Uint8Array(32))
  fc.assert(
    fc.property(message, (msg) => !verifyEd25519(id, msg, sig) && !nobleVerify(sig, msg, id, false) && nobleVerify(sig, msg, id, true)),
    { numRuns: 50 },
  )
  t.pass('held for 50 random messages')
})

t.test('agrees with @noble/curves on random seeds and messages', async (t) => {
  fc.assert(
    fc.property(bytes32, message, (seed, msg) => {
      const signer = new Ed25519Signer(seed)
      const pub = ed25519.getPublicKey(seed)
      if (toHex(signer.publicKey) !== toHex(pub)) return false
      const sig = signer.sign(msg)
      if (toHex(sig) !== toHex(ed25519.sign(msg, seed))) return false
      return verifyEd25519(pub, msg, sig) && ed25519.verify(sig, msg, pub, { zip215: false })
    }),
    { numRuns: 300 },
  )
  t.pass('300 random seeds: same public keys, same signatures, both verify')
})

type Mutation =
  | { kind: 'msgBit'; bit: number }
  | { kind: 'sigBit'; bit: number }
  | { kind: 'pubBit'; bit: number }
  | { kind: 'sPlusL' }
  | { kind: 'randomR'; r: Uint8Array }
  | { kind: 'otherKey'; seed: Uint8Array }
  | { kind: 'appendByte'; b: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('msgBit' as const), bit: fc.nat() }),
  fc.record({ kind: fc.constant('sigBit' as const), bit: fc.nat({ max: 511 }) }),
  fc.record({ kind: fc.constant('pubBit' as const), bit: fc.nat({ max: 255 }) }),
  fc.record({ kind: fc.constant('sPlusL' as const) }),
  fc.record({ kind: fc.constant('randomR' as const), r: bytes32 }),
  fc.record({ kind: fc.constant('otherKey' as const), seed: bytes32 }),
  fc.record({ kind: fc.constant('appendByte' as const), b: fc.nat({ max: 255 }) }),
)

function mutate(m: Mutation, pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): { pub: Uint8Array; msg: Uint8Array; sig: Uint8Array } {
  switch (m.kind) {
    case 'msgBit':
      return { pub, msg: msg.length === 0 ? new Uint8Array([1 << (m.bit % 8)]) : flipBit(msg, m.bit % (8 * msg.length)), sig }
    case 'sigBit':
      return { pub, msg, sig: flipBit(sig, m.bit) }
    case 'pubBit':
      return { pub: flipBit(pub, m.bit), msg, sig }
    case 'sPlusL':
      return { pub, msg, sig: concatBytes(sig.subarray(0, 32), bigToLe(leToBig(sig.subarray(32)) + L)) }
    case 'randomR':
      return { pub, msg, sig: concatBytes(m.r, sig.subarray(32)) }
    case 'otherKey':
      return { pub: ed25519.getPublicKey(m.seed), msg, sig }
    case 'appendByte':
      return { pub, msg: concatBytes(msg, new Uint8Array([m.b])), sig }
  }
}

t.test('random mutations: verifyEd25519 agrees with noble zip215:false (and rejects)', async (t) => {
  let rejected = 0
  fc.assert(
    fc.property(bytes32, message, mutation, (seed, msg, m) => {
      const signer = new Ed25519Signer(seed)
      const sig = signer.sign(msg)
      const x = mutate(m, signer.publicKey, msg, sig)
      if (toHex(x.pub) === toHex(signer.publicKey) && toHex(x.msg) === toHex(msg) && toHex(x.sig) === toHex(sig)) return true
      const ours = verifyEd25519(x.pub, x.msg, x.sig)
      if (!ours) rejected++
      return ours === nobleVerify(x.sig, x.msg, x.pub, false) && !ours
    }),
    { numRuns: 300 },
  )
  t.ok(rejected > 250, `mutations were rejected (${rejected})`)
})

t.test('the key cache survives eviction and caches invalid keys as invalid', async (t) => {
  const v = vectors.rfc8032[0]
  if (v === undefined) throw new Error('missing vector')
  const pub = fromHex(v.pub)
  const msg = fromHex(v.msg)
  const sig = fromHex(v.sig)
  t.equal(verifyEd25519(pub, msg, sig), true)
  // More distinct keys than the cache holds (16384): the first entry is evicted.
  for (let i = 0; i < 16_500; i++) verifyEd25519(new Uint8Array(randomBytes(32)), msg, sig)
  t.equal(verifyEd25519(pub, msg, sig), true, 'still verifies after eviction')
  t.equal(verifyEd25519(pub, msg, flipBit(sig, 3)), false)
  // A key that is not a curve point (y = 2 has no x): false, twice (second time from the cache).
  const notOnCurve = bigToLe(2n)
  t.throws(() => ed25519.Point.fromBytes(notOnCurve), 'y = 2 is not on the curve')
  t.equal(verifyEd25519(notOnCurve, msg, sig), false)
  t.equal(verifyEd25519(notOnCurve, msg, sig), false)
})
