import {
  TxError,
  getNonce,
  blockTimeAt,
  leaseEndedBy,
  servedTx,
  type ServedClaim,
  violationReported,
  violationTx,
  type ViolationPayload,
  MAX_LEASE_MS,
  MAX_PURPOSE_BYTES,
  MIN_LEASE_MS,
  isErased,
  leaseRequestTx,
  leaseToJSON,
  accessTx,
  getEnvelopeKeys,
  getLease,
  getStudy,
  kemKeyTx,
  leaseActive,
  leaseDenyTx,
  leaseGrantTx,
  leaseRevokeTx,
  listLeases,
  signTx,
  consentCovers,
  consentFor,
  type LeaseRecord,
  type StudyRecord,
  type TxType,
} from '../chain/index.js'
import { mlkemFromX25519Private, sha256, unwrapKey, wrapKey, type OrgKeys } from '../crypto/index.js'
import type { ChunkStore } from '../storage/index.js'
import { leaseKeyContext, leaseKeyFor, studyKeyContext } from '../study/index.js'
import { equalBytes, errorMessage, toHex, type Logger } from '../util/index.js'
import type { LeaseView } from '../api/index.js'
import type { ChainService } from './chain-service.js'
import { LeaseError, StudyServiceError } from './errors.js'
import type { SwarmLeasePolicy, SwarmService } from './swarm.js'
import { CLAIM_MAX_BLOCKS_AHEAD } from './swarm-serve.js'

/** Opens an envelope wrapped to this organization with `context` (the caller zeroes the key). */
function unwrapOwn(keys: OrgKeys, envelope: Uint8Array, context: Uint8Array): Uint8Array {
  const kem = mlkemFromX25519Private(keys.encryption.privateKey)
  try {
    return unwrapKey(envelope, { x25519Priv: keys.encryption.privateKey, mlkemSecret: kem.secretKey }, context)
  } finally {
    kem.secretKey.fill(0)
  }
}

/** The study key from this organization's custodian envelope (the caller zeroes it). */
export function unwrapStudyKey(keys: OrgKeys, envelope: Uint8Array, studyId: Uint8Array): Uint8Array {
  return unwrapOwn(keys, envelope, studyKeyContext(studyId))
}

/** The key a lease hands over (images: the data key; full: the study key), from the lessee's envelope (the caller zeroes it). */
export function unwrapLeaseKey(keys: OrgKeys, envelope: Uint8Array, lease: LeaseRecord): Uint8Array {
  return unwrapOwn(keys, envelope, leaseKeyContext(lease.leaseId, lease.scope))
}

/** The active lease `orgId` holds on `study` at the head's chain time, if any (with `scope` 'full': a full-scope one). */
function activeLeaseOf(chain: ChainService, orgId: string, study: StudyRecord, scope?: 'images' | 'full'): LeaseRecord | undefined {
  return activeLeasesOf(chain, orgId, study).find((l) => scope === undefined || scope === 'images' || l.scope === 'full')
}

/** Every lease `orgId` holds on `study` that is active at the head's chain time (a renewal, or an images and a full lease, side by side). */
function activeLeasesOf(chain: ChainService, orgId: string, study: StudyRecord): LeaseRecord[] {
  const now = chain.head().header.time
  return listLeases(chain.state, study.studyId).filter((l) => l.requester === orgId && leaseActive(l, now))
}

/** The active lease of `orgId` under which the object `hash` of `study` may be served: its own key envelope, or the demographics under a full lease. */
function leaseOfObject(chain: ChainService, orgId: string, study: StudyRecord, hash: Uint8Array): LeaseRecord | undefined {
  const active = activeLeasesOf(chain, orgId, study)
  return (
    active.find((l) => l.envelope !== null && equalBytes(l.envelope, hash)) ??
    (equalBytes(study.demographics, hash) ? active.find((l) => l.scope === 'full') : undefined)
  )
}

/** A served summary goes out once serving under a lease has been quiet this long (ms of the holder's clock)... */
export const SERVED_QUIET_MS = 10_000
/** ...at most this long after its window opened while serving goes on, and as soon as the lease has ended. */
export const SERVED_MAX_WINDOW_MS = 60_000
/** How often the open windows are looked at (ms). */
const SERVED_TICK_MS = 2_000

