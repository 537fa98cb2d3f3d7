import { inflateRawSync } from 'node:zlib'
import { data, log } from 'dcmjs'
import { errorMessage } from '../util/index.js'
import { StudyError } from './errors.js'
import { TAG, cloneDataset, firstString, formatTag, type DicomDataset, type DicomInstance } from './dataset.js'

// dcmjs prints its own diagnostics with console.* (e.g. "Invalid vr type xs"
// for every implicit-VR file, or the lengths of a truncated value). radchain
// reports problems as StudyError instead, and its logs go through the
// structured logger only, so dcmjs's logging is turned off here.
log.setLevel('error')
log.getLogger('validation.dcmjs').setLevel('silent')

/**
 * Largest dataset a Deflated Explicit VR Little Endian file (PS3.5 A.5) may
 * inflate to. Deflate packs zeros about 1000 to 1, so a file of a few hundred
 * kilobytes could otherwise claim gigabytes of memory when read.
 */
export const MAX_INFLATED_BYTES = 256 * 1024 * 1024

/** Transfer Syntax UIDs of the native (uncompressed) encodings (PS3.5 A.1-A.5). */
export const TRANSFER_SYNTAX = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
} as const

/**
 * Image Storage SOP Classes (PS3.4 B.5, Table B.5-1) whose IODs require Pixel
 * Data: an instance of one of them without Pixel Data was cut short.
 */
export const IMAGE_STORAGE_SOP_CLASSES: ReadonlySet<string> = new Set(
  [
    '1',
    '1.1',
    '1.1.1',
    '1.2',
    '1.2.1',
    '1.3',
    '1.3.1', // CR, DX, MG, IO
    '2',
    '2.1',
    '2.2', // CT, Enhanced CT, Legacy Converted Enhanced CT
    '3.1',
    '6.1',
    '6.2', // US Multi-frame, US, Enhanced US Volume
    '4',
    '4.1',
    '4.3',
    '4.4', // MR, Enhanced MR, Enhanced MR Color, Legacy Converted Enhanced MR
    '7',
    '7.1',
    '7.2',
    '7.3',
    '7.4', // Secondary Capture
    '12.1',
    '12.1.1',
    '12.2',
    '12.2.1',
    '13.1.1',
    '13.1.2',
    '13.1.3',
    '13.1.4',
    '13.1.5', // XA, XRF, 3D, tomosynthesis
    '20',
    '128',
    '128.1',
    '130', // NM, PET, Legacy Converted Enhanced PET, Enhanced PET
    '30',
    '66.4',
    '481.1', // Parametric Map, Segmentation, RT Image
    '77.1.1',
    '77.1.1.1',
    '77.1.2',
    '77.1.2.1',
    '77.1.3',
    '77.1.4',
    '77.1.4.1', // VL
    '77.1.5.1',
    '77.1.5.2',
    '77.1.5.4',
    '77.1.5.7',
    '77.1.5.8',
    '77.1.6', // ophthalmic, WSI
  ].map((s) => `1.2.840.10008.5.1.4.1.1.${s}`),
)

/** True when `ts` encodes Pixel Data natively (not encapsulated), PS3.5 A.4. */
export function isNativeTransferSyntax(ts: string): boolean {
  return (Object.values(TRANSFER_SYNTAX) as string[]).includes(ts)
}

// VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2).
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const UNDEFINED_LENGTH = 0xffffffff
// Bytes per value of the binary VRs of fixed size (PS3.5 6.2).
const FIXED_VR_BYTES: Readonly<Record<string, number>> = { AT: 4, FD: 8, FL: 4, SL: 4, SS: 2, SV: 8, UL: 4, US: 2, UV: 8 }
// The VRs of PS3.5 6.2.
const KNOWN_VRS: ReadonlySet<string> = new Set(
  'AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '),
)
const MAX_SEQUENCE_DEPTH = 32

interface Encoding {
  explicit: boolean
  little: boolean
}

/** How the dataset of some bytes is encoded (PS3.5 A.1-A.3), from their transfer syntax. */
function encodingOf(transferSyntax: string): Encoding {
  return {
    explicit: transferSyntax !== TRANSFER_SYNTAX.ImplicitVRLittleEndian,
    little: transferSyntax !== TRANSFER_SYNTAX.ExplicitVRBigEndian,
  }
}

