import type { DicomDataset } from '../study/index.js'
import type { DimseQuery } from './query.js'

/** The outcome of one C-STORE as the node gives it: a DIMSE status (STATUS, PS3.4 B.2.3) and, for a failure, why. */
export interface DimseStoreResult {
  readonly status: number
  /** Error Comment (0000,0902) for a failure: at most 64 characters, never patient data. */
  readonly comment?: string
  /** True when the same instance was stored before (acknowledged with success, not stored twice). */
  readonly duplicate?: boolean
}

/** The C-STOREs of one association. */
export interface DimseStoreSession {
  /**
   * Stores one received instance (Part 10 bytes: the file meta written by
   * the SCP, then the dataset as it came). A success must be durable when
   * the promise resolves: the C-STORE-RSP follows at once. `expect` is what
   * the C-STORE request named; a dataset naming other UIDs must be refused.
   */
  store(part10: Uint8Array, expect: { readonly sopClassUid: string; readonly sopInstanceUid: string }): Promise<DimseStoreResult>
}

/** Who asks for an association. */
export interface DimsePeer {
  readonly callingAe: string
  /** The remote IP address (an IPv4-mapped IPv6 address given as IPv4). */
  readonly address: string
}

/** The node as the DIMSE listener sees it (implemented in src/node). */
export interface DimseBackend extends DimseQueryBackend {
  /** Whether `peer` may open an association (a known AE title from its known host, or any when the node accepts unknown peers). */
  admit(peer: DimsePeer): Promise<boolean>
  /** The stores of one association. */
  openStore(peer: DimsePeer): DimseStoreSession
}

/** A refusal of a query or retrieve: the DIMSE status to answer with (PS3.4 C.4.1.1.4, C.4.2.1.5) and why (no patient data). */
export interface DimseRefusal {
  readonly ok: false
  readonly status: number
  readonly comment: string
}

/** The instances a C-MOVE or C-GET selects, read one after the other. */
export interface DimseRetrieval {
  readonly ok: true
  /** How many instances `instances` yields (the sub-operations' count). */
  readonly total: number
  /** The SOP classes among them (the storage contexts to propose). */
  readonly sopClasses: readonly string[]
  /** Each instance's Part 10 bytes (file meta, then the dataset as stored). */
  readonly instances: AsyncIterable<Uint8Array>
}

/** A DICOM node this one sends to (a C-MOVE destination, `study send`): `dimse.peers`. */
export interface DimseDestination {
  readonly aeTitle: string
  readonly host: string
  readonly port: number
}

/** What the Query/Retrieve SCP needs from the node (implemented in src/node). */
export interface DimseQueryBackend {
  /** The matches of a C-FIND at its level (each with its attributes of that level and above), or a refusal. */
  find(peer: DimsePeer, q: DimseQuery, signal: AbortSignal): Promise<{ readonly ok: true; readonly matches: readonly DicomDataset[] } | DimseRefusal>
  /** The instances a C-MOVE or C-GET selects (reads under a lease recorded as the node records them), or a refusal. */
  retrieve(peer: DimsePeer, q: DimseQuery, signal: AbortSignal): Promise<DimseRetrieval | DimseRefusal>
  /** A configured peer by AE title, or undefined (C-MOVE: Move Destination unknown). */
  destination(aeTitle: string): Promise<DimseDestination | undefined>
}
