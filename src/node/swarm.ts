import { randomBytes } from 'node:crypto'
import {
  getLease, leaseActive, leaseGrantTx, leaseOpenAt, listErased, listLeases, type LeaseRecord, type ViolationPayload, listStudies, getStudy, placementOrder, type Block, type LeaseGrantPayload, type OrgRecord, type StudyRecord,
} from '../chain/index.js'
import { DOMAIN, sha256, signingBytes, verifyEd25519, type OrgKeys } from '../crypto/index.js'
import {
  Bitfield, CHUNK_PROTOCOLS, SwarmError, decodeChunkRequest, decodeHave, decodeList, decodeObjectRequest, decodeStudyRequest, downloadChunks,
  LEASE_CLAIM_SIGNED_BYTES, encodeChunkRequest, encodeLeaseChunkRequest, encodeHave, encodeList, encodeObjectRequest, encodeStudyRequest, type ChunkPeer, type DownloadProgress, type HaveInfo, type P2PNode,
} from '../p2p/index.js'
import { ChunkStoreError, type ChunkStore, type StudyIndex } from '../storage/index.js'
import { contentRoot } from '../study/index.js'
import { equalBytes, errorMessage, toHex, type Logger } from '../util/index.js'
import { chunkTrafficHeap } from './heap.js'
import type { ChainService } from './chain-service.js'

/** Swarm settings (config `swarm`). */
export interface SwarmOpts {
  /** A holder unreachable for this long is replaced by the next organization in placement order. */
  readonly repairAfterMs: number
  /** How often this node checks which studies it should hold. */
  readonly reconcileMs: number
  /** How often a slice of the local chunks is read back and verified (0: never). */
  readonly scrubIntervalMs: number
  /** Bytes verified per scrub tick. */
  readonly scrubBytes: number
  /** Bytes in flight of a user's fetch; replication and repair use a quarter, so they never starve it. */
  readonly maxInFlightBytes: number
  /** Fault injection (devnet tests only): delay before each chunk served, and random bytes instead of chunks. */
  readonly testServeDelayMs?: number
  readonly testServeGarbage?: boolean
  readonly testNoPull?: boolean
}

/** Defaults of {@link SwarmOpts}. */
export const DEFAULT_SWARM_OPTS: SwarmOpts = {
  repairAfterMs: 5 * 60_000,
  reconcileMs: 2_000,
  scrubIntervalMs: 60_000,
  scrubBytes: 64 * 1024 * 1024,
  maxInFlightBytes: 64 * 1024 * 1024,
}

/** A transfer in progress, for `swarm status`. */
export interface TransferView {
  readonly studyId: string
  readonly kind: 'replicate' | 'fetch'
  readonly done: number
  readonly total: number
  readonly bytes: number
  readonly peers: number
  readonly startedAt: number
}

/** What is known of a study's replicas. */
export interface ReplicationView {
  /** Organizations that hold a verified full copy (chunks, list and objects), this one included. */
  readonly holders: string[]
  /** Organizations the placement assigns (first k, or their replacements for holders down too long). */
  readonly assigned: string[]
  /** Replicas wanted: the replication factor, or fewer when fewer organizations are admitted. */
  readonly target: number
  readonly state: 'healthy' | 'under-replicated'
  /** Organizations that did not answer. */
  readonly unreachable: string[]
}

const HAVE_TIMEOUT_MS = 3_000
const MAX_OBJECT_BYTES = 16 * 1024 * 1024

/**
 * The swarm: keeps each study on the organizations placement assigns
 * (chain/placement.ts), pulls what this node is assigned, serves chunks to
 * peers that have a duty (or, later, a lease), repairs lost or corrupt
 * copies, and fetches a study for a local reader from every holder at once.
 */
