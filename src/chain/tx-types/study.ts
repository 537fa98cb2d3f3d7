import { equalBytes, fromHex, toHex } from '../../util/index.js'
import { CodecError, asArray, asBytes, asString, asU32, asU64Number, encodeTrusted, u64, decodeCanonical, type Encodable } from '../codec.js'
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
  /**
   * The earlier version of this study that this registration extends
   * (instances of the same DICOM study that arrived after it was
   * registered), or absent for a study of its own. On the wire a 13th field
   * present only with a value, so that every registration without it keeps
   * its 12-field bytes.
   */
  readonly extends?: StudyVersionRef
}

/** An earlier version of a study, as a registration that extends it names it: its id and its content root on the ledger. */
export interface StudyVersionRef {
  readonly studyId: Uint8Array
  readonly contentRoot: Uint8Array
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
/**
 * The study id of the version that extends a study, written when that
 * version is registered and never removed (an erasure of either leaves the
 * chain as it was): it finds a study's later versions, and refuses a second.
 */
const NEXT_VERSION_KEY = (id: Uint8Array): string => `sn/${toHex(id)}`
const EMPTY = new Uint8Array(0)

function payloadToWire(p: RegisterStudyPayload): Encodable {
  const wire: Encodable[] = [
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
  if (p.extends !== undefined) wire.push([p.extends.studyId, p.extends.contentRoot])
  return wire
}

function optional32(v: unknown, what: string): Uint8Array | null {
  const b = asBytes(v, what, undefined, 32)
  if (b.length === 0) return null
  return asBytes(b, what, 32)
}

function payloadFromWire(raw: unknown): RegisterStudyPayload {
  const a = asArray(raw, 'study', undefined, 13)
  if (a.length !== 12 && a.length !== 13) throw new CodecError('CODEC_SCHEMA', `study: expected 12 or 13 fields, got ${a.length}`)
  const base = {
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
  if (a.length === 12) return base
  const e = asArray(a[12], 'study.extends', 2)
  return { ...base, extends: { studyId: asBytes(e[0], 'study.extends.studyId', 16), contentRoot: asBytes(e[1], 'study.extends.contentRoot', 32) } }
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
    extends: p.extends === undefined ? null : { studyId: toHex(p.extends.studyId), contentRoot: toHex(p.extends.contentRoot) },
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
  /** The earlier version this registration extends, or null. */
  readonly extends: { readonly studyId: string; readonly contentRoot: string } | null
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
    if (p.extends !== undefined) {
      const earlier = studyToExtend(ctx.state, p.custodian, p.extends.studyId)
      // The content root pins the version the registering node saw: the chain reads as what was extended, not only which id.
      if (!equalBytes(earlier.contentRoot, p.extends.contentRoot))
        throw new TxError('TX_INVALID', `the content root named for study ${toHex(p.extends.studyId)} is not its content root on the ledger`)
      ctx.state.set(NEXT_VERSION_KEY(p.extends.studyId), encodeTrusted(p.studyId))
    }
    ctx.state.set(STUDY_KEY(p.studyId), encodeTrusted([payloadToWire(p), u64(ctx.height)]))
  },
}

/**
 * The study `studyId` as a new version registered by `custodian` may extend
 * it: registered and not erased, kept by `custodian`, and not extended yet
 * (versions form one linear chain, so a second extension of one version is
 * refused as TX_ALREADY_EXTENDED, even when the first was erased since: an
 * erasure does not reopen the chain). Throws TxError otherwise. A
 * registration also names the content root (checked by
 * {@link registerStudyTx}); a node about to register a new version asks this
 * first, and is refused with the code the ledger would give.
 */
export function studyToExtend(s: StateMap | StateOverlay, custodian: string, studyId: Uint8Array): StudyRecord {
  const id = toHex(studyId)
  const earlier = getStudy(s, studyId)
  if (earlier === undefined) {
    if (isErased(s, studyId)) throw new TxError('TX_INVALID', `study ${id} was erased: it cannot have a new version`)
    throw new TxError('TX_INVALID', `no study ${id} on the ledger to extend`)
  }
  if (earlier.custodian !== custodian)
    throw new TxError('TX_UNAUTHORIZED', `study ${id} is kept by ${earlier.custodian}: only its custodian registers a new version of it`)
  const next = nextVersion(s, studyId)
  if (next !== undefined) {
    const erased = isErased(s, next) ? ' (erased since)' : ''
    throw new TxError('TX_ALREADY_EXTENDED', `study ${id} has a new version already, ${toHex(next)}${erased}: a new version extends the newest one`)
  }
  return earlier
}

/** The study id of the version that extends `studyId`, if one was registered (erased since or not). */
export function nextVersion(s: StateMap | StateOverlay, studyId: Uint8Array): Uint8Array | undefined {
  const b = s.get(NEXT_VERSION_KEY(studyId))
  return b === undefined ? undefined : asBytes(decodeCanonical(b), 'next version', 16)
}

/** One version in a study's chain of versions. */
export interface StudyVersion {
  readonly studyId: Uint8Array
  /** Height of its registration. */
  readonly height: number
  /** Erased since: its data is gone, its place in the chain stays. */
  readonly erased: boolean
}

/**
 * The chain of versions `studyId` belongs to, oldest first: back through the
 * versions each one extends, forward through those that extend it, erased
 * ones included. A study with no other version gives itself alone; an id
 * that was never registered gives nothing. A version extends only a study
 * registered before it, so the chain has no cycle.
 */
export function studyVersions(s: StateMap | StateOverlay, studyId: Uint8Array): StudyVersion[] {
  const at = (id: Uint8Array): StudyVersion | undefined => {
    const r = getStudy(s, id)
    if (r !== undefined) return { studyId: r.studyId, height: r.height, erased: false }
    const e = getErased(s, id)
    return e === undefined ? undefined : { studyId: e.study.studyId, height: e.study.height, erased: true }
  }
  const recordOf = (id: Uint8Array): StudyRecord | undefined => getStudy(s, id) ?? getErased(s, id)?.study
  const self = at(studyId)
  if (self === undefined) return []
  const before: StudyVersion[] = []
  for (let r = recordOf(studyId); r?.extends !== undefined; r = recordOf(r.extends.studyId)) {
    const v = at(r.extends.studyId)
    if (v === undefined) break
    before.unshift(v)
  }
  const after: StudyVersion[] = []
  for (let id = nextVersion(s, studyId); id !== undefined; id = nextVersion(s, id)) {
    const v = at(id)
    if (v === undefined) break
    after.push(v)
  }
  return [...before, self, ...after]
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
