import { createHash } from 'node:crypto'
import { StudyError } from './errors.js'
import { TAG, firstNumber, firstString, type DicomInstance } from './dataset.js'
import { TRANSFER_SYNTAX, isNativeTransferSyntax, nativePixelLayout, parseDicom } from './dicom.js'

/** Pixel digest of one instance. */
export interface PixelDigest {
  /** SHA-256 (FIPS 180-4), lower-case hex: see {@link pixelDigest}. */
  digest: string
  /** Transfer Syntax UID of the instance; for encapsulated data the digest depends on it. */
  transferSyntax: string
  /** Number of Frames (0028,0008), 1 when absent, 0 without pixel data. */
  frames: number
  /** Which pixel data element was hashed: Pixel Data, Float or Double Float Pixel Data, or none. */
  element: '7FE00010' | '7FE00008' | '7FE00009' | null
}

function bytesOf(values: unknown[] | undefined): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const v of values ?? []) {
    if (v instanceof ArrayBuffer) out.push(new Uint8Array(v))
    else if (ArrayBuffer.isView(v)) out.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
  }
  return out
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  return new Uint8Array(Buffer.concat(parts))
}

function swapped(b: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(b.length - (b.length % width))
  for (let i = 0; i < out.length; i += width) {
    for (let j = 0; j < width; j++) out[i + j] = b[i + width - 1 - j] as number
  }
  return out
}

/**
 * Digest of an instance's pixel data that survives re-encoding (PS3.5 8.1.1,
 * 8.2, A.4):
 * - native transfer syntaxes (implicit, explicit, big-endian, deflated):
 *   SHA-256 of the frames exactly as their little-endian native encoding
 *   would hold them: `NumberOfFrames x Rows x Columns x SamplesPerPixel`
 *   values of BitsAllocated bits (byte-swapped from big endian; padding past
 *   the last frame excluded). Implicit, explicit and big-endian encodings of
 *   one image give one digest.
 * - encapsulated (compressed) transfer syntaxes: SHA-256 of the frame
 *   bitstreams, all fragments in order; it holds for the same bitstreams in
 *   any Part 10 encoding, not across recompression, hence `transferSyntax`.
 * - no pixel data: SHA-256 of nothing, frames 0.
 * Throws DICOM_TRUNCATED when the native pixel data is shorter than its frames.
 */
export function pixelDigest(inst: DicomInstance): PixelDigest {
  const ds = inst.dataset
  const transferSyntax = firstString(inst.meta, TAG.TransferSyntaxUID) ?? TRANSFER_SYNTAX.ExplicitVRLittleEndian
  const tags = [TAG.PixelData, TAG.FloatPixelData, TAG.DoubleFloatPixelData] as const
  const element = tags.find((t) => ds[t] !== undefined) ?? null
  const h = createHash('sha256')
  if (element === null) return { digest: h.digest('hex'), transferSyntax, frames: 0, element }
  const frames = Math.max(1, Math.trunc(firstNumber(ds, TAG.NumberOfFrames) ?? 1))
  const parts = bytesOf(ds[element]?.Value)
  if (element === TAG.PixelData && !isNativeTransferSyntax(transferSyntax)) {
    for (const p of parts) h.update(p)
    return { digest: h.digest('hex'), transferSyntax, frames, element }
  }
  const bits = element === TAG.FloatPixelData ? 32 : element === TAG.DoubleFloatPixelData ? 64 : firstNumber(ds, TAG.BitsAllocated)
  const rows = firstNumber(ds, TAG.Rows)
  const cols = firstNumber(ds, TAG.Columns)
  const samples = firstNumber(ds, TAG.SamplesPerPixel) ?? 1
  if (bits === undefined || rows === undefined || cols === undefined || ![1, 8, 16, 32, 64].includes(bits)) {
    throw new StudyError('DICOM_UNSUPPORTED', 'cannot frame pixel data: Rows, Columns or Bits Allocated missing or unsupported', { path: inst.path })
  }
  const totalBits = frames * rows * cols * samples * bits
  const expected = Math.ceil(totalBits / 8)
  let raw = concat(parts)
  if (raw.length < expected) {
    throw new StudyError('DICOM_TRUNCATED', `pixel data holds ${raw.length} bytes, ${frames} frame(s) need ${expected}`, { path: inst.path })
  }
  raw = raw.subarray(0, expected)
  if (transferSyntax === TRANSFER_SYNTAX.ExplicitVRBigEndian && bits > 8) raw = swapped(raw, bits / 8)
  h.update(raw)
  return { digest: h.digest('hex'), transferSyntax, frames, element }
}

/**
 * The SOP Instance UID and {@link pixelDigest} of an instance's Part 10
 * bytes, as a parse would give them. Native
 * little-endian images are read in place (see nativePixelLayout: no parse,
 * the pixels hashed where they lie); everything else is parsed. Throws like
 * parseDicom and pixelDigest.
 */
export function instanceDigestOfBytes(bytes: Uint8Array, path?: string): InstanceDigest {
  const l = nativePixelLayout(bytes, path)
  if (l !== undefined && [1, 8, 16, 32, 64].includes(l.bitsAllocated)) {
    const expected = Math.ceil((l.frames * l.rows * l.columns * l.samplesPerPixel * l.bitsAllocated) / 8)
    if (l.pixels.length >= expected) {
      const digest = createHash('sha256')
        .update(bytes.subarray(l.pixels.start, l.pixels.start + expected))
        .digest('hex')
      return { sopInstanceUid: l.sopInstanceUid, digest }
    }
  }
  const inst = parseDicom(bytes, path)
  return { sopInstanceUid: firstString(inst.dataset, TAG.SOPInstanceUID) ?? '', digest: pixelDigest(inst).digest }
}

/** Domain prefix of {@link studyDigest}. */
export const STUDY_DIGEST_PREFIX = 'radchain/study-digest/v1\0'

/** One instance's entry in {@link studyDigest}. */
export interface InstanceDigest {
  /** SOP Instance UID after de-identification. */
  sopInstanceUid: string
  /** Pixel digest, 64 hex digits. */
  digest: string
}

/**
 * Digest of a study: SHA-256 of `"radchain/study-digest/v1\0"` followed, for
 * each instance sorted by (de-identified) SOP Instance UID, by the UID's
 * ASCII bytes, a 0x00 byte and the 32 digest bytes. A UID contains no 0x00
 * (PS3.5 9.1), so the encoding is unambiguous. Throws TypeError on a bad digest
 * or a repeated UID.
 */
export function studyDigest(instances: readonly InstanceDigest[]): string {
  const sorted = [...instances].sort((a, b) => (a.sopInstanceUid < b.sopInstanceUid ? -1 : a.sopInstanceUid > b.sopInstanceUid ? 1 : 0))
  const h = createHash('sha256').update(STUDY_DIGEST_PREFIX, 'latin1')
  let prev: string | undefined
  for (const i of sorted) {
    if (!/^[0-9a-f]{64}$/.test(i.digest)) throw new TypeError('instance digest must be 64 lower-case hex digits')
    if (!/^[0-9.]{1,64}$/.test(i.sopInstanceUid)) throw new TypeError('SOP Instance UID must be a DICOM UID')
    if (i.sopInstanceUid === prev) throw new TypeError('SOP Instance UID repeated in study digest')
    prev = i.sopInstanceUid
    h.update(i.sopInstanceUid, 'latin1')
      .update(new Uint8Array([0]))
      .update(Buffer.from(i.digest, 'hex'))
  }
  return h.digest('hex')
}
