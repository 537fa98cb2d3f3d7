import { placementOrder, type LeaseRecord, type StudyRecord } from '../chain/index.js'
import { DOMAIN, sha256, signingBytes, type OrgKeys } from '../crypto/index.js'
import {
  Bitfield,
  CHUNK_PROTOCOLS,
  PENALTY,
  SwarmError,
  decodeHave,
  decodeList,
  downloadChunks,
  encodeChunkRequest,
  encodeLeaseChunkRequest,
  encodeObjectRequest,
  encodeStudyRequest,
  haveResponseBytes,
  listResponseBytes,
  type ChunkPeer,
  type DownloadProgress,
  type HaveInfo,
  type P2PNode,
} from '../p2p/index.js'
import type { ChunkStore, StudyIndex } from '../storage/index.js'
import { contentRoot } from '../study/index.js'
import { equalBytes, errorMessage, toHex, type Bytes, type Logger } from '../util/index.js'
import { chunkTrafficHeap } from './heap.js'
import type { ChainService } from './chain-service.js'
import type { SwarmLocal } from './swarm-local.js'
import { MAX_OBJECT_BYTES } from './swarm-serve.js'
import type { SwarmOpts, TransferView } from './swarm.js'

/** Deadline of one `have` request. */
export const HAVE_TIMEOUT_MS = 3_000

/**
 * Fetching a study from its holders: the chunk list (checked against the
 * content root), the chunks from every holder at once (downloadChunks), and
 * the small objects, each checked against its hash. One download per study
 * at a time; a reader's fetch takes over a replication in progress.
 */
/** Options of a chunk download (SwarmFetch.fetchChunks). */
export interface FetchChunksOpts {
  /** 'fetch': a reader waiting (the whole in-flight budget); 'replicate': a holder's own copy (a quarter). */
  readonly kind: 'fetch' | 'replicate'
  readonly lease?: LeaseRecord
  readonly signal?: AbortSignal
  readonly onProgress?: (p: DownloadProgress) => void
  /** The study's chunk list (checked against its content root), and which chunks were held before the download. */
  readonly onList?: (list: readonly Uint8Array[], heldBefore: (index: number) => boolean) => void
  /** Each chunk that arrives, verified against its id and stored (deferred: durable at the end of the download). */
  readonly onChunk?: (index: number, bytes: Bytes) => void
}

export class SwarmFetcher {
  readonly #opts: Pick<SwarmOpts, 'maxInFlightBytes'>
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #index: StudyIndex
  readonly #p2p: P2PNode
  readonly #keys: OrgKeys
  readonly #logger: Logger
  readonly #local: SwarmLocal
  /** Aborted when the swarm stops: ends every transfer. */
  readonly #signal: AbortSignal
  /** Transfers in progress, for `swarm status`. */
  readonly transfers = new Map<string, TransferView>()
  /** The download running for each study (hex). */
  readonly #active = new Map<string, { kind: 'fetch' | 'replicate'; ac: AbortController; done: Promise<Uint8Array[]> }>()

