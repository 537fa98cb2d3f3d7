import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { data, log } from 'dcmjs'
import { StudyError } from './errors.js'
import { TAG, cloneDataset, firstString, formatTag, type DicomDataset, type DicomElement, type DicomInstance } from './dataset.js'

// dcmjs prints its own diagnostics with console.* (e.g. "Invalid vr type xs"
// for every implicit-VR file, or the lengths of a truncated value). radchain
// reports problems as StudyError instead, and its logs go through the
// structured logger only, so dcmjs's logging is turned off here.
log.setLevel('error')
log.getLogger('validation.dcmjs').setLevel('silent')

/** Transfer Syntax UIDs of the native (uncompressed) encodings (PS3.5 A.1-A.5). */
export const TRANSFER_SYNTAX = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
} as const

/** radchain's Implementation Class UID (PS3.7 D.3.3.2), a UUID-derived UID (PS3.5 B.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.90278739188228965215033521988826214026'
/** radchain's Implementation Version Name (PS3.7 D.3.3.3; SH, at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = 'RADCHAIN_0_1'

/**
 * Image Storage SOP Classes (PS3.4 B.5, Table B.5-1) whose IODs require Pixel
 * Data: an instance of one of them without Pixel Data was cut short.
 */
export const IMAGE_STORAGE_SOP_CLASSES: ReadonlySet<string> = new Set([
  '1', '1.1', '1.1.1', '1.2', '1.2.1', '1.3', '1.3.1', // CR, DX, MG, IO
  '2', '2.1', '2.2', // CT, Enhanced CT, Legacy Converted Enhanced CT
  '3.1', '6.1', '6.2', // US Multi-frame, US, Enhanced US Volume
  '4', '4.1', '4.3', '4.4', // MR, Enhanced MR, Enhanced MR Color, Legacy Converted Enhanced MR
  '7', '7.1', '7.2', '7.3', '7.4', // Secondary Capture
  '12.1', '12.1.1', '12.2', '12.2.1', '13.1.1', '13.1.2', '13.1.3', '13.1.4', '13.1.5', // XA, XRF, 3D, tomosynthesis
  '20', '128', '128.1', '130', // NM, PET, Legacy Converted Enhanced PET, Enhanced PET
  '30', '66.4', '481.1', // Parametric Map, Segmentation, RT Image
  '77.1.1', '77.1.1.1', '77.1.2', '77.1.2.1', '77.1.3', '77.1.4', '77.1.4.1', // VL
  '77.1.5.1', '77.1.5.2', '77.1.5.4', '77.1.5.7', '77.1.5.8', '77.1.6', // ophthalmic, WSI
].map((s) => `1.2.840.10008.5.1.4.1.1.${s}`))

/** Default bound on the size of one input file: 2 GiB. */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024

/** True when `ts` encodes Pixel Data natively (not encapsulated), PS3.5 A.4. */
export function isNativeTransferSyntax(ts: string): boolean {
  return (Object.values(TRANSFER_SYNTAX) as string[]).includes(ts)
}

// VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2).
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])
const UNDEFINED_LENGTH = 0xffffffff
const MAX_SEQUENCE_DEPTH = 32

interface Encoding {
  explicit: boolean
  little: boolean
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

  /** Walks the file meta; returns the transfer syntax and where the dataset starts. */
  meta(): { transferSyntax: string; datasetStart: number } {
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
    return { transferSyntax: ts, datasetStart: off }
  }