export class SwarmService {
  readonly #opts: SwarmOpts
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #index: StudyIndex
  readonly #p2p: P2PNode
  readonly #keys: OrgKeys
  readonly #logger: Logger
  readonly #startedAt = Date.now()
  /** Organization key (hex) -> since when it is disconnected (absent: connected). */
  readonly #downSince = new Map<string, number>()
  /** Studies (hex) known to be complete here; dropped when a chunk turns out corrupt. */
  readonly #complete = new Set<string>()
  readonly #queue: string[] = []
  readonly #queued = new Set<string>()
  /** Erased studies already deleted here. */
  readonly #erased = new Set<string>()
  readonly #transfers = new Map<string, TransferView>()
  /** The download running for each study (hex). */
  readonly #active = new Map<string, { kind: 'fetch' | 'replicate'; ac: AbortController; done: Promise<Uint8Array[]> }>()
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #scrubTimer: NodeJS.Timeout | undefined
  #working = false
  #scrubCursor = 0
  /** Evidence of a request under an ended lease, to put on the ledger; the leases service fills it in. */
  onLeaseViolation: (v: ViolationPayload) => void = () => undefined
  /** Which objects a lessee may fetch (its own envelope, the demographics with the full scope); the leases service fills it in. */
  leaseObjectAllows: (orgId: string, study: StudyRecord, hash: Uint8Array) => boolean = () => false

