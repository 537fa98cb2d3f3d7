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
export interface DimseBackend {
  /** Whether `peer` may open an association (a known AE title from its known host, or any when the node accepts unknown peers). */
  admit(peer: DimsePeer): Promise<boolean>
  /** The stores of one association. */
  openStore(peer: DimsePeer): DimseStoreSession
}