  /** The header of the data element at `off` (PS3.5 7.1.2, 7.1.3); the caller has checked 8 bytes are there. */
  private element(off: number, end: number, enc: Encoding, group: number, elem: number): { tag: string; vr: string | undefined; length: number; start: number } {
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
 * Checks the structure of Part 10 bytes and returns their transfer syntax.
 * Throws DICOM_NOT_PART10, DICOM_TRUNCATED or DICOM_UNREADABLE (PS3.10 7.1).
 */
export function checkPart10(bytes: Uint8Array, path?: string): string {
  if (bytes.length < 132 || Buffer.from(bytes.buffer, bytes.byteOffset + 128, 4).toString('latin1') !== 'DICM') {
    throw new StudyError('DICOM_NOT_PART10', 'not a DICOM Part 10 file (no "DICM" marker at offset 128)', { path })
  }
  const w = new StructureWalker(bytes, path)
  const { transferSyntax, datasetStart } = w.meta()
  // A deflated dataset is checked by inflating it in dcmjs.
  if (transferSyntax !== TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) {
    const enc: Encoding = {
      explicit: transferSyntax !== TRANSFER_SYNTAX.ImplicitVRLittleEndian,
      little: transferSyntax !== TRANSFER_SYNTAX.ExplicitVRBigEndian,
    }
    w.dataset(datasetStart, bytes.length, enc, 0, false)
  }
  return transferSyntax
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
 * the Study, Series and SOP Instance UIDs. Throws StudyError with a DICOM_*
 * code naming `path`.
 */
export function parseDicom(bytes: Uint8Array, path?: string, opts: { requireUids?: boolean } = {}): DicomInstance {
  checkPart10(bytes, path)
  const ab = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)
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

/** Bytes readDicom reads first, to find where native Pixel Data starts. */
export const READ_HEAD_BYTES = 64 * 1024

/** Reads into `buf` from file position `pos` until it is full or the file ends; returns the bytes read. */
async function readFully(fh: FileHandle, buf: Uint8Array, pos: number): Promise<number> {
  let n = 0
  while (n < buf.length) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, pos + n)
    if (bytesRead === 0) break
    n += bytesRead
  }
  return n
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
    if (head.length < 132 || Buffer.from(head.buffer, head.byteOffset + 128, 4).toString('latin1') !== 'DICM') return undefined
    const w = new StructureWalker(head, undefined)
    const { transferSyntax, datasetStart } = w.meta()
    if (!isNativeTransferSyntax(transferSyntax) || transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) return undefined
    const enc: Encoding = {
      explicit: transferSyntax !== TRANSFER_SYNTAX.ImplicitVRLittleEndian,
      little: transferSyntax !== TRANSFER_SYNTAX.ExplicitVRBigEndian,
    }
    const at = w.locate(datasetStart, head.length, enc, 0x7fe0, 0x0010)
    if (at === undefined || at.length === UNDEFINED_LENGTH || at.start + at.length !== size) return undefined
    if (enc.explicit && at.vr !== 'OB' && at.vr !== 'OW') return undefined
    return { start: at.start, length: at.length }
  } catch {
    return undefined
  }
}

/**
 * Reads one DICOM Part 10 file (PS3.10 7), bounded by `maxBytes`, one file at
 * a time. When native Pixel Data ends the file, the pixels are read straight
 * into their own buffer and the rest is parsed on its own (the same instance
 * as parsing the whole file gives, without a second copy of the pixels);
 * otherwise the whole file is read and parsed. Throws StudyError naming the file.
 */
export async function readDicom(path: string, opts: { maxBytes?: number; requireUids?: boolean } = {}): Promise<DicomInstance> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES
  let bytes: Uint8Array | undefined
  let pixels: ArrayBuffer | undefined
  try {
    // One open, stat and read into buffers of known size: fewer trips to the
    // thread pool than stat and readFile. O_NONBLOCK keeps the open of a FIFO
    // from waiting for a writer; the stat then refuses it.
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
    try {
      const st = await fh.stat()
      if (!st.isFile()) throw new StudyError('DICOM_UNREADABLE', 'not a regular file', { path })
      if (st.size > maxBytes) throw new StudyError('DICOM_TOO_LARGE', `file is ${st.size} bytes, more than the bound of ${maxBytes}`, { path })
      const head = Buffer.allocUnsafeSlow(Math.min(st.size, READ_HEAD_BYTES))
      const inHead = await readFully(fh, head, 0)
      const at = inHead === head.length ? locateTrailingPixelData(head, st.size) : undefined
      if (at !== undefined) {
        // Not zero-filled: every byte is read from the file below (or the whole file is read instead).
        pixels = Buffer.allocUnsafeSlow(at.length).buffer as ArrayBuffer
        const have = Math.min(head.length - at.start, at.length)
        new Uint8Array(pixels).set(head.subarray(at.start, at.start + have))
        if ((await readFully(fh, new Uint8Array(pixels, have), at.start + have)) !== at.length - have) pixels = undefined
        if (pixels !== undefined) {
          // The rest of the file with a zero-length Pixel Data: its length is the 4 bytes before the value (PS3.5 7.1.2).
          bytes = Buffer.from(head.subarray(0, at.start))
          bytes.fill(0, at.start - 4)
        }
      }
      if (pixels === undefined || bytes === undefined) {
        pixels = undefined
        const buf = Buffer.allocUnsafeSlow(st.size)
        const n = await readFully(fh, buf, 0)
        bytes = n === buf.length ? buf : buf.subarray(0, n)
      }
    } finally {
      await fh.close()
    }
  } catch (err) {
    if (err instanceof StudyError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new StudyError('DICOM_UNREADABLE', `cannot read file (${code})`, { path, cause: err })
  }
  const inst = parseDicom(bytes as Uint8Array, path, opts)
  const el = inst.dataset[TAG.PixelData]
  if (pixels !== undefined) inst.dataset[TAG.PixelData] = { vr: el?.vr ?? 'OW', Value: [pixels] }
  return inst
}

