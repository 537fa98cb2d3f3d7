import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { x25519 } from '@noble/curves/ed25519.js'
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import { RadError, assertBytes, concatBytes, utf8, type ErrorCodes } from '../util/index.js'
import { DOMAIN, taggedHash } from './hash.js'
import { X25519_KEY_BYTES } from './x25519.js'
import { MLKEM768_CIPHERTEXT_BYTES, MLKEM768_PUBLIC_KEY_BYTES, MLKEM768_SECRET_KEY_BYTES } from './mlkem.js'

/** Version byte of the envelope format below. */
export const ENVELOPE_VERSION = 1
/** Length of the wrapped data key. */
export const DATA_KEY_BYTES = 32
/** AES-256-GCM nonce length (NIST SP 800-38D section 8.2, 96-bit IV). */
export const ENVELOPE_NONCE_BYTES = 12
/** AES-256-GCM tag length (NIST SP 800-38D section 5.2.1.2, 128 bits). */
export const ENVELOPE_TAG_BYTES = 16
/** Total envelope length: 1 + 32 + 1088 + 12 + 32 + 16 = 1181 bytes. */
export const ENVELOPE_BYTES = 1 + X25519_KEY_BYTES + MLKEM768_CIPHERTEXT_BYTES + ENVELOPE_NONCE_BYTES + DATA_KEY_BYTES + ENVELOPE_TAG_BYTES

// Offsets of the wire format.
const O_EPH = 1
const O_CT = O_EPH + X25519_KEY_BYTES
const O_NONCE = O_CT + MLKEM768_CIPHERTEXT_BYTES
const O_CIPHER = O_NONCE + ENVELOPE_NONCE_BYTES
const O_TAG = O_CIPHER + DATA_KEY_BYTES
// FIPS 203 section 7.1: dk = dk_PKE (384k) || ek (384k + 32) || H(ek) || z, k = 3.
const O_SK_EK = 1152

/**
 * Failure codes of key envelopes. A wrong context cannot be told apart from
 * tampering (both only fail the AES-GCM tag), so it is ENVELOPE_DECRYPT_FAILED.
 */
export type EnvelopeCode = ErrorCodes<'ENVELOPE_MALFORMED' | 'ENVELOPE_DECRYPT_FAILED'>

/** A key envelope that cannot be opened. */
export class EnvelopeError extends RadError<EnvelopeCode> {
  constructor(code: EnvelopeCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'EnvelopeError'
  }
}

/** Public keys an envelope is wrapped to: X25519 (RFC 7748) and ML-KEM-768 (FIPS 203). */
export interface EnvelopeRecipient {
  readonly x25519: Uint8Array
  readonly mlkem: Uint8Array
}

/** Secret keys that open an envelope: the X25519 private key and the ML-KEM-768 decapsulation key. */
export interface EnvelopeRecipientSecret {
  readonly x25519Priv: Uint8Array
  readonly mlkemSecret: Uint8Array
}

/**
 * Source of randomness, `n` bytes per call. Tests only: wrapKey calls it
 * three times, in this order: ephemeral X25519 private key (32), ML-KEM
 * encapsulation randomness m (32, FIPS 203 section 7.2), AES-GCM nonce (12).
 */
export type EnvelopeRng = (n: number) => Uint8Array

function defaultRng(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

function take(rng: EnvelopeRng, n: number, what: string): Uint8Array {
  const b = rng(n)
  assertBytes(b, n, what)
  return Uint8Array.from(b) // a copy: we wipe it, the caller keeps theirs
}

/**
 * The AES-256-GCM key: HKDF-SHA256 (RFC 5869) with ikm = ss1 || ss2,
 * salt = taggedHash(ENVELOPE_KEM, ephPub || ct2 || recipient X25519 || recipient ML-KEM),
 * info = utf8(DOMAIN.ENVELOPE_KEY). Hashing every public value into the key, as
 * X-Wing (draft-connolly-cfrg-xwing-kem section 5.3) and the hybrid combiners of
 * draft-ietf-tls-hybrid-design section 3.2 / NIST SP 800-227 section 4.6 do, ties the key to
 * this exact ciphertext and recipient, so the scheme stays IND-CCA if either KEM holds.
 */
function envelopeKey(ss1: Uint8Array, ss2: Uint8Array, ephPub: Uint8Array, ct2: Uint8Array, r: EnvelopeRecipient): Uint8Array {
  const ikm = concatBytes(ss1, ss2)
  const salt = taggedHash(DOMAIN.ENVELOPE_KEM, ephPub, ct2, r.x25519, r.mlkem)
  try {
    return new Uint8Array(hkdfSync('sha256', ikm, salt, utf8(DOMAIN.ENVELOPE_KEY), 32))
  } finally {
    ikm.fill(0)
  }
}

function aad(context: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([ENVELOPE_VERSION]), context)
}

/**
 * Wraps a 32-byte data key to a recipient with a hybrid X25519 + ML-KEM-768 KEM
 * and AES-256-GCM. `context` (study id, purpose) is authenticated, not stored:
 * the envelope opens only with the same context.
 *
 * Wire format (1181 bytes):
 * `version (1) = 1 || ephPub (32) || ct2 (1088) || nonce (12) || ciphertext (32) || tag (16)`
 * where ss1 = X25519(eph, recipient.x25519) (RFC 7748 section 6.1),
 * (ct2, ss2) = ML-KEM-768.Encaps(recipient.mlkem) (FIPS 203 section 7.2),
 * key = envelopeKey(...) above, and AES-256-GCM (NIST SP 800-38D) encrypts the
 * data key with AAD = version || context.
 */
