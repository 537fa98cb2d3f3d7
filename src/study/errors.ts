import { RadError } from '../util/index.js'

/**
 * Why a DICOM input or a de-identification step was refused.
 * - DICOM_NOT_PART10: no "DICM" marker at offset 128 (PS3.10 7.1): not a Part 10 file, nor a
 *   bare Implicit VR Little Endian dataset (a first element in group 0008 that fits the file).
 * - DICOM_TRUNCATED: an element, item or the file meta runs past the end of the file.
 * - DICOM_UNREADABLE: the file cannot be read or parsed (I/O error, malformed encoding).
 * - DICOM_TOO_LARGE: the file is bigger than the configured bound.
 * - DICOM_MISSING_UID: Study, Series or SOP Instance UID is absent or empty.
 * - DICOM_UNSUPPORTED: valid DICOM that radchain cannot process (e.g. pixel data it cannot frame).
 * - DICOM_STUDY_MISMATCH: an instance given to a study's de-identifier belongs to another study.
 * - DICOM_DUPLICATE_UID: two instances of one study share a SOP Instance UID: given to one study's
 *   de-identifier, or two input files whose pixel data differ.
 * - DICOM_DUPLICATE_INSTANCE: an input file holds an instance an earlier file holds already (same
 *   SOP Instance UID, same pixel digest, perhaps another transfer syntax): leaving it out loses nothing.
 * - DICOM_RECORD_MISMATCH: a demographics record does not fit the dataset it is applied to.
 */
export type DicomErrorCode =
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
