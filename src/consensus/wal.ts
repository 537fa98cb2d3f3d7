import { open, type FileHandle } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { CodecError, asArray, asBytes, asString, asU32, asU64Number, decodeCanonical, encodeTrusted, u64, type Encodable } from '../chain/index.js'

/** One record of the write-ahead log: something this node signed or locked at `height`. */
export type WalEntry =
  /** A consensus message this node signed (its encoded bytes). */
  | { readonly height: number; readonly kind: 'message'; readonly bytes: Uint8Array }
  /** A lock on a block at a round (docs/CONSENSUS.md rule 5). */
  | { readonly height: number; readonly kind: 'lock'; readonly round: number; readonly blockBytes: Uint8Array }

const MAX_ENTRY = 64 * 1024 * 1024

function checksum(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest().subarray(0, 4)
}

function entryToWire(e: WalEntry): Encodable {
  return e.kind === 'message' ? [u64(e.height), 'message', e.bytes] : [u64(e.height), 'lock', e.round, e.blockBytes]
}

function entryFromWire(v: unknown): WalEntry {
  const a = asArray(v, 'wal entry')
  const height = asU64Number(a[0], 'wal.height')
  const kind = asString(a[1], 'wal.kind', 16)
  if (kind === 'message') return { height, kind, bytes: asBytes(a[2], 'wal.bytes') }
  if (kind === 'lock') return { height, kind, round: asU32(a[2], 'wal.round'), blockBytes: asBytes(a[3], 'wal.block') }
  throw new CodecError('CODEC_SCHEMA', `unknown wal entry ${JSON.stringify(kind)}`)
}

/**
 * The consensus write-ahead log (docs/CONSENSUS.md "Write-ahead log"): every
 * message this node signs, and every lock, is appended and fsynced before it
 * is sent, so a restarted node resends what it signed instead of signing
 * something else. Frames: 4-byte length, 4-byte checksum, entry. A torn last
 * frame (a crash mid-write) was never sent, so replay stops there.
 */
export class ConsensusWal {
  readonly #fh: FileHandle
  readonly #entries: WalEntry[]

  private constructor(fh: FileHandle, entries: WalEntry[]) {
    this.#fh = fh
    this.#entries = entries
  }

  /** Opens (creating) the log at `path` and reads what it holds. */
  static async open(path: string): Promise<ConsensusWal> {
    const fh = await open(path, 'a+', 0o600)
    const data = await fh.readFile()
    const entries: WalEntry[] = []
    let o = 0
    while (o + 8 <= data.length) {
      const len = data.readUInt32BE(o)
      if (len > MAX_ENTRY || o + 8 + len > data.length) break
      const body = data.subarray(o + 8, o + 8 + len)
      if (!checksum(body).equals(data.subarray(o + 4, o + 8))) break
      try {
        entries.push(entryFromWire(decodeCanonical(body)))
      } catch {
        break
      }
      o += 8 + len
    }
    if (o < data.length) {
      // Drop the torn tail so later appends follow the last whole frame.
      await fh.truncate(o)
      await fh.sync()
    }
    return new ConsensusWal(fh, entries)
  }

  /** Entries read at open, oldest first. */
  entries(): readonly WalEntry[] {
    return this.#entries
  }

  /** Appends an entry and fsyncs it. */
  async append(e: WalEntry): Promise<void> {
    const body = encodeTrusted(entryToWire(e))
    const head = Buffer.alloc(8)
    head.writeUInt32BE(body.length, 0)
    checksum(body).copy(head, 4)
    await this.#fh.appendFile(Buffer.concat([head, body]))
    await this.#fh.sync()
  }

  /** Empties the log (after the height it covered is committed to the store). */
  async reset(): Promise<void> {
    await this.#fh.truncate(0)
    await this.#fh.sync()
  }

  async close(): Promise<void> {
    await this.#fh.close()
  }
}
