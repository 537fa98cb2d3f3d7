import { createHmac, randomBytes } from 'node:crypto'

// Domain tags of the keyed hashes below, so a UID can never equal a pseudonym
// or any other value derived from the same study secret.
const UID_TAG = 'radchain/deid-uid/v1\0'
const PSEUDONYM_TAG = 'radchain/patient-pseudonym/v1\0'

/** Bytes of a per-study de-identification secret. */
export const STUDY_SECRET_BYTES = 32

/** A fresh random per-study secret. */
export function newStudySecret(): Uint8Array {
  return new Uint8Array(randomBytes(STUDY_SECRET_BYTES))
}

/** `2.25.` followed by the decimal of 16 bytes shaped as a UUID (RFC 9562 version 8, custom), PS3.5 B.2. */
function uuidUid(b: Uint8Array): string {
  const u = Buffer.from(b.subarray(0, 16))
  u[6] = ((u[6] ?? 0) & 0x0f) | 0x80
  u[8] = ((u[8] ?? 0) & 0x3f) | 0x80
  return `2.25.${BigInt(`0x${u.toString('hex')}`).toString(10)}`
}

/**
 * The replacement of a UID within one study (PS3.15 E.1.1, action U): a UUID
 * derived UID (PS3.5 B.2) from HMAC-SHA256(secret, tag || original). The same
 * original gives the same replacement under one secret, so references stay
 * consistent across the study; under different secrets the replacements are
 * unrelated, so studies cannot be linked through them.
 */
export function deriveUid(secret: Uint8Array, original: string): string {
  return uuidUid(createHmac('sha256', secret).update(UID_TAG).update(original, 'latin1').digest())
}

/** A random UUID-derived UID (PS3.5 B.2). */
export function randomUid(): string {
  return uuidUid(new Uint8Array(randomBytes(16)))
}

/**
 * The Patient ID pseudonym of a study (PS3.15 E.1.1, action D on Patient ID):
 * "RC" and 20 hex digits of HMAC-SHA256(secret, tag). Not linkable across
 * studies, whose secrets differ.
 */
export function patientPseudonym(secret: Uint8Array): string {
  const h = createHmac('sha256', secret).update(PSEUDONYM_TAG).digest('hex')
  return `RC${h.slice(0, 20).toUpperCase()}`
}

/** Consistent UID replacement for one study, remembering the mapping for the demographics record. */
export class UidMapper {
  private readonly forward = new Map<string, string>()
  private readonly backward = new Map<string, string>()

  constructor(private readonly secret: Uint8Array) {}

  /** The replacement of `original` (see {@link deriveUid}). */
  map(original: string): string {
    let out = this.forward.get(original)
    if (out === undefined) {
      out = deriveUid(this.secret, original)
      this.forward.set(original, out)
      this.backward.set(out, original)
    }
    return out
  }

  /** The original of a replacement UID, if this mapper made it. */
  original(replacement: string): string | undefined {
    return this.backward.get(replacement)
  }

  /** Replacement → original, sorted by replacement. */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const k of [...this.backward.keys()].sort()) out[k] = this.backward.get(k) as string
    return out
  }
}
