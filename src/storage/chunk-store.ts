import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256 } from '../crypto/index.js'
import { RadError, assertBytes, fsyncPath, assertInt, bytesLength, dropBytes, equalBytes, partsOf, toHex, type Bytes, type ErrorCodes } from '../util/index.js'
import { StoreError, type KeyValueSpace } from './chain-store.js'

/**
 * Why the chunk store refused or failed an operation.
 * - CHUNK_BAD_ID: the bytes do not hash (SHA-256) to the id they were offered under.
 * - CHUNK_CORRUPT: a stored file no longer hashes to its id (or is missing); the entry was dropped.
 * - CHUNK_QUOTA_EXCEEDED: storing the chunk would take the store above its quota.
 * - CHUNK_STORE_CLOSED: the store was closed.
 */
export type ChunkStoreCode = ErrorCodes<'CHUNK_BAD_ID' | 'CHUNK_CORRUPT' | 'CHUNK_QUOTA_EXCEEDED' | 'CHUNK_STORE_CLOSED'>

/** A chunk store failure; CHUNK_BAD_ID is set to penalize the peer that sent the bytes. */
export class ChunkStoreError extends RadError<ChunkStoreCode> {
  constructor(code: ChunkStoreCode, message: string, opts: { cause?: unknown; penalize?: boolean } = {}) {
    super(code, message, opts)
    this.name = 'ChunkStoreError'
  }
}

/**
 * What any chunk backend offers (local files now, an object store later).
 * Chunks are content-addressed: `id` is SHA-256 of the bytes, and every read
 * is verified against it.
 */
export interface ChunkBackend {
  /** Stores `bytes` under `id` durably; idempotent; refuses wrong ids and quota overruns. */
  put(id: Uint8Array, bytes: Uint8Array): Promise<void>
  /** The verified bytes of `id`, or undefined when not stored. */
  get(id: Uint8Array): Promise<Uint8Array | undefined>
  /** Whether `id` is stored. */
  has(id: Uint8Array): Promise<boolean>
  /** Removes `id`; true when it was stored. */
  delete(id: Uint8Array): Promise<boolean>
  /** Bytes held by stored chunks. */
  readonly usedBytes: number
  /** Waits for operations in flight and refuses further ones. */
  close(): Promise<void>
}

/** Options of {@link ChunkStore.open}. */
export interface ChunkStoreOptions {
  /** Folder of the chunk files, created if needed. */
  readonly dir: string
  /** Largest total size of stored chunks, in bytes. */
  readonly quotaBytes: number
  /** Index keyspace (sizes of stored chunks), e.g. `chainStore.keyspace('k')`. */
  readonly index: KeyValueSpace
}

// Index layout: 'c/<id hex>' -> u64 big-endian size of the chunk file; 'f' is written synced by flush().
const INDEX_PREFIX = 'c/'
const FLUSH_KEY = 'f'
const ID_BYTES = 32