/** Where the dataset of some bytes starts and how it is encoded; `bare` when they hold a dataset alone (see {@link isBareDataset}). */
interface Layout {
  transferSyntax: string
  datasetStart: number
  bare: boolean
  /** Where (0002,0000) File Meta Information Group Length says the meta ends; undefined without it (or for a bare dataset). */
  metaGroupEnd?: number
}

const IMPLICIT_LE: Encoding = { explicit: false, little: true }

/** True when `bytes` hold the 128-byte preamble and the "DICM" prefix of a Part 10 file (PS3.10 7.1). */
function hasPart10Prefix(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && Buffer.from(bytes.buffer, bytes.byteOffset + 128, 4).toString('latin1') === 'DICM'
}

// SOP Instance UID (0008,0018) is in every composite instance (PS3.3 C.12.1)
// and elements ascend (PS3.5 7.1): a bare dataset starts at or before it.
const BARE_FIRST_ELEMENT_MAX = 0x0018

/**
 * True when `bytes` look like a bare dataset in Implicit VR Little Endian, the
 * default transfer syntax (PS3.5 10.1, A.1), without preamble or file meta, as
 * DIMSE storage SCPs write the Data Set of a C-STORE request (PS3.7 9.1.1):
 * the first element is in group 0008, at or before SOP Instance UID
 * (0008,0018), and its header is an implicit VR one (PS3.5 7.1.3): no VR
 * where explicit VR would have one, an even defined length that fits.
 */
function isBareDataset(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8)
  const length = view.getUint32(4, true)
  const vrLike = /^[A-Z]{2}$/.test(Buffer.from(bytes.buffer, bytes.byteOffset + 4, 2).toString('latin1'))
  return view.getUint16(0, true) === 0x0008 && view.getUint16(2, true) <= BARE_FIRST_ELEMENT_MAX && !vrLike && length % 2 === 0 && length <= bytes.length - 8
}

/**
 * Structure check of a Part 10 byte string (PS3.10 7, PS3.5 7): every element,
 * item and fragment must fit in the file. dcmjs reads past a short value
 * silently (it keeps the bytes that are there), so a truncated file would
 * otherwise parse; this walk finds it without allocating anything.
 */
class StructureWalker {
  private readonly view: DataView

