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
  /**
   * The study's own owner key (Ed25519), derived for this study from the
   * patient's key (deriveStudyOwner: no two studies of one patient share it),
   * or null when the custodian decides.
   */
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
  /** The ephemeral X25519 key from which the patient derives the owner key (deriveStudyOwner), or null without an owner. */
  readonly ownerEphemeral: Uint8Array | null
}

/** A registered study as the state keeps it. */
export interface StudyRecord extends RegisterStudyPayload {
  /** Height of the block that registered it. */
  readonly height: number
}

const STUDY_KEY = (id: Uint8Array): string => `st/${toHex(id)}`
/** Tombstone of an erased study: its registration, and the height and chain time of the erasure. */
const ERASED_KEY = (id: Uint8Array): string => `sx/${toHex(id)}`
/** Who signed an erasure so far: [custodian signed, owner signed]. */
const ERASE_SIGS_KEY = (id: Uint8Array): string => `se/${toHex(id)}`
const EMPTY = new Uint8Array(0)

function payloadToWire(p: RegisterStudyPayload): Encodable {
  return [
    p.studyId,
    p.custodian,
    p.owner ?? EMPTY,
    p.contentRoot,
    u64(p.size),
    p.chunkCount,
    p.chunkSize,
    p.studyDigest,
    p.custodianEnvelope,
    p.ownerEnvelope ?? EMPTY,
    p.demographics,
    p.ownerEphemeral ?? EMPTY,
  ]
}

function optional32(v: unknown, what: string): Uint8Array | null {
  const b = asBytes(v, what, undefined, 32)
  if (b.length === 0) return null
  return asBytes(b, what, 32)
}

function payloadFromWire(raw: unknown): RegisterStudyPayload {
  const a = asArray(raw, 'study', 12)
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
    ownerEphemeral: optional32(a[11], 'study.ownerEphemeral'),
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
export function studyToJSON(p: RegisterStudyPayload): StudyJSON {
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
    ownerEphemeral: p.ownerEphemeral === null ? null : toHex(p.ownerEphemeral),
  }
}

/** A registration as JSON: ids and hashes in lower-case hex. */
export type StudyJSON = {
  readonly studyId: string
  readonly custodian: string
  readonly owner: string | null
  readonly contentRoot: string
  readonly size: number
  readonly chunkCount: number
  readonly chunkSize: number
  readonly studyDigest: string
  readonly custodianEnvelope: string
  readonly ownerEnvelope: string | null
  readonly demographics: string
  readonly ownerEphemeral: string | null
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
    // Every node builds per-chunk structures for a registered study (bitfield, chunk list): the chain bounds them.
    if (p.chunkCount > ctx.params.maxStudyChunks)
      throw new TxError('TX_INVALID', `study of ${p.chunkCount} chunks exceeds the chain's maxStudyChunks (${ctx.params.maxStudyChunks})`)
    if (p.size > ctx.params.maxStudyBytes)
      throw new TxError('TX_INVALID', `study of ${p.size} bytes exceeds the chain's maxStudyBytes (${ctx.params.maxStudyBytes})`)
    if (p.chunkCount < 1 || p.size > p.chunkCount * (p.chunkSize + 16) || p.size < (p.chunkCount - 1) * (p.chunkSize + 16)) {
      throw new TxError('TX_INVALID', 'study size does not match its chunk count and size')
    }
    if ((p.owner === null) !== (p.ownerEnvelope === null)) throw new TxError('TX_INVALID', 'an owner needs an owner envelope, and only an owner has one')
    if ((p.owner === null) !== (p.ownerEphemeral === null)) throw new TxError('TX_INVALID', 'an owner needs its ephemeral key, and only an owner has one')
    if (p.owner !== null && equalBytes(p.owner, ctx.sender)) throw new TxError('TX_INVALID', 'the owner is a patient key, not the custodian')
    if (ctx.state.get(ERASED_KEY(p.studyId)) !== undefined) throw new TxError('TX_INVALID', `study ${toHex(p.studyId)} was erased`)
    ctx.state.set(STUDY_KEY(p.studyId), encodeTrusted([payloadToWire(p), u64(ctx.height)]))
  },
}