function sizeValue(n: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

function readSize(key: string, v: Uint8Array): number {
  if (v.length !== 8) throw new StoreError('STORE_CORRUPT', `chunk index entry ${key} is damaged`)
  return Number(Buffer.from(v.buffer, v.byteOffset, v.byteLength).readBigUInt64BE())
}

/**
 * fsyncs a flush runs at once: a few keep the disk busy, and the rest of the
 * thread pool stays free for the node's other file work (a reader's export
 * finishing while the download's flush runs; with 16 at once its last files
 * waited behind the fsyncs).
 */
const SYNCS_AT_ONCE = 4

/**
 * Writes all of `bytes` at the file's current position: one write() call for
 * most sizes (FileHandle.writeFile would split it in 512 KiB writes), or one
 * writev() of all the parts.
 */
async function writeAll(fh: FileHandle, bytes: Bytes): Promise<void> {
  if (bytes instanceof Uint8Array) {
    let off = 0
    while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten
    return
  }
  let left = bytes.filter((p) => p.length > 0)
  while (left.length > 0) {
    const { bytesWritten } = await fh.writev(left)
    left = dropBytes(left, bytesWritten)
  }
}

/**
 * Content-addressed chunk files under `dir/<hex[0:2]>/<hex[2:4]>/<hex>`,
 * written crash-safely (temporary file, fsync, rename, fsync of the folder;
 * deferred puts write in place and sync in bulk at flush(), see put())
 * and indexed with their sizes in the node's database, so the used total is
 * known at open without walking the folder. A file is written before its
 * index entry: a crash in between leaves an unindexed file (not counted,
 * overwritten by the next put), never an index entry without its file.
 */
export class ChunkStore implements ChunkBackend {
  readonly #dir: string
  readonly #quota: number
  readonly #index: KeyValueSpace
  #used: number
  /** Bytes of puts in flight that passed the quota check. */
  #reserved = 0
  #closed = false
  /** Folders holding deferred puts whose renames are not yet synced, and the files not yet synced. */
  readonly #pendingDirs = new Set<string>()
  readonly #pendingFiles = new Set<string>()
  /** Index entries written without sync since the last flush. */
  #deferred = false
  /** The last flush started (see flush()). */
  #flushing: Promise<void> = Promise.resolve()
  /** Per-id tail of the operation chain, so put/delete/drop of one id never interleave. */
  readonly #locks = new Map<string, Promise<unknown>>()
  /** Fan-out folders known to exist. */
  readonly #dirs = new Set<string>()

  private constructor(opts: ChunkStoreOptions, used: number) {
    this.#dir = opts.dir
    this.#quota = opts.quotaBytes
    this.#index = opts.index
    this.#used = used
  }

  /** Opens the store, creating `dir` if needed and summing the indexed sizes. */
  static async open(opts: ChunkStoreOptions): Promise<ChunkStore> {
    assertInt(opts.quotaBytes, 0, Number.MAX_SAFE_INTEGER, 'quotaBytes')
    await mkdir(opts.dir, { recursive: true })
    await ChunkStore.#recover(opts)
    // Entries whose file is gone (a wiped or restored-from-elsewhere folder) are dropped, so
    // `has` never claims a chunk that cannot be read; the swarm then fetches it again.
    let used = 0
    const gone: string[] = []
    for await (const [k, v] of opts.index.entries(INDEX_PREFIX)) {
      const hex = k.slice(INDEX_PREFIX.length)
      const size = readSize(k, v)
      const st = await stat(join(opts.dir, hex.slice(0, 2), hex.slice(2, 4), hex)).catch(() => undefined)
      if (st === undefined || st.size !== size) gone.push(k)
      else used += size
    }
    for (const [i, k] of gone.entries()) await opts.index.del(k, { sync: i === gone.length - 1 })
    const store = new ChunkStore(opts, used)
    store.droppedAtOpen = gone.length
    return store
  }

  // After a crash: temporary files are removed, and a chunk whose file was
  // renamed into place but whose index entry was not yet written is verified
  // and indexed (or removed if its bytes do not match its name).
  static async #recover(opts: ChunkStoreOptions): Promise<void> {
    const HEX64 = /^[0-9a-f]{64}$/
    for (const a of await readdir(opts.dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue
      for (const b of await readdir(join(opts.dir, a)).catch(() => [] as string[])) {
        const folder = join(opts.dir, a, b)
        for (const name of await readdir(folder).catch(() => [] as string[])) {
          const path = join(folder, name)
          if (name.includes('.tmp-')) {
            await unlink(path).catch(() => {})
            continue
          }
          if (!HEX64.test(name) || (await opts.index.get(INDEX_PREFIX + name)) !== undefined) continue
          const bytes = await readFile(path)
          if (toHex(sha256(bytes)) !== name) {
            await unlink(path).catch(() => {})
            continue
          }
          await opts.index.put(INDEX_PREFIX + name, sizeValue(bytes.length), { sync: true })
        }
      }
    }
  }

  /** Index entries dropped at open because their file was missing or had the wrong size. */
  droppedAtOpen = 0

  /** Bytes held by stored chunks. */
  get usedBytes(): number {
    return this.#used
  }

  /** The store's quota in bytes. */
  get quotaBytes(): number {
    return this.#quota
  }

  /** Path of the file of the chunk with hex id `hex`. */
  #path(hex: string): string {
    return join(this.#dir, hex.slice(0, 2), hex.slice(2, 4), hex)
  }

  #hex(id: Uint8Array): string {
    this.#checkOpen()
    assertBytes(id, ID_BYTES, 'chunk id')
    return toHex(id)
  }

  #checkOpen(): void {
    if (this.#closed) throw new ChunkStoreError('CHUNK_STORE_CLOSED', 'chunk store is closed')
  }

  async #locked<T>(hex: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(hex) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    this.#locks.set(hex, tail)
    try {
      return await run
    } finally {
      if (this.#locks.get(hex) === tail) this.#locks.delete(hex)
    }
  }

  async #size(hex: string): Promise<number | undefined> {
    const key = INDEX_PREFIX + hex
    const v = await this.#index.get(key)
    return v === undefined ? undefined : readSize(key, v)
  }

  /**
   * Stores `bytes` under `id` (= SHA-256 of `bytes`) durably; a second put of
   * a stored id does nothing. With `defer`, the file, its folder entry and
   * its index entry are made durable only by the next flush(), which syncs
   * them in bulk; a crash before it may lose or tear the chunk, which the
   * next open or read notices (entries without a file are dropped, unindexed
   * files verified and indexed, torn files fail verification and are
   * dropped). With `verified`, the caller has already checked that `bytes`
   * hash to `id` (a downloader verifies every chunk as it arrives), and the
   * store does not hash them again. `bytes` may come as consecutive parts
   * (views of received buffers), written with one writev().
   */
  async put(id: Uint8Array, bytes: Bytes, opts: { defer?: boolean; verified?: boolean } = {}): Promise<void> {
    const hex = this.#hex(id)
    for (const p of partsOf(bytes)) assertBytes(p, undefined, 'chunk bytes')
    if (opts.verified !== true && !equalBytes(sha256(bytes), id))
      throw new ChunkStoreError('CHUNK_BAD_ID', `chunk ${hex} does not hash to its id`, { penalize: true })
    await this.#locked(hex, async () => {
      this.#checkOpen()
      if ((await this.#size(hex)) !== undefined) return
      const size = bytesLength(bytes)
      if (this.#used + this.#reserved + size > this.#quota) {
        throw new ChunkStoreError(
          'CHUNK_QUOTA_EXCEEDED',
          `chunk store quota exceeded: storing ${size} bytes on top of ${this.#used + this.#reserved} bytes used would pass the quota of ${this.#quota} bytes`,
        )
      }
      this.#reserved += size
      const defer = opts.defer === true
      try {
        await this.#writeFile(hex, bytes, defer)
        await this.#index.put(INDEX_PREFIX + hex, sizeValue(size), { sync: !defer })
        if (defer) this.#deferred = true
        this.#used += size
      } finally {
        this.#reserved -= size
      }
    })
  }

  /**
   * Makes every deferred put durable: syncs the files, the folders they were
   * written into, then the index. Flushes run one after another: one that
   * starts while another runs waits for it, so that when any flush returns,
   * every put deferred before it was called is durable (a flush that found
   * the lists emptied by the one running used to return at once). A flush
   * that fails leaves what it did not sync to the next one.
   */
  flush(): Promise<void> {
    const run = this.#flushing.catch(() => undefined).then(() => this.#flushNow())
    this.#flushing = run
    return run
  }

  async #flushNow(): Promise<void> {
    const dirs = [...this.#pendingDirs]
    const files = [...this.#pendingFiles]
    this.#pendingDirs.clear()
    this.#pendingFiles.clear()
    const wasDeferred = this.#deferred
    this.#deferred = false
    try {
      // Files first (their data), then the folders (their names), then the index.
      for (let i = 0; i < files.length; i += SYNCS_AT_ONCE) await Promise.all(files.slice(i, i + SYNCS_AT_ONCE).map((f) => fsyncPath(f)))
      for (let i = 0; i < dirs.length; i += SYNCS_AT_ONCE) await Promise.all(dirs.slice(i, i + SYNCS_AT_ONCE).map((d) => fsyncPath(d)))
      if (wasDeferred) await this.#index.put(FLUSH_KEY, Uint8Array.of(1), { sync: true })
    } catch (err) {
      for (const f of files) this.#pendingFiles.add(f)
      for (const d of dirs) this.#pendingDirs.add(d)
      if (wasDeferred) this.#deferred = true
      throw err
    }
  }

  /** Opens `path` for writing in fan-out folder `dir`, creating the folder the first time (and again if it went missing). */
  async #create(dir: string, path: string, flags: 'w' | 'wx'): Promise<FileHandle> {
    if (this.#dirs.has(dir)) {
      try {
        return await open(path, flags, 0o644)
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err
        this.#dirs.delete(dir)
      }
    }
    await mkdir(dir, { recursive: true })
    if (this.#dirs.size >= 65_536) this.#dirs.clear() // at most 256 x 256 folders; bounded all the same
    this.#dirs.add(dir)
    return open(path, flags, 0o644)
  }

  async #writeFile(hex: string, bytes: Bytes, defer = false): Promise<void> {
    const path = this.#path(hex)
    const dir = join(this.#dir, hex.slice(0, 2), hex.slice(2, 4))
    if (defer) {
      // Written in place, without a temporary name: until flush() nothing of
      // it is durable anyway, its index entry comes only after the last byte,
      // and a torn file left by a crash is caught at open (wrong size, or not
      // indexed and failing verification) or at the first read (verified).
      const fh = await this.#create(dir, path, 'w')
      try {
        await writeAll(fh, bytes)
      } catch (err) {
        await fh.close().catch(() => {})
        await unlink(path).catch(() => {})
        throw err
      }
      await fh.close()
      this.#pendingDirs.add(dir)
      this.#pendingFiles.add(path)
      return
    }
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`
    const fh = await this.#create(dir, tmp, 'wx')
    try {
      await writeAll(fh, bytes)
      await fh.sync()
      await fh.close()
      await rename(tmp, path)
    } catch (err) {
      await fh.close().catch(() => {})
      await unlink(tmp).catch(() => {})
      throw err
    }
    await fsyncPath(dir)
  }

  /**
   * The bytes of `id`, verified against it, or undefined when not stored. A
   * file that no longer matches (or is gone) is dropped from the index and
   * the call fails with CHUNK_CORRUPT, so the chunk can be fetched again.
   * `verify: false` checks the size only (for bytes whose reader checks them
   * anyway: a chunk served to a peer).
   */
  async get(id: Uint8Array, opts: { verify?: boolean } = {}): Promise<Uint8Array | undefined> {
    const hex = this.#hex(id)
    const size = await this.#size(hex)
    if (size === undefined) return undefined
    let bytes: Uint8Array
    try {
      const b = await readFile(this.#path(hex))
      bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength) // a view, not a copy
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
      // A concurrent delete removes the index entry first: then the chunk is simply gone.
      if ((await this.#size(hex)) === undefined) return undefined
      await this.#drop(hex)
      throw new ChunkStoreError('CHUNK_CORRUPT', `chunk ${hex} is indexed but its file is missing; entry dropped`, { cause: err })
    }
    if (bytes.length !== size || (opts.verify !== false && !equalBytes(sha256(bytes), id))) {
      await this.#drop(hex)
      throw new ChunkStoreError('CHUNK_CORRUPT', `chunk ${hex} on disk no longer matches its id; entry dropped`)
    }
    return bytes
  }

  /** Whether `id` is stored (per the index; `get` verifies the bytes). */
  async has(id: Uint8Array): Promise<boolean> {
    return (await this.#size(this.#hex(id))) !== undefined
  }

  /** Removes `id`; true when it was stored. */
  async delete(id: Uint8Array): Promise<boolean> {
    const hex = this.#hex(id)
    return this.#locked(hex, async () => {
      this.#checkOpen()
      return this.#remove(hex)
    })
  }

  async #drop(hex: string): Promise<void> {
    await this.#locked(hex, () => this.#remove(hex))
  }

  /** Index entry first, then the file: a crash in between leaves an unindexed file, never a dangling entry. */
  async #remove(hex: string): Promise<boolean> {
    const size = await this.#size(hex)
    if (size === undefined) return false
    await this.#index.del(INDEX_PREFIX + hex, { sync: true })
    this.#used -= size
    await unlink(this.#path(hex)).catch((err: unknown) => {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
    })
    return true
  }

  /** Waits for operations in flight, flushes deferred puts and refuses further ones; the index database stays open (its owner closes it). */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#locks.values()])
    await this.flush()
  }
}
