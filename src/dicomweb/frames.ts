import { TAG, firstNumber, firstString, type DicomInstance } from '../study/index.js'
import { DicomwebError } from './errors.js'

/** Transfer syntaxes whose Pixel Data is native (not encapsulated) once parsed. */
const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2'])

/** The pixel data of one instance, frame by frame, in its stored transfer syntax. */
export interface InstanceFrames {
  /** Transfer Syntax UID the frames are encoded in (PS3.18 8.7.3.5: `transfer-syntax=*` keeps it). */
  readonly transferSyntax: string
  readonly frames: readonly Uint8Array[]
}

/**
 * Cuts an instance's Pixel Data (7FE0,0010) into frames (PS3.5 8.2, A.4):
 * native pixel data by the frame size the image attributes give
 * (Rows x Columns x Samples per Pixel x Bits Allocated / 8); encapsulated
 * pixel data by its fragments when there is one fragment per frame, or all
 * fragments of a single-frame image joined. Undefined when the instance has
 * no Pixel Data. A layout it cannot split (a multi-frame image of 1-bit
 * pixels, or more fragments than frames) is DICOMWEB_NOT_ACCEPTABLE: the
 * frames cannot be given, the whole instance can.
 */
export function instanceFrames(inst: DicomInstance): InstanceFrames | undefined {
  const ds = inst.dataset
  const el = ds[TAG.PixelData]
  const values = el?.Value?.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer) ?? []
  if (el === undefined || values.length === 0) return undefined
  const transferSyntax = firstString(inst.meta, TAG.TransferSyntaxUID) ?? '1.2.840.10008.1.2'
  const n = Math.max(1, firstNumber(ds, TAG.NumberOfFrames) ?? 1)
  if (NATIVE.has(transferSyntax)) {
    const whole = values.length === 1 ? new Uint8Array(values[0] as ArrayBuffer) : new Uint8Array(Buffer.concat(values.map((v) => new Uint8Array(v))))
    const bits =
      (firstNumber(ds, TAG.Rows) ?? 0) *
      (firstNumber(ds, TAG.Columns) ?? 0) *
      (firstNumber(ds, TAG.SamplesPerPixel) ?? 1) *
      (firstNumber(ds, TAG.BitsAllocated) ?? 16)
    if (n === 1) return { transferSyntax, frames: [whole] }
    if (bits === 0 || bits % 8 !== 0)
      throw new DicomwebError('DICOMWEB_NOT_ACCEPTABLE', 'the frames of this multi-frame image are not byte-aligned: retrieve the whole instance')
    const size = bits / 8
    if (size * n > whole.length) throw new DicomwebError('DICOMWEB_NOT_ACCEPTABLE', 'the pixel data is shorter than its frames: retrieve the whole instance')
    return { transferSyntax, frames: Array.from({ length: n }, (_, i) => whole.subarray(i * size, (i + 1) * size)) }
  }
  if (values.length === n) return { transferSyntax, frames: values.map((v) => new Uint8Array(v)) }
  if (n === 1) return { transferSyntax, frames: [new Uint8Array(Buffer.concat(values.map((v) => new Uint8Array(v))))] }
  throw new DicomwebError('DICOMWEB_NOT_ACCEPTABLE', `this compressed image has ${values.length} fragments for ${n} frames: retrieve the whole instance`)
}

/** The frame numbers of a `/frames/{list}` path segment (comma-separated, from 1); DICOMWEB_BAD_QUERY for anything else. */
export function parseFrameList(list: string): number[] {
  const out = list.split(',').map((x) => (/^[1-9][0-9]{0,8}$/.test(x.trim()) ? Number(x.trim()) : NaN))
  if (out.length === 0 || out.length > 10_000 || out.some((x) => Number.isNaN(x)))
    throw new DicomwebError('DICOMWEB_BAD_QUERY', `frame list: comma-separated frame numbers from 1, got ${JSON.stringify(list.slice(0, 64))}`)
  return out
}
