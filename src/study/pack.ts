import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { merkleRoot, sha256 } from '../crypto/index.js'
import { RadError, asBuffer, assertBytes, assertInt, equalBytes, utf8, type ErrorCodes } from '../util/index.js'

/**
 * Why a chunk was refused.
 * - CHUNK_DECRYPT_FAILED: AES-GCM authentication failed: wrong key, study, version,
 *   position or last-flag, or the bytes were altered.
 * - CHUNK_BAD_ID: the ciphertext does not hash to the chunk id it was offered under.
 * - CHUNK_TOO_LARGE: the ciphertext is longer than any chunk may be.
 * - CHUNK_BAD_PARAMS: key, study id, version, index or chunk size out of range.
 */
export type ChunkCode = ErrorCodes<'CHUNK_DECRYPT_FAILED' | 'CHUNK_BAD_ID' | 'CHUNK_TOO_LARGE' | 'CHUNK_BAD_PARAMS'>

/** A chunk encryption or decryption failure; `penalize` is set when a peer must have sent the bytes wrongly. */
export class ChunkError extends RadError<ChunkCode> {
  constructor(code: ChunkCode, message: string, opts: { cause?: unknown; penalize?: boolean } = {}) {
    super(code, message, opts)
    this.name = 'ChunkError'
  }
}

/** AAD prefix of every chunk (format version 1). */
export const CHUNK_AAD_TAG = 'radchain/chunk/v1'
/** AES-GCM tag length appended to every ciphertext. */
export const CHUNK_TAG_BYTES = 16
/** AES-GCM nonce length. */
export const CHUNK_NONCE_BYTES = 12
/** Largest plaintext chunk accepted (16 MiB): bounds memory of one chunk in flight. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024

const AAD_TAG = utf8(CHUNK_AAD_TAG)
/** tag(17) || studyId(16) || u32 version || u64 index || u8 isLast. */
const AAD_BYTES = AAD_TAG.length + 16 + 4 + 8 + 1

/** Parameters shared by every chunk of one study version. */
export interface ChunkParams {
  /**
   * AES-256 key, 32 bytes. It MUST be fresh and random for each study version
   * and encrypt that version exactly once: nonces are derived from the chunk
   * index, so re-encrypting other plaintext under the same key would reuse
   * (key, nonce) pairs and break GCM (NIST SP 800-38D section 8).
   */
  readonly dataKey: Uint8Array
  /** 16-byte study identifier, bound into every chunk's AAD. */
  readonly studyId: Uint8Array
  /** Study version, u32, bound into every chunk's AAD. */
  readonly version: number
}

/** Options of {@link encryptChunks}. */
export interface EncryptChunksOptions extends ChunkParams {
  /** Plaintext bytes per chunk, 1..MAX_CHUNK_SIZE; the last chunk may be shorter. */
  readonly chunkSize: number
}

/** One encrypted chunk. */
export interface EncryptedChunk {
  /** Position, from 0. */
  readonly index: number
  /** sha256 of `ciphertext`: the content address of the chunk. */
  readonly id: Uint8Array
  /** AES-256-GCM ciphertext with the 16-byte tag appended. */
  readonly ciphertext: Uint8Array
}

/** Options of {@link decryptChunk}. */
export interface DecryptChunkOptions extends ChunkParams {
  readonly index: number
  /** Whether this is the study's last chunk (bound into the AAD, so truncation is detected). */
  readonly isLast: boolean
  /** When given, the ciphertext must hash to it (CHUNK_BAD_ID otherwise). */
  readonly id?: Uint8Array
  /** Largest plaintext accepted; MAX_CHUNK_SIZE when omitted. */
  readonly maxChunkSize?: number
}

function checkParams(p: ChunkParams): void {
  try {
    assertBytes(p.dataKey, 32, 'dataKey')
    assertBytes(p.studyId, 16, 'studyId')
    assertInt(p.version, 0, 0xffffffff, 'version')
  } catch (err) {
    throw new ChunkError('CHUNK_BAD_PARAMS', (err as Error).message, { cause: err })
  }
}

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) throw new ChunkError('CHUNK_BAD_PARAMS', `chunk index must be a non-negative safe integer, got ${index}`)
}

/** Nonce of chunk `index`: 4 zero bytes || u64 big-endian index. */
export function chunkNonce(index: number): Uint8Array {
  checkIndex(index)
  const n = Buffer.alloc(CHUNK_NONCE_BYTES)
  n.writeBigUInt64BE(BigInt(index), 4)
  return n
}

/** AAD of a chunk: 'radchain/chunk/v1' || studyId (16) || u32 BE version || u64 BE index || u8 isLast (0 or 1). */
export function chunkAad(studyId: Uint8Array, version: number, index: number, isLast: boolean): Uint8Array {
  checkIndex(index)
  const a = Buffer.alloc(AAD_BYTES)
  let o = 0
  a.set(AAD_TAG, o)
  o += AAD_TAG.length
  a.set(studyId, o)
  o += 16
  a.writeUInt32BE(version, o)
  o += 4
  a.writeBigUInt64BE(BigInt(index), o)
  o += 8
  a.writeUInt8(isLast ? 1 : 0, o)
  return a
}

/** Content address of a chunk: plain SHA-256 (FIPS 180-4) of its ciphertext. */
export function chunkId(ciphertext: Uint8Array): Uint8Array {
  return sha256(ciphertext)
}

