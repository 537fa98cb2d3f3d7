import { assertBytes, toHex } from '../util/index.js'
import { StoreError, type KeyValueSpace } from './chain-store.js'

// Layout: 'l/<study id hex>' -> chunk ids in order, 32 bytes each.
const LIST_PREFIX = 'l/'
const ID_BYTES = 32

/**
 * What this node knows of a study beyond the ledger: the ordered chunk ids
 * (the ledger holds only their Merkle root, `contentRoot`, which anyone
 * handed the list can check it against). Written once the chunks are stored.
 */
export class StudyIndex {
  readonly #kv: KeyValueSpace

  constructor(kv: KeyValueSpace) {
    this.#kv = kv
  }

  /** Records the chunk ids of a study, durably. */
  async putChunkList(studyId: Uint8Array, ids: readonly Uint8Array[]): Promise<void> {
    assertBytes(studyId, 16, 'studyId')
    const b = new Uint8Array(ids.length * ID_BYTES)
    ids.forEach((id, i) => {
      assertBytes(id, ID_BYTES, 'chunk id')
      b.set(id, i * ID_BYTES)
    })
    await this.#kv.put(LIST_PREFIX + toHex(studyId), b, { sync: true })
  }

  /** The chunk ids of a study, or undefined when this node has no list for it. */
  async chunkList(studyId: Uint8Array): Promise<Uint8Array[] | undefined> {
    const b = await this.#kv.get(LIST_PREFIX + toHex(studyId))
    if (b === undefined) return undefined
    if (b.length % ID_BYTES !== 0) throw new StoreError('STORE_CORRUPT', `chunk list of study ${toHex(studyId)} has a torn length`)
    const out: Uint8Array[] = []
    for (let i = 0; i < b.length; i += ID_BYTES) out.push(b.slice(i, i + ID_BYTES))
    return out
  }

  /** Forgets a study's chunk list. */
  async delete(studyId: Uint8Array): Promise<void> {
    await this.#kv.del(LIST_PREFIX + toHex(studyId), { sync: true })
  }
}
