import t from 'tap'
import type tap from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { x25519 } from '@noble/curves/ed25519.js'
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { sha3_256 } from '@noble/hashes/sha3.js'
import {
  wrapKey,
  unwrapKey,
  mlkemFromX25519Private,
  x25519FromPrivate,
  generateX25519,
  EnvelopeError,
  ENVELOPE_BYTES,
  ENVELOPE_VERSION,
  MLKEM768_PUBLIC_KEY_BYTES,
  MLKEM768_SECRET_KEY_BYTES,
} from '../../../src/crypto/index.js'
import type { EnvelopeRecipient, EnvelopeRecipientSecret, EnvelopeRng } from '../../../src/crypto/index.js'
import { fromHex, toHex, concatBytes, utf8 } from '../../../src/util/index.js'

const hex = (n?: number): z.ZodString => (n === undefined ? z.string().regex(/^(?:[0-9a-f]{2})*$/) : z.string().regex(new RegExp(`^[0-9a-f]{${2 * n}}$`)))
const V = z.object({
  description: z.string(),
  x25519Private: hex(32),
  x25519Public: hex(32),
  mlkemSeed: hex(64),
  mlkemPublicKeySha256: hex(32),
  dataKey: hex(32),
  context: hex(),
  ephemeralPrivate: hex(32),
  ephemeralPublic: hex(32),
  mlkemRandomness: hex(32),
  nonce: hex(12),
  x25519Shared: hex(32),
  mlkemShared: hex(32),
  salt: hex(32),
  aesKey: hex(32),
  envelopeSha256: hex(32),
  envelope: hex(1181),
})
const v = V.parse(JSON.parse(readFileSync(new URL('../../vectors/envelope.json', import.meta.url), 'utf8')))

// Wire-format regions (see envelope.ts).
const REGIONS = { version: [0, 1], ephPub: [1, 33], ct2: [33, 1121], nonce: [1121, 1133], ciphertext: [1133, 1165], tag: [1165, 1181] } as const

interface Org {
  recipient: EnvelopeRecipient
  secret: EnvelopeRecipientSecret
}
function org(x25519Priv: Uint8Array): Org {
  const x = x25519FromPrivate(x25519Priv)
  const m = mlkemFromX25519Private(x25519Priv)
  return { recipient: { x25519: x.publicKey, mlkem: m.publicKey }, secret: { x25519Priv, mlkemSecret: m.secretKey } }
}
const alice = org(fromHex(v.x25519Private))
const bob = org(generateX25519().privateKey)

/** An rng hook that hands out the given buffers in order. */
function fixedRng(...outs: Uint8Array[]): EnvelopeRng {
  return (n) => {
    const o = outs.shift()
    if (o === undefined || o.length !== n) throw new Error(`unexpected rng call for ${n} bytes`)
    return o
  }
}

// node:crypto X25519 on raw keys (RFC 8410 DER prefixes), independent of noble.
const PKCS8 = fromHex('302e020100300506032b656e04220420')
const SPKI = fromHex('302a300506032b656e032100')
const nodePriv = (k: Uint8Array): KeyObject => createPrivateKey({ key: Buffer.from(concatBytes(PKCS8, k)), format: 'der', type: 'pkcs8' })
const nodePub = (k: Uint8Array): KeyObject => createPublicKey({ key: Buffer.from(concatBytes(SPKI, k)), format: 'der', type: 'spki' })
const nodeDh = (priv: Uint8Array, pub: Uint8Array): Uint8Array => new Uint8Array(diffieHellman({ privateKey: nodePriv(priv), publicKey: nodePub(pub) }))

/** The format spec re-implemented on node:crypto X25519 and AES-GCM, @noble/hashes HKDF and SHA-256. */
function referenceUnwrap(env: Uint8Array, x25519Priv: Uint8Array, mlkemSecret: Uint8Array, context: Uint8Array): Uint8Array {
  const ephPub = env.subarray(1, 33)
  const ct2 = env.subarray(33, 1121)
  const ss1 = nodeDh(x25519Priv, ephPub)
  const ss2 = ml_kem768.decapsulate(ct2, Uint8Array.from(mlkemSecret))
  const mlkemPub = mlkemSecret.subarray(1152, 1152 + 1184)
  const x25519Pub = new Uint8Array(createPublicKey(nodePriv(x25519Priv)).export({ format: 'der', type: 'spki' }).subarray(SPKI.length))
  const salt = sha256(concatBytes(utf8('radchain/envelope-kem/v1'), new Uint8Array([0]), ephPub, ct2, x25519Pub, mlkemPub))
  const key = hkdf(sha256, concatBytes(ss1, ss2), salt, utf8('radchain/envelope-key/v1'), 32)
  const d = createDecipheriv('aes-256-gcm', key, env.subarray(1121, 1133), { authTagLength: 16 })
  d.setAAD(concatBytes(new Uint8Array([1]), context))
  d.setAuthTag(env.subarray(1165))
  return concatBytes(d.update(env.subarray(1133, 1165)), d.final())
}

