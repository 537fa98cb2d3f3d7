import type { DicomDataset } from '../study/index.js'
import type { IndexedInstance } from './qido.js'

/** What a DICOMweb client may do, as its token says. */
export type DicomwebScope = 'read' | 'write' | 'readwrite'

/** The client a token belongs to: its name (for the log) and scope. */
export interface DicomwebClient {
  readonly name: string
  readonly scope: DicomwebScope
}

/** Which instances a WADO-RS request names: a study, one series of it, or one instance. */
export interface Selection {
  readonly study: string
  readonly series?: string
  readonly instance?: string
}

/**
 * Failure reasons of a refused STOW-RS instance (PS3.18 10.5.3, PS3.4 Annex
 * B.2.3): what the Failed SOP Sequence's Failure Reason (0008,1197) carries.
 */
export const FAILURE_REASON = {
  /** The part is not a readable DICOM Part 10 instance. */
  cannotUnderstand: 0xc000,
  /** The instance belongs to another study than the request's URL names. */
  studyMismatch: 0xa900,
  /** The dataset names another SOP Class or Instance UID than the request (a DIMSE C-STORE's command) does: Data Set does not match SOP Class. */
  datasetMismatch: 0xa900,
  /** An instance of this SOP Instance UID is stored already with other pixels. */
  duplicateConflict: 0x0111,
  /** No room left (the spool's disk or the chunk quota). */
  outOfResources: 0xa700,
  /** Anything else that failed on this node (its log says what). */
  processingFailure: 0x0110,
} as const

/** The outcome of one received instance. */
export type StoreOutcome =
  | {
      readonly ok: true
      readonly sopClassUid: string
      readonly sopInstanceUid: string
      readonly studyUid: string
      readonly seriesUid: string
      /** True when the same instance (SOP Instance UID and pixels) was stored before: acknowledged, not stored twice. */
      readonly duplicate: boolean
    }
  | {
      readonly ok: false
      readonly sopClassUid?: string
      readonly sopInstanceUid?: string
      /** One of FAILURE_REASON. */
      readonly reason: number
      /** Why, for the log and the answer's warning; never patient data. */
      readonly message: string
    }

/** The instances of one STOW-RS request or DIMSE association: each stored as it arrives, made durable by commit() before the answer. */
export interface StoreSession {
  /**
   * Stores one received instance; `study`: the Study Instance UID of the
   * request's URL, if any; `sopClassUid` and `sopInstanceUid`: what a DIMSE
   * C-STORE request named, if any (a dataset naming others is refused).
   */
  store(part10: Uint8Array, opts: { readonly study?: string; readonly sopClassUid?: string; readonly sopInstanceUid?: string }): Promise<StoreOutcome>
  /** Makes every instance stored so far durable (fsync of files, folders and index); the answer waits for it. */
  commit(): Promise<void>
}

/**
 * The node as the DICOMweb listener sees it (implemented in src/node). UIDs
 * are the ones the caller sees: original ones for this organization's own
 * studies.
 */
export interface DicomwebBackend {
  /** The client of a bearer token, or undefined for an unknown or revoked one. */
  authenticate(token: string): DicomwebClient | undefined
  /** The stores of one STOW-RS request by `client` (its name, for the log). */
  openStore(client: string): StoreSession
  /** Every instance this node may show (its own, received or registered, and those of active leases), for QIDO-RS. */
  instances(): Promise<Iterable<IndexedInstance>>
  /** The Part 10 bytes of the selected instances in order, or undefined when the selection names nothing this node may show. */
  retrieve(sel: Selection, signal: AbortSignal): Promise<AsyncIterable<Uint8Array> | undefined>
  /** The datasets (no bulk data) of the selected instances, or undefined as for retrieve. */
  metadata(sel: Selection): Promise<DicomDataset[] | undefined>
  /** The Part 10 bytes of one instance, or undefined as for retrieve (frames and bulk data are cut from it). */
  instance(sel: Required<Selection>, signal: AbortSignal): Promise<Uint8Array | undefined>
}
