/**
 * What the local HTTP API needs from a running node. The node implements it;
 * the API layer only translates HTTP to these calls and back.
 */
import type {
  AuditEventView,
  BlockView,
  LeaseView,
  NodeEvent,
  NodeStatus,
  OrgsView,
  PatientLinkResult,
  PatientLinkView,
  PeerView,
  StudyJobView,
  StudyView,
  SwarmStatusView,
  TxStatus,
} from './views.js'

/** A vote for a change to the organization registry, as the API takes it. */
export type OrgVote =
  | {
      readonly action: 'admit'
      readonly id: string
      readonly name: string
      readonly role: 'authority' | 'member'
      readonly signKey: string
      readonly encKey: string
      readonly addrs: readonly string[]
    }
  | { readonly action: 'remove'; readonly id: string }
  | { readonly action: 'rekey'; readonly id: string; readonly signKey: string; readonly encKey: string }
  /** New values of chain parameters by name (the ledger says which may be voted). */
  | { readonly action: 'params'; readonly params: Readonly<Record<string, number>> }

/** The node as the API sees it. Errors are RadErrors with a `code` (TX_* for transactions). */
export interface ApiBackend {
  status(): NodeStatus
  /** Admits signed transaction bytes to the mempool; returns its hash. Throws TxError. */
  submitTx(bytes: Uint8Array): string
  /** Signs a note with the node's organization key and admits it; returns its hash. */
  submitNote(text: string): string
  txStatus(hash: string): Promise<TxStatus>
  /** Resolves once the transaction is final or rejected, or with its current status after `timeoutMs` or when `signal` aborts. */
  waitTx(hash: string, timeoutMs: number, signal?: AbortSignal): Promise<TxStatus>
  /** Block by height, 'head', or 64-hex hash; undefined if not found. */
  block(ref: string): Promise<BlockView | undefined>
  /** Subscribes to new blocks and transactions; returns the unsubscribe function. */
  subscribe(listener: (ev: NodeEvent) => void): () => void
  /** Connected peers. */
  peers(): PeerView[]
  /** The organization registry: admitted organizations and the changes being voted on. */
  orgs(): OrgsView
  /** Signs this organization's vote for a registry or parameter change and admits it; returns the transaction hash. */
  voteOrg(vote: OrgVote): string
  /**
   * Devnet fault injection: refuse and disconnect these peers (hex public
   * keys); an empty list heals. Present on devnet daemons only: without it
   * the API has no `/v1/admin/partition` route at all.
   */
  readonly setBlockedPeers?: (keys: string[]) => void
  /**
   * Starts adding studies from files and folders readable by the daemon; `patient` is the owner's public key text;
   * `extends` the id (hex) of a study this organization registered, of which the files are a new version. Returns the job id.
   */
  addStudies(paths: string[], opts: { skipBad: boolean; patient?: string; extends?: string }): string
  /** Starts writing a study's DICOM files into the absolute folder `out` (scope `images` or `full`), or with `out` null fetching its chunks into this node's store alone; returns the job id. */
  getStudy(studyId: string, opts: { out: string | null; scope: string }): Promise<string>
  /** Starts sending a study this node may read to a configured DICOM peer (`radchain study send`); returns the job id. */
  sendStudy(studyId: string, opts: { to: string; scope: string }): Promise<string>
  /** Every registered study, with what this node holds of it. */
  studies(): Promise<StudyView[]>
  /** One registered study, with what this node holds of it; throws STUDY_UNKNOWN or STUDY_BAD_ID. */
  study(studyId: string): Promise<StudyView>
  /** Swarm transfers in progress, studies waiting for replication or repair, organizations considered down. */
  swarmStatus(): SwarmStatusView
  /** A study's audit trail in ledger order (erased studies too); throws STUDY_UNKNOWN or STUDY_BAD_ID. */
  audit(studyId: string): Promise<AuditEventView[]>
  /** Signs this organization's half of erasing a study it keeps; returns the transaction hash. */
  eraseStudy(studyId: string): string
  /** Requests a lease (signed by this organization); returns the lease id (= the request's transaction hash). */
  requestLease(studyId: string, opts: { scope: string; durationMs: number; purpose: string }): string
  /** Throws DIMSE_UNKNOWN_PEER unless a DICOM peer of this AE title is configured (dimse.peers). */
  checkDimsePeer(aeTitle: string): Promise<void>
  /** Sends the study of this lease (hex id) to the DICOM peer once the lease is granted (`lease request --deliver-to`). */
  deliverLease(leaseId: string, aeTitle: string): Promise<void>
  /** Leases, optionally only incoming (on this organization's studies) or outgoing (its own). */
  leases(direction?: 'incoming' | 'outgoing'): LeaseView[]
  /** Custodian decisions; each returns the transaction hash. */
  grantLease(leaseId: string): Promise<string>
  denyLease(leaseId: string, reason: string): string
  revokeLease(leaseId: string): string
  /** Next nonce expected from a key (hex), pending transactions included: for transactions signed outside the node (a patient's). */
  nonce(key: string): number
  /** A `study add` or `study get` job, or undefined. */
  studyJob(id: string): StudyJobView | undefined
  /**
   * Links a Patient ID (with its issuer, '' for none) to a patient public key
   * (`rcpatient1:...`): studies registered afterwards whose instances carry
   * them are owned by that patient. PATIENT_LINK_EXISTS for one linked to
   * another key, unless `replace`.
   */
  linkPatient(link: { patientId: string; issuer: string; patientKey: string; replace: boolean }): Promise<PatientLinkResult>
  /** Removes a patient link; PATIENT_LINK_UNKNOWN when there is none. */
  unlinkPatient(patientId: string, issuer: string): Promise<void>
  /** Every patient link of this node. */
  patientLinks(): PatientLinkView[]
}
