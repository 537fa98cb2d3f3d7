import { opendir, realpath, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { StudyError } from './errors.js'
import { TAG, firstString } from './dataset.js'
import { assertInstanceUids } from './dicom.js'
import { DEFAULT_MAX_FILE_BYTES, readDicom } from './dicom-file.js'

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

/** Result of {@link scanInputs}. */
export interface ScanResult {
  /** Study Instance UID → paths of its files, sorted. */
  studies: Map<string, string[]>
  /** Files that are not readable DICOM, each with its StudyError (the caller decides whether to skip them). */
  bad: { path: string; error: StudyError }[]
  /** Files that hold no study (DICOMDIR) and links to folders, which are not followed, with the reason. */
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
  const walk = async (dir: string): Promise<void> => {
    const entries: { name: string; dir: boolean; file: boolean; link: boolean }[] = []
    try {
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
        // Links to files are followed; links to folders are not (no loops, no escaping the input).
        try {
          const st = await stat(p)
          if (st.isFile()) await add(p)
          else result.skipped.push({ path: p, reason: 'symbolic link to a folder, not followed' })
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
 * Finds the DICOM Part 10 files (PS3.10 7) under `inputs` (files and folders,
 * recursively) and groups them by Study Instance UID (0020,000D). Files are
 * read one at a time and whole, so that a truncated file is found here
 * rather than halfway through adding a study; only paths and UIDs stay in
 * memory. Unreadable, truncated, non-DICOM files and files without UIDs are
 * returned in `bad` with a StudyError naming them; DICOMDIR files and
 * symbolic links to folders in `skipped`.
 */
export async function scanInputs(inputs: string[], opts: ScanOptions = {}): Promise<ScanResult> {
  const result: ScanResult = { studies: new Map(), bad: [], skipped: [] }
  const files = await listFiles(inputs, opts.signal, result)
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES
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
        const list = result.studies.get(study)
        if (list === undefined) result.studies.set(study, [path])
        else list.push(path)
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
