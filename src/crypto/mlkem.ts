import { hkdfSync } from 'node:crypto'
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import { assertBytes, utf8 } from '../util/index.js'
import { DOMAIN } from './hash.js'
import { X25519_KEY_BYTES } from './x25519.js'

/** ML-KEM-768 encapsulation (public) key length, FIPS 203 section 8 table 3. */
export const MLKEM768_PUBLIC_KEY_BYTES = 1184
/** ML-KEM-768 decapsulation (secret) key length, FIPS 203 section 8 table 3. */
export const MLKEM768_SECRET_KEY_BYTES = 2400
/** ML-KEM-768 ciphertext length, FIPS 203 section 8 table 3. */
export const MLKEM768_CIPHERTEXT_BYTES = 1088
/** Length of the seed d || z of ML-KEM.KeyGen_internal (FIPS 203 section 6.1). */
export const MLKEM768_SEED_BYTES = 64

/** An ML-KEM-768 key pair (FIPS 203): encapsulation key and decapsulation key. */
export interface MlKemKeyPair {
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

/**
 * The organization's ML-KEM-768 key pair, derived deterministically from its
 * X25519 private key, so the keystore keeps one 32-byte encryption secret.
 *
 * seed = HKDF-SHA256 (RFC 5869) with ikm = x25519Priv, empty salt,
 * info = utf8(DOMAIN.ML_KEM_SEED), 64 bytes; the key pair is
 * ML-KEM.KeyGen_internal(d = seed[0..32], z = seed[32..64]) (FIPS 203
 * section 6.1, algorithm 16; the seed form of section 7.1).
 */
export function mlkemFromX25519Private(x25519Priv: Uint8Array): MlKemKeyPair {
  assertBytes(x25519Priv, X25519_KEY_BYTES, 'x25519 private key')
  const seed = new Uint8Array(hkdfSync('sha256', x25519Priv, new Uint8Array(0), utf8(DOMAIN.ML_KEM_SEED), MLKEM768_SEED_BYTES))
  try {
    const { publicKey, secretKey } = ml_kem768.keygen(seed)
    return { publicKey, secretKey }
  } finally {
    seed.fill(0)
  }
}

/** ML-KEM's modulus q (FIPS 203 section 2.4). */
const MLKEM_Q = 3329

/**
 * Whether `ek` passes the input checks of ML-KEM-768 encapsulation (FIPS 203
 * section 7.2): 1184 bytes, and each 12-bit coefficient of its first 1152
 * bytes (ByteDecode_12) is below q, so that ByteEncode_12 gives the same
 * bytes back. A key failing them cannot be wrapped to.
 */
export function isValidMlKem768PublicKey(ek: Uint8Array): boolean {
  if (ek.length !== MLKEM768_PUBLIC_KEY_BYTES) return false
  for (let i = 0; i < MLKEM768_PUBLIC_KEY_BYTES - 32; i += 3) {
    const b0 = ek[i] as number
    const b1 = ek[i + 1] as number
    const b2 = ek[i + 2] as number
    if ((b0 | ((b1 & 0x0f) << 8)) >= MLKEM_Q || ((b1 >> 4) | (b2 << 4)) >= MLKEM_Q) return false
  }
  return true
}
