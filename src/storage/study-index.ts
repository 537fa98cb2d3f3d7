import { assertBytes, toHex } from '../util/index.js'
import { StoreError, type KeyValueSpace } from './chain-store.js'

// Layout: 'l/<study id hex>' -> chunk ids in order, 32 bytes each.
const LIST_PREFIX = 'l/'
const ID_BYTES = 32
/** Chunk lists kept in memory (1 MiB chunks: 8 KiB of list per GiB of study). */
const RECENT_LISTS = 64

/**
 * What this node knows of a study beyond the ledger: the ordered chunk ids
 * (the ledger holds only their Merkle root, `contentRoot`, which anyone
 * handed the list can check it against). Written once the chunks are stored.
 */
export class StudyIndex {
  readonly #kv: KeyValueSpace
  /** Raw chunk lists of the studies read last (every chunk a holder serves looks its id up here). */
  readonly #recent = new Map<string, Uint8Array>()
  /** Puts and deletes so far. */
  #writes = 0

  constructor(kv: KeyValueSpace) {
    this.#kv = kv
  }

  #remember(hex: string, b: Uint8Array): void {
    this.#recent.delete(hex)
    this.#recent.set(hex, b)
    if (this.#recent.size > RECENT_LISTS) this.#recent.delete(this.#recent.keys().next().value as string)
  }

  async #raw(studyId: Uint8Array): Promise<Uint8Array | undefined> {
    const hex = toHex(studyId)
    const hit = this.#recent.get(hex)
    if (hit !== undefined) return hit
    const gen = this.#writes
    const b = await this.#kv.get(LIST_PREFIX + hex)
    if (b === undefined) return undefined
    if (b.length % ID_BYTES !== 0) throw new StoreError('STORE_CORRUPT', `chunk list of study ${hex} has a torn length`)
    if (gen === this.#writes) this.#remember(hex, b) // not if a put or delete ran meanwhile: b may be stale
    return b
  }

  /** Records the chunk ids of a study, durably. */
  async putChunkList(studyId: Uint8Array, ids: readonly Uint8Array[]): Promise<void> {
    assertBytes(studyId, 16, 'studyId')
    const b = new Uint8Array(ids.length * ID_BYTES)
    ids.forEach((id, i) => {
      assertBytes(id, ID_BYTES, 'chunk id')
      b.set(id, i * ID_BYTES)
    })
    const hex = toHex(studyId)
    this.#writes++
    this.#recent.delete(hex)
    await this.#kv.put(LIST_PREFIX + hex, b, { sync: true })
    this.#writes++
    this.#remember(hex, b)
  }

  /** The chunk ids of a study, or undefined when this node has no list for it. */
  async chunkList(studyId: Uint8Array): Promise<Uint8Array[] | undefined> {
    const b = await this.#raw(studyId)
    if (b === undefined) return undefined
    const out: Uint8Array[] = []
    for (let i = 0; i < b.length; i += ID_BYTES) out.push(b.slice(i, i + ID_BYTES))
    return out
  }

  /** The id of chunk `index` of a study, or undefined when this node has no list for it or the index is past its end. */
  async chunkIdAt(studyId: Uint8Array, index: number): Promise<Uint8Array | undefined> {
    const b = await this.#raw(studyId)
    if (b === undefined || !Number.isInteger(index) || index < 0 || (index + 1) * ID_BYTES > b.length) return undefined
    return b.slice(index * ID_BYTES, (index + 1) * ID_BYTES)
  }

  /** Forgets a study's chunk list. */
  async delete(studyId: Uint8Array): Promise<void> {
    const hex = toHex(studyId)
    this.#writes++
    this.#recent.delete(hex)
    await this.#kv.del(LIST_PREFIX + hex, { sync: true })
    this.#writes++
    this.#recent.delete(hex)
  }
}