/** Bytes {@link readStudyInstanceUid} reads from the start of a file before it reads the whole file. */
export const STUDY_UID_HEAD_BYTES = 64 * 1024

/** A UI value as compared across files: the first value, without its padding (PS3.5 6.2, 9.1). */
function uidText(v: string): string {
  return (v.split('\\')[0] ?? '').replace(/[\0 ]+$/, '').replace(/^ +/, '')
}

function studyUidFromHead(bytes: Uint8Array): string | undefined {
  try {
    if (bytes.length < 132 || Buffer.from(bytes.buffer, bytes.byteOffset + 128, 4).toString('latin1') !== 'DICM') return undefined
    const w = new StructureWalker(bytes, undefined)
    const { transferSyntax, datasetStart } = w.meta()
    if (transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) return undefined
    const enc: Encoding = {
      explicit: transferSyntax !== TRANSFER_SYNTAX.ImplicitVRLittleEndian,
      little: transferSyntax !== TRANSFER_SYNTAX.ExplicitVRBigEndian,
    }
    const value = w.find(datasetStart, bytes.length, enc, 0x0020, 0x000d)
    if (value === undefined) return undefined
    const uid = uidText(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'))
    return uid === '' ? undefined : uid
  } catch {
    return undefined
  }
}

/**
 * The Study Instance UID (0020,000D) of a Part 10 file (PS3.10 7): the first
 * value without padding. Only the file's first STUDY_UID_HEAD_BYTES are read
 * and walked up to that element; a file where it lies further, a deflated,
 * malformed or oversized file is read whole with {@link readDicom}, which
 * throws its StudyError. Cheap enough to check that files share a study
 * before the real work reads them.
 */
export async function readStudyInstanceUid(path: string, opts: { maxBytes?: number } = {}): Promise<string> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES
  let head: Uint8Array | undefined
  try {
    const fh = await open(path, 'r')
    try {
      const st = await fh.stat()
      if (st.isFile() && st.size <= maxBytes) {
        const buf = Buffer.allocUnsafe(Math.min(STUDY_UID_HEAD_BYTES, st.size))
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
        head = buf.subarray(0, bytesRead)
      }
    } finally {
      await fh.close()
    }
  } catch {
    head = undefined
  }
  const uid = head === undefined ? undefined : studyUidFromHead(head)
  if (uid !== undefined) return uid
  const inst = await readDicom(path, { maxBytes })
  return uidText(firstString(inst.dataset, TAG.StudyInstanceUID) as string)
}

/**
 * File meta for writing (PS3.10 7.1): the instance's meta without a group
 * length (dcmjs writes its own), with the required elements filled in from the
 * dataset when absent. A deflated transfer syntax becomes Explicit VR Little
 * Endian: dcmjs reads deflated datasets but writes them uncompressed.
 */
function metaForWrite(inst: DicomInstance): DicomDataset {
  const meta: DicomDataset = {}
  for (const [tag, el] of Object.entries(inst.meta)) if (tag !== '00020000') meta[tag] = el
  if (meta[TAG.FileMetaInformationVersion] === undefined) {
    meta[TAG.FileMetaInformationVersion] = { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] }
  }
  const sopClass = firstString(inst.dataset, TAG.SOPClassUID)
  if (meta[TAG.MediaStorageSOPClassUID] === undefined && sopClass !== undefined) {
    meta[TAG.MediaStorageSOPClassUID] = { vr: 'UI', Value: [sopClass] }
  }
  const sop = firstString(inst.dataset, TAG.SOPInstanceUID)
  if (meta[TAG.MediaStorageSOPInstanceUID] === undefined && sop !== undefined) {
    meta[TAG.MediaStorageSOPInstanceUID] = { vr: 'UI', Value: [sop] }
  }
  const ts = firstString(meta, TAG.TransferSyntaxUID)
  if (ts === undefined || ts === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) {
    meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [TRANSFER_SYNTAX.ExplicitVRLittleEndian] }
  }
  if (meta[TAG.ImplementationClassUID] === undefined) {
    meta[TAG.ImplementationClassUID] = { vr: 'UI', Value: [IMPLEMENTATION_CLASS_UID] }
  }
  return meta
}

