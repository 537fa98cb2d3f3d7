import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { x25519 } from '@noble/curves/ed25519.js'
import { x25519FromPrivate, generateX25519, X25519_KEY_BYTES } from '../../../src/crypto/index.js'
import { fromHex, toHex, concatBytes } from '../../../src/util/index.js'

const hex32 = z.string().regex(/^[0-9a-f]{64}$/)
const V = z.object({ alicePrivate: hex32, alicePublic: hex32, bobPrivate: hex32, bobPublic: hex32, shared: hex32 })
const v = V.parse(JSON.parse(readFileSync(new URL('../../vectors/x25519.json', import.meta.url), 'utf8')))

// DER prefixes around raw X25519 keys (RFC 8410), for an independent check on node:crypto.
const PKCS8 = fromHex('302e020100300506032b656e04220420')
const SPKI = fromHex('302a300506032b656e032100')
function nodePrivate(priv: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(concatBytes(PKCS8, priv)), format: 'der', type: 'pkcs8' })
}
function nodePublicOf(priv: Uint8Array): string {
  return Buffer.from(createPublicKey(nodePrivate(priv)).export({ format: 'der', type: 'spki' }))
    .subarray(SPKI.length)
    .toString('hex')
}

t.test('RFC 7748 section 6.1: private key -> public key', async (t) => {
  t.equal(X25519_KEY_BYTES, 32)
  const alice = x25519FromPrivate(fromHex(v.alicePrivate))
  t.equal(toHex(alice.publicKey), v.alicePublic, 'Alice')
  t.equal(toHex(alice.privateKey), v.alicePrivate, 'private key kept as given')
  const bob = x25519FromPrivate(fromHex(v.bobPrivate))
  t.equal(toHex(bob.publicKey), v.bobPublic, 'Bob')
  // The vector file agrees with OpenSSL.
  t.equal(nodePublicOf(fromHex(v.alicePrivate)), v.alicePublic)
  t.equal(nodePublicOf(fromHex(v.bobPrivate)), v.bobPublic)
})

t.test('RFC 7748 section 6.1: both sides reach the shared secret with the derived keys', async (t) => {
  const alice = x25519FromPrivate(fromHex(v.alicePrivate))
  const bob = x25519FromPrivate(fromHex(v.bobPrivate))
  t.equal(toHex(x25519.getSharedSecret(alice.privateKey, bob.publicKey)), v.shared)
  t.equal(toHex(x25519.getSharedSecret(bob.privateKey, alice.publicKey)), v.shared)
})

t.test('rejects private keys of the wrong length', async (t) => {
  t.throws(() => x25519FromPrivate(new Uint8Array(31)), TypeError)
  t.throws(() => x25519FromPrivate(new Uint8Array(33)), TypeError)
  t.throws(() => x25519FromPrivate(new Uint8Array(0)), TypeError)
})

t.test('generateX25519: fresh 32-byte keys whose public key matches the private key', async (t) => {
  const a = generateX25519()
  const b = generateX25519()
  t.equal(a.privateKey.length, 32)
  t.equal(a.publicKey.length, 32)
  t.not(toHex(a.privateKey), toHex(b.privateKey))
  t.equal(toHex(x25519FromPrivate(a.privateKey).publicKey), toHex(a.publicKey))
  t.equal(nodePublicOf(a.privateKey), toHex(a.publicKey))
})

t.test('agrees with node:crypto on random private keys (public keys and shared secrets)', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
      const ka = x25519FromPrivate(a)
      const kb = x25519FromPrivate(b)
      if (toHex(ka.publicKey) !== nodePublicOf(a)) return false
      const peer = createPublicKey({ key: Buffer.from(concatBytes(SPKI, kb.publicKey)), format: 'der', type: 'spki' })
      const shared = diffieHellman({ privateKey: nodePrivate(a), publicKey: peer })
      return shared.toString('hex') === toHex(x25519.getSharedSecret(kb.privateKey, ka.publicKey))
    }),
    { numRuns: 100 },
  )
  t.pass('100 random key pairs')
})