/** What this holder served under one lease since its last summary. Kept in memory: a restart loses the open window. */
interface ServedWindow {
  readonly leaseId: Uint8Array
  /** Distinct chunks served, with their bytes (at most the study's chunk count). */
  readonly chunks: Map<number, number>
  envelope: boolean
  demographics: boolean
  /** Head times of the first and last request served. */
  first: number
  last: number
  /** The lessee's latest claim (by time, then index): the summary's evidence. */
  claim: ServedClaim | undefined
  /** This node's clock when the window opened and at the last request. */
  readonly openedAt: number
  lastAt: number
}

function claimAfter(a: ServedClaim, b: { time: number; index: number } | undefined): boolean {
  return b === undefined || a.time > b.time || (a.time === b.time && a.index > b.index)
}

/**
 * The leases' side of serving a study to an organization with no
 * replication duty for it: which objects a lessee may fetch under its
 * active lease, the ledger report of a request made under an ended one
 * (once per lease), and the summaries of what this holder served under each
 * lease (`access.served`: distinct chunks, bytes, objects, the window in
 * chain time, and the lessee's latest signed claim as evidence), sent when
 * serving goes quiet, at most every SERVED_MAX_WINDOW_MS while it goes on,
 * and when the lease ends. Given to the swarm when it is built.
 */
export class LeasePolicy implements SwarmLeasePolicy {
  readonly #chain: ChainService
  readonly #keys: OrgKeys
  readonly #logger: Logger
  /** Leases whose violation this node reported. */
  readonly #reported = new Set<string>()
  /** Evidence naming a block this node did not have yet, by lease id (hex): one per lease. */
  readonly #pendingViolations = new Map<string, ViolationPayload>()
  /** Open served windows, by lease id (hex): one per lease, bounded by the leases on the ledger. */
  readonly #windows = new Map<string, ServedWindow>()
  /** The claim the last summary of each lease used: a summary needs a later one. */
  readonly #lastClaim = new Map<string, { time: number; index: number }>()
  #timer: NodeJS.Timeout | undefined

  constructor(modules: { chain: ChainService; keys: OrgKeys; logger: Logger }) {
    this.#chain = modules.chain
    this.#keys = modules.keys
    this.#logger = modules.logger
  }

  /** Starts looking at the open served windows. */
  start(): void {
    this.#timer ??= setInterval(() => {
      for (const v of [...this.#pendingViolations.values()]) this.reportViolation(v)
      this.flushServed()
    }, SERVED_TICK_MS)
    this.#timer.unref()
  }

