// A DICOM Part 10 file around a dataset received over the network, the
// dataset's bytes kept exactly as they came: only the file meta is written
// (PS3.10 7.1), in Explicit VR Little Endian as PS3.10 requires.

/** What the file meta of a received instance names (PS3.10 7.1). */
export interface FileMetaFields {
  readonly sopClassUid: string
  readonly sopInstanceUid: string
  readonly transferSyntaxUid: string
  readonly implementationClassUid: string
  readonly implementationVersionName?: string
  /** The calling AE title of the association the instance came over (Source Application Entity Title). */
  readonly sourceAe?: string
}

/** One Explicit VR Little Endian element with a 2-byte length (UI, SH, AE, UL) or a 4-byte one (OB). */
function element(elem: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB'
  const h = Buffer.alloc(long ? 12 : 8)
  h.writeUInt16LE(0x0002, 0)
  h.writeUInt16LE(elem, 2)
  h.write(vr, 4, 'latin1')
  if (long) h.writeUInt32LE(value.length, 8)
  else h.writeUInt16LE(value.length, 6)
  return Buffer.concat([h, value])
}

/** A text value padded to even length: UIDs with NUL, other VRs with a space (PS3.5 6.2, 9.1). */
function padded(s: string, uid: boolean): Buffer {
  return Buffer.from(s.length % 2 === 0 ? s : s + (uid ? '\0' : ' '), 'latin1')
}

/**
 * The preamble, "DICM" and the file meta group (PS3.10 7.1, 7.2) of a
 * received instance; the file is these bytes followed by the dataset as it
 * came, in the transfer syntax named here.
 */
export function encodeFileMeta(f: FileMetaFields): Uint8Array {
  const els = [
    element(0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 'UI', padded(f.sopClassUid, true)),
    element(0x0003, 'UI', padded(f.sopInstanceUid, true)),
    element(0x0010, 'UI', padded(f.transferSyntaxUid, true)),
    element(0x0012, 'UI', padded(f.implementationClassUid, true)),
  ]
  if (f.implementationVersionName !== undefined) els.push(element(0x0013, 'SH', padded(f.implementationVersionName, false)))
  if (f.sourceAe !== undefined && f.sourceAe.length > 0) els.push(element(0x0016, 'AE', padded(f.sourceAe, false)))
  const body = Buffer.concat(els)
  const gl = Buffer.alloc(4)
  gl.writeUInt32LE(body.length)
  const preamble = Buffer.alloc(132)
  preamble.write('DICM', 128, 'latin1')
  return Buffer.concat([preamble, element(0x0000, 'UL', gl), body])
}

/** A Part 10 instance cut at the end of its file meta: what a C-STORE sends. */
export interface SplitPart10 {
  readonly sopClassUid: string
  readonly sopInstanceUid: string
  readonly transferSyntaxUid: string
  /** The dataset's bytes as stored, after the file meta (a view into the input). */
  readonly dataset: Uint8Array
}

/** Explicit VRs with a 4-byte length (PS3.5 7.1.2) that a file meta may hold. */
const META_LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'])

/**
 * Reads the file meta (PS3.10 7.1: group 0002, Explicit VR Little Endian,
 * after the preamble and "DICM") of Part 10 bytes: the Media Storage SOP
 * Class and Instance UIDs, the Transfer Syntax UID, and where the dataset
 * starts. Throws a RangeError for bytes that are not Part 10 or lack one of
 * the three.
 */
export function splitPart10(b: Uint8Array): SplitPart10 {
  if (b.length < 132 || Buffer.from(b.buffer, b.byteOffset + 128, 4).toString('latin1') !== 'DICM') throw new RangeError('not a DICOM Part 10 file')
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const found = new Map<number, string>()
  let off = 132
  while (off + 8 <= b.length && v.getUint16(off, true) === 0x0002) {
    const elem = v.getUint16(off + 2, true)
    const vr = String.fromCharCode(b[off + 4] as number, b[off + 5] as number)
    const long = META_LONG_VRS.has(vr)
    const len = long ? v.getUint32(off + 8, true) : v.getUint16(off + 6, true)
    const start = off + (long ? 12 : 8)
    if (start + len > b.length) throw new RangeError('the file meta runs past the end of the file')
    if (vr === 'UI')
      found.set(
        elem,
        Buffer.from(b.buffer, b.byteOffset + start, len)
          .toString('latin1')
          .replace(/[\0 ]+$/, ''),
      )
    off = start + len
  }
  const sopClassUid = found.get(0x0002)
  const sopInstanceUid = found.get(0x0003)
  const transferSyntaxUid = found.get(0x0010)
  if (sopClassUid === undefined || sopInstanceUid === undefined || transferSyntaxUid === undefined)
    throw new RangeError('the file meta lacks its SOP class, SOP instance or transfer syntax UID')
  return { sopClassUid, sopInstanceUid, transferSyntaxUid, dataset: b.subarray(off) }
}