  constructor(
    private readonly bytes: Uint8Array,
    private readonly path: string | undefined,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  private truncated(what: string): StudyError {
    return new StudyError('DICOM_TRUNCATED', `file is truncated: ${what} runs past the end of the file (${this.bytes.length} bytes)`, { path: this.path })
  }

  private malformed(what: string): StudyError {
    return new StudyError('DICOM_UNREADABLE', `malformed DICOM encoding: ${what}`, { path: this.path })
  }

  private need(end: number, limit: number, what: string): void {
    if (end > limit) throw end > this.bytes.length || limit === this.bytes.length ? this.truncated(what) : this.malformed(`${what} overruns its container`)
  }

  private u16(off: number, little: boolean): number {
    return this.view.getUint16(off, little)
  }

  private u32(off: number, little: boolean): number {
    return this.view.getUint32(off, little)
  }

  private ascii(off: number, len: number): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + off, len).toString('latin1')
  }

  /**
   * Where the dataset starts and its transfer syntax: after the file meta of
   * Part 10 bytes, or at 0 for a bare Implicit VR Little Endian dataset (see
   * {@link isBareDataset}). Throws DICOM_NOT_PART10 for anything else.
   */
  layout(): Layout {
    if (hasPart10Prefix(this.bytes)) return { ...this.meta(), bare: false }
    if (isBareDataset(this.bytes)) return { transferSyntax: TRANSFER_SYNTAX.ImplicitVRLittleEndian, datasetStart: 0, bare: true }
    throw new StudyError('DICOM_NOT_PART10', 'not a DICOM Part 10 file (no "DICM" marker at offset 128) nor a bare implicit VR little endian dataset', {
      path: this.path,
    })
  }

  /** Checks the structure of the whole bytes (see {@link checkPart10}); returns their layout. */
  check(): Layout {
    const layout = this.layout()
    if (layout.transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) this.inflated(layout.datasetStart)
    else this.dataset(layout.datasetStart, this.bytes.length, encodingOf(layout.transferSyntax), 0, false)
    return layout
  }

  /**
   * Checks a deflated dataset (PS3.5 A.5) that starts at `start`: it must
   * inflate to at most MAX_INFLATED_BYTES (a few hundred bytes of deflate can
   * claim gigabytes), and what it inflates to is walked like any Explicit VR
   * Little Endian dataset. Throws DICOM_TOO_LARGE, DICOM_UNREADABLE or
   * DICOM_TRUNCATED.
   */
  private inflated(start: number): void {
    let body: Uint8Array
    try {
      body = inflateRawSync(this.bytes.subarray(start), { maxOutputLength: MAX_INFLATED_BYTES })
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new StudyError('DICOM_TOO_LARGE', `the deflated dataset inflates to more than the bound of ${MAX_INFLATED_BYTES} bytes`, { path: this.path })
      }
      throw new StudyError('DICOM_UNREADABLE', `the deflated dataset does not inflate (${errorMessage(err)})`, { path: this.path, cause: err })
    }
    new StructureWalker(body, this.path).dataset(0, body.length, encodingOf(TRANSFER_SYNTAX.ExplicitVRLittleEndian), 0, false)
  }

  /** Walks the file meta; returns the transfer syntax and where the dataset starts. */
  private meta(): { transferSyntax: string; datasetStart: number; metaGroupEnd?: number } {
    const len = this.bytes.length
    let off = 132
    let ts: string | undefined
    let groupEnd: number | undefined
    while (off + 4 <= len && this.u16(off, true) === 0x0002) {
      const elem = this.u16(off + 2, true)
      this.need(off + 8, len, `file meta element (0002,${elem.toString(16).padStart(4, '0')})`)
      const vr = this.ascii(off + 4, 2)
      if (!/^[A-Z]{2}$/.test(vr)) throw this.malformed('file meta is not explicit VR little endian')
      let length: number
      let hdr: number
      if (LONG_VRS.has(vr)) {
        this.need(off + 12, len, 'file meta element header')
        length = this.u32(off + 8, true)
        hdr = 12
      } else {
        length = this.u16(off + 6, true)
        hdr = 8
      }
      if (length === UNDEFINED_LENGTH) throw this.malformed('undefined length in file meta')
      this.need(off + hdr + length, len, 'file meta element value')
      if (elem === 0x0000 && length === 4) groupEnd = off + hdr + 4 + this.u32(off + hdr, true)
      if (elem === 0x0010) ts = this.ascii(off + hdr, length).replace(/[\0 ]+$/, '')
      off += hdr + length
    }
    if (groupEnd !== undefined && groupEnd > len) throw this.truncated('the file meta information')
    if (off + 4 > len) throw this.truncated('the dataset (the file ends after its meta information)')
    if (ts === undefined || ts === '') throw this.malformed('no Transfer Syntax UID (0002,0010) in the file meta')
    return { transferSyntax: ts, datasetStart: off, ...(groupEnd === undefined ? {} : { metaGroupEnd: groupEnd }) }
  }

  /** The header of the data element at `off` (PS3.5 7.1.2, 7.1.3); the caller has checked 8 bytes are there. */
  private element(
    off: number,
    end: number,
    enc: Encoding,
    group: number,
    elem: number,
  ): { tag: string; vr: string | undefined; length: number; start: number } {
    const tag = `(${group.toString(16).padStart(4, '0')},${elem.toString(16).padStart(4, '0')})`
    let vr: string | undefined
    let length: number
    let hdr: number
    if (enc.explicit) {
      vr = this.ascii(off + 4, 2)
      if (!/^[A-Z]{2}$/.test(vr)) throw this.malformed(`bad VR at element ${tag}`)
      if (LONG_VRS.has(vr)) {
        this.need(off + 12, end, `the header of element ${tag}`)
        length = this.u32(off + 8, enc.little)
        hdr = 12
      } else {
        length = this.u16(off + 6, enc.little)
        hdr = 8
      }
    } else {
      length = this.u32(off + 4, enc.little)
      hdr = 8
    }
    return { tag, vr, length, start: off + hdr }
  }

  /**
   * Where the top-level element (group, elem) is, walking the dataset from
   * `off` until a greater tag (tags ascend, PS3.5 7.1): the start of its
   * value, its length (UNDEFINED_LENGTH for an undefined length) and VR.
   * Only its header need lie before `end`. Undefined when absent; throws like
   * {@link dataset} when the bytes end before it.
   */
  locate(off: number, end: number, enc: Encoding, group: number, elem: number): { start: number; length: number; vr: string | undefined } | undefined {
    while (off < end) {
      this.need(off + 8, end, 'an element header')
      const g = this.u16(off, enc.little)
      const e = this.u16(off + 2, enc.little)
      if (g > group || (g === group && e > elem)) return undefined
      const { vr, length, start } = this.element(off, end, enc, g, e)
      if (g === group && e === elem) return { start, length, vr }
      if (length === UNDEFINED_LENGTH) {
        if (g === 0x7fe0 && e === 0x0010) return undefined
        off = this.sequence(start, end, vr === 'UN' ? { explicit: false, little: true } : enc, 1)
        continue
      }
      this.need(start + length, end, 'an element value')
      off = start + length
    }
    return undefined
  }

  /**
   * The top-level elements of the dataset in [off, end) whose tags are in
   * `wanted` (as numbers, group << 16 | element), walking every one of them
   * once. Undefined (a dataset to leave to a full parse) when the tags do not
   * strictly ascend (PS3.5 7.1: a repeated or misplaced element is read
   * differently by different readers), when an explicit VR is not one of
   * PS3.5's or its binary value is not a whole number of values, or when a
   * Pixel Data is encapsulated (in implicit VR the VRs, and so the lengths of
   * elements not read, are not checked). Throws
   * like {@link dataset} on structure errors.
   */
  topLevel(
    off: number,
    end: number,
    enc: Encoding,
    wanted: ReadonlySet<number>,
  ): Map<number, { start: number; length: number; vr: string | undefined }> | undefined {
    const found = new Map<number, { start: number; length: number; vr: string | undefined }>()
    let previous = -1
    while (off < end) {
      this.need(off + 8, end, 'an element header')
      const g = this.u16(off, enc.little)
      const e = this.u16(off + 2, enc.little)
      const tag = g * 0x10000 + e
      if (tag <= previous) return undefined
      previous = tag
      const { vr, length, start } = this.element(off, end, enc, g, e)
      if (length === UNDEFINED_LENGTH) {
        if (g === 0x7fe0 && e === 0x0010) return undefined
        off = this.sequence(start, end, vr === 'UN' ? { explicit: false, little: true } : enc, 1)
        continue
      }
      this.need(start + length, end, 'an element value')
      if (vr !== undefined && !KNOWN_VRS.has(vr)) return undefined
      const size = vr === undefined ? undefined : FIXED_VR_BYTES[vr]
      if (size !== undefined && length % size !== 0) return undefined
      if (wanted.has(tag)) found.set(tag, { start, length, vr })
      off = start + length
    }
    return found
  }

  /** The value of the top-level element (group, elem) (see {@link locate}), which must lie before `end`. */
  find(off: number, end: number, enc: Encoding, group: number, elem: number): Uint8Array | undefined {
    const at = this.locate(off, end, enc, group, elem)
    if (at === undefined || at.length === UNDEFINED_LENGTH) return undefined
    this.need(at.start + at.length, end, 'an element value')
    return this.bytes.subarray(at.start, at.start + at.length)
  }

  /** Walks a dataset in [off, end); with `delimited`, up to its Item Delimitation Item. */
  dataset(off: number, end: number, enc: Encoding, depth: number, delimited: boolean): number {
    if (depth > MAX_SEQUENCE_DEPTH) throw this.malformed('sequences nested too deep')
    for (;;) {
      if (!delimited && off === end) return off
      this.need(off + 8, end, 'an element header')
      const group = this.u16(off, enc.little)
      const elem = this.u16(off + 2, enc.little)
      if (group === 0xfffe) {
        if (delimited && elem === 0xe00d) return off + 8
        throw this.malformed(`unexpected delimiter (FFFE,${elem.toString(16).padStart(4, '0')})`)
      }
      const { tag, vr, length, start } = this.element(off, end, enc, group, elem)
      if (length === UNDEFINED_LENGTH) {
        if (group === 0x7fe0 && elem === 0x0010) off = this.fragments(start, end, enc)
        else if (!enc.explicit || vr === 'SQ') off = this.sequence(start, end, enc, depth + 1)
        // An undefined-length UN holds implicit VR little endian (PS3.5 6.2.2).
        else if (vr === 'UN') off = this.sequence(start, end, { explicit: false, little: true }, depth + 1)
        else throw this.malformed(`undefined length on VR ${vr ?? '??'} at element ${tag}`)
      } else {
        this.need(start + length, end, `the value of element ${tag}`)
        if (vr === 'SQ') this.definedSequence(start, start + length, enc, depth + 1)
        off = start + length
      }
    }
  }

  private item(off: number, end: number, enc: Encoding, depth: number): number {
    const length = this.u32(off + 4, enc.little)
    if (length === UNDEFINED_LENGTH) return this.dataset(off + 8, end, enc, depth, true)
    this.need(off + 8 + length, end, 'a sequence item')
    this.dataset(off + 8, off + 8 + length, enc, depth, false)
    return off + 8 + length
  }

  private sequence(off: number, end: number, enc: Encoding, depth: number): number {
    for (;;) {
      this.need(off + 8, end, 'a sequence item header')
      const group = this.u16(off, enc.little)
      const elem = this.u16(off + 2, enc.little)
      if (group === 0xfffe && elem === 0xe0dd) return off + 8
      if (group !== 0xfffe || elem !== 0xe000) throw this.malformed('expected a sequence item')
      off = this.item(off, end, enc, depth)
    }
  }

  private definedSequence(off: number, end: number, enc: Encoding, depth: number): void {
    while (off < end) {
      this.need(off + 8, end, 'a sequence item header')
      if (this.u16(off, enc.little) !== 0xfffe || this.u16(off + 2, enc.little) !== 0xe000) {
        throw this.malformed('expected a sequence item')
      }
      off = this.item(off, end, enc, depth)
    }
  }

  private fragments(off: number, end: number, enc: Encoding): number {
    for (;;) {
      this.need(off + 8, end, 'a pixel data fragment header')
      const group = this.u16(off, enc.little)
      const elem = this.u16(off + 2, enc.little)
      if (group === 0xfffe && elem === 0xe0dd) return off + 8
      if (group !== 0xfffe || elem !== 0xe000) throw this.malformed('expected a pixel data fragment')
      const length = this.u32(off + 4, enc.little)
      if (length === UNDEFINED_LENGTH) throw this.malformed('undefined length on a pixel data fragment')
      this.need(off + 8 + length, end, 'a pixel data fragment')
      off += 8 + length
    }
  }
}

