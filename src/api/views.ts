/**
 * What the local HTTP API answers with, declared once: the node builds these
 * (NodeBackend), the server sends them as JSON, the client returns them, and
 * the CLI, the devnet and the tests read them. Hashes, keys and ids are
 * lower-case hex; times are chain time in ms since the Unix epoch.
 */

/** An error a view reports (a rejected transaction, a failed job): a code of the registry and its message. */
export interface ErrorView {
  readonly code: string
  readonly message: string
}

/** Node status as the API reports it. */
export interface NodeStatus {
  readonly chainId: string
  /** This node's organization id, or null if its key is not an admitted organization. */
  readonly orgId: string | null
  readonly role: 'authority' | 'member' | null
  readonly height: number
  readonly headHash: string
  readonly headTime: number
  readonly stateRoot: string
  /** Connected peers. */
  readonly peers: number
  /** Base URL of this API. */
  readonly api: string
  /** Base URL of the DICOMweb root, when that listener is on. */
  readonly dicomweb?: string
  /** The DIMSE listener as `AE@host:port`, when it is on. */
  readonly dimse?: string
  readonly mempool: { readonly size: number; readonly bytes: number }
  readonly authorities: number
  readonly version: string
  /** Where consensus stands: the height being decided, its round and step. */
  readonly consensus: { readonly height: number; readonly round: number; readonly step: string } | null
  /** Set once consensus halted on a safety violation (a broken invariant or a failing store); the daemon then exits. */
  readonly halted?: { readonly reason: string; readonly height: number; readonly round: number }
}

/** The organization registry as the API shows it, with the chain parameters in force. */
export interface OrgsView {
  readonly orgs: readonly Record<string, unknown>[]
  readonly proposals: readonly { readonly proposal: string; readonly action: Record<string, unknown>; readonly voters: readonly string[] }[]
  /** The chain parameters in force (genesis values, or as changed by a vote), by name. */
  readonly params: Readonly<Record<string, number>>
}

/** A connected peer. */
export interface PeerView {
  /** Organization id, or null if the key is not (or no longer) admitted. */
  readonly org: string | null
  readonly publicKey: string
  readonly peerId: string
  readonly addr: string
  /** The connection's secure channel: 'tls' (preferred) or 'noise'. */
  readonly encryption: string
}

/** Where a transaction stands. */
export interface TxStatus {
  readonly hash: string
  readonly status: 'pending' | 'final' | 'rejected' | 'unknown'
  readonly height?: number
  readonly index?: number
  readonly blockHash?: string
  /** Why a transaction was dropped after admission. */
  readonly error?: ErrorView
  /** JSON view of the transaction when known. */
  readonly tx?: Record<string, unknown>
}

/** A block with its certificate, as JSON. */
export type BlockView = Record<string, unknown>

/**
 * An event on the node's stream: `block` for each final block (its `txs`
 * lists the hashes of the transactions final with it), `tx` when a
 * transaction enters the mempool (pending) or is dropped (rejected).
 * Listeners are called synchronously and may see large bursts; data is JSON-safe.
 */
export type NodeEvent =
  | { readonly type: 'block'; readonly data: Record<string, unknown> }
  | { readonly type: 'tx'; readonly data: { readonly hash: string; readonly status: TxStatus['status']; readonly height?: number } }

/** What this node holds of a study. */
export interface StudyLocalView {
  /** This node knows the chunk list. */
  readonly chunkList: boolean
  /** Chunks present in the chunk store (per its index; reads verify them). */
  readonly chunksHeld: number
  readonly chunkCount: number
  readonly custodianEnvelope: boolean
  /** Whether the owner's envelope is held; null when the study has no owner. */
  readonly ownerEnvelope: boolean | null
  readonly demographics: boolean
  /** Everything above is here: this node can serve and export the study. */
  readonly complete: boolean
}

/** What is known of a study's replicas. */
export interface ReplicationView {
  /** Organizations that hold a verified full copy (chunks, list and objects), this one included. */
  readonly holders: readonly string[]
  /** Organizations the placement assigns (first k, or their replacements for holders down too long). */
  readonly assigned: readonly string[]
  /** Replicas wanted: the replication factor, or fewer when fewer organizations are admitted. */
  readonly target: number
  readonly state: 'healthy' | 'under-replicated'
  /** Organizations that did not answer. */
  readonly unreachable: readonly string[]
}

