import { opendir, realpath, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { StudyError } from './errors.js'
import { TAG, firstString, type DicomInstance } from './dataset.js'
import { assertInstanceUids, uidText } from './dicom.js'
import { DEFAULT_MAX_FILE_BYTES, readDicom } from './dicom-file.js'
import { pixelDigest } from './pixel.js'

/** Media Storage Directory Storage SOP Class (PS3.4 B.5): a DICOMDIR, which indexes files and holds no study. */
export const MEDIA_STORAGE_DIRECTORY_SOP_CLASS = '1.2.840.10008.1.3.10'

/** Progress of {@link scanInputs}: `scanned` of `total` files, the last one `path`. */
export interface ScanProgress {
  scanned: number
  total: number
  path: string
}

/** Options of {@link scanInputs}. */
export interface ScanOptions {
  /** Called after each file. */
  onProgress?: (p: ScanProgress) => void
  /** Stops the scan (rejects with the signal's reason) between two files. */
  signal?: AbortSignal
  /** Bound on one file's size (see readDicom). */
  maxBytes?: number
}

/**
 * The patient a study's files name: the Patient ID (0010,0020) and Issuer of
 * Patient ID (0010,0021) all its files carry ('' for one absent or empty;
 * spaces around a value do not count, PS3.5 6.2), or 'mixed' when its files
 * do not agree.
 */
export type ScannedPatient = { readonly patientId: string; readonly issuer: string } | 'mixed'

/** Result of {@link scanInputs}. */
export interface ScanResult {
  /** Study Instance UID → paths of its files, sorted. */
  studies: Map<string, string[]>
  /** Study Instance UID → the patient its files name (to find a patient link; never logged). */
  patients: Map<string, ScannedPatient>
  /**
   * Files that are not readable DICOM, each with its StudyError, and later
   * copies of an instance (see {@link scanInputs}); the caller decides
   * whether to leave them out.
   */
  bad: { path: string; error: StudyError }[]
  /** Files that hold no study (DICOMDIR), and links to a folder already scanned (a loop), with the reason. */
  skipped: { path: string; reason: string }[]
}

async function listFiles(inputs: string[], signal: AbortSignal | undefined, result: ScanResult): Promise<string[]> {
  const files: string[] = []
  const seen = new Set<string>()
  const bad = (path: string, err: unknown): void => {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    result.bad.push({ path, error: new StudyError('DICOM_UNREADABLE', `cannot read input (${code})`, { path, cause: err }) })
  }
  const add = async (p: string): Promise<void> => {
    const real = await realpath(p)
    if (!seen.has(real)) {
      seen.add(real)
      files.push(p)
    }
  }
  // Real paths of the folders walked: a link back into one of them (a loop) is not walked again.
  const seenDirs = new Set<string>()
  const walk = async (dir: string): Promise<void> => {
    const entries: { name: string; dir: boolean; file: boolean; link: boolean }[] = []
    try {
      const real = await realpath(dir)
      if (seenDirs.has(real)) {
        result.skipped.push({ path: dir, reason: 'symbolic link to a folder already scanned' })
        return
      }
      seenDirs.add(real)
      for await (const d of await opendir(dir)) {
        entries.push({ name: d.name, dir: d.isDirectory(), file: d.isFile(), link: d.isSymbolicLink() })
      }
    } catch (err) {
      bad(dir, err)
      return
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      signal?.throwIfAborted()
      const p = join(dir, e.name)
      if (e.dir) await walk(p)
      else if (e.file) await add(p)
      else if (e.link) {
        // Links are followed, to files and to folders (a folder is walked once, whatever links lead to it).
        try {
          const st = await stat(p)
          if (st.isFile()) await add(p)
          else if (st.isDirectory()) await walk(p)
          else result.skipped.push({ path: p, reason: 'symbolic link to something that is neither a file nor a folder' })
        } catch (err) {
          bad(p, err)
        }
      }
    }
  }
  for (const input of inputs) {
    signal?.throwIfAborted()
    let st
    try {
      st = await stat(input)
    } catch (err) {
      bad(input, err)
      continue
    }
    if (st.isDirectory()) await walk(input)
    else await add(input)
  }
  return files
}

/**
 * The StudyError for `path`, whose instance `inst` has the SOP Instance UID of
 * the instance in `earlier`: DICOM_DUPLICATE_INSTANCE when both have one pixel
 * digest (see pixelDigest: the same image, in any native encoding),
 * DICOM_DUPLICATE_UID otherwise; or the error that keeps `inst` from being
 * digested. Messages name both files, never the UID.
 */
async function duplicateError(path: string, inst: DicomInstance, earlier: string, maxBytes: number): Promise<StudyError> {
  const digest = pixelDigest(inst).digest
  let same: boolean | undefined
  try {
    same = pixelDigest(await readDicom(earlier, { maxBytes, requireUids: false })).digest === digest
  } catch (err) {
    // The earlier file changed since it was read, or its pixels cannot be digested: not known to be the same.
    if (!(err instanceof StudyError)) throw err
  }
  if (same === true) {
    return new StudyError('DICOM_DUPLICATE_INSTANCE', `same instance as ${earlier} (same SOP Instance UID and pixel data), which is kept`, { path })
  }
  const pixels = same === false ? 'with different pixel data' : 'whose pixel data cannot be compared'
  return new StudyError('DICOM_DUPLICATE_UID', `same SOP Instance UID as ${earlier}, ${pixels}`, { path })
}

/**
 * Finds the DICOM files (Part 10, PS3.10 7, or bare datasets, see readDicom)
 * under `inputs` (files and folders, recursively) and groups them by Study
 * Instance UID (0020,000D). Files are scanned in path order, one at a time
 * and whole, so that a truncated file is found here rather than halfway
 * through adding a study; only paths, UIDs and each study's Patient ID and
 * issuer (`patients`) stay in memory. Unreadable, truncated, non-DICOM files
 * and files without UIDs are returned in `bad`
 * with a StudyError naming them; DICOMDIR files, and links back to a folder already walked,
 * in `skipped`. A file whose SOP Instance UID (0008,0018) an earlier file of
 * its study has (as when one image is exported in two transfer syntaxes) is
 * left out of `studies` and returned in `bad`: DICOM_DUPLICATE_INSTANCE when
 * both files have one pixel digest (leaving it out loses nothing),
 * DICOM_DUPLICATE_UID when they differ; the message names the earlier file,
 * which stays.
 */
export async function scanInputs(inputs: string[], opts: ScanOptions = {}): Promise<ScanResult> {
  const result: ScanResult = { studies: new Map(), patients: new Map(), bad: [], skipped: [] }
  // Path order, whatever the order of `inputs`: which of two copies is the later one must not depend on it.
  const files = (await listFiles(inputs, opts.signal, result)).sort()
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES
  // Study Instance UID, NUL, SOP Instance UID (neither holds a NUL, PS3.5 9.1) → the first file holding it.
  const firstFile = new Map<string, string>()
  let scanned = 0
  for (const path of files) {
    opts.signal?.throwIfAborted()
    try {
      const inst = await readDicom(path, { maxBytes, requireUids: false })
      if (firstString(inst.meta, TAG.MediaStorageSOPClassUID) === MEDIA_STORAGE_DIRECTORY_SOP_CLASS) {
        result.skipped.push({ path, reason: 'DICOMDIR (Media Storage Directory), holds no study' })
      } else {
        assertInstanceUids(inst)
        const study = firstString(inst.dataset, TAG.StudyInstanceUID) as string
        const key = `${uidText(study)}\0${uidText(firstString(inst.dataset, TAG.SOPInstanceUID) as string)}`
        const earlier = firstFile.get(key)
        if (earlier !== undefined) {
          result.bad.push({ path, error: await duplicateError(path, inst, earlier, maxBytes) })
        } else {
          firstFile.set(key, path)
          const list = result.studies.get(study)
          if (list === undefined) result.studies.set(study, [path])
          else list.push(path)
          const patient = {
            patientId: (firstString(inst.dataset, TAG.PatientID) ?? '').trim(),
            issuer: (firstString(inst.dataset, TAG.IssuerOfPatientID) ?? '').trim(),
          }
          const before = result.patients.get(study)
          if (before === undefined) result.patients.set(study, patient)
          else if (before !== 'mixed' && (before.patientId !== patient.patientId || before.issuer !== patient.issuer)) result.patients.set(study, 'mixed')
        }
      }
    } catch (err) {
      if (!(err instanceof StudyError)) throw err
      result.bad.push({ path, error: err })
    }
    scanned++
    opts.onProgress?.({ scanned, total: files.length, path })
  }
  for (const list of result.studies.values()) list.sort()
  return result
}
