import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { StudyError } from './errors.js'
import { TAG, firstString, type DicomInstance } from './dataset.js'
import { locateTrailingPixelData, parseDicom, studyUidFromHead, uidText } from './dicom.js'

/** Default bound on the size of one input file: 2 GiB. */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024

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
 * Reads one DICOM Part 10 file (PS3.10 7), or a bare Implicit VR Little
 * Endian dataset (see {@link parseDicom}), bounded by `maxBytes`, one file at
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

/**
 * The Study Instance UID (0020,000D) of a Part 10 file (PS3.10 7) or a bare
 * dataset (see {@link readDicom}): the first value without padding. Only the
 * file's first STUDY_UID_HEAD_BYTES are read and walked up to that element;
 * a file where it lies further, a deflated, malformed or oversized file is
 * read whole with {@link readDicom}, which throws its StudyError. Cheap enough to check that files share a study
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