/**
 * Checks the structure of Part 10 bytes (PS3.10 7.1) and returns their
 * transfer syntax; bytes without the Part 10 prefix are taken for a bare
 * Implicit VR Little Endian dataset when they look like one (see
 * {@link isBareDataset}). Throws DICOM_NOT_PART10, DICOM_TRUNCATED or
 * DICOM_UNREADABLE.
 */
export function checkPart10(bytes: Uint8Array, path?: string): string {
  return new StructureWalker(bytes, path).check().transferSyntax
}

/** One file meta element in Explicit VR Little Endian (PS3.10 7.1, PS3.5 7.1.2). */
function metaElement(elem: number, vr: 'OB' | 'UI' | 'UL', value: Uint8Array): Buffer {
  const hdr = vr === 'OB' ? 12 : 8
  const b = Buffer.alloc(hdr + value.length)
  b.writeUInt16LE(0x0002, 0)
  b.writeUInt16LE(elem, 2)
  b.write(vr, 4, 'latin1')
  if (hdr === 12) b.writeUInt32LE(value.length, 8)
  else b.writeUInt16LE(value.length, 6)
  b.set(value, hdr)
  return b
}

/**
 * Part 10 bytes for a bare Implicit VR Little Endian dataset (see
 * {@link isBareDataset}) whose structure `w` checked: the preamble, "DICM"
 * and a file meta (PS3.10 7.1) made from the dataset: Transfer Syntax UID
 * Implicit VR Little Endian, Media Storage SOP Class and Instance UID from
 * its SOP Class UID (0008,0016) and SOP Instance UID (0008,0018) when it has
 * them.
 */
