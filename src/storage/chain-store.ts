import { ClassicLevel } from 'classic-level'
import { RadError, toHex, type ErrorCodes } from '../util/index.js'

/** Storage failure codes. */
export type StoreCode = ErrorCodes<'STORE_LOCKED' | 'STORE_OPEN_FAILED' | 'STORE_CORRUPT' | 'STORE_GENESIS_MISMATCH'>

/** A storage failure. */
export class StoreError extends RadError<StoreCode> {
  constructor(code: StoreCode, message: string, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'StoreError'
  }
}

/** Everything one final block changes on disk, written in one atomic batch. */
export interface BlockCommit {
  readonly height: number
  readonly hash: Uint8Array
  readonly blockBytes: Uint8Array
  /** Commit certificate bytes (empty for genesis). */
  readonly certBytes: Uint8Array
  readonly txIds: readonly Uint8Array[]
  readonly stateWrites: ReadonlyMap<string, Uint8Array | null>
}

/** Where a final transaction is. */
export interface TxLocation {
  readonly height: number
  readonly index: number
}

// Keyspaces (one level database, string keys with a one-letter prefix):
//   m:head            -> height of the last committed block (8-byte big-endian)
//   h:<height hex16>  -> block hash
//   b:<hash hex>      -> block bytes
//   c:<height hex16>  -> commit certificate bytes
//   t:<tx id hex>     -> height (8 bytes) || index (4 bytes)
//   s:<state key>     -> state value
const HEAD = 'm:head'
const hKey = (height: number): string => `h:${height.toString(16).padStart(16, '0')}`
const bKey = (hash: Uint8Array): string => `b:${toHex(hash)}`
const cKey = (height: number): string => `c:${height.toString(16).padStart(16, '0')}`
const tKey = (id: Uint8Array | string): string => `t:${typeof id === 'string' ? id : toHex(id)}`
const S_PREFIX = 's:'

function u64be(n: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

/**
 * The node's one embedded database (LevelDB through classic-level). Each
 * block commits in one atomic, fsynced batch, so after `kill -9` the store
 * holds exactly the blocks that were acknowledged and the state they produced.
 */
export class ChainStore {
  readonly #db: ClassicLevel<string, Uint8Array>

  private constructor(db: ClassicLevel<string, Uint8Array>) {
    this.#db = db
  }

  /** Opens (creating if needed) the database in `dir`. */
  static async open(dir: string): Promise<ChainStore> {
    const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { message?: string; code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new StoreError('STORE_LOCKED', `database ${dir} is in use by another process (is a daemon already running on this data dir?)`, { cause: err })
      }
      if (cause?.code === 'LEVEL_CORRUPTION') throw new StoreError('STORE_CORRUPT', `database ${dir} is corrupt: ${cause.message ?? ''}`, { cause: err })
      throw new StoreError('STORE_OPEN_FAILED', `cannot open database ${dir}: ${cause?.message ?? String(err)}`, { cause: err })
    }
    return new ChainStore(db)
  }

  /** Closes the database. */
  async close(): Promise<void> {
    await this.#db.close()
  }

  /** Height of the last committed block, or null for an empty store. */
  async headHeight(): Promise<number | null> {
    const v = await this.#db.get(HEAD)
    if (v === undefined) return null
    if (v.length !== 8) throw new StoreError('STORE_CORRUPT', 'head record is damaged')
    return Number(Buffer.from(v).readBigUInt64BE())
  }

  /** Commits one block and its effects atomically and durably. */
  async commitBlock(c: BlockCommit): Promise<void> {
    const ops: ({ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string })[] = [
      { type: 'put', key: bKey(c.hash), value: c.blockBytes },
      { type: 'put', key: hKey(c.height), value: c.hash },
      { type: 'put', key: cKey(c.height), value: c.certBytes },
      { type: 'put', key: HEAD, value: u64be(c.height) },
    ]
    const height = u64be(c.height)
    c.txIds.forEach((id, i) => {
      const loc = Buffer.alloc(12)
      loc.set(height, 0)
      loc.writeUInt32BE(i, 8)
      ops.push({ type: 'put', key: tKey(id), value: loc })
    })
    for (const [k, v] of c.stateWrites) {
      ops.push(v === null ? { type: 'del', key: S_PREFIX + k } : { type: 'put', key: S_PREFIX + k, value: v })
    }
    await this.#db.batch(ops, { sync: true })
  }

  /** Hash of the block at `height`. */
  async hashAt(height: number): Promise<Uint8Array | undefined> {
    return this.#db.get(hKey(height))
  }

  /** Block bytes by hash. */
  async blockBytes(hash: Uint8Array): Promise<Uint8Array | undefined> {
    return this.#db.get(bKey(hash))
  }

  /** Commit certificate bytes of the block at `height`. */
  async certBytes(height: number): Promise<Uint8Array | undefined> {
    return this.#db.get(cKey(height))
  }

  /** Location of a final transaction. */
  async txLocation(id: Uint8Array | string): Promise<TxLocation | undefined> {
    const v = await this.#db.get(tKey(id))
    if (v === undefined) return undefined
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    return { height: Number(b.readBigUInt64BE(0)), index: b.readUInt32BE(8) }
  }

  /**
   * A keyspace of this database for another store; `space` is one lower-case
   * letter other than the chain's own (m, h, b, c, t, s).
   */
  keyspace(space: string): KeyValueSpace {
    if (!/^[a-z]$/.test(space) || 'mhbcts'.includes(space))
      throw new StoreError('STORE_OPEN_FAILED', `keyspace ${JSON.stringify(space)} is reserved or invalid`)
    const db = this.#db
    const pre = `${space}:`
    return {
      get: (key) => db.get(pre + key),
      put: (key, value, opts) => db.put(pre + key, value, { sync: opts?.sync ?? false }),
      del: (key, opts) => db.del(pre + key, { sync: opts?.sync ?? false }),
      entries: async function* (prefix = '') {
        // Keys are ASCII: the bound above the prefix is its last character + 1.
        for await (const [k, v] of db.iterator({ gte: pre + prefix, lt: pre + prefix + '\uffff' })) yield [k.slice(pre.length), v] as [string, Uint8Array]
      },
    }
  }

  /** The whole committed state, read once at start. */
  async loadState(): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>()
    for await (const [k, v] of this.#db.iterator({ gte: S_PREFIX, lt: 's;' })) {
      out.set(k.slice(S_PREFIX.length), v)
    }
    return out
  }
}

/** A keyspace of the node's database under a fixed prefix, for other stores (the chunk store's index). */
export interface KeyValueSpace {
  get(key: string): Promise<Uint8Array | undefined>
  put(key: string, value: Uint8Array, opts?: { sync?: boolean }): Promise<void>
  del(key: string, opts?: { sync?: boolean }): Promise<void>
  /** Entries whose key starts with `prefix`, in key order. */
  entries(prefix?: string): AsyncGenerator<[string, Uint8Array]>
}