/** A registered study: its ledger record and what this node holds of it (`GET /v1/studies`, `GET /v1/studies/:id`). */
export interface StudyView {
  readonly studyId: string
  /** The organization that keeps the study and decides on its leases (unless the patient does). */
  readonly custodian: string
  /** The study's own owner key (Ed25519, derived for this study from the patient's key), or null when the study has no owner. */
  readonly owner: string | null
  /** The ephemeral X25519 key from which the patient derives the owner key, or null without an owner. */
  readonly ownerEphemeral: string | null
  readonly contentRoot: string
  readonly size: number
  readonly chunkCount: number
  readonly chunkSize: number
  readonly studyDigest: string
  /** Hashes of the custodian's and the owner's key envelopes and of the encrypted demographics record. */
  readonly custodianEnvelope: string
  readonly ownerEnvelope: string | null
  readonly demographics: string
  /** The earlier version this study extends (its later instances), or null. */
  readonly extends: string | null
  /** The version that extends this study (erased since or not), or null. */
  readonly extendedBy: string | null
  /** Height of the registration. */
  readonly height: number
  readonly local: StudyLocalView
  /** One study only: organizations holding a verified full copy, and the replication health. */
  readonly holders?: readonly string[]
  readonly replication?: ReplicationView
  /** One study only: the chain of versions it belongs to, oldest first, this study included (alone when it has no other). */
  readonly versions?: readonly StudyVersionView[]
}

/** One version in a study's chain of versions. */
export interface StudyVersionView {
  readonly studyId: string
  /** Height of its registration. */
  readonly height: number
  /** Erased since: its data is gone, its place in the chain stays. */
  readonly erased: boolean
  /** The study the view is of. */
  readonly self: boolean
}

/** A lease, with its state in chain time (`GET /v1/leases`). */
export interface LeaseView {
  /** The lease id: the hash of its `lease.request` transaction. */
  readonly leaseId: string
  readonly studyId: string
  /** The organization that asked for it. */
  readonly requester: string
  /** The study's custodian, or null when the study is gone. */
  readonly custodian: string | null
  readonly scope: 'images' | 'full'
  readonly durationMs: number
  readonly purpose: string
  /** `expired` once chain time passes the expiry of a granted lease. */
  readonly status: 'requested' | 'granted' | 'expired' | 'denied' | 'revoked'
  readonly requestedAt: number
  readonly requestHeight: number
  /** The owner approved it (needed when their consent policy does not cover it). */
  readonly approved: boolean
  /** Set once granted. */
  readonly grantedAt: number | null
  readonly expiry: number | null
  /** Hash of the key envelope wrapped to the requester, once granted. */
  readonly envelope: string | null
  /** Time of the denial or revocation, and its reason. */
  readonly endedAt: number | null
  readonly reason: string | null
}

/** One event of a study's audit trail, in ledger order (`GET /v1/studies/:id/audit`). */
export interface AuditEventView {
  readonly height: number
  /** Chain time of the block. */
  readonly time: number
  /** Position of the transaction in its block. */
  readonly index: number
  /** The transaction type: study.register, lease.request, lease.grant, access.record, study.erase, ... */
  readonly type: string
  /** The transaction's hash. */
  readonly tx: string
  /** Who signed it: an organization id, or `patient:<key hex>`. */
  readonly by: string
  readonly leaseId: string | null
  /** The transaction's own fields as its type shows them (ids, hashes, scope, purpose; never patient data). */
  readonly detail: Readonly<Record<string, unknown>>
  /**
   * Only in the trail of a study that a later version extends: this event is
   * that version's registration (`study.register`, its fields in `detail`),
   * and this is its study id.
   */
  readonly extendedBy?: string
}

/** A transfer of a study's chunks in progress. */
export interface TransferView {
  readonly studyId: string
  /** `replicate`: this node's replication duty; `fetch`: a local reader's `study get`. */
  readonly kind: 'replicate' | 'fetch'
  /** Chunks held so far, of `total`. */
  readonly done: number
  readonly total: number
  /** Bytes fetched, and peers sending now. */
  readonly bytes: number
  readonly peers: number
  readonly startedAt: number
}

/** The swarm as this node sees it (`GET /v1/swarm`). */
export interface SwarmStatusView {
  readonly transfers: readonly TransferView[]
  /** Studies waiting for replication or repair. */
  readonly queue: readonly string[]
  /** Organizations considered down. */
  readonly down: readonly string[]
}

/** A study registered by a `study add` job, and how far its replication got. */
export interface AddedStudyView {
  readonly studyId: string
  /** The registration's transaction hash, and its height once final (null if still pending). */
  readonly tx: string
  readonly height: number | null
  readonly instances: number
  readonly chunks: number
  readonly size: number
  /** The study's own owner key (derived from the patient's key), or null. */
  readonly owner: string | null
  /** The earlier version it was registered as a new version of, or null. */
  readonly extends: string | null
  /** Organizations that confirmed they hold all of it (this one included), in placement order. */
  readonly holders: readonly string[]
  /** Replicas wanted (the replication factor, or fewer organizations). */
  readonly target: number
  /** Whether `target` holders confirmed within the durable timeout. */
  readonly durable: boolean
  /** Assigned organizations that did not answer. */
  readonly unreachable: readonly string[]
}

