import { data } from 'dcmjs'
import { StudyError } from './errors.js'
import { TAG, firstString, type DicomDataset, type DicomElement, type DicomInstance } from './dataset.js'
import { TRANSFER_SYNTAX, isNativeTransferSyntax } from './dicom.js'

/** radchain's Implementation Class UID (PS3.7 D.3.3.2), a UUID-derived UID (PS3.5 B.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.90278739188228965215033521988826214026'
/** radchain's Implementation Version Name (PS3.7 D.3.3.3; SH, at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = 'RADCHAIN_0_1'

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

/**
 * Encodes a bare dataset (no preamble, no file meta) in the transfer syntax
 * `ts` (PS3.5 7.1: Implicit or Explicit VR Little Endian), elements in tag
 * order: a DIMSE identifier (PS3.7 9.1.2.1.5, 9.3.2). An element without
 * values is written with a zero length (PS3.4 C.2.2.1.1: a return key).
 */
export function encodeDataset(ds: DicomDataset, ts: string): Uint8Array {
  const out: DicomDataset = {}
  for (const tag of Object.keys(ds)) {
    const el = ds[tag] as DicomElement
    out[tag] = el.Value === undefined ? { vr: el.vr, Value: [] } : el
  }
  try {
    const stream = new dcmjsWriter.WriteBufferStream(4 * 1024, true)
    dcmjsWriter.DicomMessage.write(out, stream, ts, WRITE_OPTS)
    return new Uint8Array(stream.getBuffer())
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err)
    throw new StudyError('DICOM_UNSUPPORTED', `cannot encode DICOM dataset (${detail})`, { cause: err })
  }
}
