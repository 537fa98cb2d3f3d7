import type { VerifiedChunk } from '../study/index.js'
import { bytesLength, joinBytes, type Bytes } from '../util/index.js'

/**
 * The chunks of one study as a download delivers them, for a reader that
 * decrypts them in order while the others are still on their way (`study
 * get`): `get(i)` answers at once with a chunk that is here (kept in memory
 * up to `maxBufferedBytes`, read back from the chunk store beyond that, and
 * for the chunks held before the download), and waits for one still coming;
 * each with the id it was checked against (the download verifies what it
 * stores, and `readStored` what it reads), so that no one hashes it again.
 * `fail` ends every wait with the download's error.
 */
export class ChunkArrivals {
  readonly #here: Uint8Array
  readonly #buffered = new Map<number, Uint8Array>()
  #bufferedBytes = 0
  readonly #maxBufferedBytes: number
  readonly #waiters = new Map<number, { resolve: (c: VerifiedChunk) => void; reject: (err: unknown) => void }>()
  readonly #readStored: (id: Uint8Array, index: number) => Promise<Uint8Array>
  #list: readonly Uint8Array[] | undefined
  #failed: { err: unknown } | undefined

  constructor(count: number, readStored: (id: Uint8Array, index: number) => Promise<Uint8Array>, maxBufferedBytes: number) {
    this.#here = new Uint8Array(count)
    this.#readStored = readStored
    this.#maxBufferedBytes = maxBufferedBytes
  }

  /** Bytes of arrived chunks held in memory, not yet read. */
  get bufferedBytes(): number {
    return this.#bufferedBytes
  }

  /** The study's chunk list, and which chunks the store held before the download. */
  setList(list: readonly Uint8Array[], heldBefore: (index: number) => boolean): void {
    this.#list = list
    for (let i = 0; i < list.length; i++) if (heldBefore(i)) this.#here[i] = 1
    for (const [i, w] of [...this.#waiters]) {
      if (this.#here[i] !== 1) continue
      this.#waiters.delete(i)
      this.#stored(list, i).then(w.resolve, w.reject)
    }
  }

  #stored(list: readonly Uint8Array[], index: number): Promise<VerifiedChunk> {
    const id = list[index] as Uint8Array
    return this.#readStored(id, index).then((bytes) => ({ bytes, id }))
  }

  /** Chunk `index` arrived, verified against its id in the list (and stored). */
  put(index: number, bytes: Bytes): void {
    if (this.#here[index] === 1) return
    this.#here[index] = 1
    const w = this.#waiters.get(index)
    if (w !== undefined) this.#waiters.delete(index)
    else if (this.#bufferedBytes + bytesLength(bytes) > this.#maxBufferedBytes) return
    const whole = joinBytes(bytes)
    if (w !== undefined) w.resolve({ bytes: whole, id: this.#id(index) })
    else {
      this.#buffered.set(index, whole)
      this.#bufferedBytes += whole.length
    }
  }

  #id(index: number): Uint8Array {
    const id = this.#list?.[index]
    if (id === undefined) throw new Error(`chunk ${index} arrived before the chunk list`)
    return id
  }

  /** Chunk `index`: at once if it is here, else when it arrives. */
  get(index: number): Promise<VerifiedChunk> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed.err)
    const b = this.#buffered.get(index)
    if (b !== undefined) {
      this.#buffered.delete(index)
      this.#bufferedBytes -= b.length
      return Promise.resolve({ bytes: b, id: this.#id(index) })
    }
    const list = this.#list
    if (this.#here[index] === 1 && list !== undefined) return this.#stored(list, index)
    return new Promise((resolve, reject) => this.#waiters.set(index, { resolve, reject }))
  }

  /** The download failed: every wait, and every later `get` of a chunk not here, ends with `err`. */
  fail(err: unknown): void {
    this.#failed = { err }
    for (const w of this.#waiters.values()) w.reject(err)
    this.#waiters.clear()
    this.#buffered.clear()
    this.#bufferedBytes = 0
  }
}
