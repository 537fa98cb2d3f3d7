import { randomBytes } from 'node:crypto'
import { x25519 } from '@noble/curves/ed25519.js'
import { assertBytes } from '../util/index.js'

/** Length of X25519 keys (RFC 7748). */
export const X25519_KEY_BYTES = 32

/** An organization's encryption key pair for key envelopes (RFC 7748 X25519). */
export interface X25519KeyPair {
  readonly publicKey: Uint8Array
  readonly privateKey: Uint8Array
}

/** A fresh random X25519 key pair. */
export function generateX25519(): X25519KeyPair {
  return x25519FromPrivate(new Uint8Array(randomBytes(X25519_KEY_BYTES)))
}

/** The key pair of a 32-byte X25519 private key (RFC 7748 section 5). */
export function x25519FromPrivate(privateKey: Uint8Array): X25519KeyPair {
  assertBytes(privateKey, X25519_KEY_BYTES, 'x25519 private key')
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) }
}
