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
