import { RadError, type ErrorCodes } from '../util/index.js'

/**
 * Why a DICOM input or a de-identification step was refused.
 * - DICOM_NOT_PART10: no "DICM" marker at offset 128 (PS3.10 7.1): not a Part 10 file, nor a
 *   bare Implicit VR Little Endian dataset (a first element in group 0008 that fits the file).
 * - DICOM_TRUNCATED: an element, item or the file meta runs past the end of the file.
 * - DICOM_UNREADABLE: the file cannot be read or parsed (I/O error, malformed encoding).
 * - DICOM_TOO_LARGE: the file is bigger than the configured bound, or its deflated dataset inflates past MAX_INFLATED_BYTES.
 * - DICOM_MISSING_UID: Study, Series or SOP Instance UID is absent or empty.
 * - DICOM_UNSUPPORTED: valid DICOM that radchain cannot process (e.g. pixel data it cannot frame).
 * - DICOM_STUDY_MISMATCH: an instance given to a study's de-identifier belongs to another study.
 * - DICOM_DUPLICATE_UID: two instances of one study share a SOP Instance UID: given to one study's
 *   de-identifier, or two input files whose pixel data differ.
 * - DICOM_DUPLICATE_INSTANCE: an input file holds an instance an earlier file holds already (same
 *   SOP Instance UID, same pixel digest, perhaps another transfer syntax): leaving it out loses nothing.
 * - DICOM_RECORD_MISMATCH: a demographics record does not fit the dataset it is applied to.
 */
export type DicomErrorCode = ErrorCodes<
  | 'DICOM_NOT_PART10'
  | 'DICOM_TRUNCATED'
  | 'DICOM_UNREADABLE'
  | 'DICOM_TOO_LARGE'
  | 'DICOM_MISSING_UID'
  | 'DICOM_UNSUPPORTED'
  | 'DICOM_STUDY_MISMATCH'
  | 'DICOM_DUPLICATE_UID'
  | 'DICOM_DUPLICATE_INSTANCE'
  | 'DICOM_RECORD_MISMATCH'
>

/**
 * A study or DICOM failure. `path` names the file when there is one, and the
 * message starts with it. Messages never carry attribute values.
 */
export class StudyError extends RadError<DicomErrorCode> {
  /** The file the error is about, when it is about a file. */
  readonly path: string | undefined

  constructor(code: DicomErrorCode, message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(code, opts.path === undefined ? message : `${opts.path}: ${message}`, { cause: opts.cause })
    this.name = 'StudyError'
    this.path = opts.path
  }
}

/** True when `err` is a StudyError, optionally with the given code. */
export function isStudyError(err: unknown, code?: DicomErrorCode): err is StudyError {
  return err instanceof StudyError && (code === undefined || err.code === code)
}

/**
 * Why a request about a study was refused, or a `study add` / `study get`
 * job failed. Thrown by the study export (`export.ts`), the node's studies
 * service, lease service and API backend (`src/node/`), and the CLI's own
 * checks.
 * - STUDY_BAD_ID: a study id is not 32 hex digits.
 * - STUDY_UNKNOWN: no such study is registered on the ledger.
 * - STUDY_ERASED: the study was erased; its data no longer exists.
 * - STUDY_NO_ACCESS: not the custodian, and no (or no fitting, or an ended) lease.
 * - STUDY_NOT_ADMITTED: this node's organization is not admitted on the ledger.
 * - STUDY_NO_INPUT: no paths given, or no DICOM study found in them.
 * - STUDY_BAD_INPUT: some files are not readable DICOM (without --skip-bad).
 * - STUDY_BAD_SCOPE: an export scope other than images or full.
 * - STUDY_BAD_OUT: the output folder is not an absolute path.
 * - STUDY_OUT_NOT_EMPTY: the output folder holds something, or is not a folder.
 * - STUDY_NO_DEMOGRAPHICS: a full-scope export was started without the demographics record.
 * - STUDY_NOT_HELD: a chunk the export needs is not on this node.
 * - STUDY_INTEGRITY: a local chunk or chunk list failed its integrity check.
 * - STUDY_NO_SPACE: the disk under the chunk store or the output folder is full.
 * - STUDY_FAILED: a study job failed with an error that carries no code.
 */
export type StudyCode = ErrorCodes<
  | 'STUDY_BAD_ID'
  | 'STUDY_UNKNOWN'
  | 'STUDY_ERASED'
  | 'STUDY_NO_ACCESS'
  | 'STUDY_NOT_ADMITTED'
  | 'STUDY_NO_INPUT'
  | 'STUDY_BAD_INPUT'
  | 'STUDY_BAD_SCOPE'
  | 'STUDY_BAD_OUT'
  | 'STUDY_OUT_NOT_EMPTY'
  | 'STUDY_NO_DEMOGRAPHICS'
  | 'STUDY_NOT_HELD'
  | 'STUDY_INTEGRITY'
  | 'STUDY_NO_SPACE'
  | 'STUDY_FAILED'
>

/** A refused study request or a failed study job (the DICOM failures are `StudyError`s, `DICOM_*`). */
export class StudyServiceError extends RadError<StudyCode> {
  constructor(code: StudyCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'StudyServiceError'
  }
}