/**
 * Pixel Data (7FE0,0010) of a dataset when it can be written after the rest
 * of it as raw bytes: native transfer syntax, OB or OW, one value of even
 * length, no element after it. Returns the element header in the transfer
 * syntax's encoding (PS3.5 7.1.1-7.1.3) and the value as held.
 */
function trailingNativePixelData(ds: DicomDataset, ts: string): { header: Uint8Array; value: Uint8Array } | undefined {
  const el = ds[TAG.PixelData]
  if (el === undefined || (el.vr !== 'OB' && el.vr !== 'OW') || el._rawValue !== undefined) return undefined
  if (!isNativeTransferSyntax(ts) || ts === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) return undefined
  const v = el.Value
  if (v === undefined || v.length !== 1 || !(v[0] instanceof ArrayBuffer) || v[0].byteLength % 2 !== 0) return undefined
  for (const tag of Object.keys(ds)) if (tag.toUpperCase() > TAG.PixelData) return undefined
  const value = new Uint8Array(v[0])
  const little = ts !== TRANSFER_SYNTAX.ExplicitVRBigEndian
  const explicit = ts !== TRANSFER_SYNTAX.ImplicitVRLittleEndian
  const header = Buffer.alloc(explicit ? 12 : 8)
  if (little) {
    header.writeUInt16LE(0x7fe0, 0)
    header.writeUInt16LE(0x0010, 2)
  } else {
    header.writeUInt16BE(0x7fe0, 0)
    header.writeUInt16BE(0x0010, 2)
  }
  if (explicit) {
    header.write(el.vr, 4, 'latin1')
    if (little) header.writeUInt32LE(value.length, 8)
    else header.writeUInt32BE(value.length, 8)
  } else {
    header.writeUInt32LE(value.length, 4)
  }
  return { header, value }
}

// The part of dcmjs's writer DicomEncoder drives element by element (see
// dcmjs-module.d.ts for the rest): DicomMessage.write writes the elements of
// a dataset, sorted by tag, at the stream's end (Tag#write), each on its own.
interface DcmjsWriteStream {
  size: number
  getBuffer(): ArrayBuffer
}
const dcmjsWriter = data as unknown as {
  WriteBufferStream: new (defaultSize: number, littleEndian: boolean) => DcmjsWriteStream
  DicomMessage: { write(ds: DicomDataset, stream: DcmjsWriteStream, syntax: string, opts: { allowInvalidVRLength: boolean }): number }
}
const WRITE_OPTS = { allowInvalidVRLength: true }
const EMPTY = new Uint8Array(0)
/** The 128-byte preamble and the "DICM" prefix of a Part 10 file (PS3.10 7.1). */
const PREAMBLE = (() => {
  const b = new Uint8Array(132)
  b.set([0x44, 0x49, 0x43, 0x4d], 128)
  return b
})()
/** Elements whose encoding a DicomEncoder remembers, at most, and the largest encoding it keeps. */
const ENCODER_CACHE_ENTRIES = 4096
const ENCODER_CACHE_ENTRY_BYTES = 1024

/** A text form of a value that tells apart everything dcmjs may encode differently; undefined when not worth it (binary, nested). */
function valueKey(v: unknown): string | undefined {
  if (typeof v === 'string') return `s${JSON.stringify(v)}`
  if (typeof v === 'number') return `n${Object.is(v, -0) ? '-0' : String(v)}`
  if (v === null) return 'z'
  if (v === undefined) return 'u'
  if (Array.isArray(v)) {
    const parts: string[] = []
    for (const x of v) {
      const k = valueKey(x)
      if (k === undefined) return undefined
      parts.push(k)
    }
    return `[${parts.join(',')}]`
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>
    if (Object.keys(o).some((k) => k !== 'Alphabetic' && k !== 'Ideographic' && k !== 'Phonetic')) return undefined
    const k = valueKey([o.Alphabetic, o.Ideographic, o.Phonetic])
    return k === undefined ? undefined : `p${k}`
  }
  return undefined
}

/**
 * Encodes instances as DICOM Part 10 bytes (PS3.10 7) with dcmjs, element by
 * element: the file meta (with its group length) in Explicit VR Little
 * Endian, then the dataset in the transfer syntax named by the meta (see
 * {@link writeDicom}), the same bytes dcmjs writes for the whole file. It
 * remembers the encoding of each element with text, numeric or person-name
 * values (by transfer syntax, tag, VR and value), so the many elements the
 * instances of a study share are encoded once: dcmjs spends far more on each
 * element than on its bytes. Native Pixel Data that ends the dataset is not
 * copied but returned as its own pieces.
 */
