import { randomBytes } from 'node:crypto'
import {
  blockTimeAt,
  claimWindowMs,
  getLease,
  getStudy,
  leaseActive,
  leaseEndedBy,
  type BlockHeader,
  type LeaseRecord,
  type OrgRecord,
  type ServedClaim,
  type StudyRecord,
  type ViolationPayload,
} from '../chain/index.js'
import { DOMAIN, signingBytes, verifyEd25519 } from '../crypto/index.js'
import {
  CHUNK_PROTOCOLS,
  LEASE_CLAIM_SIGNED_BYTES,
  SwarmError,
  decodeChunkRequest,
  type LeaseClaim,
  decodeObjectRequest,
  decodeStudyRequest,
  encodeHave,
  encodeList,
  haveResponseBytes,
  listResponseBytes,
  type P2PNode,
} from '../p2p/index.js'
import type { StudyIndex } from '../storage/index.js'
import { equalBytes, toHex, type Logger } from '../util/index.js'
import { chunkTrafficHeap } from './heap.js'
import type { ChainService } from './chain-service.js'
import type { SwarmLocal } from './swarm-local.js'
import type { SwarmPlacement } from './swarm-placement.js'
import type { SwarmOpts } from './swarm.js'

/** Largest object (key envelope, demographics record) served or fetched. */
export const MAX_OBJECT_BYTES = 16 * 1024 * 1024

/** Claims naming a block this many heights beyond the holder's head are still served (the holder lags a little). */
export const CLAIM_MAX_BLOCKS_AHEAD = 2

/** What the serving side asks of the leases about a lessee (an organization with no replication duty for the study). */
export interface SwarmLeasePolicy {
  /** Puts evidence of a request under an ended lease on the ledger (once the block it names is here, and if it was made at or after the end). */
  reportViolation(v: ViolationPayload): void
  /** Whether lessee `orgId` may fetch object `hash` of `study` (its own envelope, and the demographics record with the full scope). */
  objectAllowed(orgId: string, study: StudyRecord, hash: Uint8Array): boolean
  /** Counts a chunk served to the lessee under `lease`, with its signed claim, at head time `now` (for the holder's served summary). */
  servedChunk(lease: LeaseRecord, index: number, bytes: number, claim: ServedClaim, now: number): void
  /** Counts an object (envelope, demographics) served to lessee `orgId` at head time `now`. */
  servedObject(orgId: string, study: StudyRecord, hash: Uint8Array, now: number): void
}

/**
 * The serving policy of the chunk exchange: any admitted organization may
 * ask what this node holds of a study and its chunk list; chunks and objects
 * go to organizations with a replication duty, or to a lessee under an
 * active lease (judged in chain time; a request under an ended lease is
 * reported as a violation); everyone else is refused with a code that says why.
 */
export class SwarmServePolicy {
  readonly #opts: Pick<SwarmOpts, 'testServeDelayMs' | 'testServeGarbage'>
  readonly #chain: ChainService
  readonly #index: StudyIndex
  readonly #logger: Logger
  readonly #local: SwarmLocal
  readonly #placement: SwarmPlacement
  readonly #leases: SwarmLeasePolicy
  /** This node's signing key: the holder a lessee's claim must name. */
  readonly #self: Uint8Array

