import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { RegisterStudyPayload } from '../chain/index.js'
import { TAG, firstString } from './dataset.js'
import { restoreIdentity, type InstanceIdentityRecord } from './deid.js'
import { parseDicom } from './dicom.js'
import { writeDicom } from './dicom-write.js'
import { StudyError, StudyServiceError } from './errors.js'
import { decryptDemographics, unpackStudy, type VerifiedChunk } from './package.js'

/** What a retrieval writes: de-identified images, or images with the demographics and original UIDs restored. */
export type ExportScope = 'images' | 'full'

/** The scopes, for argument checks. */
export const EXPORT_SCOPES: readonly ExportScope[] = ['images', 'full']

/** Options of {@link exportStudy}. */
export interface ExportStudyOptions {
  readonly payload: RegisterStudyPayload
  /** The study key (custodian, owner, full-scope lease) or the data key alone (images-scope lease), unwrapped by the caller. */
  readonly key: { readonly studyKey: Uint8Array } | { readonly dataKey: Uint8Array }
  /** Encrypted chunk `index` of the study; as a VerifiedChunk when the caller checked it against its id (it is not hashed again). */
  readonly chunk: (index: number) => Promise<Uint8Array | VerifiedChunk>
  readonly scope: ExportScope
  /** The encrypted demographics record (needed for the full scope). */
  readonly demographics?: Uint8Array
  /** Output folder: created if missing; refused if it holds anything. */
  readonly out: string
  readonly onProgress?: (p: { chunks: number; files: number; bytes: number }) => void
}

/**
 * Bytes of files being written at once (at least one file, whatever its
 * size). A write waits its turn in the thread pool behind the chunk store's
 * writes while a download runs: with 4 files in flight, the export of a
 * 269 MB study from 3 holders read 47 MB/s while the chunks came at 67, and
 * its backlog overflowed the arrivals' buffer (benchmarks, swarm on shaped
 * links); with 16 MiB in flight it keeps up.
 */
const WRITE_BYTES_IN_FLIGHT = 16 * 1024 * 1024
/** And at most this many files (each holds a descriptor while it is written): a study of tiny instances stays far from the process's limit. */
const WRITE_FILES_IN_FLIGHT = 32

/** Files moved into place at once at the end (each rename is a trip to the thread pool, 512 for the large CT study). */
const RENAMES_AT_ONCE = 8

/** Name of the n-th (from 1) file written. */
export function exportFileName(n: number): string {
  return `IM${String(n).padStart(6, '0')}.dcm`
}

async function prepareOut(out: string): Promise<boolean> {
  let st
  try {
    st = await stat(out)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err
    await mkdir(out, { recursive: true })
    return true
  }
  if (!st.isDirectory()) throw new StudyServiceError('STUDY_OUT_NOT_EMPTY', `${out} exists and is not a folder`)
  if ((await readdir(out)).length > 0)
    throw new StudyServiceError('STUDY_OUT_NOT_EMPTY', `${out} is not empty: give a new or empty folder (nothing is overwritten)`)
  return false
}

/**
 * Decrypts a study and writes its instances as DICOM Part 10 files
 * `IM000001.dcm`, ... into `out`. Everything is written into a hidden
 * folder inside `out` first and moved into place only after the whole study
 * checked out (content root, every pixel digest, the study digest); on any
 * failure nothing is left behind. With the full scope each instance gets its
 * demographics and original UIDs back (restoreIdentity) and the files are
 * readable by the owner only. Memory: one chunk and the instances being
 * written (WRITE_BYTES_IN_FLIGHT and WRITE_FILES_IN_FLIGHT; with an instance larger than that, the instances in flight and the next one, decrypted), plus the demographics record.
 */