  constructor(
    opts: Pick<SwarmOpts, 'maxInFlightBytes'>,
    modules: {
      chain: ChainService
      chunks: ChunkStore
      index: StudyIndex
      p2p: P2PNode
      keys: OrgKeys
      logger: Logger
      local: SwarmLocal
      signal: AbortSignal
    },
  ) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#index = modules.index
    this.#p2p = modules.p2p
    this.#keys = modules.keys
    this.#logger = modules.logger
    this.#local = modules.local
    this.#signal = modules.signal
  }

  /** Connected admitted peers in the study's placement order first. */
  peersFor(study: StudyRecord): ChunkPeer[] {
    const order = placementOrder(
      study.studyId,
      study.custodian,
      this.#chain.orgs().map((o) => o.id),
    )
    const rank = new Map(order.map((id, i) => [id, i]))
    return this.#p2p
      .peers()
      .map((p) => ({ p, org: this.#chain.orgByKey(p.publicKey) }))
      .filter((x) => x.org !== undefined)
      .sort((a, b) => (rank.get(a.org?.id ?? '') ?? 1e9) - (rank.get(b.org?.id ?? '') ?? 1e9))
      .map((x) => ({ key: x.p.publicKey, id: toHex(x.p.publicKey) }))
  }

  /**
   * What `peer` holds of the study. An answer larger than the study's
   * bitfield (the bound comes from its chunk count on the ledger), or one
   * for another chunk count, is a protocol violation: refused and penalized.
   * A peer that holds nothing of it answers SWARM_NOT_HELD.
   */
  async have(peer: Uint8Array, study: StudyRecord, signal: AbortSignal): Promise<HaveInfo> {
    const res = await this.#p2p.request(CHUNK_PROTOCOLS.have, peer, encodeStudyRequest(study.studyId), {
      signal,
      timeoutMs: HAVE_TIMEOUT_MS,
      maxResponseBytes: haveResponseBytes(study.chunkCount),
      penalizeOversize: true,
    })
    try {
      return decodeHave(res, study.chunkCount)
    } catch (err) {
      if (err instanceof SwarmError && err.penalize) this.#p2p.penalize(peer, PENALTY.MALFORMED, `malformed ${CHUNK_PROTOCOLS.have} response`)
      throw err
    }
  }

  /**
   * The chunk list, from the local index or from a peer (checked against the
   * content root; an answer larger than the study's list is a protocol violation, penalized).
   */
  async #ensureList(study: StudyRecord, signal: AbortSignal): Promise<Uint8Array[]> {
    const local = await this.#index.chunkList(study.studyId)
    if (local !== undefined) return local
    for (const peer of this.peersFor(study)) {
      try {
        const res = await this.#p2p.request(CHUNK_PROTOCOLS.list, peer.key, encodeStudyRequest(study.studyId), {
          signal,
          timeoutMs: 10_000,
          maxResponseBytes: listResponseBytes(study.chunkCount),
          penalizeOversize: true,
        })
        let list: Uint8Array[]
        try {
          list = decodeList(res, study.chunkCount)
        } catch (err) {
          if (err instanceof SwarmError && err.penalize) this.#p2p.penalize(peer.key, PENALTY.MALFORMED, `malformed ${CHUNK_PROTOCOLS.list} response`)
          throw err
        }
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
  async fetchObject(study: StudyRecord, hash: Uint8Array, signal: AbortSignal = this.#signal): Promise<Uint8Array> {
    const local = await this.#local.read(hash, study)
    if (local !== undefined) return local
    for (const peer of this.peersFor(study)) {
      try {
        const b = await this.#p2p.request(CHUNK_PROTOCOLS.object, peer.key, encodeObjectRequest(study.studyId, hash), {
          signal,
          timeoutMs: 10_000,
          maxResponseBytes: MAX_OBJECT_BYTES,
        })
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
  async fetchChunks(study: StudyRecord, opts: FetchChunksOpts): Promise<Uint8Array[]> {
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

  async #fetchChunksLinked(study: StudyRecord, opts: FetchChunksOpts, own: AbortSignal): Promise<Uint8Array[]> {
    // Both the caller's signal and this service's stop end the transfer (plain listeners, see docs/ARCHITECTURE.md "Platform pitfalls").
    const ac = new AbortController()
    const stop = (): void => ac.abort(new SwarmError('SWARM_UNAVAILABLE', 'transfer stopped'))
    const signals = [opts.signal, this.#signal, own]
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

  async #fetchChunks(study: StudyRecord, opts: FetchChunksOpts, signal: AbortSignal): Promise<Uint8Array[]> {
    const list = await this.#ensureList(study, signal)
    const held = new Bitfield(study.chunkCount)
    for (let i = 0; i < list.length; i++) if (await this.#chunks.has(list[i] as Uint8Array)) held.set(i)
    opts.onList?.(list, (i) => held.has(i))
    if (held.complete) return list
    const sid = toHex(study.studyId)
    if (this.peersFor(study).length === 0) {
      throw new SwarmError(
        'SWARM_UNAVAILABLE',
        `${study.chunkCount - held.count} chunk(s) of study ${sid} are not on this node and no other organization is reachable`,
      )
    }
    const startedAt = Date.now()
    const cpuAtStart = process.cpuUsage()
    const releaseHeap = chunkTrafficHeap.hold()
    this.transfers.set(`${opts.kind}:${sid}`, { studyId: sid, kind: opts.kind, done: held.count, total: study.chunkCount, bytes: 0, peers: 0, startedAt })
    try {
      const res = await downloadChunks({
        chunkIds: list,
        held,
        peers: () => this.peersFor(study),
        source: {
          have: async (peer, s) => (await this.have(peer.key, study, s)).chunks,
          fetch: (peer, index, s) =>
            this.#p2p.pipeRequestParts(CHUNK_PROTOCOLS.get, peer.key, this.#chunkRequest(study, index, opts.lease, peer.key), {
              signal: s,
              timeoutMs: 30_000,
              maxResponseBytes: study.chunkSize + 64,
            }),
        },
        // downloadChunks verified them; a reader decrypting as they arrive gets each one once stored.
        store: async (index, bytes) => {
          await this.#chunks.put(list[index] as Uint8Array, bytes, { defer: true, verified: true })
          opts.onChunk?.(index, bytes)
        },
        onBadChunk: (peer, index) => {
          this.#logger.warn('peer sent a chunk that does not match its id', { study: sid, index, peer: peer.id })
          this.#p2p.penalize(peer.key, 50, 'bad chunk')
        },
        chunkBytes: study.chunkSize + 16,
        maxInFlightBytes: opts.kind === 'fetch' ? this.#opts.maxInFlightBytes : Math.max(study.chunkSize + 16, this.#opts.maxInFlightBytes / 4),
        // More than a few 1 MiB requests in flight per peer only queue up behind each other.
        maxWindow: opts.kind === 'fetch' ? 6 : 4,
        // A reader decrypts and writes the chunks in order while they arrive: ask for them in order.
        inOrder: opts.kind === 'fetch',
        signal,
        onProgress: (p) => {
          this.transfers.set(`${opts.kind}:${sid}`, {
            studyId: sid,
            kind: opts.kind,
            done: p.done,
            total: p.total,
            bytes: p.bytes,
            peers: p.activePeers,
            startedAt,
          })
          opts.onProgress?.(p)
        },
      })
      // Timed to the chunks being durable, not merely written.
      await this.#chunks.flush()
      this.#logger.info('study chunks fetched', {
        study: sid,
        kind: opts.kind,
        chunks: res.fetched,
        bytes: res.bytes,
        peers: Object.keys(res.perPeer).length,
        ms: Date.now() - startedAt,
        maxInFlight: res.maxInFlight,
        medianRequestMs: res.medianRequestMs,
        duplicates: res.duplicates,
        ...cpuMs(process.cpuUsage(cpuAtStart)),
      })
      return list
    } finally {
      // What arrived becomes durable (folders and index synced once for the
      // whole transfer); after a failure too, and at no cost after the flush above.
      await this.#chunks.flush().catch((err: unknown) => this.#logger.warn('chunk store flush failed', { err: errorMessage(err) }))
      this.transfers.delete(`${opts.kind}:${sid}`)
      releaseHeap()
    }
  }

  /**
   * A chunk request: plain for a holder; under a lease, a claim signed with
   * this organization's key for that holder, stamped with the time and
   * height of its chain head, read when the request is made (a retry after
   * a refusal for a stale claim carries the newer head). A holder accepts a
   * time within its own head time plus or minus claimWindowMs (clock drift
   * and one heartbeat) and a block up to two beyond its head, so a head that
   * lags or leads by a block still gets served.
   */
  #chunkRequest(study: StudyRecord, index: number, lease: LeaseRecord | undefined, holder: Uint8Array): Uint8Array {
    if (lease === undefined) return encodeChunkRequest(study.studyId, index)
    const head = this.#chain.head().header
    return encodeLeaseChunkRequest(study.studyId, index, { leaseId: lease.leaseId, time: head.time, height: head.height, holder }, (m) =>
      this.#keys.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m)),
    )
  }
}

/** Milliseconds of CPU (every thread of the process) in a process.cpuUsage() difference: in all, and of it in the kernel. */
function cpuMs(u: NodeJS.CpuUsage): { cpuMs: number; cpuSystemMs: number } {
  return { cpuMs: Math.round((u.user + u.system) / 1000), cpuSystemMs: Math.round(u.system / 1000) }
}
