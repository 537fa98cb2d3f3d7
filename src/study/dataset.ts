import { StudyError } from './errors.js'

/** Person Name value in the DICOM JSON model (PS3.18 F.2.2). */
export interface PersonName {
  Alphabetic?: string
  Ideographic?: string
  Phonetic?: string
}

/**
 * One value of an element as dcmjs holds it: strings and numbers for text and
 * numeric VRs, PersonName objects for PN, ArrayBuffer for binary VRs (OB, OW,
 * UN, OF, ...; one per fragment for encapsulated Pixel Data), a nested
 * dataset for each SQ item, bigint for SV/UV.
 */
export type DicomValue = string | number | bigint | PersonName | ArrayBuffer | DicomDataset | null

/** One data element, keyed in its dataset by its tag `GGGGEEEE` (upper-case hex), DICOM JSON model. */
export interface DicomElement {
  vr: string
  Value?: DicomValue[]
  /** dcmjs's unformatted value as read, written back when Value is unchanged; dropped on any change. */
  _rawValue?: unknown
}

/** A dataset (PS3.5 7): elements keyed by tag `GGGGEEEE`. */
export interface DicomDataset {
  [tag: string]: DicomElement
}

/** One DICOM Part 10 instance (PS3.10 7): file meta (group 0002) and dataset. */
export interface DicomInstance {
  /** File Meta Information, group 0002 (PS3.10 7.1). */
  meta: DicomDataset
  /** The dataset proper. */
  dataset: DicomDataset
  /** The file it was read from, if any. */
  path?: string
}

/** A value in a JSON demographics record: as DicomValue, with binary in base64 and bigint as text. */
export type JsonValue = string | number | null | PersonName | JsonDataset | { $bigint: string }

/** An element in a JSON demographics record (DICOM JSON model, PS3.18 F.2, binary as base64 per value). */
export interface JsonElement {
  vr: string
  Value?: JsonValue[]
  /** One base64 string per binary value (per fragment for encapsulated data). */
  InlineBinary?: string[]
}

/** A dataset in a JSON demographics record. */
export interface JsonDataset {
  [tag: string]: JsonElement
}

/** Tags used by src/study, `GGGGEEEE` (PS3.6 chapter 6). */
export const TAG = {
  FileMetaInformationVersion: '00020001',
  MediaStorageSOPClassUID: '00020002',
  MediaStorageSOPInstanceUID: '00020003',
  TransferSyntaxUID: '00020010',
  ImplementationClassUID: '00020012',
  ImplementationVersionName: '00020013',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  CodeValue: '00080100',
  CodingSchemeDesignator: '00080102',
  CodeMeaning: '00080104',
  PatientName: '00100010',
  PatientID: '00100020',
  IssuerOfPatientID: '00100021',
  PatientIdentityRemoved: '00120062',
  DeidentificationMethod: '00120063',
  DeidentificationMethodCodeSequence: '00120064',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  FrameOfReferenceUID: '00200052',
  SamplesPerPixel: '00280002',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  BitsAllocated: '00280100',
  PixelData: '7FE00010',
  FloatPixelData: '7FE00008',
  DoubleFloatPixelData: '7FE00009',
} as const

/** Group number of a tag `GGGGEEEE`. */
export function tagGroup(tag: string): number {
  return parseInt(tag.slice(0, 4), 16)
}

/** Element number of a tag `GGGGEEEE`. */
export function tagElement(tag: string): number {
  return parseInt(tag.slice(4, 8), 16)
}

/** True for a private tag: odd group number (PS3.5 7.8.1). */
export function isPrivateTag(tag: string): boolean {
  return (tagGroup(tag) & 1) === 1
}

/** `(GGGG,EEEE)` form of a tag, for messages. */
export function formatTag(tag: string): string {
  return `(${tag.slice(0, 4)},${tag.slice(4, 8)})`
}

/** First value of an element as a string, or undefined when absent or empty. */
export function firstString(ds: DicomDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0]
  return typeof v === 'string' && v.length > 0 ? v : undefined
}

/** First value of an element as a number (numeric VRs, IS/DS), or undefined. */
export function firstNumber(ds: DicomDataset, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0]
  if (typeof v === 'number' && Number.isFinite(v)) return v
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  return undefined
}

function isDataset(v: unknown): v is DicomDataset {
  return typeof v === 'object' && v !== null && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)
}

function cloneValue(v: unknown, vr: string): DicomValue {
  if (v === null || v === undefined) return null
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return v
  if (v instanceof String) return v.valueOf()
  if (v instanceof Number) return v.valueOf()
  // Binary buffers are shared, not copied: nothing in src/study writes into one.
  if (v instanceof ArrayBuffer) return v
  if (ArrayBuffer.isView(v)) return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer
  if (vr === 'SQ') return cloneDataset(v as DicomDataset)
  if (vr === 'PN') {
    const pn: PersonName = {}
    const o = v as Record<string, unknown>
    for (const k of ['Alphabetic', 'Ideographic', 'Phonetic'] as const) {
      const c = o[k]
      if (c !== undefined) pn[k] = String(c)
    }
    return pn
  }
  if (isDataset(v)) return cloneDataset(v)
  return String(v)
}

