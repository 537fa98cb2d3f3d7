import type { StudyRecord } from '../chain/index.js'
import type { OrgKeys } from '../crypto/index.js'
import type { HaveInfo, P2PNode } from '../p2p/index.js'
import type { ChunkStore, StudyIndex } from '../storage/index.js'
import type { Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'
import { SwarmFetcher, type FetchChunksOpts } from './swarm-fetch.js'
import { SwarmLocal } from './swarm-local.js'
import { SwarmPlacement } from './swarm-placement.js'
import { SwarmReplicator } from './swarm-replicate.js'
import { SwarmScrubber } from './swarm-scrub.js'
import { SwarmServePolicy, type SwarmLeasePolicy } from './swarm-serve.js'
import { DEFAULT_SWARM_OPTS, type SwarmOpts } from './swarm-opts.js'

export type { SwarmLeasePolicy } from './swarm-serve.js'

export { DEFAULT_SWARM_OPTS, type SwarmOpts } from './swarm-opts.js'

import type { ReplicationView, TransferView } from '../api/index.js'

export type { ReplicationView, TransferView } from '../api/index.js'

/**
 * The swarm: keeps each study on the organizations placement assigns
 * (chain/placement.ts), pulls what this node is assigned, serves chunks to
 * peers that have a duty or a lease, repairs lost or corrupt
 * copies, and fetches a study for a local reader from every holder at once.
 * Its parts: placement (swarm-placement.ts), the local copy
 * (swarm-local.ts), the serving policy (swarm-serve.ts), fetching
 * (swarm-fetch.ts), replication and repair (swarm-replicate.ts) and scrub
 * (swarm-scrub.ts).
 */
export class SwarmService {
  readonly #chain: ChainService
  readonly #placement: SwarmPlacement
  readonly #local: SwarmLocal
  readonly #fetcher: SwarmFetcher
  readonly #replicator: SwarmReplicator
  readonly #scrubber: SwarmScrubber
  readonly #abort = new AbortController()

  /**
   * `leases`: what a lessee may get, and where a request under an ended lease
   * is reported; `clock`: local time in ms for the repair delay (Date.now by default).
   */
  constructor(
    opts: Partial<SwarmOpts>,
    modules: {
      chain: ChainService
      chunks: ChunkStore
      index: StudyIndex
      p2p: P2PNode
      keys: OrgKeys
      logger: Logger
      leases: SwarmLeasePolicy
      clock?: () => number
    },
  ) {
    const o = { ...DEFAULT_SWARM_OPTS, ...opts }
    const { chain, chunks, index, p2p, keys, logger, leases, clock } = modules
    const signal = this.#abort.signal
    this.#chain = chain
    this.#placement = new SwarmPlacement(o, { chain, p2p, keys, ...(clock === undefined ? {} : { clock }) })
    this.#local = new SwarmLocal({ chain, chunks, index, logger })
    const local = this.#local
    const placement = this.#placement
    // Registers the chunk protocols' handlers: nothing else calls it.
    new SwarmServePolicy(o, { chain, index, p2p, logger, local, placement, leases })
    this.#fetcher = new SwarmFetcher(o, { chain, chunks, index, p2p, keys, logger, local, signal })
    this.#replicator = new SwarmReplicator(o, { chain, chunks, p2p, logger, local, placement, fetcher: this.#fetcher, signal })
    this.#scrubber = new SwarmScrubber(o, { chain, index, logger, local, signal })
  }

  /** Aborted when the service stops: waits on the swarm (a study's replicas) end with it. */
  get stopped(): AbortSignal {
    return this.#abort.signal
  }

  /** Starts the reconcile and scrub loops. */
  start(): void {
    this.#replicator.start()
    this.#scrubber.start()
  }

  /** Stops the loops and every transfer. */
  stop(): void {
    this.#replicator.stop()
    this.#abort.abort()
    this.#scrubber.stop()
  }

  /** Placement for a study: the nominal holders and, from this node's view, who holds it now that some may be down. */
  placement(study: StudyRecord): { order: string[]; nominal: string[]; assigned: string[]; target: number } {
    return this.#placement.placement(study)
  }

  /** Whether organization `orgId` keeps a copy of the study by duty (custodian, nominal holder or replacement). */
  hasDuty(orgId: string, study: StudyRecord): boolean {
    return this.#placement.hasDuty(orgId, study)
  }

  /** What this node holds of a study, or undefined when it holds nothing of it (no chunk list). */
  localHave(study: StudyRecord): Promise<HaveInfo | undefined> {
    return this.#local.localHave(study)
  }

  /** Fetches one object (key envelope, demographics) from a peer holding it, checked against its hash. */
  fetchObject(study: StudyRecord, hash: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#fetcher.fetchObject(study, hash, signal)
  }

  /**
   * Makes the study's chunks (and its chunk list) present here, fetching
   * what is missing from every peer holding it. `kind` 'fetch' (a reader
   * waiting) uses the whole in-flight budget, 'replicate' a quarter.
   */
  fetchChunks(study: StudyRecord, opts: FetchChunksOpts): Promise<Uint8Array[]> {
    return this.#fetcher.fetchChunks(study, opts)
  }

  /** Whether the study is whole here: chunk list, every chunk, every object. */
  isComplete(study: StudyRecord): Promise<boolean> {
    return this.#local.isComplete(study)
  }

  /** Who holds the study now: asks every assigned or connected organization (bounded by HAVE_TIMEOUT_MS). */
  replication(study: StudyRecord): Promise<ReplicationView> {
    return this.#replicator.replication(study)
  }

  /**
   * Removal hook (erasure): deletes every chunk, object and the chunk list
   * this node keeps of a study, and stops replicating it. Returns how many
   * stored objects were deleted.
   */
  dropStudy(study: StudyRecord): Promise<number> {
    return this.#local.dropStudy(study)
  }

  /** Transfers in progress and studies waiting for replication or repair. */
  status(): { transfers: TransferView[]; queue: string[]; down: string[] } {
    const down = this.#chain
      .orgs()
      .filter((o) => this.#placement.isDown(o))
      .map((o) => o.id)
    return { transfers: [...this.#fetcher.transfers.values()], queue: [...this.#replicator.queue], down }
  }
}
