import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { encodePatientPublicKey, parsePatientPublicKey, patientKeyId, type OrgKeys } from '../crypto/index.js'
import { StoreError, type KeyValueSpace } from '../storage/index.js'
import { utf8 } from '../util/index.js'
import type { PatientLinkResult, PatientLinkView } from '../api/index.js'
import { PatientLinkError, type PatientLinkCode } from './errors.js'

/** HKDF info of the keys that encrypt and name this node's patient links at rest (derived from the organization's keys). */
const LINKS_KEY_INFO = 'radchain/patient-links-key/v1'
const LINK_PREFIX = 'l/'
/** Longest DICOM LO value, in characters (PS3.5 6.2). */
const LO_MAX_CHARS = 64
/**
 * Every record is padded to this many bytes before it is encrypted, so that
 * the database does not tell how long a Patient ID or issuer is. A record is
 * at most 2 x 64 characters of up to 4 UTF-8 bytes, the key text (1,675
 * bytes) and some 100 bytes of JSON.
 */
const RECORD_BYTES = 2560
const IV_BYTES = 12
const TAG_BYTES = 16

/** One link as stored (encrypted) and kept in memory. */
interface LinkRecord {
  readonly v: 1
  readonly patientId: string
  readonly issuer: string
  readonly patientKey: string
  readonly linkedAt: string
}

/**
 * A DICOM LO value as compared (PS3.5 6.2): leading and trailing spaces are
 * not significant. The field's rules: at most 64 characters, no backslash
 * (it separates values), no control character (a decoded value has no
 * escape sequences left).
 */
function loValue(v: string, field: 'Patient ID' | 'Issuer of Patient ID', required: boolean): string {
  const code = field === 'Patient ID' ? ('PATIENT_LINK_BAD_ID' satisfies PatientLinkCode) : ('PATIENT_LINK_BAD_ISSUER' satisfies PatientLinkCode)
  // The messages never repeat the value: an error may be logged.
  const s = v.trim()
  if (required && s === '') throw new PatientLinkError(code, `the ${field} is empty`)
  if ([...s].length > LO_MAX_CHARS) throw new PatientLinkError(code, `the ${field} is longer than ${LO_MAX_CHARS} characters (a DICOM LO value)`)
  if (s.includes('\\')) throw new PatientLinkError(code, `the ${field} holds a backslash, which separates DICOM values: give one value`)
  if (/\p{Cc}/u.test(s)) throw new PatientLinkError(code, `the ${field} holds a control character`)
  return s
}

/**
 * The patient links of this node: a local mapping from the organization's
 * Patient ID (0010,0020) and Issuer of Patient ID (0010,0021) to a patient
 * public key. A study registered here without an owner given (`study add`
 * without `--patient`, a study received over DICOMweb) whose instances all
 * carry a linked Patient ID and issuer is owned by that patient
 * (`StudyJobs`). A link changes no study registered before it.
 *
 * The links never leave the node: no API route but the local one, never on
 * the ledger, never in a log. At rest each is one record in the database,
 * AES-256-GCM under a key HKDF-derived from the organization's X25519
 * private key, padded to one size, and stored under an HMAC of its Patient
 * ID and issuer (with a second derived key): nothing in the database names a
 * patient. The whole map is kept in memory, read at start.
 */
export class PatientLinks {
  readonly #kv: KeyValueSpace
  readonly #encKey: Uint8Array
  readonly #macKey: Uint8Array
  /** By store key (the HMAC of Patient ID and issuer). */
  readonly #links = new Map<string, LinkRecord>()
  /** Changes one at a time: two links of one Patient ID cannot both pass the check for an existing one. */
  #writing: Promise<unknown> = Promise.resolve()

  private constructor(keys: OrgKeys, kv: KeyValueSpace) {
    this.#kv = kv
    // One key to encrypt, another to name the records: a key per use.
    const k = new Uint8Array(hkdfSync('sha256', keys.encryption.privateKey, new Uint8Array(0), LINKS_KEY_INFO, 64))
    this.#encKey = k.slice(0, 32)
    this.#macKey = k.slice(32)
    k.fill(0)
  }

  /** Reads every link of the key space `kv`; STORE_CORRUPT when one does not open with the organization's keys. */
  static async open(modules: { keys: OrgKeys; kv: KeyValueSpace }): Promise<PatientLinks> {
    const links = new PatientLinks(modules.keys, modules.kv)
    for await (const [k, v] of modules.kv.entries(LINK_PREFIX)) {
      const name = k.slice(LINK_PREFIX.length)
      links.#links.set(name, links.#open(name, v))
    }
    return links
  }

  /** How many links there are. */
  get size(): number {
    return this.#links.size
  }

