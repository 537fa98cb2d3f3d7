import { createHash, randomBytes } from 'node:crypto'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js'
import { assertBytes, concatBytes, equalBytes } from '../util/index.js'
import { DOMAIN, taggedHash } from './hash.js'
import { ED25519_PUBLIC_KEY_BYTES, isUsableEd25519PublicKey } from './ed25519.js'
import { X25519_KEY_BYTES } from './x25519.js'

/*
 * Per-study owner keys (a stealth-address construction on Ed25519).
 *
 * A patient has an Ed25519 key A = a*B and an X25519 key X = x*G (the
 * `rcpatient1:` public key). The ledger must not link two studies of one
 * patient, even for an organization that knows A and X. So each study gets
 * its own owner key:
 *
 *   custodian: r random, R = X25519(r, G)            (published: study.register's ownerEphemeral)
 *              t = X25519(r, X)                      (RFC 7748 section 6.1)
 *              h = LE(H(0x00) || H(0x01)) mod L,     H(i) = taggedHash(STUDY_OWNER, i || t || R || studyId)
 *              O = A + h*B                           (published: study.register's owner)
 *   patient:   t = X25519(x, R), the same h, secret scalar s = a + h mod L (O = s*B)
 *
 * Why it is sound:
 * - Unlinkable: h is a hash of the Diffie-Hellman secret t, which only the
 *   holder of r (the registering custodian, who discards it) or of x (the
 *   patient) can compute. To anyone else, under the decisional Diffie-Hellman
 *   assumption on Curve25519 and with the hash as a random oracle, h is
 *   uniform mod L and independent of everything public, so O = A + h*B is a
 *   uniform point whatever A is: knowing A does not help to tell whether O
 *   belongs to A, nor whether two owner keys share a patient. R is a fresh
 *   random X25519 key per study, so it carries nothing either. The 512-bit
 *   hash reduced mod L (as RFC 8032 reduces SHA-512) keeps h within 2^-250 of
 *   uniform.
 * - Only the patient signs: s = a + h needs a. The custodian knows h, but O
 *   is a key it cannot sign for without a, just as it cannot sign for A.
 *   Knowing h for one study tells nothing about a or about another study's h.
 *   Signatures under keys that differ by known offsets (a + h1, a + h2, ...)
 *   do not help to forge under another: Ed25519 hashes the public key into
 *   the challenge (k = H(R || O || M)), and Schnorr signatures with the key
 *   in the challenge stay unforgeable under such linear related keys (the
 *   argument behind additively derived Schnorr keys, as in BIP 32).
 * - Standard signatures: the signer below is RFC 8032 section 5.1.6 over the
 *   expanded scalar s, with the nonce prefix derived from the patient's own
 *   RFC 8032 prefix and h (deterministic, secret, different per study), so
 *   the signatures verify with the project's one verifier (verifyEd25519).
 * - Usable keys: O is checked to be a canonical point of large order
 *   (isUsableEd25519PublicKey) before it is used; for an honest A this fails
 *   only if h = -a mod L (probability 2^-252).
 */

/** Length of the published ephemeral X25519 key R. */
export const STUDY_OWNER_EPHEMERAL_BYTES = X25519_KEY_BYTES

const L = ed25519.Point.Fn.ORDER
const B = ed25519.Point.BASE

/** A study's owner key as the custodian derives it: the key for the ledger and the ephemeral key published beside it. */
export interface StudyOwnerKey {
  /** O = A + h*B, the Ed25519 key that owns the study on the ledger. */
  readonly owner: Uint8Array
  /** R = X25519(r, G), published so that the patient can derive h. */
  readonly ephemeral: Uint8Array
}

/** The public half of a patient key this module needs: the Ed25519 key A and the X25519 key X. */
export interface StudyOwnerRecipient {
  readonly sign: Uint8Array
  readonly x25519: Uint8Array
}

function sha512(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha512')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/** h = LE(H(0) || H(1)) mod L with H(i) = taggedHash(STUDY_OWNER, i || t || R || studyId); never 0. */
function tweak(t: Uint8Array, ephemeral: Uint8Array, studyId: Uint8Array): bigint {
  const wide = concatBytes(
    taggedHash(DOMAIN.STUDY_OWNER, new Uint8Array([0]), t, ephemeral, studyId),
    taggedHash(DOMAIN.STUDY_OWNER, new Uint8Array([1]), t, ephemeral, studyId),
  )
  const h = bytesToNumberLE(wide) % L
  wide.fill(0)
  // Probability 2^-252; refusing it keeps O != A.
  if (h === 0n) throw new RangeError('study owner tweak is zero')
  return h
}

/**
 * The owner key of a new study for `patient` (custodian side, at
 * registration): a fresh ephemeral X25519 key r, R = r*G, and O = A + h*B
 * (see above). `rng` is for tests only (32 bytes per call). Throws TypeError
 * when the patient's X25519 key is a low-order point or O is not usable
 * (a patient key parsePatientPublicKey would refuse).
 */
export function deriveStudyOwner(
  patient: StudyOwnerRecipient,
  studyId: Uint8Array,
  rng: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n)),
): StudyOwnerKey {
  assertBytes(patient.sign, ED25519_PUBLIC_KEY_BYTES, 'patient ed25519 key')
  assertBytes(patient.x25519, X25519_KEY_BYTES, 'patient x25519 key')
  assertBytes(studyId, undefined, 'study id')
  const r = Uint8Array.from(rng(X25519_KEY_BYTES))
  assertBytes(r, X25519_KEY_BYTES, 'ephemeral x25519 key')
  let t: Uint8Array | undefined
  try {
    const ephemeral = x25519.getPublicKey(r)
    try {
      t = x25519.getSharedSecret(r, patient.x25519)
    } catch (cause) {
      throw new TypeError('patient x25519 key is a low-order point', { cause })
    }
    const h = tweak(t, ephemeral, studyId)
    const owner = ed25519.Point.fromBytes(patient.sign).add(B.multiply(h)).toBytes()
    if (!isUsableEd25519PublicKey(owner)) throw new TypeError('the derived owner key is not a point of large order')
    return { owner, ephemeral }
  } finally {
    r.fill(0)
    t?.fill(0)
  }
}