function throwsEnvelope(t: Pick<typeof tap, 'ok' | 'fail'>, fn: () => unknown, code: string, msg: string): void {
  try {
    fn()
    t.fail(`${msg}: did not throw`)
  } catch (err) {
    t.ok(err instanceof EnvelopeError && err.name === 'EnvelopeError' && err.code === code, `${msg}: ${code}`)
  }
}

t.test('wire format: 1181 bytes, version 1', async (t) => {
  t.equal(ENVELOPE_BYTES, 1181)
  t.equal(ENVELOPE_VERSION, 1)
  const env = wrapKey(randomBytes(32), alice.recipient, utf8('ctx'))
  t.equal(env.length, 1181)
  t.equal(env[0], 1)
  t.equal(REGIONS.tag[1], ENVELOPE_BYTES, 'regions cover the envelope')
})

t.test('pinned vector (test/vectors/envelope.json, never regenerate silently)', async (t) => {
  const ctx = fromHex(v.context)
  t.equal(toHex(alice.recipient.x25519), v.x25519Public)
  t.equal(toHex(sha256(alice.recipient.mlkem)), v.mlkemPublicKeySha256, 'ML-KEM-768 public key derived from the X25519 key')
  const eph = fromHex(v.ephemeralPrivate)
  const m = fromHex(v.mlkemRandomness)
  const nonce = fromHex(v.nonce)
  const env = wrapKey(fromHex(v.dataKey), alice.recipient, ctx, fixedRng(eph, m, nonce))
  t.equal(toHex(env), v.envelope, 'envelope bytes')
  t.equal(toHex(sha256(env)), v.envelopeSha256)
  t.equal(toHex(eph) + toHex(m) + toHex(nonce), v.ephemeralPrivate + v.mlkemRandomness + v.nonce, 'rng outputs are not wiped under the caller')
  t.equal(toHex(unwrapKey(fromHex(v.envelope), alice.secret, ctx)), v.dataKey, 'opens to the data key')
  t.equal(toHex(referenceUnwrap(fromHex(v.envelope), alice.secret.x25519Priv, alice.secret.mlkemSecret, ctx)), v.dataKey, 'reference opens it')
})

t.test('vector parts: X25519 agrees with node:crypto diffieHellman, ML-KEM shared secret pinned', async (t) => {
  const env = fromHex(v.envelope)
  const ephPub = env.subarray(1, 33)
  t.equal(toHex(ephPub), v.ephemeralPublic)
  t.equal(toHex(x25519.getPublicKey(fromHex(v.ephemeralPrivate))), v.ephemeralPublic)
  t.equal(toHex(nodeDh(fromHex(v.ephemeralPrivate), fromHex(v.x25519Public))), v.x25519Shared, 'sender side, node:crypto')
  t.equal(toHex(nodeDh(fromHex(v.x25519Private), ephPub)), v.x25519Shared, 'recipient side, node:crypto')
  t.equal(toHex(x25519.getSharedSecret(fromHex(v.x25519Private), ephPub)), v.x25519Shared, 'recipient side, noble')
  t.equal(toHex(ml_kem768.decapsulate(env.subarray(33, 1121), Uint8Array.from(alice.secret.mlkemSecret))), v.mlkemShared)
})

t.test('round trip on random keys, contexts and data keys; the reference opens every envelope', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 100 }), (dataKey, ctx) => {
      const env = wrapKey(dataKey, bob.recipient, ctx)
      return (
        env.length === ENVELOPE_BYTES &&
        toHex(unwrapKey(env, bob.secret, ctx)) === toHex(dataKey) &&
        toHex(referenceUnwrap(env, bob.secret.x25519Priv, bob.secret.mlkemSecret, ctx)) === toHex(dataKey)
      )
    }),
    { numRuns: 30 },
  )
  t.pass('30 random envelopes')
  const k = randomBytes(32)
  t.not(toHex(wrapKey(k, bob.recipient, utf8('c'))), toHex(wrapKey(k, bob.recipient, utf8('c'))), 'fresh randomness per envelope')
})

