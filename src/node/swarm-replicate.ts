import { getLease, getStudy, leaseGrantTx, listErased, listStudies, type Block, type LeaseGrantPayload, type StudyRecord } from '../chain/index.js'
import { P2PError, type P2PNode, type SwarmCode } from '../p2p/index.js'
import type { ChunkStore } from '../storage/index.js'
import { errorMessage, toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'
import type { SwarmFetcher } from './swarm-fetch.js'
import type { SwarmLocal } from './swarm-local.js'
import type { SwarmPlacement } from './swarm-placement.js'
import type { ReplicationView, SwarmOpts } from './swarm.js'

/**
 * Replication and repair: every `reconcileMs` (and at each block) the
 * studies this node is assigned and does not hold whole go into a queue,
 * pulled one at a time from the other holders; erased studies are deleted.
 * A study whose copy turned out incomplete or corrupt is pulled again the
 * same way (repair).
 */
export class SwarmReplicator {
  readonly #opts: Pick<SwarmOpts, 'reconcileMs' | 'testNoPull'>
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #p2p: P2PNode
  readonly #logger: Logger
  readonly #local: SwarmLocal
  readonly #placement: SwarmPlacement
  readonly #fetcher: SwarmFetcher
  /** Aborted when the swarm stops. */
  readonly #signal: AbortSignal
  readonly #queue: string[] = []
  readonly #queued = new Set<string>()
  /** Erased studies already deleted here. */
  readonly #erased = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #working = false

  constructor(
    opts: Pick<SwarmOpts, 'reconcileMs' | 'testNoPull'>,
    modules: {
      chain: ChainService
      chunks: ChunkStore
      p2p: P2PNode
      logger: Logger
      local: SwarmLocal
      placement: SwarmPlacement
      fetcher: SwarmFetcher
      signal: AbortSignal
    },
  ) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#p2p = modules.p2p
    this.#logger = modules.logger
    this.#local = modules.local
    this.#placement = modules.placement
    this.#fetcher = modules.fetcher
    this.#signal = modules.signal
  }

  /** Studies waiting for replication or repair (hex). */
  get queue(): readonly string[] {
    return this.#queue
  }

  /** Starts the reconcile loop. */
  start(): void {
    this.#chain.on('block', this.#onBlock)
    const tick = (): void => {
      this.#reconcile()
      this.#timer = setTimeout(tick, this.#opts.reconcileMs)
    }
    this.#timer = setTimeout(tick, Math.min(500, this.#opts.reconcileMs))
  }

  /** Stops the reconcile loop (the swarm's signal ends the transfers). */
  stop(): void {
    this.#chain.off('block', this.#onBlock)
    clearTimeout(this.#timer)
  }

  readonly #onBlock = (b?: Block): void => {
    // A grant adds a lease envelope to its study's objects: holders fetch it too.
    for (const tx of b?.txs ?? []) {
      if (tx.type !== leaseGrantTx.name) continue
      const lease = getLease(this.#chain.state, (tx.payload as LeaseGrantPayload).leaseId)
      if (lease !== undefined) this.#local.complete.delete(toHex(lease.studyId))
    }
    // New registrations are pulled without waiting for the next tick.
    if (!this.#working) this.#reconcile()
  }

  /** Who holds the study now: asks every assigned or connected organization (bounded by HAVE_TIMEOUT_MS). */
  async replication(study: StudyRecord): Promise<ReplicationView> {
    const p = this.#placement.placement(study)
    const self = this.#placement.selfOrg()
    const holders: string[] = []
    const unreachable: string[] = []
    if (self !== undefined && (await this.#local.isComplete(study))) holders.push(self.id)
    const connected = new Set(this.#p2p.peers().map((x) => toHex(x.publicKey)))
    await Promise.all(
      this.#chain
        .orgs()
        .filter((o) => o.id !== self?.id)
        .map(async (o) => {
          if (!connected.has(toHex(o.signKey))) {
            if (p.nominal.includes(o.id) || p.assigned.includes(o.id)) unreachable.push(o.id)
            return
          }
          try {
            const h = await this.#fetcher.have(o.signKey, study, this.#signal)
            if (h.list && h.chunks.complete && h.objects) holders.push(o.id)
          } catch (err) {
            // A peer that answered it holds nothing of the study is reachable, and not a holder.
            if (!(err instanceof P2PError && err.remoteCode === ('SWARM_NOT_HELD' satisfies SwarmCode))) unreachable.push(o.id)
          }
        }),
    )
    const order = new Map(p.order.map((id, i) => [id, i]))
    const byRank = (a: string, b: string): number => (order.get(a) ?? 0) - (order.get(b) ?? 0)
    holders.sort(byRank)
    unreachable.sort(byRank)
    return { holders, assigned: p.assigned, target: p.target, state: holders.length >= p.target ? 'healthy' : 'under-replicated', unreachable }
  }

  /** Studies this node is assigned and does not hold whole go into the queue, worked one at a time. */
  #reconcile(): void {
    const self = this.#placement.selfOrg()
    if (self === undefined || this.#signal.aborted) return
    // Erased studies: every node deletes what it holds of them (crypto-shredding: chunks, envelopes, demographics).
    for (const e of listErased(this.#chain.state)) {
      const sid = toHex(e.study.studyId)
      if (this.#erased.has(sid)) continue
      this.#erased.add(sid)
      this.#local.complete.delete(sid)
      void this.#local.dropStudy(e.study).catch((err: unknown) => {
        this.#erased.delete(sid)
        this.#logger.warn('erased study not yet deleted; retried', { study: sid, err: errorMessage(err) })
      })
    }
    if (this.#opts.testNoPull === true) return
    for (const study of listStudies(this.#chain.state)) {
      const sid = toHex(study.studyId)
      if (this.#local.complete.has(sid) || this.#queued.has(sid)) continue
      if (!this.#placement.placement(study).assigned.includes(self.id)) continue
      this.#queued.add(sid)
      this.#queue.push(sid)
    }
    void this.#work()
  }

  async #work(): Promise<void> {
    if (this.#working) return
    this.#working = true
    try {
      while (this.#queue.length > 0 && !this.#signal.aborted) {
        const sid = this.#queue[0] as string
        const study = getStudy(this.#chain.state, Buffer.from(sid, 'hex'))
        try {
          if (study !== undefined && !(await this.#local.isComplete(study))) await this.#replicate(study)
        } catch (err) {
          if (!this.#signal.aborted)
            this.#logger.warn('replication not finished; retried later', { study: sid, err: errorMessage(err), code: (err as { code?: string }).code })
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
    await this.#fetcher.fetchChunks(study, { kind: 'replicate' })
    for (const h of this.#local.objectsOf(study)) if (!(await this.#chunks.has(h))) await this.#fetcher.fetchObject(study, h)
    if (await this.#local.isComplete(study)) this.#logger.info('study replicated', { study: toHex(study.studyId) })
  }
}
