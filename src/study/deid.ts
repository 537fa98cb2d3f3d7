import { StudyError } from './errors.js'
import {
  TAG,
  childPath,
  cloneElement,
  cloneInstance,
  firstString,
  fromJsonDataset,
  fromJsonElement,
  isPrivateTag,
  itemPath,
  resolvePath,
  tagElement,
  tagGroup,
  toJsonDataset,
  toJsonElement,
  type DicomDataset,
  type DicomElement,
  type DicomInstance,
  type DicomValue,
  type JsonDataset,
  type JsonElement,
} from './dataset.js'
import { DEID_TABLE_EDITION, PRIVATE_ATTRIBUTES_ACTION, deidTableRow, type DeidActionCode } from './deid-table.js'
import { TRANSFER_SYNTAX } from './dicom.js'
import { readDicom } from './dicom-file.js'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './dicom-write.js'
import { pixelDigest, type PixelDigest } from './pixel.js'
import { UidMapper, newStudySecret, patientPseudonym } from './uid.js'

/**
 * What the de-identifier did to one element, as written in the demographics record:
 * - X: removed (Table E.1-1 X, X/Z, X/D, X/Z/D; private attributes; group lengths; overlay groups)
 * - Z: replaced by a zero-length value (Z, Z/D)
 * - D: replaced by a dummy value of its VR (D)
 * - C: cleaned: replaced by a dummy value of its VR (C; only in the profile options)
 * - U: UIDs replaced consistently within the study (U; UI values under D)
 * - PSEUDONYM: Patient ID replaced by the study's pseudonym (Z/D resolved to D)
 * - SET: set by the profile itself (Patient Identity Removed, De-identification Method and its
 *   Code Sequence, a Patient ID that was absent); `original` is null when it was absent
 */
export type RecordAction = 'X' | 'Z' | 'D' | 'C' | 'U' | 'PSEUDONYM' | 'SET'

/** One changed or removed element of an instance, with its original value. */
export interface IdentityChange {
  /** Tag path through sequences: `GGGGEEEE`, `SSSSSSSS[i].GGGGEEEE`, ... */
  path: string
  /** VR of the element. */
  vr: string
  /** What was done. */
  action: RecordAction
  /** The original element (DICOM JSON model, binary as base64), or null when it did not exist. */
  original: JsonElement | null
}

/** The demographics of one instance: every original value the profile changed or removed. */
export interface InstanceIdentityRecord {
  /** SOP Instance UID after de-identification. */
  sopInstanceUid: string
  /** The original file meta information (group 0002). */
  originalMeta: JsonDataset
  /** Changes in the order they were made. */
  changes: IdentityChange[]
}

/** The demographics of a study: the UID map and pseudonym shared by its instances. */
export interface StudyIdentityRecord {
  /** Format version of this record. */
  version: 1
  /** The de-identification method written into (0012,0063). */
  method: string
  /** Edition of PS3.15 Table E.1-1 applied. */
  table: string
  /** Study Instance UID after de-identification. */
  studyInstanceUid: string
  /** Patient ID pseudonym written into every instance. */
  patientPseudonym: string
  /** Replacement UID → original UID, for every UID replaced in the study. */
  uidMap: Record<string, string>
  /** De-identified SOP Instance UIDs, sorted. */
  instances: string[]
}

/** One de-identified instance with its demographics and pixel digest. */
export interface DeidentifiedInstance {
  /** The de-identified instance (new file meta, new UIDs). */
  instance: DicomInstance
  /** What was removed or changed, to be kept encrypted apart from the images. */
  record: InstanceIdentityRecord
  /** Pixel digest (see {@link pixelDigest}), hex. */
  pixelDigest: string
  /** The full pixel digest result. */
  pixel: PixelDigest
}

/** Options of the de-identifier. */
export interface DeidentifyOptions {
  /**
   * Per-study secret (at least 16 bytes) that keys UID replacement and the
   * pseudonym; a fresh random one when absent. Reusing one secret for two
   * studies makes them linkable.
   */
  secret?: Uint8Array
  /** Bound on one input file's size when reading paths (see readDicom). */
  maxBytes?: number
}

/** De-identification Method (0012,0063) written by radchain (LO, at most 64 characters). */
export const DEID_METHOD = 'PS3.15 E.1 Basic Profile (radchain)'

/** CID 7050 code of the Basic Application Confidentiality Profile (PS3.16, DCM 113100). */
export const BASIC_PROFILE_CODE = { value: '113100', scheme: 'DCM', meaning: 'Basic Application Confidentiality Profile' } as const

