import { equalBytes, fromHex, toHex } from '../../util/index.js'
import { asArray, asBytes, asString, asU32, asU64Number, encodeTrusted, u64, decodeCanonical, type Encodable } from '../codec.js'
import { TxError } from '../errors.js'
import { getOrg, orgBySignKey } from '../orgs.js'
import type { StateMap, StateOverlay } from '../state.js'
import type { TxType } from './types.js'

/**
 * Registration of an encrypted study. Only ids, hashes and sizes: no
 * patient data, clear or encrypted, and no key material goes on the ledger.
 */
export interface RegisterStudyPayload {
  /** Random 16-byte study id, unique on the ledger. */
  readonly studyId: Uint8Array
  /** Organization that keeps the study (the sender). */
  readonly custodian: string
  /** Patient public key (Ed25519) that owns the study, or null when the custodian decides. */
  readonly owner: Uint8Array | null
  /** Merkle root over the chunk ids. */
  readonly contentRoot: Uint8Array
  /** Bytes of ciphertext over all chunks. */
  readonly size: number
  readonly chunkCount: number
  readonly chunkSize: number
  /** Digest over the instances' pixel digests (survives re-encoding). */
  readonly studyDigest: Uint8Array
  /** Hash of the key envelope for the custodian. */
  readonly custodianEnvelope: Uint8Array
  /** Hash of the key envelope for the owner, or null without an owner. */
  readonly ownerEnvelope: Uint8Array | null
  /** Hash of the encrypted demographics record (kept off the ledger beside the chunks). */
  readonly demographics: Uint8Array
}

/** A registered study as the state keeps it. */
export interface StudyRecord extends RegisterStudyPayload {
  /** Height of the block that registered it. */
  readonly height: number
}

const STUDY_KEY = (id: Uint8Array): string => `st/${toHex(id)}`
const EMPTY = new Uint8Array(0)

function payloadToWire(p: RegisterStudyPayload): Encodable {
  return [p.studyId, p.custodian, p.owner ?? EMPTY, p.contentRoot, u64(p.size), p.chunkCount, p.chunkSize, p.studyDigest, p.custodianEnvelope, p.ownerEnvelope ?? EMPTY, p.demographics]
}

function optional32(v: unknown, what: string): Uint8Array | null {
  const b = asBytes(v, what, undefined, 32)
  if (b.length === 0) return null
  return asBytes(b, what, 32)
}

function payloadFromWire(raw: unknown): RegisterStudyPayload {
  const a = asArray(raw, 'study', 11)
  return {
    studyId: asBytes(a[0], 'study.studyId', 16),
    custodian: asString(a[1], 'study.custodian', 63),
    owner: optional32(a[2], 'study.owner'),
    contentRoot: asBytes(a[3], 'study.contentRoot', 32),
    size: asU64Number(a[4], 'study.size'),
    chunkCount: asU32(a[5], 'study.chunkCount'),
    chunkSize: asU32(a[6], 'study.chunkSize'),
    studyDigest: asBytes(a[7], 'study.studyDigest', 32),
    custodianEnvelope: asBytes(a[8], 'study.custodianEnvelope', 32),
    ownerEnvelope: optional32(a[9], 'study.ownerEnvelope'),
    demographics: asBytes(a[10], 'study.demographics', 32),
  }
}

/** The registered study with id `studyId`, if any. */
export function getStudy(s: StateMap | StateOverlay, studyId: Uint8Array): StudyRecord | undefined {
  const b = s.get(STUDY_KEY(studyId))
  if (b === undefined) return undefined
  const a = asArray(decodeCanonical(b), 'study record', 2)
  return { ...payloadFromWire(a[0]), height: asU64Number(a[1], 'study.height') }
}

/** Every registered study, in study id order (a scan of the state). */
export function listStudies(s: StateMap): StudyRecord[] {
  const out: StudyRecord[] = []
  for (const k of s.keys()) {
    if (!k.startsWith('st/')) continue
    const r = getStudy(s, fromHex(k.slice(3)))
    if (r !== undefined) out.push(r)
  }
  return out.sort((a, b) => Buffer.compare(a.studyId, b.studyId))
}

/** JSON view of a study registration. */
export function studyToJSON(p: RegisterStudyPayload): Record<string, unknown> {
  return {
    studyId: toHex(p.studyId),
    custodian: p.custodian,
    owner: p.owner === null ? null : toHex(p.owner),
    contentRoot: toHex(p.contentRoot),
    size: p.size,
    chunkCount: p.chunkCount,
    chunkSize: p.chunkSize,
    studyDigest: toHex(p.studyDigest),
    custodianEnvelope: toHex(p.custodianEnvelope),
    ownerEnvelope: p.ownerEnvelope === null ? null : toHex(p.ownerEnvelope),
    demographics: toHex(p.demographics),
  }
}

/** `study.register`: the custodian organization registers an encrypted study. */
export const registerStudyTx: TxType<RegisterStudyPayload> = {
  name: 'study.register',
  decode: payloadFromWire,
  encode: payloadToWire,
  toJSON: studyToJSON,
  apply(ctx, p) {
    const org = orgBySignKey(ctx.state, ctx.sender)
    if (org === undefined || org.id !== p.custodian) throw new TxError('TX_UNAUTHORIZED', 'a study is registered by its custodian organization')
    if (getOrg(ctx.state, p.custodian) === undefined) throw new TxError('TX_INVALID', `custodian ${p.custodian} is not admitted`)
    if (ctx.state.get(STUDY_KEY(p.studyId)) !== undefined) throw new TxError('TX_INVALID', `study ${toHex(p.studyId)} is already registered`)
    if (p.chunkSize !== ctx.params.chunkSize) throw new TxError('TX_INVALID', `chunk size ${p.chunkSize} differs from the chain's ${ctx.params.chunkSize}`)
    if (p.chunkCount < 1 || p.size > p.chunkCount * (p.chunkSize + 16) || p.size < (p.chunkCount - 1) * (p.chunkSize + 16)) {
      throw new TxError('TX_INVALID', 'study size does not match its chunk count and size')
    }
    if ((p.owner === null) !== (p.ownerEnvelope === null)) throw new TxError('TX_INVALID', 'an owner needs an owner envelope, and only an owner has one')
    if (p.owner !== null && equalBytes(p.owner, ctx.sender)) throw new TxError('TX_INVALID', 'the owner is a patient key, not the custodian')
    ctx.state.set(STUDY_KEY(p.studyId), encodeTrusted([payloadToWire(p), u64(ctx.height)]))
  },
}