function withFileMeta(w: StructureWalker, bytes: Uint8Array): Uint8Array {
  const ui = (uid: string): Uint8Array => Buffer.from(uid.length % 2 === 0 ? uid : `${uid}\0`, 'latin1')
  const fromDataset = (elem: number): Uint8Array | undefined => {
    const value = w.find(0, bytes.length, IMPLICIT_LE, 0x0008, elem)
    if (value === undefined) return undefined
    const uid = uidText(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'))
    // A UID has at most 64 characters (PS3.5 9.1); anything else is left to the dataset's own checks.
    return uid === '' || uid.length > 64 ? undefined : ui(uid)
  }
  const elements = [metaElement(0x0001, 'OB', new Uint8Array([0, 1]))]
  const sopClass = fromDataset(0x0016)
  if (sopClass !== undefined) elements.push(metaElement(0x0002, 'UI', sopClass))
  const sop = fromDataset(0x0018)
  if (sop !== undefined) elements.push(metaElement(0x0003, 'UI', sop))
  elements.push(metaElement(0x0010, 'UI', ui(TRANSFER_SYNTAX.ImplicitVRLittleEndian)))
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(elements.reduce((n, e) => n + e.length, 0))
  const prefix = Buffer.alloc(132)
  prefix.write('DICM', 128, 'latin1')
  return Buffer.concat([prefix, metaElement(0x0000, 'UL', groupLength), ...elements, bytes])
}

/**
 * Throws DICOM_MISSING_UID unless the instance has a Study, Series and SOP
 * Instance UID (PS3.3 C.7.2.1, C.7.3.1, C.12.1).
 */
export function assertInstanceUids(inst: DicomInstance, path = inst.path): void {
  const missing = [
    ['Study Instance UID', TAG.StudyInstanceUID],
    ['Series Instance UID', TAG.SeriesInstanceUID],
    ['SOP Instance UID', TAG.SOPInstanceUID],
  ].filter(([, tag]) => firstString(inst.dataset, tag as string) === undefined)
  if (missing.length > 0) {
    const names = missing.map(([name, tag]) => `${name} ${formatTag(tag as string)}`).join(', ')
    throw new StudyError('DICOM_MISSING_UID', `missing ${names}`, { path })
  }
}

/**
 * Parses DICOM Part 10 bytes (PS3.10 7) into an instance. Checks the structure
 * first (see {@link checkPart10}) and, unless `requireUids` is false, requires
 * the Study, Series and SOP Instance UIDs. A bare Implicit VR Little Endian
 * dataset gets the file meta a Part 10 file of it would have (Transfer Syntax
 * UID, Media Storage SOP Class and Instance UID from the dataset). Throws
 * StudyError with a DICOM_* code naming `path`.
 */
export function parseDicom(bytes: Uint8Array, path?: string, opts: { requireUids?: boolean } = {}): DicomInstance {
  const w = new StructureWalker(bytes, path)
  const part10 = w.check().bare ? withFileMeta(w, bytes) : bytes
  const ab =
    part10.byteOffset === 0 && part10.byteLength === part10.buffer.byteLength
      ? (part10.buffer as ArrayBuffer)
      : (part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.byteLength) as ArrayBuffer)
  let meta: DicomDataset
  let dataset: DicomDataset
  try {
    const dict = data.DicomMessage.readFile(ab, { ignoreErrors: false, untilTag: null, includeUntilTagValue: false, noCopy: false })
    meta = cloneDataset(dict.meta as DicomDataset)
    dataset = cloneDataset(dict.dict as DicomDataset)
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err)
    throw new StudyError('DICOM_UNREADABLE', `cannot parse DICOM dataset (${detail})`, { path, cause: err })
  }
  const inst: DicomInstance = { meta, dataset }
  if (path !== undefined) inst.path = path
  // A file cut exactly between two elements passes the structure check (Part
  // 10 has no overall length); an image whose Pixel Data is gone is the case
  // that matters.
  const hasPixels = dataset[TAG.PixelData] ?? dataset[TAG.FloatPixelData] ?? dataset[TAG.DoubleFloatPixelData]
  const sopClass = firstString(dataset, TAG.SOPClassUID) ?? firstString(meta, TAG.MediaStorageSOPClassUID)
  const isImage = (sopClass !== undefined && IMAGE_STORAGE_SOP_CLASSES.has(sopClass)) || dataset[TAG.Rows] !== undefined
  if (isImage && hasPixels === undefined) {
    throw new StudyError('DICOM_TRUNCATED', 'file is truncated: an image without Pixel Data (7FE0,0010)', { path })
  }
  if (opts.requireUids !== false) assertInstanceUids(inst, path)
  return inst
}