type Op = 'K' | 'X' | 'Z' | 'D' | 'C' | 'U' | 'U*' | 'PSEUDONYM'

/**
 * The operation for a Table E.1-1 action code. Where the table leaves the
 * choice to IOD conformance (Z/D, X/Z, X/D, X/Z/D) radchain takes the stricter
 * one, which never leaves a value behind: X where X is allowed, else Z.
 * X/Z/U* keeps the sequence and replaces the UIDs inside its items (U*), so
 * references between the study's images survive; its items are de-identified
 * like the rest of the dataset.
 */
function opFor(code: DeidActionCode): Op {
  switch (code) {
    case 'X':
    case 'X/Z':
    case 'X/D':
    case 'X/Z/D':
      return 'X'
    case 'Z':
    case 'Z/D':
      return 'Z'
    case 'D':
      return 'D'
    case 'C':
      return 'C'
    case 'U':
      return 'U'
    case 'X/Z/U*':
      return 'U*'
    case 'K':
      return 'K'
  }
}

const DUMMY_TEXT = 'ANONYMIZED'

/** A dummy value consistent with a VR (PS3.15 E.1.1 action D; also used for C). */
function dummyValue(vr: string): DicomValue {
  switch (vr) {
    case 'DA':
      return '19000101'
    case 'TM':
      return '000000'
    case 'DT':
      return '19000101000000'
    case 'AS':
      return '000Y'
    case 'PN':
      return { Alphabetic: DUMMY_TEXT }
    case 'UR':
      return 'urn:anonymized'
    case 'DS':
    case 'IS':
    case 'FL':
    case 'FD':
    case 'SL':
    case 'SS':
    case 'UL':
    case 'US':
    case 'AT':
      return 0
    case 'SV':
    case 'UV':
      return 0n
    case 'OB':
    case 'OD':
    case 'OF':
    case 'OL':
    case 'OV':
    case 'OW':
    case 'UN':
      return new ArrayBuffer(8)
    case 'SQ':
      return {}
    default:
      return DUMMY_TEXT
  }
}

function isOverlayGroup(group: number): boolean {
  return (group & 0xff00) === 0x6000 && (group & 1) === 0
}

/**
 * De-identifier of one study by the DICOM PS3.15 Annex E Basic Application
 * Level Confidentiality Profile (Table E.1-1, see deid-table.ts):
 * - every attribute of the table, at any depth in sequences, gets its action;
 *   attributes the table does not list are kept, and the items of kept
 *   sequences are de-identified recursively;
 * - private attributes (odd groups) are removed, and so are group lengths
 *   (gggg,0000) and whole overlay groups 60xx (the table removes Overlay Data);
 * - UIDs are replaced consistently across the study (see uid.ts), references
 *   included; Patient ID becomes the study's pseudonym;
 * - Patient Identity Removed (0012,0062) = YES, De-identification Method
 *   (0012,0063) and its Code Sequence (0012,0064) with DCM 113100 are set;
 * - the file meta is rebuilt for the new SOP Instance UID.
 * Every original value changed or removed goes into the instance's record.
 * Pixel data is not examined: burned-in annotation needs the Clean Pixel Data
 * option, which radchain does not implement.
 */
export class StudyDeidentifier {
  private readonly uids: UidMapper
  private readonly pseudonym: string
  private originalStudyUid: string | undefined
  private readonly seen = new Set<string>()
  private readonly instances: string[] = []

  constructor(opts: DeidentifyOptions = {}) {
    const secret = opts.secret ?? newStudySecret()
    if (!(secret instanceof Uint8Array) || secret.length < 16) throw new TypeError('study secret must be at least 16 bytes')
    this.uids = new UidMapper(secret)
    this.pseudonym = patientPseudonym(secret)
  }