  constructor(
    opts: Pick<SwarmOpts, 'testServeDelayMs' | 'testServeGarbage'>,
    modules: {
      chain: ChainService
      index: StudyIndex
      p2p: P2PNode
      logger: Logger
      local: SwarmLocal
      placement: SwarmPlacement
      leases: SwarmLeasePolicy
    },
  ) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#index = modules.index
    this.#logger = modules.logger
    this.#local = modules.local
    this.#placement = modules.placement
    this.#leases = modules.leases
    this.#self = modules.p2p.publicKey
    const chunkMax = this.#chain.params().chunkSize + 64
    const p2p = modules.p2p
    const chain = this.#chain
    // The have and list answers are bounded by the largest study the ledger
    // admits (maxStudyChunks), read at every answer: a vote may raise it
    // (never lower it), and every registered study fits the bound in force.
    p2p.handle(CHUNK_PROTOCOLS.have, {
      maxRequestBytes: 16,
      get maxResponseBytes(): number {
        return haveResponseBytes(chain.params().maxStudyChunks)
      },
      timeoutMs: 10_000,
      handler: (from, req) => this.#serveHave(from, req),
    })
    p2p.handle(CHUNK_PROTOCOLS.list, {
      maxRequestBytes: 16,
      get maxResponseBytes(): number {
        return listResponseBytes(chain.params().maxStudyChunks)
      },
      timeoutMs: 10_000,
      handler: (from, req) => this.#serveList(from, req),
    })
    // Chunks go over one long-lived stream per peer (pipelined): a fresh stream per chunk cost more than the chunk.
    p2p.handlePipe(CHUNK_PROTOCOLS.get, {
      maxRequestBytes: LEASE_CLAIM_SIGNED_BYTES + 64,
      maxResponseBytes: chunkMax,
      timeoutMs: 30_000,
      concurrency: 4,
      handler: (from, req) => this.#serveChunk(from, req),
    })
    p2p.handle(CHUNK_PROTOCOLS.object, {
      maxRequestBytes: 48,
      maxResponseBytes: MAX_OBJECT_BYTES,
      timeoutMs: 30_000,
      handler: (from, req) => this.#serveObject(from, req),
    })
  }

  #study(studyId: Uint8Array): StudyRecord {
    const r = getStudy(this.#chain.state, studyId)
    if (r === undefined) throw new SwarmError('SWARM_UNKNOWN_STUDY', 'no such study on the ledger')
    return r
  }

  #peerOrg(from: Uint8Array): OrgRecord {
    const o = this.#chain.orgByKey(from)
    if (o === undefined) throw new SwarmError('SWARM_NOT_ALLOWED', 'not an admitted organization')
    return o
  }

  // A study this node holds nothing of is answered SWARM_NOT_HELD before anything per chunk is built.
  async #serveHave(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    this.#peerOrg(from)
    const have = await this.#local.localHave(this.#study(decodeStudyRequest(req)))
    if (have === undefined) throw new SwarmError('SWARM_NOT_HELD', 'nothing of this study is held here')
    return encodeHave(have)
  }

  async #serveList(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    this.#peerOrg(from)
    const study = this.#study(decodeStudyRequest(req))
    const list = await this.#index.chunkList(study.studyId)
    if (list === undefined || list.length !== study.chunkCount) throw new SwarmError('SWARM_NOT_HELD', 'chunk list not held')
    return encodeList(list)
  }

  async #serveChunk(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const { studyId, index, claim } = decodeChunkRequest(req)
    const study = this.#study(studyId)
    const org = this.#peerOrg(from)
    let lessee: { lease: LeaseRecord; claim: LeaseClaim; now: number } | undefined
    if (!this.#placement.hasDuty(org.id, study)) {
      // Not a holder: only a lessee, with its signed claim, judged in chain time.
      if (claim === undefined) {
        this.#logger.info('chunk request refused', { study: toHex(studyId), org: org.id, reason: 'no replication duty or lease' })
        throw new SwarmError('SWARM_NOT_ALLOWED', 'no replication duty or lease for this study')
      }
      if (!verifyEd25519(org.signKey, signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, claim.signed), claim.signature)) {
        throw new SwarmError('SWARM_BAD_REQUEST', 'lease claim signature does not verify', { penalize: true })
      }
      if (!equalBytes(claim.holder, this.#self)) throw new SwarmError('SWARM_BAD_REQUEST', 'the lease claim is for another holder', { penalize: true })
      const lease = getLease(this.#chain.state, claim.leaseId)
      if (lease === undefined || lease.requester !== org.id || !equalBytes(lease.studyId, studyId))
        throw new SwarmError('SWARM_NOT_ALLOWED', 'not a lease of this organization on this study')
      const head = this.#chain.head().header
      if (!leaseActive(lease, head.time)) {
        this.#logger.warn('chunk request under an ended lease refused', { study: toHex(studyId), org: org.id, lease: toHex(lease.leaseId) })
        // Judged on the block the claim names, whatever time it states: provable by every node from the ledger's block times.
        // A block just beyond this node's head (it lags) is judged by the lease policy once it is here.
        const named = claim.height <= head.height ? blockTimeAt(this.#chain.state, claim.height) : undefined
        const ahead = claim.height > head.height && claim.height <= head.height + CLAIM_MAX_BLOCKS_AHEAD
        if ((named !== undefined && leaseEndedBy(lease, named)) || ahead) {
          this.#leases.reportViolation({
            requester: org.id,
            studyId,
            index,
            leaseId: lease.leaseId,
            time: claim.time,
            height: claim.height,
            holder: claim.holder,
            signature: claim.signature,
          })
        }
        throw new SwarmError('SWARM_LEASE_ENDED', 'the lease has ended (expired or revoked)')
      }
      this.#checkClaimTime(claim, head)
      lessee = { lease, claim, now: head.time }
    }
    if (index >= study.chunkCount) throw new SwarmError('SWARM_BAD_REQUEST', 'chunk index out of range', { penalize: true })
    chunkTrafficHeap.touch()
    const id = await this.#index.chunkIdAt(studyId, index)
    if (id === undefined) throw new SwarmError('SWARM_NOT_HELD', 'chunk not held')
    // Served without hashing it again: the reader checks every chunk against its id (and penalizes a
    // mismatch), and the periodic scrub finds rot at rest. Hashing here cost about a fifth of a holder's CPU.
    const b = await this.#local.read(id, study, { verify: false })
    if (b === undefined) throw new SwarmError('SWARM_NOT_HELD', 'chunk not held')
    if ((this.#opts.testServeDelayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, this.#opts.testServeDelayMs))
    if (lessee !== undefined) {
      const c = lessee.claim
      this.#leases.servedChunk(lessee.lease, index, b.length, { index, time: c.time, height: c.height, signature: c.signature }, lessee.now)
    }
    if (this.#opts.testServeGarbage === true) return new Uint8Array(randomBytes(b.length))
    return b
  }

  /**
   * A lessee's claim is judged against this node's head: its time within
   * claimWindowMs of the head's time (the chain's clock drift plus one
   * heartbeat), and the block it names either one this node has, made at
   * exactly the claimed time, or at most CLAIM_MAX_BLOCKS_AHEAD beyond the
   * head (this node lags) with a later time. A claim out of step is
   * refused as stale without penalty (either side may lag); one whose time
   * contradicts the block it names is malformed.
   */
  #checkClaimTime(claim: LeaseClaim, head: BlockHeader): void {
    const w = claimWindowMs(this.#chain.params())
    if (Math.abs(claim.time - head.time) > w) {
      throw new SwarmError('SWARM_CLAIM_STALE', `the lease claim's chain time is more than ${w} ms from this holder's head time`)
    }
    if (claim.height <= head.height) {
      const named = blockTimeAt(this.#chain.state, claim.height)
      if (named === undefined) throw new SwarmError('SWARM_CLAIM_STALE', 'the lease claim names a block too old to judge')
      if (named !== claim.time) throw new SwarmError('SWARM_BAD_REQUEST', 'the lease claim states another time than the block it names', { penalize: true })
      return
    }
    if (claim.height > head.height + CLAIM_MAX_BLOCKS_AHEAD)
      throw new SwarmError('SWARM_CLAIM_STALE', 'the lease claim names a block this holder does not have yet')
    if (claim.time <= head.time) throw new SwarmError('SWARM_BAD_REQUEST', 'the lease claim names a later block with an earlier time', { penalize: true })
  }

  async #serveObject(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const { studyId, hash } = decodeObjectRequest(req)
    const study = this.#study(studyId)
    const org = this.#peerOrg(from)
    if (!this.#local.objectsOf(study).some((h) => equalBytes(h, hash))) throw new SwarmError('SWARM_NOT_HELD', 'not an object of this study')
    // Holders keep every object; a lessee gets only its own envelope (and, with the full scope, the demographics record).
    if (!this.#placement.hasDuty(org.id, study) && !this.#leases.objectAllowed(org.id, study, hash)) {
      throw new SwarmError('SWARM_NOT_ALLOWED', 'this object is not for this organization')
    }
    const b = await this.#local.read(hash, study)
    if (b === undefined) throw new SwarmError('SWARM_NOT_HELD', 'object not held')
    if (!this.#placement.hasDuty(org.id, study)) this.#leases.servedObject(org.id, study, hash, this.#chain.head().header.time)
    return b
  }
}