/** Where a `study add` job stands (`GET /v1/jobs/:id`). */
export interface StudyAddJobView {
  readonly id: string
  readonly kind: 'add'
  readonly state: 'scanning' | 'packing' | 'registering' | 'replicating' | 'done' | 'failed'
  /** Files found, files packed so far, bytes packed so far. */
  readonly files: number
  readonly filesDone: number
  readonly bytes: number
  /** Files that are not readable DICOM (skipped with skipBad, else the job fails naming them). */
  readonly bad: readonly { readonly path: string; readonly code: string; readonly message: string }[]
  /** Files left out on purpose, whatever skipBad says: DICOMDIR index files, links back into a folder already scanned. */
  readonly ignored: readonly { readonly path: string; readonly reason: string }[]
  readonly studies: readonly AddedStudyView[]
  readonly error: ErrorView | null
}

/** Where a `study get` job stands (`GET /v1/jobs/:id`). */
export interface StudyGetJobView {
  readonly id: string
  readonly kind: 'get'
  readonly state: 'fetching' | 'decrypting' | 'done' | 'failed'
  readonly studyId: string
  readonly scope: 'images' | 'full'
  /** The output folder, on the daemon's machine; null for a fetch alone (`study fetch`: the chunks into this node's store, no files). */
  readonly out: string | null
  /** Chunks fetched from the swarm: held so far (of chunkCount), bytes this job fetched, peers sending. */
  readonly fetch: { readonly done: number; readonly bytes: number; readonly peers: number }
  /** Chunks read and decrypted, of `chunkCount`. */
  readonly chunks: number
  readonly chunkCount: number
  /** Files written, bytes written. */
  readonly files: number
  readonly bytes: number
  readonly error: ErrorView | null
}

/**
 * A patient link of this node (`GET /v1/patient-links`): studies registered
 * here whose instances carry this Patient ID and issuer are owned by this
 * patient key. Only this node's operator sees it; it never leaves the node.
 */
export interface PatientLinkView {
  /** Patient ID (0010,0020) as the organization's systems write it. */
  readonly patientId: string
  /** Issuer of Patient ID (0010,0021); '' when the instances carry none. */
  readonly issuer: string
  /** The patient public key (`rcpatient1:...`). */
  readonly patientKey: string
  /** Its fingerprint (the hex of its Ed25519 key, as `patient keygen` prints it). */
  readonly keyId: string
  /** When it was linked (ISO 8601, this node's clock). */
  readonly linkedAt: string
}

/** What `POST /v1/patient-links` did: the link now in force, and whether it replaced a link to another key. */
export interface PatientLinkResult {
  readonly link: PatientLinkView
  readonly replaced: boolean
}

/** A `study add` or `study get` job. */
/** One instance of a `study send` job (`GET /v1/jobs/:id`): the file of the study it was, its SOP Instance UID and the peer's C-STORE status. */
export interface SendResultView {
  readonly file: string
  readonly sopInstanceUid: string
  /** The C-STORE status, `0x0000` for success (PS3.4 B.2.3). */
  readonly status: string
  /** Success or a warning: the peer keeps the instance. */
  readonly ok: boolean
  /** The peer's Error Comment, or why it was not sent. */
  readonly comment?: string
}

/** Where a `study send` job stands (`GET /v1/jobs/:id`): the study read as `study get` reads it, then sent with C-STORE. */
export interface StudySendJobView {
  readonly id: string
  readonly kind: 'send'
  readonly state: 'fetching' | 'sending' | 'done' | 'failed'
  readonly studyId: string
  readonly scope: 'images' | 'full'
  /** The peer's AE title (dimse.peers). */
  readonly to: string
  /** Chunks read and decrypted, of `chunkCount`. */
  readonly chunks: number
  readonly chunkCount: number
  /** Instances to send; sent with success, failed, sent with a warning. */
  readonly total: number
  readonly sent: number
  readonly failed: number
  readonly warning: number
  readonly results: readonly SendResultView[]
  readonly error: ErrorView | null
}

export type StudyJobView = StudyAddJobView | StudyGetJobView | StudySendJobView

/** True when `job` is of the given kind (narrows the union). */
export function isJobOfKind<K extends StudyJobView['kind']>(job: StudyJobView, kind: K): job is Extract<StudyJobView, { kind: K }> {
  return job.kind === kind
}
