import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, randomBytes, type KeyObject } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { assertBytes, asBuffer, concatBytes, toHex } from '../util/index.js'

// DER prefixes that wrap a raw 32-byte Ed25519 key (RFC 8410).
const PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20])
const SPKI_PREFIX = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00])

/** Length of an Ed25519 public key, seed and signature (RFC 8032). */
export const ED25519_PUBLIC_KEY_BYTES = 32
export const ED25519_SEED_BYTES = 32
export const ED25519_SIGNATURE_BYTES = 64

/** A signing key held as a node:crypto KeyObject (the seed is not kept in JS memory after construction). */
export class Ed25519Signer {
  /** Raw 32-byte public key. */
  readonly publicKey: Uint8Array
  readonly #key: KeyObject

  /** Builds a signer from a 32-byte seed (RFC 8032 section 5.1.5 private key). */
  constructor(seed: Uint8Array) {
    assertBytes(seed, ED25519_SEED_BYTES, 'ed25519 seed')
    this.#key = createPrivateKey({ key: asBuffer(concatBytes(PKCS8_PREFIX, seed)), format: 'der', type: 'pkcs8' })
    const jwk = createPublicKey(this.#key).export({ format: 'jwk' })
    this.publicKey = new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'))
  }

  /** A fresh random signer. Also returns the seed, for the keystore only. */
  static generate(): { signer: Ed25519Signer; seed: Uint8Array } {
    const seed = new Uint8Array(randomBytes(ED25519_SEED_BYTES))
    return { signer: new Ed25519Signer(seed), seed }
  }

  /** Ed25519 signature (RFC 8032 section 5.1.6) of `msg`. */
  sign(msg: Uint8Array): Uint8Array {
    return new Uint8Array(nodeSign(null, asBuffer(msg), this.#key))
  }
}

const KEY_CACHE_MAX = 16_384
const keyCache = new Map<string, KeyObject | null>()

function publicKeyObject(pub: Uint8Array): KeyObject | null {
  const id = toHex(pub)
  let k = keyCache.get(id)
  if (k !== undefined) return k
  try {
    // Refuse keys that are not canonical encodings or have small order: with
    // such a key (e.g. the identity) one forged signature verifies for every
    // message, so nobody may hold one. Checked once per key, then cached.
    const point = ed25519.Point.fromBytes(pub, false)
    if (point.isSmallOrder() || toHex(point.toBytes()) !== toHex(pub)) k = null
    else k = createPublicKey({ key: asBuffer(concatBytes(SPKI_PREFIX, pub)), format: 'der', type: 'spki' })
  } catch {
    k = null
  }
  if (keyCache.size >= KEY_CACHE_MAX) {
    const first = keyCache.keys().next()
    if (first.done !== true) keyCache.delete(first.value)
  }
  keyCache.set(id, k)
  return k
}

/** True if `pub` is a canonical Ed25519 point encoding of large order (a key that can own anything). */
export function isUsableEd25519PublicKey(pub: Uint8Array): boolean {
  return pub.length === ED25519_PUBLIC_KEY_BYTES && publicKeyObject(pub) !== null
}

/**
 * The one Ed25519 verifier for everything consensus-critical: RFC 8032
 * section 5.1.7 as OpenSSL implements it (canonical S < L required, cofactorless
 * equation), with KeyObjects cached per public key, and stricter than the RFC
 * on keys: a public key that is not a canonical point encoding, or that has
 * small order, verifies nothing. Never throws: a malformed key or signature
 * verifies false.
 */
export function verifyEd25519(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  if (pub.length !== ED25519_PUBLIC_KEY_BYTES || sig.length !== ED25519_SIGNATURE_BYTES) return false
  const k = publicKeyObject(pub)
  if (k === null) return false
  try {
    return nodeVerify(null, asBuffer(msg), k, asBuffer(sig))
  } catch {
    return false
  }
}