  /** De-identifies one instance of the study; the input is not modified. */
  deidentify(input: DicomInstance): DeidentifiedInstance {
    const path = input.path
    const studyUid = firstString(input.dataset, TAG.StudyInstanceUID)
    const sopUid = firstString(input.dataset, TAG.SOPInstanceUID)
    if (studyUid === undefined || sopUid === undefined) {
      throw new StudyError('DICOM_MISSING_UID', 'missing Study or SOP Instance UID', { path })
    }
    if (this.originalStudyUid !== undefined && this.originalStudyUid !== studyUid) {
      throw new StudyError('DICOM_STUDY_MISMATCH', 'instance belongs to another study than the one being de-identified', { path })
    }
    if (this.seen.has(sopUid)) throw new StudyError('DICOM_DUPLICATE_UID', 'SOP Instance UID already seen in this study', { path })
    // Pixel data is not changed by the profile: hash it first, so that an
    // instance whose pixel data is bad leaves no trace in the study's state.
    const inputPixel = pixelDigest(input)
    this.originalStudyUid ??= studyUid

    const changes: IdentityChange[] = []
    const src = input.dataset
    const dataset = this.walk(src, '', 0, changes)
    this.setProfileAttributes(src, dataset, changes)

    const newSop = firstString(dataset, TAG.SOPInstanceUID) as string
    const sopClass = firstString(dataset, TAG.SOPClassUID)
    const inTs = firstString(input.meta, TAG.TransferSyntaxUID) ?? TRANSFER_SYNTAX.ExplicitVRLittleEndian
    // dcmjs writes deflated datasets uncompressed; the pixel digest of native data does not depend on it.
    const ts = inTs === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian ? TRANSFER_SYNTAX.ExplicitVRLittleEndian : inTs
    const meta: DicomDataset = {
      [TAG.FileMetaInformationVersion]: { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
      [TAG.MediaStorageSOPInstanceUID]: { vr: 'UI', Value: [newSop] },
      [TAG.TransferSyntaxUID]: { vr: 'UI', Value: [ts] },
      [TAG.ImplementationClassUID]: { vr: 'UI', Value: [IMPLEMENTATION_CLASS_UID] },
      [TAG.ImplementationVersionName]: { vr: 'SH', Value: [IMPLEMENTATION_VERSION_NAME] },
    }
    if (sopClass !== undefined) meta[TAG.MediaStorageSOPClassUID] = { vr: 'UI', Value: [sopClass] }

    this.seen.add(sopUid)
    this.instances.push(newSop)
    const instance: DicomInstance = { meta, dataset }
    const pixel: PixelDigest = { ...inputPixel, transferSyntax: ts }
    return {
      instance,
      record: { sopInstanceUid: newSop, originalMeta: toJsonDataset(input.meta), changes },
      pixelDigest: pixel.digest,
      pixel,
    }
  }

  /** The study's record so far: complete once every instance has been de-identified. */
  studyRecord(): StudyIdentityRecord {
    if (this.originalStudyUid === undefined) throw new StudyError('DICOM_MISSING_UID', 'no instance de-identified yet')
    return {
      version: 1,
      method: DEID_METHOD,
      table: DEID_TABLE_EDITION,
      studyInstanceUid: this.uids.map(this.originalStudyUid),
      patientPseudonym: this.pseudonym,
      uidMap: this.uids.toRecord(),
      instances: [...this.instances].sort(),
    }
  }

  private opFor(tag: string, depth: number): Op {
    const group = tagGroup(tag)
    if (isPrivateTag(tag)) return opFor(PRIVATE_ATTRIBUTES_ACTION)
    // Group lengths are retired (PS3.5 7.2) and would be wrong once elements go.
    if (tagElement(tag) === 0x0000) return 'X'
    // The table removes Overlay Data and Comments; the rest of the group would be a dangling overlay.
    if (isOverlayGroup(group)) return 'X'
    const row = deidTableRow(tag)
    if (row === undefined) return 'K'
    if (tag === TAG.PatientID && depth === 0) return 'PSEUDONYM'
    return opFor(row.action)
  }

  private walk(src: DicomDataset, prefix: string, depth: number, changes: IdentityChange[]): DicomDataset {
    const out: DicomDataset = {}
    for (const tag of Object.keys(src).sort()) {
      const el = src[tag] as DicomElement
      const path = childPath(prefix, tag)
      let op = this.opFor(tag, depth)
      // A sequence can only be kept (with its items de-identified) or emptied or removed.
      if (op === 'U' && el.vr === 'SQ') op = 'U*'
      if (op === 'U*' && el.vr !== 'SQ') op = 'U'
      if (op === 'U' && el.vr !== 'UI' && !(el.Value ?? []).every((v) => typeof v === 'string')) op = 'X'
      const record = (action: RecordAction): void => {
        changes.push({ path, vr: el.vr, action, original: toJsonElement(el) })
      }
      switch (op) {
        case 'X':
          record('X')
          break
        case 'Z':
          record('Z')
          out[tag] = { vr: el.vr, Value: [] }
          break
        case 'D':
        case 'C':
          if (el.vr === 'UI') {
            record('U')
            out[tag] = { vr: el.vr, Value: this.mapUids(el) }
          } else {
            record(op)
            out[tag] = { vr: el.vr, Value: [dummyValue(el.vr)] }
          }
          break
        case 'U':
          record('U')
          out[tag] = { vr: el.vr, Value: this.mapUids(el) }
          break
        case 'PSEUDONYM':
          record('PSEUDONYM')
          out[tag] = { vr: el.vr, Value: [this.pseudonym] }
          break
        case 'K':
        case 'U*':
          if (el.vr === 'SQ') {
            const items = (el.Value ?? []).map((item, i) => this.walk(item as DicomDataset, itemPath(path, i), depth + 1, changes))
            out[tag] = { vr: 'SQ', Value: items }
          } else {
            out[tag] = cloneElement(el)
          }
          break
      }
    }
    return out
  }

  private mapUids(el: DicomElement): DicomValue[] {
    return (el.Value ?? []).map((v) => (typeof v === 'string' && v !== '' ? this.uids.map(v) : v))
  }

  private setProfileAttributes(src: DicomDataset, out: DicomDataset, changes: IdentityChange[]): void {
    const set = (tag: string, el: DicomElement): void => {
      const before = src[tag]
      changes.push({ path: tag, vr: el.vr, action: 'SET', original: before === undefined ? null : toJsonElement(before) })
      out[tag] = el
    }
    if (out[TAG.PatientID] === undefined) set(TAG.PatientID, { vr: 'LO', Value: [this.pseudonym] })
    set(TAG.PatientIdentityRemoved, { vr: 'CS', Value: ['YES'] })
    const methods = (out[TAG.DeidentificationMethod]?.Value ?? []).filter((v) => typeof v === 'string' && v !== '')
    set(TAG.DeidentificationMethod, { vr: 'LO', Value: [...methods, DEID_METHOD] })
    const codes = out[TAG.DeidentificationMethodCodeSequence]?.Value ?? []
    const code: DicomDataset = {
      [TAG.CodeValue]: { vr: 'SH', Value: [BASIC_PROFILE_CODE.value] },
      [TAG.CodingSchemeDesignator]: { vr: 'SH', Value: [BASIC_PROFILE_CODE.scheme] },
      [TAG.CodeMeaning]: { vr: 'LO', Value: [BASIC_PROFILE_CODE.meaning] },
    }
    set(TAG.DeidentificationMethodCodeSequence, { vr: 'SQ', Value: [...codes, code] })
  }
}

/**
 * De-identifies one study (PS3.15 E.1 Basic Profile, see StudyDeidentifier):
 * reads the inputs one at a time (paths are read with readDicom) and yields
 * each de-identified instance with its record and pixel digest. The
 * generator's return value is the StudyIdentityRecord; with `for await`, use
 * StudyDeidentifier directly to get it.
 */
export async function* deidentifyStudy(
  inputs: Iterable<string | DicomInstance> | AsyncIterable<string | DicomInstance>,
  opts: DeidentifyOptions = {},
): AsyncGenerator<DeidentifiedInstance, StudyIdentityRecord, undefined> {
  const deid = new StudyDeidentifier(opts)
  for await (const input of inputs) {
    const inst = typeof input === 'string' ? await readDicom(input, { maxBytes: opts.maxBytes }) : input
    yield deid.deidentify(inst)
  }
  return deid.studyRecord()
}

/**
 * Gives back the original instance from a de-identified one and its record
 * (for a lease whose scope includes demographics): every change is undone in
 * reverse order and the original file meta is restored. Throws
 * DICOM_RECORD_MISMATCH when the record is for another instance.
 */
export function restoreIdentity(deidentified: DicomInstance, record: InstanceIdentityRecord): DicomInstance {
  if (firstString(deidentified.dataset, TAG.SOPInstanceUID) !== record.sopInstanceUid) {
    throw new StudyError('DICOM_RECORD_MISMATCH', 'the record is for another instance', { path: deidentified.path })
  }
  const out = cloneInstance(deidentified)
  for (let i = record.changes.length - 1; i >= 0; i--) {
    const ch = record.changes[i] as IdentityChange
    const { parent, tag } = resolvePath(out.dataset, ch.path)
    if (ch.original === null) delete parent[tag]
    else parent[tag] = fromJsonElement(ch.original)
  }
  out.meta = fromJsonDataset(record.originalMeta)
  return out
}