/** Whether a study was erased. */
export function isErased(s: StateMap | StateOverlay, studyId: Uint8Array): boolean {
  return s.get(ERASED_KEY(studyId)) !== undefined
}

/** An erased study's tombstone: its registration, and when it was erased. */
export function getErased(s: StateMap | StateOverlay, studyId: Uint8Array): { study: StudyRecord; erasedHeight: number; erasedAt: number } | undefined {
  const b = s.get(ERASED_KEY(studyId))
  if (b === undefined) return undefined
  const a = asArray(decodeCanonical(b), 'tombstone', 4)
  return {
    study: { ...payloadFromWire(a[0]), height: asU64Number(a[1], 'tombstone.height') },
    erasedHeight: asU64Number(a[2], 'tombstone.erasedHeight'),
    erasedAt: asU64Number(a[3], 'tombstone.erasedAt'),
  }
}

/** Every erased study. */
export function listErased(s: StateMap): { study: StudyRecord; erasedHeight: number; erasedAt: number }[] {
  const out: { study: StudyRecord; erasedHeight: number; erasedAt: number }[] = []
  for (const k of s.keys()) {
    if (!k.startsWith('sx/')) continue
    const e = getErased(s, fromHex(k.slice(3)))
    if (e !== undefined) out.push(e)
  }
  return out
}

/** Payload of an erasure. */
export interface EraseStudyPayload {
  readonly studyId: Uint8Array
}

/**
 * `study.erase`: the custodian and the owner (when there is one) each sign
 * one; with both, the study is erased: its record gives way to a tombstone,
 * and every node deletes its chunks, envelopes and decrypted copies.
 */
export const eraseStudyTx: TxType<EraseStudyPayload> = {
  name: 'study.erase',
  decode(raw) {
    const a = asArray(raw, 'study.erase', 1)
    return { studyId: asBytes(a[0], 'study.erase.studyId', 16) }
  },
  encode: (p) => [p.studyId],
  toJSON: (p) => ({ studyId: toHex(p.studyId) }),
  apply(ctx, p) {
    if (isErased(ctx.state, p.studyId)) throw new TxError('TX_INVALID', `study ${toHex(p.studyId)} was already erased`)
    const st = getStudy(ctx.state, p.studyId)
    if (st === undefined) throw new TxError('TX_INVALID', `no study ${toHex(p.studyId)} on the ledger`)
    const byCustodian = orgBySignKey(ctx.state, ctx.sender)?.id === st.custodian
    const byOwner = st.owner !== null && equalBytes(st.owner, ctx.sender)
    if (!byCustodian && !byOwner) throw new TxError('TX_UNAUTHORIZED', 'only the custodian and the owner erase a study')
    const b = ctx.state.get(ERASE_SIGS_KEY(p.studyId))
    const sigs = b === undefined ? [false, false] : asArray(decodeCanonical(b), 'erase signatures', 2).map((x) => x === true)
    const custodianSigned = sigs[0] === true || byCustodian
    const ownerSigned = sigs[1] === true || byOwner
    if (custodianSigned && (st.owner === null || ownerSigned)) {
      ctx.state.delete(STUDY_KEY(p.studyId))
      ctx.state.delete(ERASE_SIGS_KEY(p.studyId))
      ctx.state.set(ERASED_KEY(p.studyId), encodeTrusted([payloadToWire(st), u64(st.height), u64(ctx.height), u64(ctx.time)]))
    } else {
      ctx.state.set(ERASE_SIGS_KEY(p.studyId), encodeTrusted([custodianSigned, ownerSigned]))
    }
  },
}
