import { listLeases, type StudyRecord } from '../chain/index.js'
import { Bitfield, type HaveInfo } from '../p2p/index.js'
import { ChunkStoreError, type ChunkStore, type StudyIndex } from '../storage/index.js'
import { toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'

/**
 * What this node holds of each study: its chunks, chunk list and objects,
 * read back verified (a corrupt one is dropped and the study marked for
 * repair), and which studies are known to be whole here.
 */
export class SwarmLocal {
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #index: StudyIndex
  readonly #logger: Logger
  /** Studies (hex) known to be complete here; dropped when a chunk turns out corrupt. */
  readonly complete = new Set<string>()

  constructor(modules: { chain: ChainService; chunks: ChunkStore; index: StudyIndex; logger: Logger }) {
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#index = modules.index
    this.#logger = modules.logger
  }

  /**
   * What this node holds of a study, or undefined when it holds nothing of
   * it (no chunk list: then no chunk can be placed either). Nothing
   * per-chunk is built for a study not held: the study's chunk count comes
   * from the ledger, this node's own work from the list it keeps.
   */
  async localHave(study: StudyRecord): Promise<HaveInfo | undefined> {
    const list = await this.#index.chunkList(study.studyId)
    if (list === undefined) return undefined
    // A list is stored only after it matched the study's content root, so it has chunkCount ids; checked again all the same.
    if (list.length !== study.chunkCount) {
      this.#logger.warn('stored chunk list does not match the study; ignored', { study: toHex(study.studyId), ids: list.length, chunks: study.chunkCount })
      return undefined
    }
    const chunks = new Bitfield(list.length)
    for (let i = 0; i < list.length; i++) if (await this.#chunks.has(list[i] as Uint8Array)) chunks.set(i)
    let objects = true
    for (const h of this.objectsOf(study)) if (!(await this.#chunks.has(h))) objects = false
    return { chunks, list: true, objects }
  }

  /** The study's small objects: key envelopes (custodian, owner, granted leases) and the demographics record. */
  objectsOf(study: StudyRecord): Uint8Array[] {
    const leases = listLeases(this.#chain.state, study.studyId).flatMap((l) => (l.envelope === null ? [] : [l.envelope]))
    return [study.custodianEnvelope, ...(study.ownerEnvelope === null ? [] : [study.ownerEnvelope]), study.demographics, ...leases]
  }

  /** Reads a stored chunk or object; a corrupt one is dropped (by the store) and the study marked for repair. */
  async read(id: Uint8Array, study: StudyRecord, opts: { verify?: boolean } = {}): Promise<Uint8Array | undefined> {
    try {
      return await this.#chunks.get(id, opts)
    } catch (err) {
      if (err instanceof ChunkStoreError && err.code === 'CHUNK_CORRUPT') {
        this.#logger.warn('corrupt chunk dropped; the study will be repaired', { study: toHex(study.studyId), chunk: toHex(id) })
        this.complete.delete(toHex(study.studyId))
        return undefined
      }
      throw err
    }
  }

  /** Whether the study is whole here: chunk list, every chunk, every object. */
  async isComplete(study: StudyRecord): Promise<boolean> {
    const sid = toHex(study.studyId)
    if (this.complete.has(sid)) return true
    const h = await this.localHave(study)
    const ok = h !== undefined && h.chunks.complete && h.objects
    if (ok) this.complete.add(sid)
    return ok
  }

  /**
   * Removal hook (erasure): deletes every chunk, object and the chunk list
   * this node keeps of a study, and stops replicating it. Returns how many
   * stored objects were deleted.
   */
  async dropStudy(study: StudyRecord): Promise<number> {
    const sid = toHex(study.studyId)
    this.complete.delete(sid)
    let n = 0
    const list = (await this.#index.chunkList(study.studyId)) ?? []
    for (const id of [...list, ...this.objectsOf(study)]) if (await this.#chunks.delete(id)) n++
    await this.#index.delete(study.studyId)
    this.#logger.info('study dropped from this node', { study: sid, objects: n })
    return n
  }
}
