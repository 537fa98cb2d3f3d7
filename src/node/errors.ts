import { RadError } from '../util/index.js'

/**
 * Why a request about a study was refused, or a `study add` / `study get`
 * job failed. Thrown by the node's studies service (`studies.ts`), lease
 * service (`leases.ts`) and API backend (`backend.ts`); the study export
 * (`src/study/export.ts`) and the CLI's own checks throw some of them too.
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
 * - STUDY_FAILED: a study job failed with an error that carries no code.
 */
export type StudyCode =
  | 'STUDY_BAD_ID' | 'STUDY_UNKNOWN' | 'STUDY_ERASED' | 'STUDY_NO_ACCESS' | 'STUDY_NOT_ADMITTED'
  | 'STUDY_NO_INPUT' | 'STUDY_BAD_INPUT' | 'STUDY_BAD_SCOPE' | 'STUDY_BAD_OUT' | 'STUDY_OUT_NOT_EMPTY'
  | 'STUDY_NO_DEMOGRAPHICS' | 'STUDY_NOT_HELD' | 'STUDY_INTEGRITY' | 'STUDY_FAILED'

/** A refused study request or a failed study job (the DICOM failures are `StudyError`s, `DICOM_*`). */
export class StudyServiceError extends RadError<StudyCode> {
  constructor(code: StudyCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'StudyServiceError'
  }
}

/**
 * Why a lease request or a custodian's decision was refused (`leases.ts`,
 * and the CLI's own checks).
 * - LEASE_BAD_ID: a lease id is not 64 hex digits.
 * - LEASE_UNKNOWN: no such lease on the ledger.
 * - LEASE_STUDY_ERASED: the lease's study was erased.
 * - LEASE_NOT_CUSTODIAN: only the study's custodian decides on its leases.
 * - LEASE_NOT_PENDING: the lease was already decided.
 * - LEASE_NOT_ACTIVE: the lease is not active (requested, expired, denied or revoked).
 * - LEASE_NO_KEY: the requester has not published its envelope key yet.
 * - LEASE_NOT_ADMITTED: this node's organization is not admitted.
 * - LEASE_OWN_STUDY: this organization keeps the study and needs no lease.
 * - LEASE_BAD_SCOPE, LEASE_BAD_DURATION, LEASE_BAD_PURPOSE: a request field out of bounds.
 */
export type LeaseCode =
  | 'LEASE_BAD_ID' | 'LEASE_UNKNOWN' | 'LEASE_STUDY_ERASED' | 'LEASE_NOT_CUSTODIAN' | 'LEASE_NOT_PENDING'
  | 'LEASE_NOT_ACTIVE' | 'LEASE_NO_KEY' | 'LEASE_NOT_ADMITTED' | 'LEASE_OWN_STUDY'
  | 'LEASE_BAD_SCOPE' | 'LEASE_BAD_DURATION' | 'LEASE_BAD_PURPOSE'

/** A refused lease request or decision. */
export class LeaseError extends RadError<LeaseCode> {
  constructor(code: LeaseCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'LeaseError'
  }
}