t.test('unwrap leaves the secret keys unchanged', async (t) => {
  const before = toHex(bob.secret.mlkemSecret) + toHex(bob.secret.x25519Priv)
  unwrapKey(wrapKey(randomBytes(32), bob.recipient, utf8('x')), bob.secret, utf8('x'))
  t.equal(toHex(bob.secret.mlkemSecret) + toHex(bob.secret.x25519Priv), before)
})

t.test('a flipped bit in any byte fails; version byte changes are malformed', async (t) => {
  const ctx = fromHex(v.context)
  const env = fromHex(v.envelope)
  const failures: Record<string, number> = {}
  for (let i = 0; i < env.length; i++) {
    for (const bit of [0x01, 0x80]) {
      if (bit === 0x80 && i % 7 !== 0 && i !== 32) continue // 0x80 on a sample, always on byte 32 (the bit X25519 ignores)
      const bad = Uint8Array.from(env)
      bad[i] ^= bit
      const expect = i === 0 ? 'ENVELOPE_MALFORMED' : 'ENVELOPE_DECRYPT_FAILED'
      try {
        unwrapKey(bad, alice.secret, ctx)
      } catch (err) {
        if (err instanceof EnvelopeError && err.code === expect) continue
      }
      failures[`byte ${i} ^ ${bit}`] = 1
    }
  }
  t.same(failures, {}, 'every tampered envelope is rejected with the right code')
  for (const [name, [start]] of Object.entries(REGIONS)) {
    const bad = Uint8Array.from(env)
    bad[start] ^= 0xff
    throwsEnvelope(t, () => unwrapKey(bad, alice.secret, ctx), start === 0 ? 'ENVELOPE_MALFORMED' : 'ENVELOPE_DECRYPT_FAILED', name)
  }
})

t.test('the top bit of ephPub (ignored by X25519, RFC 7748 section 5) is still bound through the salt', async (t) => {
  const env = fromHex(v.envelope)
  const bad = Uint8Array.from(env)
  bad[32] ^= 0x80
  t.equal(toHex(x25519.getSharedSecret(alice.secret.x25519Priv, bad.subarray(1, 33))), v.x25519Shared, 'same ss1')
  throwsEnvelope(t, () => unwrapKey(bad, alice.secret, fromHex(v.context)), 'ENVELOPE_DECRYPT_FAILED', 'still rejected')
})

t.test('malformed lengths and versions', async (t) => {
  const env = fromHex(v.envelope)
  const ctx = fromHex(v.context)
  for (const n of [0, 1, 1180, 1182, 2362]) {
    const b = n <= env.length ? env.subarray(0, n) : concatBytes(env, new Uint8Array(n - env.length))
    throwsEnvelope(t, () => unwrapKey(b, alice.secret, ctx), 'ENVELOPE_MALFORMED', `length ${n}`)
  }
  for (const ver of [0, 2, 255]) {
    const b = Uint8Array.from(env)
    b[0] = ver
    throwsEnvelope(t, () => unwrapKey(b, alice.secret, ctx), 'ENVELOPE_MALFORMED', `version ${ver}`)
  }
  throwsEnvelope(t, () => unwrapKey(v.envelope as unknown as Uint8Array, alice.secret, ctx), 'ENVELOPE_MALFORMED', 'hex string')
})

t.test('wrong recipient fails', async (t) => {
  const env = wrapKey(randomBytes(32), alice.recipient, utf8('study-1'))
  throwsEnvelope(t, () => unwrapKey(env, bob.secret, utf8('study-1')), 'ENVELOPE_DECRYPT_FAILED', 'other org')
  const mixed = { x25519Priv: alice.secret.x25519Priv, mlkemSecret: bob.secret.mlkemSecret }
  throwsEnvelope(t, () => unwrapKey(env, mixed, utf8('study-1')), 'ENVELOPE_DECRYPT_FAILED', 'right X25519, wrong ML-KEM')
  const mixed2 = { x25519Priv: bob.secret.x25519Priv, mlkemSecret: alice.secret.mlkemSecret }
  throwsEnvelope(t, () => unwrapKey(env, mixed2, utf8('study-1')), 'ENVELOPE_DECRYPT_FAILED', 'right ML-KEM, wrong X25519')
})