/**
 * Signs as one study's owner key O = (a + h)*B: RFC 8032 section 5.1.6 over
 * the expanded scalar s = a + h mod L, with nonce prefix
 * taggedHash(STUDY_OWNER_NONCE, patient prefix || LE32(h)). Signatures verify
 * with verifyEd25519 under `publicKey`. Made by PatientStudyKeys.
 */
export class StudyOwnerSigner {
  /** O, the study's owner key on the ledger. */
  readonly publicKey: Uint8Array
  readonly #s: bigint
  readonly #prefix: Uint8Array

  /** @internal Use PatientStudyKeys.signerFor. */
  constructor(publicKey: Uint8Array, s: bigint, prefix: Uint8Array) {
    this.publicKey = publicKey
    this.#s = s
    this.#prefix = prefix
  }

  /** Ed25519 signature (RFC 8032 section 5.1.6, steps 2-6, from the expanded key) of `msg`. */
  sign(msg: Uint8Array): Uint8Array {
    const r = bytesToNumberLE(sha512(this.#prefix, msg)) % L
    // r = 0 has probability 2^-252; Point.multiply refuses it rather than sign with a known nonce.
    const R = B.multiply(r).toBytes()
    const k = bytesToNumberLE(sha512(R, this.publicKey, msg)) % L
    const S = (r + k * this.#s) % L
    return concatBytes(R, numberToBytesLE(S, 32))
  }
}

/**
 * A patient's secrets for their studies: finds which registrations are
 * theirs (one X25519 and one point operation each) and signs for them. Built
 * from the keystore's Ed25519 seed and X25519 private key.
 */
export class PatientStudyKeys {
  readonly #a: bigint
  readonly #prefix: Uint8Array
  readonly #A: InstanceType<typeof ed25519.Point>
  readonly #x: Uint8Array

  /** From the patient's keys as loadKeystore returns them. */
  constructor(keys: { readonly identitySeed: Uint8Array; readonly encryption: { readonly privateKey: Uint8Array } }) {
    assertBytes(keys.encryption.privateKey, X25519_KEY_BYTES, 'x25519 private key')
    // RFC 8032 section 5.1.5: SHA-512 of the seed, the clamped low half is a, the high half the prefix.
    const ext = ed25519.utils.getExtendedPublicKey(keys.identitySeed)
    this.#a = ext.scalar
    this.#prefix = Uint8Array.from(ext.prefix)
    this.#A = ext.point
    this.#x = Uint8Array.from(keys.encryption.privateKey)
  }

  /** The patient's Ed25519 key A (never on the ledger: each study has its own). */
  get publicKey(): Uint8Array {
    return this.#A.toBytes()
  }

  #h(studyId: Uint8Array, ephemeral: Uint8Array): bigint | null {
    if (ephemeral.length !== X25519_KEY_BYTES) return null
    let t: Uint8Array
    try {
      t = x25519.getSharedSecret(this.#x, ephemeral)
    } catch {
      return null // a low-order R: no study of ours
    }
    try {
      return tweak(t, ephemeral, studyId)
    } catch {
      return null
    } finally {
      t.fill(0)
    }
  }

  /** The owner key this patient would have for a study registered with `ephemeral` (null if R is a low-order point). */
  ownerKey(studyId: Uint8Array, ephemeral: Uint8Array): Uint8Array | null {
    const h = this.#h(studyId, ephemeral)
    return h === null ? null : this.#A.add(B.multiply(h)).toBytes()
  }

  /** Whether a registration (study id, owner key, ephemeral key) is this patient's. */
  owns(studyId: Uint8Array, owner: Uint8Array, ephemeral: Uint8Array): boolean {
    const o = this.ownerKey(studyId, ephemeral)
    return o !== null && equalBytes(o, owner)
  }

  /** The signer for a study of this patient, or null when the registration is not theirs. */
  signerFor(studyId: Uint8Array, owner: Uint8Array, ephemeral: Uint8Array): StudyOwnerSigner | null {
    const h = this.#h(studyId, ephemeral)
    if (h === null) return null
    const o = this.#A.add(B.multiply(h)).toBytes()
    if (!equalBytes(o, owner)) return null
    const prefix = taggedHash(DOMAIN.STUDY_OWNER_NONCE, this.#prefix, numberToBytesLE(h, 32))
    return new StudyOwnerSigner(o, (this.#a + h) % L, prefix)
  }

  /** Overwrites the byte secrets held here (the bigint scalar cannot be wiped; it goes with this object). */
  wipe(): void {
    this.#prefix.fill(0)
    this.#x.fill(0)
  }
}
