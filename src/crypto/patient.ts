import { readFile } from 'node:fs/promises'
import { RadError, concatBytes, toHex, type ErrorCodes } from '../util/index.js'
import { ED25519_PUBLIC_KEY_BYTES, isUsableEd25519PublicKey } from './ed25519.js'
import { generateOrgKeys, type OrgKeys } from './keystore.js'
import { MLKEM768_PUBLIC_KEY_BYTES, isValidMlKem768PublicKey, mlkemFromX25519Private } from './mlkem.js'
import { X25519_KEY_BYTES } from './x25519.js'

/*
 * A patient key is shaped like an organization's: an Ed25519 key A and an
 * X25519 key X. Each study's owner key on the ledger is derived from both
 * for that study alone (study-owner.ts), and the patient signs consent and
 * approvals with that study key. X is also the key from which the ML-KEM-768 key pair is derived
 * (mlkemFromX25519Private), for key envelopes. The secret lives in a keystore
 * file (saveKeystore/loadKeystore) like an organization's. The public key
 * travels as text:
 *
 *   'rcpatient1:' || base64url(ed25519 (32) || x25519 (32) || ML-KEM-768 encapsulation key (1184))
 */

/** Prefix of a patient public key in text form. */
export const PATIENT_KEY_PREFIX = 'rcpatient1:'
const PATIENT_KEY_BYTES = ED25519_PUBLIC_KEY_BYTES + X25519_KEY_BYTES + MLKEM768_PUBLIC_KEY_BYTES

/** A patient's public keys: the Ed25519 key that owns studies, and the envelope keys. */
export interface PatientPublicKey {
  readonly sign: Uint8Array
  readonly x25519: Uint8Array
  readonly mlkem: Uint8Array
}

/** Fresh patient keys: the 64-byte secret for the keystore and the public key. */
export function generatePatientKeys(): { keys: OrgKeys; secret: Uint8Array; publicKey: PatientPublicKey } {
  const { keys, secret } = generateOrgKeys()
  return { keys, secret, publicKey: patientPublicKey(keys) }
}

/** The public key of patient keys loaded from a keystore. */
export function patientPublicKey(keys: OrgKeys): PatientPublicKey {
  return { sign: keys.signer.publicKey, x25519: keys.encryption.publicKey, mlkem: mlkemFromX25519Private(keys.encryption.privateKey).publicKey }
}

/** Text form of a patient public key (see the format above). */
export function encodePatientPublicKey(k: PatientPublicKey): string {
  return PATIENT_KEY_PREFIX + Buffer.from(concatBytes(k.sign, k.x25519, k.mlkem)).toString('base64url')
}

/**
 * Short printable fingerprint of a patient key: the hex of its Ed25519 key.
 * The ledger never records it: each study has its own owner key
 * (deriveStudyOwner).
 */
export function patientKeyId(k: PatientPublicKey): string {
  return toHex(k.sign)
}

/**
 * Patient key failures: PATIENT_BAD_KEY, not a key in the text form, or not a
 * readable file holding one; PATIENT_NOT_OWNER, a study that is not this
 * patient's; PATIENT_BAD_POLICY, a standing consent file that cannot be read.
 */
export type PatientKeyCode = ErrorCodes<'PATIENT_BAD_KEY' | 'PATIENT_NOT_OWNER' | 'PATIENT_BAD_POLICY'>

/** A refused patient key, study or policy file. */
export class PatientKeyError extends RadError<PatientKeyCode> {
  constructor(code: PatientKeyCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'PatientKeyError'
  }
}

function badKey(msg: string): PatientKeyError {
  return new PatientKeyError('PATIENT_BAD_KEY', `patient public key: ${msg}`)
}

/** Parses the text form; throws PatientKeyError PATIENT_BAD_KEY naming what is wrong. */
export function parsePatientPublicKey(text: string): PatientPublicKey {
  const t = text.trim()
  if (!t.startsWith(PATIENT_KEY_PREFIX)) throw badKey(`expected text starting with '${PATIENT_KEY_PREFIX}' (made by \`radchain patient keygen\`)`)
  const body = t.slice(PATIENT_KEY_PREFIX.length)
  if (!/^[A-Za-z0-9_-]+$/.test(body)) throw badKey('not base64url')
  const b = new Uint8Array(Buffer.from(body, 'base64url'))
  if (b.length !== PATIENT_KEY_BYTES) throw badKey(`${b.length} bytes, expected ${PATIENT_KEY_BYTES}`)
  // Decoding drops leftover bits: a character too many would otherwise read as another key.
  if (Buffer.from(b).toString('base64url') !== body) throw badKey('not the base64url text of a key (a character too many or changed?)')
  const sign = b.slice(0, 32)
  const x25519 = b.slice(32, 64)
  const mlkem = b.slice(64)
  if (!isUsableEd25519PublicKey(sign)) throw badKey('the Ed25519 key is not a valid point of large order')
  if (x25519.every((v) => v === 0)) throw badKey('the X25519 key is zero')
  if (!isValidMlKem768PublicKey(mlkem)) throw badKey('the ML-KEM-768 key fails the FIPS 203 encapsulation key check')
  return { sign, x25519, mlkem }
}

/**
 * A patient public key given on the command line: the text itself, or the
 * path of a file holding it (the `.pub` file `radchain patient keygen` writes).
 */
export async function readPatientPublicKey(arg: string): Promise<PatientPublicKey> {
  if (arg.trim().startsWith(PATIENT_KEY_PREFIX)) return parsePatientPublicKey(arg)
  let text: string
  try {
    text = await readFile(arg, 'utf8')
  } catch (err) {
    throw new PatientKeyError('PATIENT_BAD_KEY', `patient public key: '${arg}' is neither a key ('${PATIENT_KEY_PREFIX}...') nor a readable file`, {
      cause: err,
    })
  }
  return parsePatientPublicKey(text)
}
