// The one registry of error codes, at the bottom of the layers so that every
// folder can name its codes through it: a domain declares its union as
// `ErrorCodes<'TX_MALFORMED' | ...>`, which fails the type check for a code
// the registry does not list (docs/ARCHITECTURE.md, "Errors").

/** What the registry says of one code. */
export interface ErrorCodeInfo {
  /** The HTTP status the API answers an error with this code with. */
  readonly status: number
  /** One line: what it means and, where it helps, what to do. */
  readonly meaning: string
}

/**
 * The one registry of error codes: each code's HTTP status and meaning. The
 * API server answers with these statuses, and the README's table of error
 * codes is generated from it (`npm run docs:errors`). Every domain names its
 * codes through {@link ErrorCodes}, so a code missing here fails the type
 * check; a unit test scans the sources both ways (every code thrown is here,
 * every code here is thrown).
 *
 * Statuses: 400 bad input; 401 missing credentials; 403 not allowed; 404
 * unknown; 405 wrong method; 408 the client was too slow; 409 conflicts with
 * the current state (exists already, already decided, in use); 410 erased;
 * 413 too large; 415 valid DICOM radchain cannot process; 422 well-formed but
 * refused by the ledger rules; 500 a failure of this node (a bug, a damaged
 * local file); 502 a peer or the daemon answered wrongly; 503 busy, full or
 * unavailable for now (retry); 504 timed out waiting on someone else; 507 no
 * room left.
 */
