import { RadError, type ErrorCodes } from '../util/index.js'

// The study codes live beside the study export that throws some of them (src/study/errors.ts).
export { StudyServiceError, type StudyCode } from '../study/index.js'

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
export type LeaseCode = ErrorCodes<
  | 'LEASE_BAD_ID'
  | 'LEASE_UNKNOWN'
  | 'LEASE_STUDY_ERASED'
  | 'LEASE_NOT_CUSTODIAN'
  | 'LEASE_NOT_PENDING'
  | 'LEASE_NOT_ACTIVE'
  | 'LEASE_NO_KEY'
  | 'LEASE_NOT_ADMITTED'
  | 'LEASE_OWN_STUDY'
  | 'LEASE_BAD_SCOPE'
  | 'LEASE_BAD_DURATION'
  | 'LEASE_BAD_PURPOSE'
>

/** A refused lease request or decision. */
export class LeaseError extends RadError<LeaseCode> {
  constructor(code: LeaseCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'LeaseError'
  }
}

/**
 * Why a patient link was refused (`patient-links.ts`).
 * - PATIENT_LINK_BAD_ID, PATIENT_LINK_BAD_ISSUER: not a DICOM LO value (PS3.5 6.2).
 * - PATIENT_LINK_EXISTS: linked to another patient key already, and no replace asked for.
 * - PATIENT_LINK_UNKNOWN: no link to remove.
 */
export type PatientLinkCode = ErrorCodes<'PATIENT_LINK_BAD_ID' | 'PATIENT_LINK_BAD_ISSUER' | 'PATIENT_LINK_EXISTS' | 'PATIENT_LINK_UNKNOWN'>

/** A refused patient link or unlink. */
export class PatientLinkError extends RadError<PatientLinkCode> {
  constructor(code: PatientLinkCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'PatientLinkError'
  }
}
