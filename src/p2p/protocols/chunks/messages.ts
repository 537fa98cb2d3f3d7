import { RadError, assertBytes, type ErrorCodes } from '../../../util/index.js'

/*
 * Wire formats of the chunk exchange protocols (request/response, see
 * reqresp.ts), all integers u32 big-endian:
 *
 *   chunks.have    req: studyId(16)              res: u32 count || u8 flags || bitfield (ceil(count/8) bytes)
 *                  flags: bit 0 = the chunk list is known, bit 1 = every object of the study (key envelopes, demographics) is held
 *   chunks.list    req: studyId(16)              res: chunk ids, 32 bytes each, in order
 *   chunks.get     req: studyId(16) || u32 index [|| leaseId(32) || u64 time || sig(64)]   res: the chunk's bytes
 *                  The lease part is sent by a lessee (no replication duty): Ed25519 over
 *                  signingBytes(LEASE_CHUNK_REQUEST, the first 60 bytes), time = its chain head time.
 *   chunks.object  req: studyId(16) || hash(32)  res: the object's bytes (key envelope, demographics)
 *
 * Bitfields are BitTorrent's (BEP 3): bit i is byte i>>3, mask 0x80>>(i&7);
 * spare bits at the end are zero. A refusal is an error response whose code
 * says why (CHUNK_CODES).
 */

/** Protocol names (under /radchain/<network>/). */
export const CHUNK_PROTOCOLS = { have: 'chunks.have', list: 'chunks.list', get: 'chunks.get', object: 'chunks.object' } as const

/**
 * Why a chunk exchange was refused or failed.
 * - SWARM_UNKNOWN_STUDY: no such study on the ledger (of the peer that answers).
 * - SWARM_NOT_HELD: the peer does not hold that chunk, list or object.
 * - SWARM_NOT_ALLOWED: the requester has neither replication duty for the study nor a lease for it.
 * - SWARM_BAD_REQUEST: a malformed request (penalized).
 * - SWARM_UNAVAILABLE: no reachable peer holds what is missing.
 * - SWARM_BAD_LIST: a chunk list that does not match the study's content root.
 * - SWARM_LEASE_ENDED: the lease a request was made under has expired or was revoked (the holder reports it).
 */
export type SwarmCode = ErrorCodes<
  'SWARM_UNKNOWN_STUDY' | 'SWARM_NOT_HELD' | 'SWARM_NOT_ALLOWED' | 'SWARM_BAD_REQUEST' | 'SWARM_UNAVAILABLE' | 'SWARM_BAD_LIST' | 'SWARM_LEASE_ENDED'
>

/** A swarm failure or refusal. */
export class SwarmError extends RadError<SwarmCode> {
  constructor(code: SwarmCode, message: string, opts: { cause?: unknown; penalize?: boolean } = {}) {
    super(code, message, opts)
    this.name = 'SwarmError'
  }
}

const STUDY_ID_BYTES = 16
const HASH_BYTES = 32

function badRequest(what: string): SwarmError {
  return new SwarmError('SWARM_BAD_REQUEST', `malformed ${what} request`, { penalize: true })
}

/** Request of chunks.have and chunks.list. */
export function encodeStudyRequest(studyId: Uint8Array): Uint8Array {
  assertBytes(studyId, STUDY_ID_BYTES, 'studyId')
  return studyId.slice()
}

/** Parses a chunks.have or chunks.list request. */
export function decodeStudyRequest(b: Uint8Array): Uint8Array {
  if (b.length !== STUDY_ID_BYTES) throw badRequest('study')
  return b.slice()
}

/** Request of chunks.get. */
export function encodeChunkRequest(studyId: Uint8Array, index: number): Uint8Array {
  assertBytes(studyId, STUDY_ID_BYTES, 'studyId')
  const b = Buffer.alloc(STUDY_ID_BYTES + 4)
  b.set(studyId, 0)
  b.writeUInt32BE(index, STUDY_ID_BYTES)
  return new Uint8Array(b)
}