export async function exportStudy(opts: ExportStudyOptions): Promise<{ files: number; bytes: number }> {
  if (!EXPORT_SCOPES.includes(opts.scope)) throw new StudyServiceError('STUDY_BAD_SCOPE', `scope must be one of ${EXPORT_SCOPES.join(', ')}`)
  let records: Map<string, InstanceIdentityRecord> | undefined
  if (opts.scope === 'full') {
    if (opts.demographics === undefined) throw new StudyServiceError('STUDY_NO_DEMOGRAPHICS', "the full scope needs the study's demographics record")
    if (!('studyKey' in opts.key))
      throw new StudyServiceError('STUDY_NO_ACCESS', 'the full scope needs the study key (an images-scope lease opens the images only)')
    const rec = decryptDemographics(opts.demographics, opts.key.studyKey, opts.payload.studyId)
    records = new Map(rec.instances.map((r) => [r.sopInstanceUid, r]))
  }
  const created = await prepareOut(opts.out)
  const tmp = join(opts.out, `.radchain-partial-${randomBytes(6).toString('hex')}`)
  await mkdir(tmp)
  // Up to WRITE_BYTES_IN_FLIGHT of files written while the next instances are decrypted; the first failure ends the export.
  const writing = new Set<Promise<void>>()
  let writingBytes = 0
  const moved: string[] = []
  let writeFailed: { err: unknown } | undefined
  let chunks = 0
  let files = 0
  let bytes = 0
  const chunk = async (i: number): Promise<Uint8Array | VerifiedChunk> => {
    const c = await opts.chunk(i)
    chunks++
    return c
  }
  try {
    for await (const part10 of unpackStudy(chunk, opts.payload, 'studyKey' in opts.key ? opts.key.studyKey : { dataKey: opts.key.dataKey })) {
      let out = part10
      if (records !== undefined) {
        const inst = parseDicom(part10)
        const sop = firstString(inst.dataset, TAG.SOPInstanceUID) ?? ''
        const rec = records.get(sop)
        if (rec === undefined) throw new StudyError('DICOM_RECORD_MISMATCH', 'an instance has no demographics record')
        out = writeDicom(restoreIdentity(inst, rec))
      }
      files++
      bytes += out.length
      const w: Promise<void> = writeFile(join(tmp, exportFileName(files)), out, { mode: records === undefined ? 0o644 : 0o600 }).then(
        () => {
          writing.delete(w)
          writingBytes -= out.length
        },
        (err: unknown) => {
          writing.delete(w)
          writingBytes -= out.length
          writeFailed ??= { err }
        },
      )
      writing.add(w)
      writingBytes += out.length
      while ((writingBytes >= WRITE_BYTES_IN_FLIGHT || writing.size >= WRITE_FILES_IN_FLIGHT) && writing.size > 0) await Promise.race(writing)
      if (writeFailed !== undefined) throw writeFailed.err
      opts.onProgress?.({ chunks, files, bytes })
    }
    await Promise.all(writing)
    if (writeFailed !== undefined) throw writeFailed.err
    // Verified (unpackStudy checks at its end): move into place.
    for (let n = 1; n <= files; n += RENAMES_AT_ONCE) {
      const batch = Array.from({ length: Math.min(RENAMES_AT_ONCE, files - n + 1) }, (_, k) => exportFileName(n + k))
      const moves = await Promise.allSettled(batch.map((f) => rename(join(tmp, f), join(opts.out, f))))
      batch.forEach((f, k) => moves[k]?.status === 'fulfilled' && moved.push(f))
      const failed = moves.find((m) => m.status === 'rejected')
      if (failed !== undefined) throw failed.reason
    }
    await rmdir(tmp)
    return { files, bytes }
  } catch (err) {
    await Promise.all(writing)
    // Nothing is left behind: neither the files already moved into place nor the hidden folder.
    for (const f of moved) await rm(join(opts.out, f), { force: true }).catch(() => undefined)
    await rm(tmp, { recursive: true, force: true })
    if (created) await rmdir(opts.out).catch(() => undefined)
    throw err
  }
}