export function wrapKey(dataKey: Uint8Array, recipient: EnvelopeRecipient, context: Uint8Array, rng: EnvelopeRng = defaultRng): Uint8Array {
  assertBytes(dataKey, DATA_KEY_BYTES, 'data key')
  assertBytes(recipient.x25519, X25519_KEY_BYTES, 'recipient x25519 key')
  assertBytes(recipient.mlkem, MLKEM768_PUBLIC_KEY_BYTES, 'recipient ml-kem key')
  assertBytes(context, undefined, 'context')
  const ephPriv = take(rng, X25519_KEY_BYTES, 'ephemeral x25519 key')
  const m = take(rng, 32, 'ml-kem randomness')
  const nonce = take(rng, ENVELOPE_NONCE_BYTES, 'nonce')
  let ss1: Uint8Array | undefined
  let ss2: Uint8Array | undefined
  let key: Uint8Array | undefined
  try {
    const ephPub = x25519.getPublicKey(ephPriv)
    try {
      ss1 = x25519.getSharedSecret(ephPriv, recipient.x25519)
    } catch (cause) {
      throw new TypeError('recipient x25519 key is a low-order point', { cause })
    }
    let ct2: Uint8Array
    try {
      ;({ cipherText: ct2, sharedSecret: ss2 } = ml_kem768.encapsulate(recipient.mlkem, m))
    } catch (cause) {
      // FIPS 203 section 7.2 input check: coefficients of ek must be reduced mod q.
      throw new TypeError('recipient ml-kem key fails the FIPS 203 encapsulation key check', { cause })
    }
    key = envelopeKey(ss1, ss2, ephPub, ct2, recipient)
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: ENVELOPE_TAG_BYTES })
    c.setAAD(aad(context))
    const ciphertext = concatBytes(c.update(dataKey), c.final())
    return concatBytes(new Uint8Array([ENVELOPE_VERSION]), ephPub, ct2, nonce, ciphertext, c.getAuthTag())
  } finally {
    ephPriv.fill(0)
    m.fill(0)
    ss1?.fill(0)
    ss2?.fill(0)
    key?.fill(0)
  }
}

/**
 * Opens an envelope made by wrapKey with the same context. Throws
 * EnvelopeError ENVELOPE_MALFORMED for another length or version, and
 * ENVELOPE_DECRYPT_FAILED for any change to the bytes, a wrong recipient or a
 * wrong context (ML-KEM's implicit rejection, FIPS 203 section 6.3, turns a
 * changed ct2 into an unrelated ss2, so the GCM tag check catches it too).
 */
export function unwrapKey(envelope: Uint8Array, recipientSecret: EnvelopeRecipientSecret, context: Uint8Array): Uint8Array {
  assertBytes(recipientSecret.x25519Priv, X25519_KEY_BYTES, 'x25519 private key')
  assertBytes(recipientSecret.mlkemSecret, MLKEM768_SECRET_KEY_BYTES, 'ml-kem secret key')
  assertBytes(context, undefined, 'context')
  if (!(envelope instanceof Uint8Array)) throw new EnvelopeError('ENVELOPE_MALFORMED', 'envelope must be bytes')
  if (envelope.length !== ENVELOPE_BYTES) {
    throw new EnvelopeError('ENVELOPE_MALFORMED', `envelope must be ${ENVELOPE_BYTES} bytes, got ${envelope.length}`)
  }
  if (envelope[0] !== ENVELOPE_VERSION) throw new EnvelopeError('ENVELOPE_MALFORMED', `unknown envelope version ${envelope[0]}`)
  const ephPub = envelope.subarray(O_EPH, O_CT)
  const ct2 = envelope.subarray(O_CT, O_NONCE)
  const nonce = envelope.subarray(O_NONCE, O_CIPHER)
  const ciphertext = envelope.subarray(O_CIPHER, O_TAG)
  const tag = envelope.subarray(O_TAG)
  const recipient: EnvelopeRecipient = {
    x25519: x25519.getPublicKey(recipientSecret.x25519Priv),
    mlkem: recipientSecret.mlkemSecret.subarray(O_SK_EK, O_SK_EK + MLKEM768_PUBLIC_KEY_BYTES),
  }
  let ss1: Uint8Array
  try {
    ss1 = x25519.getSharedSecret(recipientSecret.x25519Priv, ephPub)
  } catch (cause) {
    throw new EnvelopeError('ENVELOPE_DECRYPT_FAILED', 'ephemeral key is a low-order point', { cause })
  }
  let ss2: Uint8Array | undefined
  let key: Uint8Array | undefined
  try {
    try {
      ss2 = ml_kem768.decapsulate(ct2, recipientSecret.mlkemSecret)
    } catch (cause) {
      // ct2 has the right length, so only the secret key can fail (FIPS 203 section 7.3 hash check).
      throw new TypeError('ml-kem secret key fails the FIPS 203 decapsulation key check', { cause })
    }
    key = envelopeKey(ss1, ss2, ephPub, ct2, recipient)
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: ENVELOPE_TAG_BYTES })
    d.setAAD(aad(context))
    d.setAuthTag(tag)
    try {
      return concatBytes(d.update(ciphertext), d.final())
    } catch (cause) {
      throw new EnvelopeError('ENVELOPE_DECRYPT_FAILED', 'envelope does not open with this key and context', { cause })
    }
  } finally {
    ss1.fill(0)
    ss2?.fill(0)
    key?.fill(0)
  }
}