/** A lessee's signed claim on a chunk request: which lease, at what chain time. */
export interface LeaseClaim {
  readonly leaseId: Uint8Array
  readonly time: number
  readonly signature: Uint8Array
  /** The bytes the signature covers (studyId || index || leaseId || time). */
  readonly signed: Uint8Array
}

/** Length of the signed part of a lease chunk request. */
export const LEASE_CLAIM_SIGNED_BYTES = STUDY_ID_BYTES + 4 + 32 + 8

/** Request of chunks.get under a lease, signed by the lessee: `sign` gets the signed bytes and returns the 64-byte signature. */
export function encodeLeaseChunkRequest(
  studyId: Uint8Array,
  index: number,
  leaseId: Uint8Array,
  time: number,
  sign: (msg: Uint8Array) => Uint8Array,
): Uint8Array {
  assertBytes(leaseId, 32, 'leaseId')
  const b = Buffer.alloc(LEASE_CLAIM_SIGNED_BYTES + 64)
  b.set(encodeChunkRequest(studyId, index), 0)
  b.set(leaseId, STUDY_ID_BYTES + 4)
  b.writeBigUInt64BE(BigInt(time), STUDY_ID_BYTES + 36)
  const sig = sign(new Uint8Array(b.subarray(0, LEASE_CLAIM_SIGNED_BYTES)))
  assertBytes(sig, 64, 'signature')
  b.set(sig, LEASE_CLAIM_SIGNED_BYTES)
  return new Uint8Array(b)
}

/** Parses a chunks.get request, with the lessee's claim when there is one. */
export function decodeChunkRequest(b: Uint8Array): { studyId: Uint8Array; index: number; claim?: LeaseClaim } {
  if (b.length !== STUDY_ID_BYTES + 4 && b.length !== LEASE_CLAIM_SIGNED_BYTES + 64) throw badRequest('chunk')
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  const base = { studyId: b.slice(0, STUDY_ID_BYTES), index: v.readUInt32BE(STUDY_ID_BYTES) }
  if (b.length === STUDY_ID_BYTES + 4) return base
  const time = v.readBigUInt64BE(STUDY_ID_BYTES + 36)
  if (time > BigInt(Number.MAX_SAFE_INTEGER)) throw badRequest('chunk')
  return {
    ...base,
    claim: {
      leaseId: b.slice(STUDY_ID_BYTES + 4, STUDY_ID_BYTES + 36),
      time: Number(time),
      signature: b.slice(LEASE_CLAIM_SIGNED_BYTES),
      signed: b.slice(0, LEASE_CLAIM_SIGNED_BYTES),
    },
  }
}

/** Request of chunks.object. */
export function encodeObjectRequest(studyId: Uint8Array, hash: Uint8Array): Uint8Array {
  assertBytes(studyId, STUDY_ID_BYTES, 'studyId')
  assertBytes(hash, HASH_BYTES, 'hash')
  const b = new Uint8Array(STUDY_ID_BYTES + HASH_BYTES)
  b.set(studyId, 0)
  b.set(hash, STUDY_ID_BYTES)
  return b
}

/** Parses a chunks.object request. */
export function decodeObjectRequest(b: Uint8Array): { studyId: Uint8Array; hash: Uint8Array } {
  if (b.length !== STUDY_ID_BYTES + HASH_BYTES) throw badRequest('object')
  return { studyId: b.slice(0, STUDY_ID_BYTES), hash: b.slice(STUDY_ID_BYTES) }
}

/** A set of chunk indices as a BitTorrent-style bitfield. */
export class Bitfield {
  readonly size: number
  readonly bytes: Uint8Array
  #count = 0

  constructor(size: number, bytes?: Uint8Array) {
    if (!Number.isInteger(size) || size < 0) throw new TypeError('bitfield size must be a non-negative integer')
    this.size = size
    this.bytes = new Uint8Array(Math.ceil(size / 8))
    if (bytes !== undefined) {
      if (bytes.length !== this.bytes.length) throw new SwarmError('SWARM_BAD_REQUEST', 'bitfield has the wrong length', { penalize: true })
      this.bytes.set(bytes)
      if (size % 8 !== 0 && ((this.bytes[this.bytes.length - 1] ?? 0) & (0xff >> (size % 8))) !== 0) {
        throw new SwarmError('SWARM_BAD_REQUEST', 'bitfield has spare bits set', { penalize: true })
      }
      for (let i = 0; i < size; i++) if (this.has(i)) this.#count++
    }
  }