  /** Stops, sending the open windows that have evidence (best effort: the chain may be stopping too). */
  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.flushServed({ all: true })
  }

  /** Its own envelope, and with the full scope the demographics record, while its lease is active. */
  objectAllowed(orgId: string, study: StudyRecord, hash: Uint8Array): boolean {
    return leaseOfObject(this.#chain, orgId, study, hash) !== undefined
  }

  #window(leaseId: Uint8Array, now: number): ServedWindow {
    const id = toHex(leaseId)
    let w = this.#windows.get(id)
    if (w === undefined) {
      const at = Date.now()
      w = { leaseId, chunks: new Map(), envelope: false, demographics: false, first: now, last: now, claim: undefined, openedAt: at, lastAt: at }
      this.#windows.set(id, w)
    }
    w.last = Math.max(w.last, now)
    w.lastAt = Date.now()
    return w
  }

  servedChunk(lease: LeaseRecord, index: number, bytes: number, claim: ServedClaim, now: number): void {
    const w = this.#window(lease.leaseId, now)
    w.chunks.set(index, bytes)
    if (w.claim === undefined || claimAfter(claim, w.claim)) w.claim = claim
  }

  servedObject(orgId: string, study: StudyRecord, hash: Uint8Array, now: number): void {
    const l = leaseOfObject(this.#chain, orgId, study, hash)
    if (l === undefined) return
    const w = this.#window(l.leaseId, now)
    if (l.envelope !== null && equalBytes(l.envelope, hash)) w.envelope = true
    if (l.scope === 'full' && equalBytes(study.demographics, hash)) w.demographics = true
  }

  /**
   * Sends the summaries that are due: serving quiet for SERVED_QUIET_MS,
   * the window open for SERVED_MAX_WINDOW_MS, or the lease ended (all of
   * them with `all`). A window with no chunk claim yet (only objects
   * served) waits for one; it is dropped when its lease ends without one,
   * since the object request carries no signature of the lessee.
   */
  flushServed(opts: { all?: boolean } = {}): void {
    const clock = Date.now()
    const now = this.#chain.head().header.time
    for (const [id, w] of [...this.#windows]) {
      const lease = getLease(this.#chain.state, w.leaseId)
      const ended = lease === undefined || !leaseActive(lease, now)
      const due = opts.all === true || ended || clock - w.lastAt >= SERVED_QUIET_MS || clock - w.openedAt >= SERVED_MAX_WINDOW_MS
      if (!due) continue
      const claim = w.claim
      if (claim === undefined) {
        if (ended) {
          this.#windows.delete(id)
          this.#logger.debug('served objects not recorded: no signed chunk claim from the lessee', { lease: id })
        }
        continue
      }
      this.#windows.delete(id)
      if (!claimAfter(claim, this.#lastClaim.get(id))) {
        this.#logger.warn('served summary not sent: no claim later than the previous summary', { lease: id })
        continue
      }
      let bytes = 0
      for (const n of w.chunks.values()) bytes += n
      try {
        const signer = this.#keys.signer
        const payload = {
          leaseId: w.leaseId,
          first: w.first,
          last: w.last,
          chunks: w.chunks.size,
          bytes,
          envelope: w.envelope,
          demographics: w.demographics,
          claim,
        }
        this.#chain.submit(signTx(signer, { chainId: this.#chain.chainId, type: servedTx.name, nonce: this.#chain.nextNonce(signer.publicKey), payload }))
        this.#lastClaim.set(id, { time: claim.time, index: claim.index })
        this.#logger.info('served summary sent', { lease: id, chunks: w.chunks.size, bytes, first: w.first, last: w.last })
      } catch (err) {
        // The ledger's rules refuse it (the study was erased, say): dropped. Otherwise (a full mempool, a nonce race)
        // it is kept for the next look unless the node is stopping; what arrives meanwhile joins it.
        const refused = err instanceof TxError && (err.code === 'TX_INVALID' || err.code === 'TX_UNAUTHORIZED')
        if (opts.all !== true && !refused) this.#windows.set(id, w)
        this.#logger.warn(refused ? 'served summary refused by the ledger rules; dropped' : 'served summary not sent; retried', {
          lease: id,
          err: errorMessage(err),
        })
      }
    }
  }

  /**
   * Puts a lessee's request under an ended lease on the ledger (once per
   * lease), when the block the request names was made at or after the end:
   * the rule every node checks. A request naming a block this node does not
   * have yet (it lags by a block or two) waits for it.
   */
  reportViolation(v: ViolationPayload): void {
    const id = toHex(v.leaseId)
    if (this.#reported.has(id) || violationReported(this.#chain.state, v.leaseId)) return
    const head = this.#chain.head().header.height
    const lease = getLease(this.#chain.state, v.leaseId)
    const named = v.height <= head ? blockTimeAt(this.#chain.state, v.height) : undefined
    if (named === undefined) {
      if (v.height > head && v.height <= head + CLAIM_MAX_BLOCKS_AHEAD) this.#pendingViolations.set(id, v)
      return
    }
    this.#pendingViolations.delete(id)
    if (lease === undefined || !leaseEndedBy(lease, named)) return
    this.#reported.add(id)
    try {
      const signer = this.#keys.signer
      this.#chain.submit(signTx(signer, { chainId: this.#chain.chainId, type: violationTx.name, nonce: this.#chain.nextNonce(signer.publicKey), payload: v }))
      this.#logger.warn('lease violation reported', { lease: id, requester: v.requester })
    } catch (err) {
      this.#reported.delete(id)
      this.#logger.warn('lease violation not reported', { lease: id, err: errorMessage(err) })
    }
  }
}

/**
 * The custodian's and the lessee's side of leases in the daemon: publishes
 * this organization's ML-KEM key on the ledger; as custodian, grants on its
 * own the requests the patient's consent covers (or the patient approved),
 * wrapping the lease key to the requester in an envelope kept beside the
 * study's chunks, and grants, denies or revokes on command (what the swarm
 * serves to a lessee is LeasePolicy's).
 */
export class LeaseService {
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #swarm: SwarmService
  readonly #keys: OrgKeys
  readonly #logger: Logger
  /** Leases (hex) whose grant this node submitted and that are not final yet. */
  readonly #granting = new Set<string>()
  /** Envelopes stored for grants not final yet, by lease (hex): the envelope's hash and the grant's nonce. */
  readonly #pendingEnvelopes = new Map<string, { hash: Uint8Array; nonce: number }>()
  #kemPending: string | undefined
  /** This organization's ML-KEM-768 public key (derived once: key generation is not free, and this runs at every block). */
  readonly #kemPublic: Uint8Array
  /** Ended leases of this organization whose local copy was dealt with. */
  readonly #cleaned = new Set<string>()

  readonly #policy: LeasePolicy

  constructor(modules: { chain: ChainService; chunks: ChunkStore; swarm: SwarmService; policy: LeasePolicy; keys: OrgKeys; logger: Logger }) {
    this.#chain = modules.chain
    this.#policy = modules.policy
    this.#chunks = modules.chunks
    this.#swarm = modules.swarm
    this.#keys = modules.keys
    this.#logger = modules.logger
    const kem = mlkemFromX25519Private(this.#keys.encryption.privateKey)
    kem.secretKey.fill(0)
    this.#kemPublic = kem.publicKey
  }

  start(): void {
    this.#chain.on('block', this.#onBlock)
    this.#onBlock()
    this.#policy.start()
  }

  stop(): void {
    this.#policy.stop()
    this.#chain.off('block', this.#onBlock)
  }

  readonly #onBlock = (): void => {
    try {
      this.#publishKem()
      this.#settleGrants()
      this.#autoGrant()
      this.#cleanUp()
    } catch (err) {
      this.#logger.warn('lease duties failed; retried at the next block', { err: errorMessage(err) })
    }
  }

  #org(): string | undefined {
    return this.#chain.orgByKey(this.#keys.signer.publicKey)?.id
  }

  #submit<P>(type: TxType<P>, payload: P): string {
    const signer = this.#keys.signer
    const tx = signTx(signer, { chainId: this.#chain.chainId, type: type.name, nonce: this.#chain.nextNonce(signer.publicKey), payload })
    this.#chain.submit(tx)
    return toHex(tx.id)
  }

  /** Publishes this organization's ML-KEM-768 key when the ledger has none for its current X25519 key. */
  #publishKem(): void {
    const org = this.#org()
    if (org === undefined) return
    const onLedger = getEnvelopeKeys(this.#chain.state, org)
    if (onLedger !== undefined && equalBytes(onLedger.mlkem, this.#kemPublic)) {
      this.#kemPending = undefined
      return
    }
    if (this.#kemPending !== undefined && this.#chain.mempool.size > 0) return
    this.#kemPending = this.#submit(kemKeyTx, { kemKey: this.#kemPublic })
    this.#logger.info('envelope key published', { org })
  }

  /**
   * When this organization's lease ends (expiry in chain time, revocation),
   * the copy it fetched under the lease is deleted, unless it keeps the
   * study by replication duty. Exported files are the user's.
   */
  #cleanUp(): void {
    const org = this.#org()
    if (org === undefined) return
    const now = this.#chain.head().header.time
    for (const l of listLeases(this.#chain.state)) {
      const id = toHex(l.leaseId)
      if (l.requester !== org || l.status === 'requested' || leaseActive(l, now) || this.#cleaned.has(id)) continue
      this.#cleaned.add(id)
      const study = getStudy(this.#chain.state, l.studyId)
      if (study === undefined || this.#swarm.hasDuty(org, study) || this.activeLease(org, study) !== undefined) continue
      void this.#swarm.dropStudy(study).then(
        (n) => {
          if (n > 0) this.#logger.info('lease ended: the copy fetched under it is deleted', { lease: id, study: toHex(study.studyId), objects: n })
        },
        (err: unknown) => {
          this.#cleaned.delete(id)
          this.#logger.warn('lease clean-up failed; retried', { lease: id, err: errorMessage(err) })
        },
      )
    }
  }

  /** The latest lease `orgId` was granted on `study` (active, expired or revoked), if any. */
  latestLease(orgId: string, study: StudyRecord): LeaseRecord | undefined {
    return listLeases(this.#chain.state, study.studyId)
      .filter((l) => l.requester === orgId && (l.status === 'granted' || l.status === 'revoked'))
      .at(-1)
  }

  /** The active lease `orgId` holds on `study` at the head's chain time, if any. */
  activeLease(orgId: string, study: StudyRecord, scope?: 'images' | 'full'): LeaseRecord | undefined {
    return activeLeaseOf(this.#chain, orgId, study, scope)
  }

  #autoGrant(): void {
    const org = this.#org()
    if (org === undefined) return
    for (const l of listLeases(this.#chain.state)) {
      if (l.status !== 'requested' || this.#granting.has(toHex(l.leaseId))) continue
      const study = getStudy(this.#chain.state, l.studyId)
      if (study?.custodian !== org || study.owner === null) continue
      const covered = l.approved || consentCovers(consentFor(this.#chain.state, study.owner, study.studyId), l).ok
      if (!covered) continue
      void this.grant(toHex(l.leaseId)).catch((err: unknown) =>
        this.#logger.warn('automatic grant failed', { lease: toHex(l.leaseId), err: errorMessage(err) }),
      )
    }
  }

  #lease(leaseIdHex: string): { lease: LeaseRecord; study: StudyRecord } {
    if (!/^[0-9a-fA-F]{64}$/.test(leaseIdHex)) throw new LeaseError('LEASE_BAD_ID', 'a lease id is 64 hex digits')
    const lease = getLease(this.#chain.state, Buffer.from(leaseIdHex, 'hex'))
    if (lease === undefined) throw new LeaseError('LEASE_UNKNOWN', `no lease ${leaseIdHex.toLowerCase()} on the ledger`)
    const study = getStudy(this.#chain.state, lease.studyId)
    if (study === undefined) throw new LeaseError('LEASE_STUDY_ERASED', `the study of lease ${leaseIdHex.toLowerCase()} was erased`)
    return { lease, study }
  }

  #asCustodian(study: StudyRecord): void {
    if (study.custodian !== this.#org()) throw new LeaseError('LEASE_NOT_CUSTODIAN', `only the custodian (${study.custodian}) decides on leases of this study`)
  }

  /**
   * Grants a requested lease as custodian: wraps the lease key (images: the
   * data key; full: the study key) to the requester's published envelope
   * keys, stores the envelope beside the study's chunks, and submits the
   * grant. Returns the transaction hash.
   */
  async grant(leaseIdHex: string): Promise<string> {
    const { lease, study } = this.#lease(leaseIdHex)
    this.#asCustodian(study)
    if (lease.status !== 'requested') throw new LeaseError('LEASE_NOT_PENDING', `lease is ${lease.status}, not waiting for a decision`)
    const to = getEnvelopeKeys(this.#chain.state, lease.requester)
    if (to === undefined) throw new LeaseError('LEASE_NO_KEY', `${lease.requester} has not published its envelope key yet; try again shortly`)
    const id = toHex(lease.leaseId)
    this.#granting.add(id)
    try {
      const custodianEnvelope = await this.#swarm.fetchObject(study, study.custodianEnvelope)
      const studyKey = unwrapStudyKey(this.#keys, custodianEnvelope, study.studyId)
      const leaseKey = leaseKeyFor(studyKey, study.studyId, lease.scope)
      studyKey.fill(0)
      const envelope = wrapKey(leaseKey, to, leaseKeyContext(lease.leaseId, lease.scope))
      leaseKey.fill(0)
      const hash = sha256(envelope)
      await this.#chunks.put(hash, envelope)
      try {
        const nonce = this.#chain.nextNonce(this.#keys.signer.publicKey)
        const tx = this.#submit(leaseGrantTx, { leaseId: lease.leaseId, envelope: hash })
        this.#pendingEnvelopes.set(id, { hash, nonce })
        this.#logger.info('lease granted', { lease: id, study: toHex(study.studyId), requester: lease.requester, scope: lease.scope })
        return tx
      } catch (err) {
        // The grant never left this node: its envelope goes too.
        await this.#chunks.delete(hash).catch(() => false)
        throw err
      }
    } catch (err) {
      this.#granting.delete(id)
      throw err
    }
  }

  /**
   * Settles the grants this node submitted: a grant that is final keeps its
   * envelope; one that can no longer be (the lease was decided otherwise, or
   * this organization's nonce moved past the grant's without it: the ledger
   * refused it) has its envelope deleted, and the lease may be granted again.
   */
  #settleGrants(): void {
    const nonce = getNonce(this.#chain.state, this.#keys.signer.publicKey)
    for (const [id, p] of this.#pendingEnvelopes) {
      const lease = getLease(this.#chain.state, Buffer.from(id, 'hex'))
      if (lease?.status === 'granted' && lease.envelope !== null && equalBytes(lease.envelope, p.hash)) {
        this.#pendingEnvelopes.delete(id)
        continue
      }
      if (lease !== undefined && lease.status === 'requested' && nonce <= p.nonce) continue
      this.#pendingEnvelopes.delete(id)
      this.#granting.delete(id)
      void this.#chunks.delete(p.hash).then(
        (gone) => {
          if (gone) this.#logger.info('grant not made: its envelope is deleted', { lease: id, status: lease?.status ?? 'unknown' })
        },
        (err: unknown) => this.#logger.warn('could not delete the envelope of a grant not made', { lease: id, err: errorMessage(err) }),
      )
    }
  }

  /**
   * Asks for a lease on a study kept by another organization; returns the
   * request transaction's hash, which is the lease id.
   */
  request(studyIdHex: string, opts: { scope: string; durationMs: number; purpose: string }): string {
    const org = this.#org()
    if (org === undefined) throw new LeaseError('LEASE_NOT_ADMITTED', "this node's organization is not admitted")
    if (!/^[0-9a-fA-F]{32}$/.test(studyIdHex)) throw new StudyServiceError('STUDY_BAD_ID', 'a study id is 32 hex digits')
    const studyId = Buffer.from(studyIdHex, 'hex')
    if (isErased(this.#chain.state, studyId)) throw new StudyServiceError('STUDY_ERASED', `study ${studyIdHex.toLowerCase()} was erased`)
    const study = getStudy(this.#chain.state, studyId)
    if (study === undefined) throw new StudyServiceError('STUDY_UNKNOWN', `no study ${studyIdHex.toLowerCase()} is registered on the ledger`)
    if (study.custodian === org) throw new LeaseError('LEASE_OWN_STUDY', 'this organization keeps the study: it needs no lease')
    if (opts.scope !== 'images' && opts.scope !== 'full') throw new LeaseError('LEASE_BAD_SCOPE', 'scope must be images or full')
    if (!Number.isInteger(opts.durationMs) || opts.durationMs < MIN_LEASE_MS || opts.durationMs > MAX_LEASE_MS) {
      throw new LeaseError('LEASE_BAD_DURATION', `duration must be between ${MIN_LEASE_MS / 60_000} minute(s) and ${MAX_LEASE_MS / 86_400_000} days`)
    }
    if (Buffer.byteLength(opts.purpose) > MAX_PURPOSE_BYTES) throw new LeaseError('LEASE_BAD_PURPOSE', `purpose longer than ${MAX_PURPOSE_BYTES} bytes`)
    return this.#submit(leaseRequestTx, { studyId, scope: opts.scope, durationMs: opts.durationMs, purpose: opts.purpose })
  }

  /** Leases (status `expired` once past the expiry in chain time): incoming (on this organization's studies), outgoing (its own), or all. */
  list(direction?: 'incoming' | 'outgoing'): LeaseView[] {
    const org = this.#org()
    const now = this.#chain.head().header.time
    return listLeases(this.#chain.state)
      .filter((l) => {
        if (direction === 'outgoing') return l.requester === org
        if (direction === 'incoming') return getStudy(this.#chain.state, l.studyId)?.custodian === org
        return true
      })
      .map((l) => ({ ...leaseToJSON(l, now), custodian: getStudy(this.#chain.state, l.studyId)?.custodian ?? null }))
  }

  /** Records a key unwrap or a completed retrieval under this organization's lease (an `access.record` transaction). */
  recordAccess(lease: LeaseRecord, what: 'unwrap' | 'retrieve'): string {
    return this.#submit(accessTx, { leaseId: lease.leaseId, what })
  }

  /** Denies a requested lease (custodian). */
  deny(leaseIdHex: string, reason: string): string {
    const { lease, study } = this.#lease(leaseIdHex)
    this.#asCustodian(study)
    if (lease.status !== 'requested') throw new LeaseError('LEASE_NOT_PENDING', `lease is ${lease.status}, not waiting for a decision`)
    return this.#submit(leaseDenyTx, { leaseId: lease.leaseId, reason })
  }

  /** Revokes a granted lease (custodian). */
  revoke(leaseIdHex: string): string {
    const { lease, study } = this.#lease(leaseIdHex)
    this.#asCustodian(study)
    if (!leaseActive(lease, this.#chain.head().header.time))
      throw new LeaseError('LEASE_NOT_ACTIVE', `lease is ${lease.status === 'granted' ? 'expired' : lease.status}`)
    return this.#submit(leaseRevokeTx, { leaseId: lease.leaseId })
  }
}