  constructor(opts: Partial<SwarmOpts>, modules: { chain: ChainService; chunks: ChunkStore; index: StudyIndex; p2p: P2PNode; keys: OrgKeys; logger: Logger }) {
    this.#opts = { ...DEFAULT_SWARM_OPTS, ...opts }
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#index = modules.index
    this.#p2p = modules.p2p
    this.#keys = modules.keys
    this.#logger = modules.logger
    const chunkMax = this.#chain.params().chunkSize + 64
    const p2p = this.#p2p
    p2p.handle(CHUNK_PROTOCOLS.have, { maxRequestBytes: 16, maxResponseBytes: 5 + Math.ceil(0xffffffff / 8), timeoutMs: 10_000, handler: (from, req) => this.#serveHave(from, req) })
    p2p.handle(CHUNK_PROTOCOLS.list, { maxRequestBytes: 16, maxResponseBytes: 32 * 4 * 1024 * 1024, timeoutMs: 10_000, handler: (from, req) => this.#serveList(from, req) })
    // Chunks go over one long-lived stream per peer (pipelined): a fresh stream per chunk cost more than the chunk.
    p2p.handlePipe(CHUNK_PROTOCOLS.get, { maxRequestBytes: LEASE_CLAIM_SIGNED_BYTES + 64, maxResponseBytes: chunkMax, timeoutMs: 30_000, concurrency: 4, handler: (from, req) => this.#serveChunk(from, req) })
    p2p.handle(CHUNK_PROTOCOLS.object, { maxRequestBytes: 48, maxResponseBytes: MAX_OBJECT_BYTES, timeoutMs: 30_000, handler: (from, req) => this.#serveObject(from, req) })
    p2p.on('peer:connect', (key) => this.#downSince.delete(toHex(key)))
    p2p.on('peer:disconnect', (key) => {
      const hex = toHex(key)
      if (!p2p.peers().some((p) => toHex(p.publicKey) === hex)) this.#downSince.set(hex, Date.now())
    })
  }

  /** Starts the reconcile and scrub loops. */
  start(): void {
    this.#chain.on('block', this.#onBlock)
    const tick = (): void => {
      this.#reconcile()
      this.#timer = setTimeout(tick, this.#opts.reconcileMs)
    }
    this.#timer = setTimeout(tick, Math.min(500, this.#opts.reconcileMs))
    if (this.#opts.scrubIntervalMs > 0) {
      const scrub = (): void => {
        void this.#scrub().catch((err: unknown) => this.#logger.warn('scrub failed', { err: errorMessage(err) })).finally(() => {
          if (!this.#abort.signal.aborted) this.#scrubTimer = setTimeout(scrub, this.#opts.scrubIntervalMs)
        })
      }
      this.#scrubTimer = setTimeout(scrub, this.#opts.scrubIntervalMs)
    }
  }

  /** Stops the loops and every transfer. */
  stop(): void {
    this.#chain.off('block', this.#onBlock)
    this.#abort.abort()
    clearTimeout(this.#timer)
    clearTimeout(this.#scrubTimer)
  }

  readonly #onBlock = (b?: Block): void => {
    // A grant adds a lease envelope to its study's objects: holders fetch it too.
    for (const tx of b?.txs ?? []) {
      if (tx.type !== leaseGrantTx.name) continue
      const lease = getLease(this.#chain.state, (tx.payload as LeaseGrantPayload).leaseId)
      if (lease !== undefined) this.#complete.delete(toHex(lease.studyId))
    }
    // New registrations are pulled without waiting for the next tick.
    if (!this.#working) this.#reconcile()
  }

  #selfOrg(): OrgRecord | undefined {
    return this.#chain.orgByKey(this.#keys.signer.publicKey)
  }

  /** Whether this node considers organization `org` gone long enough to be replaced. */
  #isDown(org: OrgRecord, connected: ReadonlySet<string> = this.#connectedKeys()): boolean {
    if (equalBytes(org.signKey, this.#keys.signer.publicKey)) return false
    const hex = toHex(org.signKey)
    if (connected.has(hex)) return false
    const since = this.#downSince.get(hex) ?? this.#startedAt
    return Date.now() - since > this.#opts.repairAfterMs
  }

  /** Hex keys of the connected peers. */
  #connectedKeys(): Set<string> {
    return new Set(this.#p2p.peers().map((p) => toHex(p.publicKey)))
  }

  /** Placement for a study: the nominal holders and, from this node's view, who holds it now that some may be down. */
  placement(study: StudyRecord): { order: string[]; nominal: string[]; assigned: string[]; target: number } {
    const orgs = this.#chain.orgs()
    const ids = orgs.map((o) => o.id)
    const k = this.#chain.params().replicationFactor
    const order = placementOrder(study.studyId, study.custodian, ids)
    // holdersOf's definition (the first k of the order), without hashing again.
    const nominal = order.slice(0, Math.max(1, k))
    const byId = new Map(orgs.map((o) => [o.id, o]))
    const connected = this.#connectedKeys()
    const assigned = order.filter((id) => {
      const o = byId.get(id)
      return o !== undefined && !this.#isDown(o, connected)
    }).slice(0, k)
    return { order, nominal, assigned, target: Math.min(k, order.length) }
  }

  /** Whether organization `orgId` keeps a copy of the study by duty (custodian, nominal holder or replacement). */
  hasDuty(orgId: string, study: StudyRecord): boolean {
    const p = this.placement(study)
    return orgId === study.custodian || p.nominal.includes(orgId) || p.assigned.includes(orgId)
  }

  /** Replication duty: the custodian, the nominal holders and their replacements. */
  #hasDuty(peerOrg: OrgRecord, study: StudyRecord): boolean {
    const p = this.placement(study)
    return peerOrg.id === study.custodian || p.nominal.includes(peerOrg.id) || p.assigned.includes(peerOrg.id)
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

  /** What this node holds of a study. */
  async localHave(study: StudyRecord): Promise<HaveInfo> {
    const list = await this.#index.chunkList(study.studyId)
    const chunks = new Bitfield(study.chunkCount)
    if (list !== undefined) for (let i = 0; i < list.length; i++) if (await this.#chunks.has(list[i] as Uint8Array)) chunks.set(i)
    let objects = true
    for (const h of this.#objectsOf(study)) if (!(await this.#chunks.has(h))) objects = false
    return { chunks, list: list !== undefined, objects }
  }

  /** The study's small objects: key envelopes (custodian, owner, granted leases) and the demographics record. */
  #objectsOf(study: StudyRecord): Uint8Array[] {
    const leases = listLeases(this.#chain.state, study.studyId).flatMap((l) => (l.envelope === null ? [] : [l.envelope]))
    return [study.custodianEnvelope, ...(study.ownerEnvelope === null ? [] : [study.ownerEnvelope]), study.demographics, ...leases]
  }

  async #serveHave(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    this.#peerOrg(from)
    return encodeHave(await this.localHave(this.#study(decodeStudyRequest(req))))
  }

  async #serveList(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    this.#peerOrg(from)
    const study = this.#study(decodeStudyRequest(req))
    const list = await this.#index.chunkList(study.studyId)
    if (list === undefined) throw new SwarmError('SWARM_NOT_HELD', 'chunk list not held')
    return encodeList(list)
  }

  async #serveChunk(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const { studyId, index, claim } = decodeChunkRequest(req)
    const study = this.#study(studyId)
    const org = this.#peerOrg(from)
    if (!this.#hasDuty(org, study)) {
      // Not a holder: only a lessee, with its signed claim, judged in chain time.
      if (claim === undefined) {
        this.#logger.info('chunk request refused', { study: toHex(studyId), org: org.id, reason: 'no replication duty or lease' })
        throw new SwarmError('SWARM_NOT_ALLOWED', 'no replication duty or lease for this study')
      }
      if (!verifyEd25519(org.signKey, signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, claim.signed), claim.signature)) {
        throw new SwarmError('SWARM_BAD_REQUEST', 'lease claim signature does not verify', { penalize: true })
      }
      const lease = getLease(this.#chain.state, claim.leaseId)
      if (lease === undefined || lease.requester !== org.id || !equalBytes(lease.studyId, studyId)) throw new SwarmError('SWARM_NOT_ALLOWED', 'not a lease of this organization on this study')
      if (!leaseActive(lease, this.#chain.head().header.time)) {
        this.#logger.warn('chunk request under an ended lease refused', { study: toHex(studyId), org: org.id, lease: toHex(lease.leaseId) })
        if (!leaseOpenAt(lease, claim.time)) this.onLeaseViolation({ requester: org.id, studyId, index, leaseId: lease.leaseId, time: claim.time, signature: claim.signature })
        throw new SwarmError('SWARM_LEASE_ENDED', 'the lease has ended (expired or revoked)')
      }
    }
    if (index >= study.chunkCount) throw new SwarmError('SWARM_BAD_REQUEST', 'chunk index out of range', { penalize: true })
    chunkTrafficHeap.touch()
    const id = await this.#index.chunkIdAt(studyId, index)
    if (id === undefined) throw new SwarmError('SWARM_NOT_HELD', 'chunk not held')
    const b = await this.#read(id, study)
    if (b === undefined) throw new SwarmError('SWARM_NOT_HELD', 'chunk not held')
    if ((this.#opts.testServeDelayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, this.#opts.testServeDelayMs))
    if (this.#opts.testServeGarbage === true) return new Uint8Array(randomBytes(b.length))
    return b
  }

  async #serveObject(from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const { studyId, hash } = decodeObjectRequest(req)
    const study = this.#study(studyId)
    const org = this.#peerOrg(from)
    if (!this.#objectsOf(study).some((h) => equalBytes(h, hash))) throw new SwarmError('SWARM_NOT_HELD', 'not an object of this study')
    // Holders keep every object; a lessee gets only its own envelope (and, with the full scope, the demographics record).
    if (!this.#hasDuty(org, study) && !this.leaseObjectAllows(org.id, study, hash)) {
      throw new SwarmError('SWARM_NOT_ALLOWED', 'this object is not for this organization')
    }
    const b = await this.#read(hash, study)
    if (b === undefined) throw new SwarmError('SWARM_NOT_HELD', 'object not held')
    return b
  }

  /** Reads a stored chunk or object; a corrupt one is dropped (by the store) and the study marked for repair. */
  async #read(id: Uint8Array, study: StudyRecord): Promise<Uint8Array | undefined> {
    try {
      return await this.#chunks.get(id)
    } catch (err) {
      if (err instanceof ChunkStoreError && err.code === 'CHUNK_CORRUPT') {
        this.#logger.warn('corrupt chunk dropped; the study will be repaired', { study: toHex(study.studyId), chunk: toHex(id) })
        this.#complete.delete(toHex(study.studyId))
        return undefined
      }
      throw err
    }
  }

  /** Connected admitted peers in the study's placement order first. */
  #peersFor(study: StudyRecord): ChunkPeer[] {
    const order = placementOrder(study.studyId, study.custodian, this.#chain.orgs().map((o) => o.id))
    const rank = new Map(order.map((id, i) => [id, i]))
    return this.#p2p.peers()
      .map((p) => ({ p, org: this.#chain.orgByKey(p.publicKey) }))
      .filter((x) => x.org !== undefined)
      .sort((a, b) => (rank.get(a.org?.id ?? '') ?? 1e9) - (rank.get(b.org?.id ?? '') ?? 1e9))
      .map((x) => ({ key: x.p.publicKey, id: toHex(x.p.publicKey) }))
  }

  async #have(peer: Uint8Array, study: StudyRecord, signal: AbortSignal): Promise<HaveInfo> {
    const res = await this.#p2p.request(CHUNK_PROTOCOLS.have, peer, encodeStudyRequest(study.studyId), { signal, timeoutMs: HAVE_TIMEOUT_MS })
    return decodeHave(res, study.chunkCount)
  }

  /** The chunk list, from the local index or from a peer (checked against the content root). */
  async #ensureList(study: StudyRecord, signal: AbortSignal): Promise<Uint8Array[]> {
    const local = await this.#index.chunkList(study.studyId)
    if (local !== undefined) return local
    for (const peer of this.#peersFor(study)) {
      try {
        const res = await this.#p2p.request(CHUNK_PROTOCOLS.list, peer.key, encodeStudyRequest(study.studyId), { signal, timeoutMs: 10_000 })
        const list = decodeList(res, study.chunkCount)
        if (!equalBytes(contentRoot(list), study.contentRoot)) {
          this.#p2p.penalize(peer.key, 25, 'chunk list does not match the content root')
          continue
        }
        await this.#index.putChunkList(study.studyId, list)
        return list
      } catch (err) {
        if (signal.aborted) throw err
        this.#logger.debug('chunk list not fetched', { peer: peer.id, err: errorMessage(err) })
      }
    }
    throw new SwarmError('SWARM_UNAVAILABLE', `no reachable peer has the chunk list of study ${toHex(study.studyId)}`)
  }

  /** Fetches one object (key envelope, demographics) from a peer holding it, checked against its hash. */
  async fetchObject(study: StudyRecord, hash: Uint8Array, signal: AbortSignal = this.#abort.signal): Promise<Uint8Array> {
    const local = await this.#read(hash, study)
    if (local !== undefined) return local
    for (const peer of this.#peersFor(study)) {
      try {
        const b = await this.#p2p.request(CHUNK_PROTOCOLS.object, peer.key, encodeObjectRequest(study.studyId, hash), { signal, timeoutMs: 10_000, maxResponseBytes: MAX_OBJECT_BYTES })
        if (!equalBytes(sha256(b), hash)) {
          this.#p2p.penalize(peer.key, 25, 'object does not match its hash')
          continue
        }
        await this.#chunks.put(hash, b)
        return b
      } catch (err) {
        if (signal.aborted) throw err
        this.#logger.debug('object not fetched', { peer: peer.id, err: errorMessage(err) })
      }
    }
    throw new SwarmError('SWARM_UNAVAILABLE', `no reachable peer gave object ${toHex(hash)} of study ${toHex(study.studyId)}`)
  }

  /**
   * Makes the study's chunks (and its chunk list) present here, fetching
   * what is missing from every peer holding it. `kind` 'fetch' (a reader
   * waiting) uses the whole in-flight budget, 'replicate' a quarter.
   */
  async fetchChunks(study: StudyRecord, opts: { kind: 'fetch' | 'replicate'; lease?: LeaseRecord; signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void }): Promise<Uint8Array[]> {
    // One download per study: a reader's fetch takes over a replication in
    // progress (what it stored stays), and anything else waits for the one running.
    const sid = toHex(study.studyId)
    for (;;) {
      const running = this.#active.get(sid)
      if (running === undefined) break
      if (opts.kind === 'fetch' && running.kind === 'replicate') running.ac.abort(new SwarmError('SWARM_UNAVAILABLE', 'a reader took over the transfer'))
      await running.done.catch(() => undefined)
    }
    const mine = new AbortController()
    const run = this.#fetchChunksLinked(study, opts, mine.signal)
    const entry = { kind: opts.kind, ac: mine, done: run }
    this.#active.set(sid, entry)
    try {
      return await run
    } finally {
      if (this.#active.get(sid) === entry) this.#active.delete(sid)
    }
  }

  async #fetchChunksLinked(study: StudyRecord, opts: { kind: 'fetch' | 'replicate'; lease?: LeaseRecord; signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void }, own: AbortSignal): Promise<Uint8Array[]> {
    // Both the caller's signal and this service's stop end the transfer (plain listeners, see docs/ARCHITECTURE.md "Platform pitfalls").
    const ac = new AbortController()
    const stop = (): void => ac.abort(new SwarmError('SWARM_UNAVAILABLE', 'transfer stopped'))
    const signals = [opts.signal, this.#abort.signal, own]
    for (const s of signals) {
      if (s?.aborted === true) stop()
      else s?.addEventListener('abort', stop, { once: true })
    }
    try {
      return await this.#fetchChunks(study, opts, ac.signal)
    } finally {
      for (const s of signals) s?.removeEventListener('abort', stop)
    }
  }

  async #fetchChunks(study: StudyRecord, opts: { kind: 'fetch' | 'replicate'; lease?: LeaseRecord; onProgress?: (p: DownloadProgress) => void }, signal: AbortSignal): Promise<Uint8Array[]> {
    const list = await this.#ensureList(study, signal)
    const held = new Bitfield(study.chunkCount)
    for (let i = 0; i < list.length; i++) if (await this.#chunks.has(list[i] as Uint8Array)) held.set(i)
    if (held.complete) return list
    const sid = toHex(study.studyId)
    if (this.#peersFor(study).length === 0) {
      throw new SwarmError('SWARM_UNAVAILABLE', `${study.chunkCount - held.count} chunk(s) of study ${sid} are not on this node and no other organization is reachable`)
    }
    const startedAt = Date.now()
    const cpuAtStart = process.cpuUsage()
    const releaseHeap = chunkTrafficHeap.hold()
    this.#transfers.set(`${opts.kind}:${sid}`, { studyId: sid, kind: opts.kind, done: held.count, total: study.chunkCount, bytes: 0, peers: 0, startedAt })
    try {
      const res = await downloadChunks({
        chunkIds: list,
        held,
        peers: () => this.#peersFor(study),
        source: {
          have: async (peer, s) => (await this.#have(peer.key, study, s)).chunks,
          fetch: (peer, index, s) => this.#p2p.pipeRequestParts(CHUNK_PROTOCOLS.get, peer.key, this.#chunkRequest(study, index, opts.lease), { signal: s, timeoutMs: 30_000, maxResponseBytes: study.chunkSize + 64 }),
        },
        store: (index, bytes) => this.#chunks.put(list[index] as Uint8Array, bytes, { defer: true, verified: true }), // downloadChunks verified them
        onBadChunk: (peer, index) => {
          this.#logger.warn('peer sent a chunk that does not match its id', { study: sid, index, peer: peer.id })
          this.#p2p.penalize(peer.key, 50, 'bad chunk')
        },
        chunkBytes: study.chunkSize + 16,
        maxInFlightBytes: opts.kind === 'fetch' ? this.#opts.maxInFlightBytes : Math.max(study.chunkSize + 16, this.#opts.maxInFlightBytes / 4),
        // More than a few 1 MiB requests in flight per peer only queue up behind each other.
        maxWindow: opts.kind === 'fetch' ? 6 : 4,
        signal,
        onProgress: (p) => {
          this.#transfers.set(`${opts.kind}:${sid}`, { studyId: sid, kind: opts.kind, done: p.done, total: p.total, bytes: p.bytes, peers: p.activePeers, startedAt })
          opts.onProgress?.(p)
        },
      })
      // Timed to the chunks being durable, not merely written.
      await this.#chunks.flush()
      this.#logger.info('study chunks fetched', {
        study: sid, kind: opts.kind, chunks: res.fetched, bytes: res.bytes, peers: Object.keys(res.perPeer).length, ms: Date.now() - startedAt,
        maxInFlight: res.maxInFlight, medianRequestMs: res.medianRequestMs, duplicates: res.duplicates, ...cpuMs(process.cpuUsage(cpuAtStart)),
      })
      return list
    } finally {
      // What arrived becomes durable (folders and index synced once for the
      // whole transfer); after a failure too, and at no cost after the flush above.
      await this.#chunks.flush().catch((err: unknown) => this.#logger.warn('chunk store flush failed', { err: errorMessage(err) }))
      this.#transfers.delete(`${opts.kind}:${sid}`)
      releaseHeap()
    }
  }

  /** A chunk request: plain for a holder; under a lease, signed with this organization's key and stamped with its chain head time. */
  #chunkRequest(study: StudyRecord, index: number, lease: LeaseRecord | undefined): Uint8Array {
    if (lease === undefined) return encodeChunkRequest(study.studyId, index)
    return encodeLeaseChunkRequest(study.studyId, index, lease.leaseId, this.#chain.head().header.time, (m) => this.#keys.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m)))
  }

  /** Whether the study is whole here: chunk list, every chunk, every object. */
  async isComplete(study: StudyRecord): Promise<boolean> {
    const sid = toHex(study.studyId)
    if (this.#complete.has(sid)) return true
    const h = await this.localHave(study)
    const ok = h.list && h.chunks.complete && h.objects
    if (ok) this.#complete.add(sid)
    return ok
  }

  /** Who holds the study now: asks every assigned or connected organization (bounded by HAVE_TIMEOUT_MS). */
  async replication(study: StudyRecord): Promise<ReplicationView> {
    const p = this.placement(study)
    const self = this.#selfOrg()
    const holders: string[] = []
    const unreachable: string[] = []
    if (self !== undefined && (await this.isComplete(study))) holders.push(self.id)
    const connected = new Set(this.#p2p.peers().map((x) => toHex(x.publicKey)))
    await Promise.all(this.#chain.orgs().filter((o) => o.id !== self?.id).map(async (o) => {
      if (!connected.has(toHex(o.signKey))) {
        if (p.nominal.includes(o.id) || p.assigned.includes(o.id)) unreachable.push(o.id)
        return
      }
      try {
        const h = await this.#have(o.signKey, study, this.#abort.signal)
        if (h.list && h.chunks.complete && h.objects) holders.push(o.id)
      } catch {
        unreachable.push(o.id)
      }
    }))
    const order = new Map(p.order.map((id, i) => [id, i]))
    const byRank = (a: string, b: string): number => (order.get(a) ?? 0) - (order.get(b) ?? 0)
    holders.sort(byRank)
    unreachable.sort(byRank)
    return { holders, assigned: p.assigned, target: p.target, state: holders.length >= p.target ? 'healthy' : 'under-replicated', unreachable }
  }

  /**
   * Removal hook (erasure): deletes every chunk, object and the chunk list
   * this node keeps of a study, and stops replicating it. Returns how many
   * stored objects were deleted.
   */
  async dropStudy(study: StudyRecord): Promise<number> {
    const sid = toHex(study.studyId)
    this.#complete.delete(sid)
    let n = 0
    const list = (await this.#index.chunkList(study.studyId)) ?? []
    for (const id of [...list, ...this.#objectsOf(study)]) if (await this.#chunks.delete(id)) n++
    await this.#index.delete(study.studyId)
    this.#logger.info('study dropped from this node', { study: sid, objects: n })
    return n
  }

  /** Transfers in progress and studies waiting for replication or repair. */
  status(): { transfers: TransferView[]; queue: string[]; down: string[] } {
    const down = this.#chain.orgs().filter((o) => this.#isDown(o)).map((o) => o.id)
    return { transfers: [...this.#transfers.values()], queue: [...this.#queue], down }
  }

  /** Studies this node is assigned and does not hold whole go into the queue, worked one at a time. */
  #reconcile(): void {
    const self = this.#selfOrg()
    if (self === undefined || this.#abort.signal.aborted) return
    // Erased studies: every node deletes what it holds of them (crypto-shredding: chunks, envelopes, demographics).
    for (const e of listErased(this.#chain.state)) {
      const sid = toHex(e.study.studyId)
      if (this.#erased.has(sid)) continue
      this.#erased.add(sid)
      this.#complete.delete(sid)
      void this.dropStudy(e.study).catch((err: unknown) => {
        this.#erased.delete(sid)
        this.#logger.warn('erased study not yet deleted; retried', { study: sid, err: errorMessage(err) })
      })
    }
    if (this.#opts.testNoPull === true) return
    for (const study of listStudies(this.#chain.state)) {
      const sid = toHex(study.studyId)
      if (this.#complete.has(sid) || this.#queued.has(sid)) continue
      if (!this.placement(study).assigned.includes(self.id)) continue
      this.#queued.add(sid)
      this.#queue.push(sid)
    }
    void this.#work()
  }

  async #work(): Promise<void> {
    if (this.#working) return
    this.#working = true
    try {
      while (this.#queue.length > 0 && !this.#abort.signal.aborted) {
        const sid = this.#queue[0] as string
        const study = getStudy(this.#chain.state, Buffer.from(sid, 'hex'))
        try {
          if (study !== undefined && !(await this.isComplete(study))) await this.#replicate(study)
        } catch (err) {
          if (!this.#abort.signal.aborted) this.#logger.warn('replication not finished; retried later', { study: sid, err: errorMessage(err), code: (err as { code?: string }).code })
        } finally {
          this.#queue.shift()
          this.#queued.delete(sid)
        }
      }
    } finally {
      this.#working = false
    }
  }

  async #replicate(study: StudyRecord): Promise<void> {
    await this.fetchChunks(study, { kind: 'replicate' })
    for (const h of this.#objectsOf(study)) if (!(await this.#chunks.has(h))) await this.fetchObject(study, h)
    if (await this.isComplete(study)) this.#logger.info('study replicated', { study: toHex(study.studyId) })
  }

  /** Reads back a slice of the chunks of complete studies; a corrupt one is dropped and the study repaired. */
  async #scrub(): Promise<void> {
    const studies = listStudies(this.#chain.state).filter((s) => this.#complete.has(toHex(s.studyId)))
    if (studies.length === 0) return
    let budget = this.#opts.scrubBytes
    for (let n = 0; n < studies.length && budget > 0; n++) {
      const study = studies[(this.#scrubCursor + n) % studies.length] as StudyRecord
      const list = (await this.#index.chunkList(study.studyId)) ?? []
      for (const id of [...list, ...this.#objectsOf(study)]) {
        if (this.#abort.signal.aborted) return
        const b = await this.#read(id, study)
        if (b === undefined) {
          this.#complete.delete(toHex(study.studyId))
          break
        }
        budget -= b.length
      }
    }
    this.#scrubCursor++
  }
}

/** Milliseconds of CPU (every thread of the process) in a process.cpuUsage() difference: in all, and of it in the kernel. */
function cpuMs(u: NodeJS.CpuUsage): { cpuMs: number; cpuSystemMs: number } {
  return { cpuMs: Math.round((u.user + u.system) / 1000), cpuSystemMs: Math.round(u.system / 1000) }
}