/** A copy of one element: plain objects, binary buffers shared. */
export function cloneElement(el: DicomElement): DicomElement {
  const out: DicomElement = { vr: el.vr }
  if (el.Value !== undefined) out.Value = el.Value.map((v) => cloneValue(v, el.vr))
  if (el._rawValue !== undefined && el.vr !== 'SQ') {
    out._rawValue = Array.isArray(el._rawValue) ? [...(el._rawValue as unknown[])] : el._rawValue
  }
  return out
}

/**
 * A structural copy of a dataset as plain objects (no dcmjs proxies), sorted by
 * tag; binary values (Pixel Data) are shared, not copied, so a copy costs no
 * pixel memory.
 */
export function cloneDataset(ds: DicomDataset): DicomDataset {
  const out: DicomDataset = {}
  for (const tag of Object.keys(ds).sort()) {
    const el = ds[tag]
    if (el !== undefined) out[tag.toUpperCase()] = cloneElement(el)
  }
  return out
}

/** A copy of an instance (see {@link cloneDataset}). */
export function cloneInstance(inst: DicomInstance): DicomInstance {
  const out: DicomInstance = { meta: cloneDataset(inst.meta), dataset: cloneDataset(inst.dataset) }
  if (inst.path !== undefined) out.path = inst.path
  return out
}

function toJsonValue(v: DicomValue, vr: string): JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'number') return v
  if (typeof v === 'bigint') return { $bigint: v.toString() }
  if (v instanceof ArrayBuffer) throw new TypeError('binary value outside InlineBinary')
  if (vr === 'SQ') return toJsonDataset(v as DicomDataset)
  return { ...(v as PersonName) }
}

/** JSON form of an element for a demographics record (binary as base64). */
export function toJsonElement(el: DicomElement): JsonElement {
  const out: JsonElement = { vr: el.vr }
  if (el.Value === undefined) return out
  if (el.Value.some((v) => v instanceof ArrayBuffer)) {
    out.InlineBinary = el.Value.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v).toString('base64') : ''))
  } else {
    out.Value = el.Value.map((v) => toJsonValue(cloneValue(v, el.vr), el.vr))
  }
  return out
}

/** JSON form of a dataset (see {@link toJsonElement}). */
export function toJsonDataset(ds: DicomDataset): JsonDataset {
  const out: JsonDataset = {}
  for (const tag of Object.keys(ds).sort()) {
    const el = ds[tag]
    if (el !== undefined) out[tag] = toJsonElement(el)
  }
  return out
}

function fromJsonValue(v: JsonValue, vr: string): DicomValue {
  if (v === null || typeof v === 'string' || typeof v === 'number') return v
  if ('$bigint' in v && typeof v.$bigint === 'string') return BigInt(v.$bigint)
  if (vr === 'SQ') return fromJsonDataset(v as JsonDataset)
  return { ...(v as PersonName) }
}

/** Element from its JSON form (inverse of {@link toJsonElement}). */
export function fromJsonElement(el: JsonElement): DicomElement {
  const out: DicomElement = { vr: el.vr }
  if (el.InlineBinary !== undefined) {
    out.Value = el.InlineBinary.map((b) => {
      const buf = Buffer.from(b, 'base64')
      return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer
    })
  } else if (el.Value !== undefined) {
    out.Value = el.Value.map((v) => fromJsonValue(v, el.vr))
  }
  return out
}

/** Dataset from its JSON form (inverse of {@link toJsonDataset}). */
export function fromJsonDataset(ds: JsonDataset): DicomDataset {
  const out: DicomDataset = {}
  for (const tag of Object.keys(ds).sort()) {
    const el = ds[tag]
    if (el !== undefined) out[tag] = fromJsonElement(el)
  }
  return out
}

/**
 * Path of an element through sequences: `GGGGEEEE` at the top level,
 * `SSSSSSSS[i].GGGGEEEE` inside item i of sequence SSSSSSSS, and so on.
 */
export function childPath(prefix: string, tag: string): string {
  return prefix === '' ? tag : `${prefix}.${tag}`
}

/** Path of item `index` of the sequence at `path`, as a prefix for {@link childPath}. */
export function itemPath(path: string, index: number): string {
  return `${path}[${index}]`
}

const SEGMENT_RE = /^([0-9A-F]{8})(?:\[(\d+)\])?$/

/**
 * The dataset that holds the element at `path`, and its tag. Throws
 * DICOM_RECORD_MISMATCH when a sequence or item on the way is missing.
 */
export function resolvePath(root: DicomDataset, path: string): { parent: DicomDataset; tag: string } {
  const segs = path.split('.')
  let ds = root
  for (let i = 0; i < segs.length; i++) {
    const m = SEGMENT_RE.exec(segs[i] ?? '')
    if (m === null) throw new StudyError('DICOM_RECORD_MISMATCH', `bad element path ${path}`)
    const tag = m[1] as string
    if (i === segs.length - 1) {
      if (m[2] !== undefined) throw new StudyError('DICOM_RECORD_MISMATCH', `bad element path ${path}`)
      return { parent: ds, tag }
    }
    if (m[2] === undefined) throw new StudyError('DICOM_RECORD_MISMATCH', `bad element path ${path}`)
    const item = ds[tag]?.Value?.[Number(m[2])]
    if (!isDataset(item)) {
      throw new StudyError('DICOM_RECORD_MISMATCH', `no item ${m[2]} of ${formatTag(tag)} on path ${path}`)
    }
    ds = item
  }
  throw new StudyError('DICOM_RECORD_MISMATCH', `empty element path`)
}