  /**
   * Links `patientId` (with `issuer`, '' for none) to the patient key
   * `patientKeyText` (`rcpatient1:...`). Linking it again to the same key
   * changes nothing; to another key is refused (PATIENT_LINK_EXISTS) unless
   * `replace`. Durable when it resolves.
   */
  async link(patientId: string, issuer: string, patientKeyText: string, opts: { replace: boolean }): Promise<PatientLinkResult> {
    const id = loValue(patientId, 'Patient ID', true)
    const iss = loValue(issuer, 'Issuer of Patient ID', false)
    const patientKey = encodePatientPublicKey(parsePatientPublicKey(patientKeyText))
    return this.#serialized(async () => {
      const name = this.#name(id, iss)
      const known = this.#links.get(name)
      if (known !== undefined && known.patientKey === patientKey) return { link: view(known), replaced: false }
      if (known !== undefined && !opts.replace)
        throw new PatientLinkError(
          'PATIENT_LINK_EXISTS',
          'this Patient ID (with this issuer) is linked to another patient key already: give --replace to link it to this one instead',
        )
      const rec: LinkRecord = { v: 1, patientId: id, issuer: iss, patientKey, linkedAt: new Date().toISOString() }
      await this.#kv.put(LINK_PREFIX + name, this.#seal(name, rec), { sync: true })
      this.#links.set(name, rec)
      return { link: view(rec), replaced: known !== undefined }
    })
  }

  /** Removes the link of `patientId` and `issuer`; PATIENT_LINK_UNKNOWN when there is none. Durable when it resolves. */
  async unlink(patientId: string, issuer: string): Promise<void> {
    const id = loValue(patientId, 'Patient ID', true)
    const iss = loValue(issuer, 'Issuer of Patient ID', false)
    return this.#serialized(async () => {
      const name = this.#name(id, iss)
      if (!this.#links.has(name)) throw new PatientLinkError('PATIENT_LINK_UNKNOWN', 'no patient link for this Patient ID (with this issuer) on this node')
      await this.#kv.del(LINK_PREFIX + name, { sync: true })
      this.#links.delete(name)
    })
  }

  /** Every link, by Patient ID then issuer. */
  list(): PatientLinkView[] {
    const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
    return [...this.#links.values()].sort((a, b) => cmp(a.patientId, b.patientId) || cmp(a.issuer, b.issuer)).map(view)
  }

  /**
   * The patient key text linked to the Patient ID and issuer of a study's
   * instances, or undefined. Values are compared as DICOM LO values (spaces
   * around them do not count); the issuer must match too, '' matching
   * instances without one.
   */
  ownerFor(patientId: string, issuer: string): string | undefined {
    if (this.#links.size === 0) return undefined
    return this.#links.get(this.#name(patientId.trim(), issuer.trim()))?.patientKey
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#writing.then(fn)
    this.#writing = run.catch(() => undefined)
    return run
  }

  /** The record's name in the store: an HMAC of the pair, unambiguous whatever the values hold. */
  #name(patientId: string, issuer: string): string {
    return createHmac('sha256', this.#macKey)
      .update(JSON.stringify([patientId, issuer]), 'utf8')
      .digest('hex')
  }

  #seal(name: string, rec: LinkRecord): Uint8Array {
    const plain = Buffer.alloc(RECORD_BYTES, 0x20)
    // Trailing spaces are JSON whitespace: the padding parses away.
    if (plain.write(JSON.stringify(rec), 'utf8') >= RECORD_BYTES) throw new Error('a patient link record is larger than its padded size')
    const iv = randomBytes(IV_BYTES)
    const c = createCipheriv('aes-256-gcm', this.#encKey, iv)
    // Bound to its name: a record copied under another name does not open.
    c.setAAD(utf8(name))
    const body = Buffer.concat([c.update(plain), c.final()])
    return Buffer.concat([iv, body, c.getAuthTag()])
  }

  #open(name: string, v: Uint8Array): LinkRecord {
    try {
      const b = Buffer.from(v)
      if (b.length !== IV_BYTES + RECORD_BYTES + TAG_BYTES) throw new Error(`a record of ${b.length} bytes`)
      const d = createDecipheriv('aes-256-gcm', this.#encKey, b.subarray(0, IV_BYTES))
      d.setAAD(utf8(name))
      d.setAuthTag(b.subarray(b.length - TAG_BYTES))
      const rec = JSON.parse(Buffer.concat([d.update(b.subarray(IV_BYTES, b.length - TAG_BYTES)), d.final()]).toString('utf8')) as LinkRecord
      if (rec.v !== 1 || typeof rec.patientId !== 'string' || typeof rec.issuer !== 'string' || typeof rec.patientKey !== 'string')
        throw new Error('not a patient link record')
      return rec
    } catch (err) {
      throw new StoreError(
        'STORE_CORRUPT',
        "a patient link record in the database does not open with this organization's keys (altered, or written under other keys)",
        { cause: err },
      )
    }
  }
}

function view(r: LinkRecord): PatientLinkView {
  return {
    patientId: r.patientId,
    issuer: r.issuer,
    patientKey: r.patientKey,
    keyId: patientKeyId(parsePatientPublicKey(r.patientKey)),
    linkedAt: r.linkedAt,
  }
}