t.test('wrong context fails', async (t) => {
  const ctx = fromHex(v.context)
  const env = fromHex(v.envelope)
  const others = [
    new Uint8Array(0),
    ctx.subarray(0, ctx.length - 1),
    concatBytes(ctx, new Uint8Array([0])),
    utf8('radchain/study/1.2.826.0.1.3680043.8.498.2/custodian'),
  ]
  for (const c of others) throwsEnvelope(t, () => unwrapKey(env, alice.secret, c), 'ENVELOPE_DECRYPT_FAILED', `context "${Buffer.from(c).toString()}"`)
  const empty = wrapKey(randomBytes(32), alice.recipient, new Uint8Array(0))
  throwsEnvelope(t, () => unwrapKey(empty, alice.secret, new Uint8Array([0])), 'ENVELOPE_DECRYPT_FAILED', 'empty vs 0x00')
})

t.test('boundary asserts', async (t) => {
  const k = randomBytes(32)
  t.throws(() => wrapKey(k.subarray(0, 31), alice.recipient, utf8('c')), TypeError, 'data key length')
  t.throws(() => wrapKey(k, { ...alice.recipient, x25519: new Uint8Array(31) }, utf8('c')), TypeError, 'x25519 length')
  t.throws(() => wrapKey(k, { ...alice.recipient, mlkem: new Uint8Array(1183) }, utf8('c')), TypeError, 'ml-kem length')
  t.throws(() => wrapKey(k, { ...alice.recipient, x25519: new Uint8Array(32) }, utf8('c')), TypeError, 'low-order x25519 key')
  t.throws(() => wrapKey(k, { ...alice.recipient, mlkem: new Uint8Array(1184).fill(0xff) }, utf8('c')), TypeError, 'ml-kem key not reduced mod q')
  t.throws(() => wrapKey(k, alice.recipient, utf8('c'), () => new Uint8Array(31)), TypeError, 'short rng output')
  t.throws(() => unwrapKey(fromHex(v.envelope), { ...alice.secret, mlkemSecret: new Uint8Array(2399) }, utf8('c')), TypeError)
  t.throws(() => unwrapKey(fromHex(v.envelope), { ...alice.secret, x25519Priv: new Uint8Array(33) }, utf8('c')), TypeError)
})

t.test('mlkemFromX25519Private: FIPS 203 sizes, deterministic, seed = HKDF-SHA256 of the X25519 key', async (t) => {
  const priv = fromHex(v.x25519Private)
  const a = mlkemFromX25519Private(priv)
  const b = mlkemFromX25519Private(Uint8Array.from(priv))
  t.equal(a.publicKey.length, MLKEM768_PUBLIC_KEY_BYTES)
  t.equal(a.secretKey.length, MLKEM768_SECRET_KEY_BYTES)
  t.equal(toHex(a.publicKey), toHex(b.publicKey), 'same public key')
  t.equal(toHex(a.secretKey), toHex(b.secretKey), 'same secret key')
  t.equal(toHex(priv), v.x25519Private, 'input not wiped')
  const seed = hkdf(sha256, priv, new Uint8Array(0), utf8('radchain/ml-kem-768-seed/v1'), 64)
  t.equal(toHex(seed), v.mlkemSeed)
  t.equal(toHex(ml_kem768.keygen(seed).publicKey), toHex(a.publicKey), 'noble keygen on the reference seed')
  // FIPS 203 section 7.1: dk = dk_PKE || ek || H(ek) || z, with z = seed[32..64].
  t.equal(toHex(a.secretKey.subarray(1152, 2336)), toHex(a.publicKey), 'dk embeds ek')
  t.equal(toHex(a.secretKey.subarray(2336, 2368)), toHex(sha3_256(a.publicKey)), 'H(ek) = SHA3-256(ek)')
  t.equal(toHex(a.secretKey.subarray(2368)), toHex(seed.subarray(32)), 'z survives (seed wiped only after keygen)')
  const other = mlkemFromX25519Private(generateX25519().privateKey)
  t.not(toHex(other.publicKey), toHex(a.publicKey), 'another X25519 key, another ML-KEM key')
  t.throws(() => mlkemFromX25519Private(new Uint8Array(31)), TypeError)
})