/**
 * Where the native Pixel Data (7FE0,0010) of a file starts, from the file's
 * first bytes, when it is the last element, of defined length, and runs
 * exactly to the end of the file of `size` bytes: the common layout, whose
 * pixels can be read straight into their own buffer. `start` is the offset of
 * the value in the file; undefined for any other layout.
 */
export function locateTrailingPixelData(head: Uint8Array, size: number): { start: number; length: number } | undefined {
  try {
    const w = new StructureWalker(head, undefined)
    const { transferSyntax, datasetStart } = w.layout()
    if (!isNativeTransferSyntax(transferSyntax) || transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) return undefined
    const enc = encodingOf(transferSyntax)
    const at = w.locate(datasetStart, head.length, enc, 0x7fe0, 0x0010)
    if (at === undefined || at.length === UNDEFINED_LENGTH || at.start + at.length !== size) return undefined
    if (enc.explicit && at.vr !== 'OB' && at.vr !== 'OW') return undefined
    return { start: at.start, length: at.length }
  } catch {
    return undefined
  }
}

/**
 * A UI value as compared across files: the first value, keeping only the
 * characters a UID is made of (digits and dots, PS3.5 9.1), so padding goes
 * (PS3.5 6.2) and a damaged value reads as dcmjs parses it (it drops every
 * other character from UI values): the cheap read of a UID from the first
 * bytes of a file agrees with the parse of the whole file.
 */