function seal(key: KeyObject, p: ChunkParams, index: number, isLast: boolean, plain: Uint8Array): EncryptedChunk {
  const c = createCipheriv('aes-256-gcm', key, chunkNonce(index), { authTagLength: CHUNK_TAG_BYTES })
  c.setAAD(chunkAad(p.studyId, p.version, index, isLast))
  const out = Buffer.allocUnsafeSlow(plain.length + CHUNK_TAG_BYTES)
  let o = c.update(plain).copy(out, 0)
  o += c.final().copy(out, o)
  c.getAuthTag().copy(out, o)
  const ciphertext = new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  return { index, id: chunkId(ciphertext), ciphertext }
}

/**
 * Cuts a plaintext stream into `chunkSize` pieces (the last may be shorter;
 * empty input gives one empty chunk) and encrypts each with AES-256-GCM
 * (NIST SP 800-38D) under the study version's data key. Memory stays bounded
 * by about two chunks plus one source piece: a full chunk is held back only
 * until the next byte shows whether it is the last.
 */
export async function* encryptChunks(source: AsyncIterable<Uint8Array>, opts: EncryptChunksOptions): AsyncGenerator<EncryptedChunk> {
  checkParams(opts)
  if (!Number.isSafeInteger(opts.chunkSize) || opts.chunkSize < 1 || opts.chunkSize > MAX_CHUNK_SIZE) {
    throw new ChunkError('CHUNK_BAD_PARAMS', `chunkSize must be an integer in 1..${MAX_CHUNK_SIZE}, got ${opts.chunkSize}`)
  }
  const size = opts.chunkSize
  const key = createSecretKey(asBuffer(opts.dataKey))
  const params: ChunkParams = { dataKey: opts.dataKey, studyId: opts.studyId, version: opts.version }
  let buf: Buffer = Buffer.allocUnsafeSlow(size)
  let fill = 0
  // A full chunk waiting to learn whether more input follows, and a spare buffer to refill.
  let full: Buffer | undefined
  let spare: Buffer | undefined
  let index = 0
  for await (const piece of source) {
    assertBytes(piece, undefined, 'source piece')
    let off = 0
    while (off < piece.length) {
      if (full !== undefined) {
        yield seal(key, params, index++, false, full)
        spare = full
        full = undefined
      }
      const n = Math.min(size - fill, piece.length - off)
      buf.set(piece.subarray(off, off + n), fill)
      fill += n
      off += n
      if (fill === size) {
        full = buf
        buf = spare ?? Buffer.allocUnsafeSlow(size)
        spare = undefined
        fill = 0
      }
    }
  }
  // Data is only added to `buf` after `full` has been emitted, so at most one of them holds bytes.
  yield seal(key, params, index, true, full ?? buf.subarray(0, fill))
}

/**
 * Decrypts and authenticates one chunk. Fails with CHUNK_DECRYPT_FAILED when
 * the chunk belongs to another study, version or position, when `isLast` is
 * wrong (a dropped tail chunk), or when any byte was altered.
 */
export function decryptChunk(ciphertext: Uint8Array, opts: DecryptChunkOptions): Uint8Array {
  checkParams(opts)
  checkIndex(opts.index)
  assertBytes(ciphertext, undefined, 'ciphertext')
  const max = opts.maxChunkSize ?? MAX_CHUNK_SIZE
  if (ciphertext.length > max + CHUNK_TAG_BYTES) {
    throw new ChunkError('CHUNK_TOO_LARGE', `chunk ${opts.index} is ${ciphertext.length} bytes, above the bound of ${max + CHUNK_TAG_BYTES}`, {
      penalize: true,
    })
  }
  if (opts.id !== undefined && !equalBytes(chunkId(ciphertext), opts.id)) {
    throw new ChunkError('CHUNK_BAD_ID', `chunk ${opts.index} does not hash to its id`, { penalize: true })
  }
  if (ciphertext.length < CHUNK_TAG_BYTES) throw new ChunkError('CHUNK_DECRYPT_FAILED', `chunk ${opts.index} is shorter than its authentication tag`)
  const ct = asBuffer(ciphertext)
  const body = ct.subarray(0, ct.length - CHUNK_TAG_BYTES)
  const d = createDecipheriv('aes-256-gcm', asBuffer(opts.dataKey), chunkNonce(opts.index), { authTagLength: CHUNK_TAG_BYTES })
  d.setAAD(chunkAad(opts.studyId, opts.version, opts.index, opts.isLast))
  d.setAuthTag(ct.subarray(ct.length - CHUNK_TAG_BYTES))
  let out: Buffer
  try {
    // GCM returns every byte from update; final only checks the tag.
    const head = d.update(body)
    const tail = d.final()
    out = tail.length === 0 ? head : Buffer.concat([head, tail])
  } catch (err) {
    throw new ChunkError(
      'CHUNK_DECRYPT_FAILED',
      `chunk ${opts.index} failed authentication (wrong key, study, version, position or last flag, or altered bytes)`,
      { cause: err },
    )
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Content root of a study version: merkleRoot (RFC 6962 split, domain-tagged) over its chunk ids in order. */
export function contentRoot(chunkIds: readonly Uint8Array[]): Uint8Array {
  chunkIds.forEach((id, i) => assertBytes(id, 32, `chunk id ${i}`))
  return merkleRoot(chunkIds)
}