  /** Indices set. */
  get count(): number {
    return this.#count
  }

  /** Whether every index is set. */
  get complete(): boolean {
    return this.#count === this.size
  }

  has(i: number): boolean {
    return i >= 0 && i < this.size && ((this.bytes[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0
  }

  set(i: number): void {
    if (i < 0 || i >= this.size) throw new RangeError('bitfield index out of range')
    if (this.has(i)) return
    this.bytes[i >> 3] = (this.bytes[i >> 3] ?? 0) | (0x80 >> (i & 7))
    this.#count++
  }

  clear(i: number): void {
    if (!this.has(i)) return
    this.bytes[i >> 3] = (this.bytes[i >> 3] ?? 0) & ~(0x80 >> (i & 7))
    this.#count--
  }
}

/** What a peer holds of a study. */
export interface HaveInfo {
  readonly chunks: Bitfield
  /** It knows the chunk list. */
  readonly list: boolean
  /** It holds every object of the study (key envelopes, demographics record). */
  readonly objects: boolean
}

/** Size of the chunks.have answer for a study of `chunkCount` chunks (count, flags, bitfield): the bound its requester sets. */
export function haveResponseBytes(chunkCount: number): number {
  return 5 + Math.ceil(chunkCount / 8)
}

/** Size of the chunks.list answer for a study of `chunkCount` chunks (their ids): the bound its requester sets. */
export function listResponseBytes(chunkCount: number): number {
  return chunkCount * HASH_BYTES
}

/** Response of chunks.have. */
export function encodeHave(h: HaveInfo): Uint8Array {
  const out = Buffer.alloc(haveResponseBytes(h.chunks.size))
  out.writeUInt32BE(h.chunks.size, 0)
  out[4] = (h.list ? 1 : 0) | (h.objects ? 2 : 0)
  out.set(h.chunks.bytes, 5)
  return new Uint8Array(out)
}

/** Parses a chunks.have response; `expected` is the study's chunk count from the ledger. */
export function decodeHave(b: Uint8Array, expected: number): HaveInfo {
  if (b.length < 5) throw new SwarmError('SWARM_BAD_REQUEST', 'have response too short', { penalize: true })
  const size = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32BE(0)
  if (size !== expected) throw new SwarmError('SWARM_BAD_REQUEST', `have response for ${size} chunks, the study has ${expected}`, { penalize: true })
  // Checked before the bitfield is allocated: a short answer must not cost memory for the count it states.
  if (b.length !== haveResponseBytes(size)) throw new SwarmError('SWARM_BAD_REQUEST', 'bitfield has the wrong length', { penalize: true })
  const flags = b[4] ?? 0
  if ((flags & ~3) !== 0) throw new SwarmError('SWARM_BAD_REQUEST', 'have response with unknown flags', { penalize: true })
  return { chunks: new Bitfield(size, b.subarray(5)), list: (flags & 1) !== 0, objects: (flags & 2) !== 0 }
}

/** Response of chunks.list. */
export function encodeList(ids: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(ids.length * HASH_BYTES)
  ids.forEach((id, i) => out.set(id, i * HASH_BYTES))
  return out
}

/** Parses a chunks.list response of `expected` ids. */
export function decodeList(b: Uint8Array, expected: number): Uint8Array[] {
  if (b.length !== expected * HASH_BYTES)
    throw new SwarmError('SWARM_BAD_LIST', `chunk list of ${b.length} bytes, expected ${expected} ids`, { penalize: true })
  const out: Uint8Array[] = []
  for (let i = 0; i < expected; i++) out.push(b.slice(i * HASH_BYTES, (i + 1) * HASH_BYTES))
  return out
}