export class DicomEncoder {
  readonly #cache = new Map<string, Uint8Array>()
  readonly #maxEntries: number

  /** `cacheEntries` 0 remembers nothing (for one-off writes). */
  constructor(cacheEntries = ENCODER_CACHE_ENTRIES) {
    this.#maxEntries = cacheEntries
  }

  /**
   * The Part 10 bytes of `inst` as consecutive pieces (their concatenation is
   * {@link writeDicom}'s result): the preamble, meta and dataset, then, for
   * trailing native Pixel Data, its element header and the instance's pixel
   * buffer itself. The pieces share the instance's buffers: they are valid
   * while it is unchanged.
   */
  encode(inst: DicomInstance): Uint8Array[] {
    try {
      const meta = metaForWrite(inst)
      const ts = firstString(meta, TAG.TransferSyntaxUID) as string
      const pixels = trailingNativePixelData(inst.dataset, ts)
      let ds = inst.dataset
      if (pixels !== undefined) {
        ds = {}
        for (const [tag, el] of Object.entries(inst.dataset)) if (tag !== TAG.PixelData) ds[tag] = el
      }
      const metaParts = this.#elements(meta, TRANSFER_SYNTAX.ExplicitVRLittleEndian)
      const metaLength = metaParts.reduce((n, p) => n + p.length, 0)
      const groupLength = this.#elements({ '00020000': { vr: 'UL', Value: [metaLength] } }, TRANSFER_SYNTAX.ExplicitVRLittleEndian)
      const parts = [PREAMBLE, ...groupLength, ...metaParts, ...this.#elements(ds, ts)]
      const head = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
      let off = 0
      for (const p of parts) {
        head.set(p, off)
        off += p.length
      }
      return pixels === undefined ? [head] : [head, pixels.header, pixels.value]
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err)
      throw new StudyError('DICOM_UNSUPPORTED', `cannot encode DICOM dataset (${detail})`, { path: inst.path, cause: err })
    }
  }

  /** The encoding of each element of `ds` in tag order, from the cache or from dcmjs. */
  #elements(ds: DicomDataset, ts: string): Uint8Array[] {
    const out: Uint8Array[] = []
    const misses: { index: number; start: number; end: number; key: string | undefined }[] = []
    let stream: DcmjsWriteStream | undefined
    for (const tag of Object.keys(ds).sort()) {
      const el = ds[tag] as DicomElement
      let key: string | undefined
      if (this.#maxEntries > 0 && el.vr !== 'SQ') {
        const v = valueKey(el.Value)
        const raw = el._rawValue === undefined ? 'u' : valueKey(el._rawValue)
        if (v !== undefined && raw !== undefined) key = `${ts}|${tag}|${el.vr}|${v}|${raw}`
      }
      const hit = key === undefined ? undefined : this.#cache.get(key)
      if (hit !== undefined) {
        out.push(hit)
        continue
      }
      stream ??= new dcmjsWriter.WriteBufferStream(16 * 1024, true)
      const start = stream.size
      dcmjsWriter.DicomMessage.write({ [tag]: el }, stream, ts, WRITE_OPTS)
      misses.push({ index: out.length, start, end: stream.size, key })
      out.push(EMPTY)
    }
    if (stream !== undefined) {
      const bytes = new Uint8Array(stream.getBuffer())
      for (const m of misses) {
        const piece = bytes.subarray(m.start, m.end)
        out[m.index] = piece
        if (m.key !== undefined && piece.length <= ENCODER_CACHE_ENTRY_BYTES) {
          if (this.#cache.size >= this.#maxEntries) this.#cache.clear()
          this.#cache.set(m.key, piece.slice())
        }
      }
    }
    return out
  }
}

/**
 * Encodes an instance as DICOM Part 10 bytes (PS3.10 7), as consecutive
 * pieces whose concatenation is {@link writeDicom}'s result (see
 * {@link DicomEncoder.encode}; use one DicomEncoder for the instances of a
 * study).
 */
export function encodeDicom(inst: DicomInstance): Uint8Array[] {
  return new DicomEncoder(0).encode(inst)
}

/**
 * Encodes an instance as DICOM Part 10 bytes (PS3.10 7) in the transfer syntax
 * named by its meta (Explicit VR Little Endian when none, or when deflated).
 * Binary values are written as held: a big-endian instance must hold its OW
 * values big-endian, as {@link readDicom} gives them.
 */
export function writeDicom(inst: DicomInstance): Uint8Array {
  const parts = encodeDicom(inst)
  if (parts.length === 1) return parts[0] as Uint8Array
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}