export const ERROR_CODES = {
  // The local API and its client.
  API_UNAUTHORIZED: { status: 401, meaning: 'missing or wrong bearer token: send `Authorization: Bearer <api.token of the data dir>`' },
  API_BAD_REQUEST: { status: 400, meaning: 'the request is malformed: its target, query, JSON body or a field in it (the message names it)' },
  API_NOT_FOUND: { status: 404, meaning: 'no such route, block or job' },
  API_METHOD_NOT_ALLOWED: { status: 405, meaning: 'the route does not take this HTTP method (the `allow` header lists those it takes)' },
  API_BODY_TOO_LARGE: { status: 413, meaning: "the request body is above the API's bound (8 MiB by default)" },
  API_BUSY: { status: 503, meaning: 'too many event streams open, or the daemon is stopping: retry after the `retry-after` seconds' },
  API_INTERNAL: { status: 500, meaning: 'a bug in the daemon: its log has the details' },
  API_UNREACHABLE: { status: 503, meaning: 'the client cannot reach the daemon: is it running (`radchain daemon`), and is `--node` right?' },
  API_TIMEOUT: { status: 408, meaning: 'no answer in time (client side), or the request was not sent in time (server side)' },
  API_BAD_RESPONSE: { status: 502, meaning: "the daemon's answer makes no sense to the client (a different version?), or the connection broke mid-answer" },
  API_STREAM_BROKEN: { status: 502, meaning: 'the event stream broke (the daemon stopped, or dropped a consumer that fell behind): reconnect and re-read' },
  API_BAD_CONFIG: { status: 500, meaning: 'the API server or client was given a bad host, port, token, URL or bound' },
  API_NOT_STARTED: { status: 500, meaning: 'the API server was asked for its address before it listens' },
  SSE_EVENT_TOO_LARGE: { status: 413, meaning: "one server-sent event is above the client's bound" },

  // The CLI's own checks.
  CLI_BAD_ARGUMENT: { status: 400, meaning: 'an argument or option value is malformed or out of range (the message names it)' },
  CLI_NO_TOKEN: { status: 401, meaning: "`--node` is a URL but RADCHAIN_API_TOKEN is not set: set it to the daemon's api.token" },
  CLI_TIMEOUT: { status: 504, meaning: "the transaction was not final within the command's wait; it may still be: check with `radchain tx show`" },

  // Transactions.
  TX_MALFORMED: { status: 400, meaning: 'the transaction (or a hash or key given for one) does not decode' },
  TX_TOO_LARGE: { status: 413, meaning: "the transaction is above the chain's maxTxBytes" },
  TX_WRONG_CHAIN: { status: 400, meaning: 'the transaction was signed for another chain id' },
  TX_UNKNOWN_TYPE: { status: 400, meaning: 'no such transaction type' },
  TX_BAD_SIGNATURE: { status: 400, meaning: 'the signature does not verify' },
  TX_BAD_NONCE: { status: 409, meaning: 'the nonce is used already (final, or by another pending transaction): ask `GET /v1/keys/:key/nonce`' },
  TX_NONCE_GAP: { status: 409, meaning: 'the nonce skips one, or an earlier transaction of the sender was dropped: resend from the next nonce' },
  TX_UNAUTHORIZED: { status: 403, meaning: 'the sender may not do this (not an authority, not the custodian, not the owner, ...)' },
  TX_INVALID: { status: 422, meaning: 'well-formed and signed, but refused by the ledger rules in the current state (the message says which)' },
  TX_DUPLICATE: { status: 409, meaning: 'the transaction is already pending' },
  TX_ALREADY_EXTENDED: {
    status: 409,
    meaning:
      "the study named as the earlier version has a new version already (erased or not): a study's versions form one chain, so extend the newest (`radchain study show` lists them)",
  },
  TX_MEMPOOL_FULL: { status: 503, meaning: "the mempool is full, or the node is busy checking its peers' transactions: retry shortly" },
  TX_SENDER_LIMIT: { status: 503, meaning: 'the sender has as many pending transactions as allowed: retry once some are final' },
  TX_REJECTED: { status: 422, meaning: 'the ledger refused the transaction without saying why' },

  // Blocks (from peers: the sender is penalized).
  BLOCK_MALFORMED: { status: 400, meaning: 'a block does not decode, or holds more transactions than allowed' },
  BLOCK_TOO_LARGE: { status: 413, meaning: "a block is above the chain's maxBlockBytes or maxBlockTxs" },
  BLOCK_WRONG_CHAIN: { status: 400, meaning: 'a block of another chain' },
  BLOCK_BAD_HEIGHT: { status: 422, meaning: "a block at a height that does not follow its parent's" },
  BLOCK_BAD_PARENT: { status: 422, meaning: 'a block whose parent is not the head' },
  BLOCK_BAD_TIME: { status: 422, meaning: "a block whose time does not advance past its parent's" },
  BLOCK_BAD_PROPOSER: { status: 422, meaning: 'a block proposed by an authority whose turn it is not' },
  BLOCK_BAD_AUTHORITY_SET: { status: 422, meaning: 'a block that names another authority set' },
  BLOCK_BAD_TX_ROOT: { status: 422, meaning: 'a block whose transaction root does not match its transactions' },
  BLOCK_BAD_STATE_ROOT: { status: 422, meaning: 'a block whose state root differs from the state its transactions give' },
  BLOCK_INVALID_TX: { status: 422, meaning: 'a block that holds an invalid transaction' },
  BLOCK_BAD_CERTIFICATE: { status: 422, meaning: 'a commit certificate that is missing, malformed, for another block, or without enough valid votes' },

  // The canonical codec and the genesis.
  CODEC_MALFORMED: { status: 400, meaning: 'bytes that do not decode' },
  CODEC_NON_CANONICAL: { status: 400, meaning: 'bytes that decode but are not the one canonical encoding of their value' },
  CODEC_SCHEMA: { status: 400, meaning: 'a decoded value of the wrong shape (a field of the wrong type, size or range)' },
  GENESIS_NOT_FOUND: { status: 404, meaning: 'the genesis file cannot be read' },
  GENESIS_INVALID: { status: 400, meaning: 'the genesis file is not a valid genesis (the message names the field)' },

  // Studies and leases (the node's services).
  STUDY_BAD_ID: { status: 400, meaning: 'a study id is 32 hex digits' },
  STUDY_UNKNOWN: { status: 404, meaning: 'no such study is registered on the ledger' },
  STUDY_ERASED: { status: 410, meaning: 'the study was erased: its data no longer exists anywhere' },
  STUDY_NO_ACCESS: {
    status: 403,
    meaning: 'this organization does not keep the study and holds no fitting lease (none, images only, or ended): `radchain lease request`',
  },
  STUDY_NOT_ADMITTED: { status: 403, meaning: "this node's organization is not admitted on the ledger" },
  STUDY_NO_INPUT: { status: 400, meaning: 'no files or folders given, or no DICOM study in them' },
  STUDY_BAD_INPUT: { status: 400, meaning: 'some files are not readable DICOM and nothing was registered: fix them, or pass `--skip-bad`' },
  STUDY_BAD_SCOPE: { status: 400, meaning: 'the scope is images or full' },
  STUDY_BAD_OUT: { status: 400, meaning: 'the output folder must be an absolute path' },
  STUDY_OUT_NOT_EMPTY: { status: 409, meaning: 'the output folder holds something, or is not a folder: give a new or empty one (nothing is overwritten)' },
  STUDY_NO_DEMOGRAPHICS: { status: 500, meaning: "a full-scope export was started without the study's demographics record" },
  STUDY_NOT_HELD: { status: 404, meaning: 'a chunk or object the export needs is not on this node' },
  STUDY_INTEGRITY: { status: 500, meaning: 'a local chunk or the local chunk list failed its integrity check: the copy here is damaged' },
  STUDY_NO_SPACE: { status: 507, meaning: 'the disk under the chunk store or the output folder is full: free some, or move them' },
  STUDY_FAILED: { status: 500, meaning: "a study job failed with an error that has no code of its own (see the daemon's log)" },
  LEASE_BAD_ID: { status: 400, meaning: 'a lease id is 64 hex digits' },
  LEASE_UNKNOWN: { status: 404, meaning: 'no such lease on the ledger' },
  LEASE_STUDY_ERASED: { status: 410, meaning: "the lease's study was erased" },
  LEASE_NOT_CUSTODIAN: { status: 403, meaning: "only the study's custodian grants, denies or revokes its leases" },
  LEASE_NOT_PENDING: { status: 409, meaning: 'the lease was decided already' },
  LEASE_NOT_ACTIVE: { status: 409, meaning: 'the lease is not active (expired, denied or revoked): nothing to revoke' },
  LEASE_NO_KEY: { status: 409, meaning: 'the requester has not published its envelope key on the ledger yet: retry shortly' },
  LEASE_NOT_ADMITTED: { status: 403, meaning: "this node's organization is not admitted on the ledger" },
  LEASE_OWN_STUDY: { status: 409, meaning: 'this organization keeps the study: it needs no lease' },
  LEASE_BAD_SCOPE: { status: 400, meaning: 'the scope is images or full' },
  LEASE_BAD_DURATION: { status: 400, meaning: "the duration is outside the chain's bounds (the message gives them)" },
  LEASE_BAD_PURPOSE: { status: 400, meaning: 'the purpose is longer than the chain allows' },

  // DICOM input, chunks, synthetic studies.
  DICOM_NOT_PART10: { status: 400, meaning: 'not a DICOM Part 10 file (no "DICM" marker at offset 128)' },
  DICOM_TRUNCATED: { status: 400, meaning: 'an element, item or the file meta runs past the end of the file' },
  DICOM_UNREADABLE: { status: 400, meaning: 'the file cannot be read or parsed' },
  DICOM_TOO_LARGE: { status: 413, meaning: 'the file is above the configured bound, or its deflated dataset inflates to more than 256 MiB' },
  DICOM_MISSING_UID: { status: 400, meaning: 'the Study, Series or SOP Instance UID is missing or empty' },
  DICOM_UNSUPPORTED: { status: 415, meaning: 'valid DICOM that radchain cannot process (e.g. pixel data it cannot frame)' },
  DICOM_STUDY_MISMATCH: { status: 400, meaning: 'an instance of another study was given with this one' },
  DICOM_DUPLICATE_INSTANCE: {
    status: 409,
    meaning: 'a file repeats an instance (same SOP Instance UID, same pixels) of an earlier file of its study: kept once with --skip-bad',
  },
  DICOM_DUPLICATE_UID: {
    status: 409,
    meaning: 'two files of one study share a SOP Instance UID but not their pixels (or the earlier cannot be read): the later file is left out with --skip-bad',
  },
  DICOM_RECORD_MISMATCH: { status: 500, meaning: 'a demographics record does not fit its dataset, or does not open with the study key' },
  CHUNK_BAD_ID: { status: 502, meaning: 'chunk bytes do not hash to their id (a peer sent wrong bytes and is penalized)' },
  CHUNK_TOO_LARGE: { status: 413, meaning: 'a chunk is longer than any chunk may be' },
  CHUNK_DECRYPT_FAILED: { status: 500, meaning: 'a chunk fails authentication: wrong key, study, version or position, or altered bytes' },
  CHUNK_BAD_PARAMS: { status: 500, meaning: 'a chunk key, study id, version, index or chunk size out of range (a bug)' },
  CHUNK_CORRUPT: { status: 500, meaning: 'a chunk file is missing or no longer matches its id; its entry was dropped and the swarm repairs it' },
  CHUNK_QUOTA_EXCEEDED: { status: 507, meaning: 'the chunk store is at its quota (`chunks.quotaBytes` in config.json)' },
  CHUNK_STORE_CLOSED: { status: 503, meaning: 'the chunk store is closed (the node is stopping)' },
  SYNTHETIC_BAD_OPTIONS: { status: 400, meaning: 'slices, rows, columns, seed or pixel representation out of range' },
  SYNTHETIC_OUT_NOT_EMPTY: { status: 409, meaning: 'the output folder holds something, or is not a folder' },

  // The swarm and the network.
  SWARM_UNKNOWN_STUDY: { status: 404, meaning: 'a peer asked about a study that is not on the ledger' },
  SWARM_NOT_HELD: { status: 404, meaning: 'the peer does not hold that chunk, chunk list or object' },
  SWARM_NOT_ALLOWED: { status: 403, meaning: 'no replication duty nor lease lets this organization fetch that study or object' },
  SWARM_BAD_REQUEST: {
    status: 400,
    meaning:
      'a malformed chunk request, or a lease claim whose signature does not verify, that names another holder, or that states another time than the block it names',
  },
  SWARM_UNAVAILABLE: { status: 503, meaning: 'no reachable organization has what is needed: retry when they are back' },
  SWARM_BAD_LIST: { status: 502, meaning: 'a peer sent a chunk list of the wrong length or that does not match the content root' },
  SWARM_LEASE_ENDED: { status: 403, meaning: 'the lease under which the request was made has ended (expired or revoked)' },
  SWARM_CLAIM_STALE: {
    status: 503,
    meaning: "a lease claim's chain time or block is too far from the holder's chain head (one of the two nodes lags): the request is retried, not penalized",
  },
  P2P_TIMEOUT: { status: 504, meaning: "a network operation's deadline passed" },
  P2P_ABORTED: { status: 503, meaning: 'a network operation was cancelled, or the node is stopping' },
  P2P_TOO_LARGE: { status: 413, meaning: 'a frame, message or response is above its bound' },
  P2P_MALFORMED: { status: 502, meaning: 'a peer broke the framing rules (and is penalized)' },
  P2P_NO_PEER: { status: 503, meaning: 'the peer is not connected, or not admitted' },
  P2P_REFUSED: { status: 503, meaning: 'the peer refused the protocol or the stream, or has too many requests waiting' },
  P2P_REMOTE_ERROR: { status: 502, meaning: 'the peer answered with an error (its code is in `remoteCode`)' },
  P2P_STREAM_ERROR: { status: 502, meaning: 'the stream closed or was reset before the exchange completed' },
  P2P_NOT_STARTED: { status: 503, meaning: 'the network node is not running' },
  P2P_INVALID_ARGUMENT: { status: 500, meaning: 'a bad protocol name, bound, key or state given to the network node (a bug)' },

  // Local files: database, keys, configuration.
  STORE_LOCKED: { status: 409, meaning: 'the database is in use by another process: is a daemon already running on this data dir?' },
  STORE_OPEN_FAILED: { status: 500, meaning: 'the database cannot be opened (the message says why)' },
  STORE_CORRUPT: { status: 500, meaning: 'the database is damaged (a missing block or certificate, a torn record)' },
  STORE_GENESIS_MISMATCH: { status: 409, meaning: 'the database was made for another genesis: use a fresh data dir or the matching genesis file' },
  KEYSTORE_NOT_FOUND: { status: 404, meaning: 'the keystore file cannot be read' },
  KEYSTORE_CORRUPT: { status: 500, meaning: 'the keystore file is malformed, or its public keys do not match its secret' },
  KEYSTORE_BAD_PASSPHRASE: { status: 401, meaning: 'wrong passphrase, or the keystore was altered' },
  KEYSTORE_NO_PASSPHRASE: { status: 401, meaning: 'no passphrase: set RADCHAIN_PASSPHRASE or give a readable, non-empty passphrase file' },
  KEYSTORE_EXISTS: { status: 409, meaning: 'a key file exists already: nothing was overwritten' },
  ENVELOPE_MALFORMED: { status: 500, meaning: 'a key envelope has the wrong size or version' },
  ENVELOPE_DECRYPT_FAILED: { status: 500, meaning: "a key envelope does not open with this organization's keys (not wrapped to it, or altered)" },
  PATIENT_BAD_KEY: { status: 400, meaning: 'not a patient public key (`rcpatient1:...`), nor a readable file holding one' },
  PATIENT_NOT_OWNER: { status: 403, meaning: "the study (or the lease's study) is not one of this patient key's studies" },
  PATIENT_BAD_POLICY: { status: 400, meaning: "the standing consent file beside the patient key (`<key>.consent.json`) is not radchain's" },
  PATIENT_LINK_BAD_ID: {
    status: 400,
    meaning: 'the Patient ID of a patient link is not a DICOM LO value: 1 to 64 characters, no backslash, no control character',
  },
  PATIENT_LINK_BAD_ISSUER: {
    status: 400,
    meaning: 'the Issuer of Patient ID of a patient link is not a DICOM LO value: up to 64 characters, no backslash, no control character',
  },
  PATIENT_LINK_EXISTS: { status: 409, meaning: 'the Patient ID (with its issuer) is linked to another patient key already: `--replace` to change it' },
  PATIENT_LINK_UNKNOWN: { status: 404, meaning: 'no patient link for that Patient ID and issuer on this node' },
  CONFIG_NOT_FOUND: { status: 404, meaning: 'no radchain node in the data dir: run `radchain init`' },
  CONFIG_INVALID: { status: 400, meaning: "config.json, the options of `radchain init` or the daemon's settings are invalid (the message names the field)" },
  CONFIG_EXISTS: { status: 409, meaning: 'the data dir already holds a radchain node: nothing was changed' },

  // DICOMweb (PS3.18): the daemon's listener for PACS and viewers.
  DICOMWEB_MULTIPART_MALFORMED: {
    status: 400,
    meaning: 'the multipart/related body is malformed: no or bad boundary, a part without its header block, or no closing delimiter (the message says where)',
  },
  DICOMWEB_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    meaning: 'the request body is not of a media type this endpoint takes (STOW-RS takes multipart/related; type="application/dicom")',
  },
  DICOMWEB_BODY_TOO_LARGE: { status: 413, meaning: 'the request body, or one part of it, is above dicomweb.maxBodyBytes' },
  DICOMWEB_BAD_QUERY: { status: 400, meaning: 'a QIDO-RS query parameter is unknown or its value malformed (the message names it)' },
  DICOMWEB_UNAUTHORIZED: { status: 401, meaning: 'missing, unknown or revoked DICOMweb token: create one with `radchain dicomweb token create`' },
  DICOMWEB_FORBIDDEN: { status: 403, meaning: "the token's scope does not allow this (a read token cannot store, a write token cannot query or retrieve)" },
  DICOMWEB_NOT_FOUND: { status: 404, meaning: 'no such DICOMweb resource, or nothing this node may show under that UID' },
  DICOMWEB_LEASE_ENDED: {
    status: 403,
    meaning: 'the study was shown under a lease that has ended, was revoked, or whose study was erased: nothing of it is served',
  },
  DICOMWEB_METHOD_NOT_ALLOWED: { status: 405, meaning: 'the DICOMweb resource does not take this HTTP method (the `allow` header lists those it takes)' },
  DICOMWEB_NOT_ACCEPTABLE: { status: 406, meaning: 'none of the media types the Accept header lists can be answered (the message lists those that can)' },
  DICOMWEB_BAD_CONFIG: {
    status: 500,
    meaning: 'the DICOMweb listener is misconfigured: a bad listen address, or a non-loopback address without TLS and without dicomweb.insecureHttp',
  },

  // DICOM networking (PS3.7, PS3.8): the daemon's DIMSE listener.
  DIMSE_PDU_MALFORMED: {
    status: 400,
    meaning: 'a DICOM peer sent a PDU that breaks PS3.8 (truncated, an unknown type, a bad item or field): the association is aborted',
  },
  DIMSE_PDU_TOO_LARGE: { status: 413, meaning: 'a DICOM peer sent a PDU longer than the maximum length radchain announced: the association is aborted' },
  DIMSE_COMMAND_MALFORMED: {
    status: 400,
    meaning: 'a DICOM peer sent a DIMSE command set that breaks PS3.7 (truncated element, a required element missing): the association is aborted',
  },
  DIMSE_IDENTIFIER_MALFORMED: {
    status: 400,
    meaning: 'the identifier of a C-FIND or C-MOVE cannot be read (bad encoding, an unsupported transfer syntax): answered 0xA900 or 0xC000',
  },
  DIMSE_ASSOCIATION_REJECTED: {
    status: 502,
    meaning: 'the DICOM peer rejected the association radchain asked for (its AE title configuration, or it is busy)',
  },
  DIMSE_ABORTED: { status: 502, meaning: 'the DICOM peer aborted the association or closed the connection before it answered' },
  DIMSE_TIMEOUT: { status: 504, meaning: 'the DICOM peer did not answer in time (dimse.timeoutSeconds): the association was aborted' },
  DIMSE_CONNECT_FAILED: {
    status: 502,
    meaning: "the DICOM peer's host and port could not be reached (check `radchain dimse peer ls` and that the peer listens)",
  },
  DIMSE_NO_CONTEXT: {
    status: 415,
    meaning: "the DICOM peer accepted no presentation context for an instance's SOP class and transfer syntax (radchain never transcodes)",
  },
  DIMSE_STORE_FAILED: { status: 502, meaning: 'the DICOM peer refused some instances of a `study send` (each C-STORE status is listed)' },
  DIMSE_UNKNOWN_PEER: { status: 404, meaning: 'no DICOM peer of this AE title is configured: `radchain dimse peer add <AE> <host> <port>`' },

  // The devnet and the demo.
  DEVNET_EXISTS: { status: 409, meaning: 'the folder holds a devnet of another size: use it as is, or `radchain devnet down --purge` first' },
  DEVNET_NOT_FOUND: { status: 404, meaning: 'no devnet in the folder: `radchain devnet up`' },
  DEVNET_BAD_ORG: { status: 400, meaning: 'no such organization in the devnet, or an organization count out of range' },
  DEVNET_START_TIMEOUT: { status: 504, meaning: 'a devnet daemon did not come up, or the chain did not reach the height, in time' },
  DEVNET_DAEMON_EXITED: { status: 500, meaning: 'a devnet daemon exited at start (the message has the end of its log)' },
  DEVNET_NOT_RUNNING: { status: 409, meaning: 'that devnet organization is not running' },
  NODE_HALTED: {
    status: 503,
    meaning:
      'consensus halted on a safety violation (a broken invariant or a failing store): the daemon exited with code 3 and stays down until its halted.json is removed',
  },
  DEVNET_HOSTS: { status: 500, meaning: 'a devnet of hosts needs root and iproute2 (`ip`, `tc`), or one of their commands failed (the message names it)' },
  DEMO_FAILED: { status: 500, meaning: 'a step of the demo did not turn out as it should (the message says which)' },
  JOB_FAILED: { status: 500, meaning: 'a daemon job failed with an error that has no code of its own' },
} as const satisfies Readonly<Record<string, ErrorCodeInfo>>

/**
 * Every error code radchain produces. Codes that only libraries produce
 * (ECONNRESET, LEVEL_LOCKED, ...) are not in it: radchain turns them into
 * one of these.
 */
export type ErrorCode = keyof typeof ERROR_CODES

/** A domain's code union: each member must be a registered code (`ErrorCodes<'TX_MALFORMED' | ...>`). */
export type ErrorCodes<C extends ErrorCode> = C

/** True when `code` is in the registry. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

/** The HTTP status of a code, or undefined when the registry does not list it. */
export function statusOfCode(code: string): number | undefined {
  return isErrorCode(code) ? ERROR_CODES[code].status : undefined
}