export function uidText(v: string): string {
  return (v.split('\\')[0] ?? '').replace(/[^0-9.]/g, '')
}

/**
 * The Study Instance UID (0020,000D) of Part 10 bytes or a bare dataset, from
 * the bytes alone (see {@link uidText}): undefined when the element lies past
 * their end, or the bytes are deflated, malformed or neither.
 */
export function studyUidFromHead(bytes: Uint8Array): string | undefined {
  try {
    const w = new StructureWalker(bytes, undefined)
    const { transferSyntax, datasetStart } = w.layout()
    if (transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) return undefined
    const value = w.find(datasetStart, bytes.length, encodingOf(transferSyntax), 0x0020, 0x000d)
    if (value === undefined) return undefined
    const uid = uidText(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'))
    return uid === '' ? undefined : uid
  } catch {
    return undefined
  }
}

/** The elements {@link nativePixelLayout} reads (group << 16 | element). */
const NATIVE_LAYOUT_TAGS: ReadonlySet<number> = new Set([
  0x00080005, 0x00080018, 0x0020000d, 0x0020000e, 0x00280002, 0x00280008, 0x00280010, 0x00280011, 0x00280100, 0x7fe00010,
])

/** Specific Character Set (0008,0005) values read in place: one value, the default repertoire or Latin-1 or UTF-8. */
const PLAIN_CHARSETS: ReadonlySet<string> = new Set(['', 'ISO_IR 6', 'ISO_IR 100', 'ISO_IR 192'])

/**
 * What {@link instanceDigestOfBytes} (src/study/pixel.ts) needs of an instance in Explicit or
 * Implicit VR Little Endian, read from its bytes without parsing them into a
 * dataset: its SOP Instance UID, the image's framing attributes (PS3.3
 * C.7.6.3) and where its Pixel Data (7FE0,0010) value lies.
 */
export interface NativePixelLayout {
  transferSyntax: string
  sopInstanceUid: string
  rows: number
  columns: number
  bitsAllocated: number
  samplesPerPixel: number
  frames: number
  /** Offset and length of the Pixel Data value in the bytes. */
  pixels: { start: number; length: number }
}

/**
 * The {@link NativePixelLayout} of Part 10 bytes, after the structure check of
 * {@link checkPart10} (which throws as it does). Undefined wherever the
 * answer would not be plainly the one a parse gives: another transfer syntax
 * (big endian, deflated, encapsulated) or a bare dataset; a file meta
 * without a group length that ends where it ends; top-level tags that do not
 * strictly ascend, an unknown VR or a partial binary value (see topLevel);
 * a character set other than one plain value; no Pixel Data, or one of
 * undefined length; a Study, Series or SOP Instance UID, or a framing
 * attribute, missing, of another VR, or with a value that is not plain (a UID
 * with characters other than digits and dots, a Number of Frames that is not
 * a plain integer). The caller parses those.
 */
export function nativePixelLayout(bytes: Uint8Array, path?: string): NativePixelLayout | undefined {
  const w = new StructureWalker(bytes, path)
  const layout = w.check()
  const ts = layout.transferSyntax
  if (layout.bare || (ts !== TRANSFER_SYNTAX.ExplicitVRLittleEndian && ts !== TRANSFER_SYNTAX.ImplicitVRLittleEndian)) return undefined
  // dcmjs reads the file meta by its group length: without it, or when it ends elsewhere, the parse differs.
  if (layout.metaGroupEnd !== layout.datasetStart) return undefined
  const els = w.topLevel(layout.datasetStart, bytes.length, encodingOf(ts), NATIVE_LAYOUT_TAGS)
  if (els === undefined) return undefined
  const at = (tag: number, vrs: readonly string[]): { start: number; length: number } | undefined => {
    const a = els.get(tag)
    return a === undefined || (a.vr !== undefined && !vrs.includes(a.vr)) ? undefined : a
  }
  const text = (a: { start: number; length: number }): string => Buffer.from(bytes.buffer, bytes.byteOffset + a.start, a.length).toString('latin1')
  const uid = (tag: number): string | undefined => {
    const a = at(tag, ['UI'])
    const v = a === undefined ? '' : text(a).replace(/[\0 ]+$/, '')
    return /^[0-9.]+$/.test(v) ? v : undefined
  }
  const us = (tag: number): number | undefined => {
    const a = at(tag, ['US'])
    return a === undefined || a.length < 2 || a.length % 2 !== 0 ? undefined : (bytes[a.start] as number) | ((bytes[a.start + 1] as number) << 8)
  }
  // A character set other than the default or one plain value dcmjs reads alike is left to the parse.
  const charset = els.get(0x00080005)
  if (charset !== undefined && !PLAIN_CHARSETS.has(text(charset).trim())) return undefined
  // The parse requires the Study, Series and SOP Instance UIDs (assertInstanceUids).
  const sopInstanceUid = uid(0x00080018)
  if (sopInstanceUid === undefined || uid(0x0020000d) === undefined || uid(0x0020000e) === undefined) return undefined
  const rows = us(0x00280010)
  const columns = us(0x00280011)
  const bitsAllocated = us(0x00280100)
  const samplesPerPixel = us(0x00280002)
  if (rows === undefined || columns === undefined || bitsAllocated === undefined || samplesPerPixel === undefined) return undefined
  let frames = 1
  if (els.has(0x00280008)) {
    const f = at(0x00280008, ['IS'])
    const v = f === undefined ? '' : text(f).trim()
    if (!/^[0-9]{1,9}$/.test(v)) return undefined
    frames = Math.max(1, Number(v))
  }
  const pixels = at(0x7fe00010, ['OB', 'OW'])
  if (pixels === undefined) return undefined
  return { transferSyntax: ts, sopInstanceUid, rows, columns, bitsAllocated, samplesPerPixel, frames, pixels }
}
