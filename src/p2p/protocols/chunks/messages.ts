import { RadError, assertBytes, type ErrorCodes } from '../../../util/index.js'

/*
 * Wire formats of the chunk exchange protocols (request/response, see
 * reqresp.ts), all integers u32 big-endian:
 *
 *   chunks.have    req: studyId(16)              res: u32 count || u8 flags || bitfield (ceil(count/8) bytes)
 *                  flags: bit 0 = the chunk list is known, bit 1 = every object of the study (key envelopes, demographics) is held
 *   chunks.list    req: studyId(16)              res: chunk ids, 32 bytes each, in order
 *   chunks.get     req: studyId(16) || u32 index [|| leaseId(32) || u64 time || u64 height || holder(32) || sig(64)]
 *                  res: the chunk's bytes
 *                  The lease part (the claim) is sent by a lessee (no replication duty): time and height
 *                  are those of its chain head, holder is the signing key of the peer asked, sig is
 *                  Ed25519 over signingBytes(LEASE_CHUNK_REQUEST, the first 100 bytes), the same
 *                  bytes as the ledger's leaseClaimBytes.
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
 * - SWARM_CLAIM_STALE: a lease claim's chain time or block is too far from the holder's head (one of the two lags).
 */
export type SwarmCode = ErrorCodes<
  | 'SWARM_UNKNOWN_STUDY'
  | 'SWARM_NOT_HELD'
  | 'SWARM_NOT_ALLOWED'
  | 'SWARM_BAD_REQUEST'
  | 'SWARM_UNAVAILABLE'
  | 'SWARM_BAD_LIST'
  | 'SWARM_LEASE_ENDED'
  | 'SWARM_CLAIM_STALE'
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

/** A lessee's signed claim on a chunk request: which lease, at what chain time and head block, to which holder. */
export interface LeaseClaim {
  readonly leaseId: Uint8Array
  /** Time and height of the lessee's chain head. */
  readonly time: number
  readonly height: number
  /** Signing key of the holder the request is for. */
  readonly holder: Uint8Array
  readonly signature: Uint8Array
  /** The bytes the signature covers (studyId || index || leaseId || time || height || holder). */
  readonly signed: Uint8Array
}

/** Length of the signed part of a lease chunk request. */
export const LEASE_CLAIM_SIGNED_BYTES = STUDY_ID_BYTES + 4 + 32 + 8 + 8 + 32

/** What a lessee states in a chunk request under a lease. */
export interface LeaseClaimFields {
  readonly leaseId: Uint8Array
  /** Time and height of its chain head. */
  readonly time: number
  readonly height: number
  /** Signing key of the holder asked. */
  readonly holder: Uint8Array
}

/** Request of chunks.get under a lease, signed by the lessee: `sign` gets the signed bytes and returns the 64-byte signature. */
export function encodeLeaseChunkRequest(studyId: Uint8Array, index: number, claim: LeaseClaimFields, sign: (msg: Uint8Array) => Uint8Array): Uint8Array {
  assertBytes(claim.leaseId, 32, 'leaseId')
  assertBytes(claim.holder, 32, 'holder')
  if (!Number.isSafeInteger(claim.time) || claim.time < 0 || !Number.isSafeInteger(claim.height) || claim.height < 0)
    throw new RangeError('claim time and height must be non-negative safe integers')
  const b = Buffer.alloc(LEASE_CLAIM_SIGNED_BYTES + 64)
  b.set(encodeChunkRequest(studyId, index), 0)
  b.set(claim.leaseId, STUDY_ID_BYTES + 4)
  b.writeBigUInt64BE(BigInt(claim.time), STUDY_ID_BYTES + 36)
  b.writeBigUInt64BE(BigInt(claim.height), STUDY_ID_BYTES + 44)
  b.set(claim.holder, STUDY_ID_BYTES + 52)
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
  const height = v.readBigUInt64BE(STUDY_ID_BYTES + 44)
  if (time > BigInt(Number.MAX_SAFE_INTEGER) || height > BigInt(Number.MAX_SAFE_INTEGER)) throw badRequest('chunk')
  return {
    ...base,
    claim: {
      leaseId: b.slice(STUDY_ID_BYTES + 4, STUDY_ID_BYTES + 36),
      time: Number(time),
      height: Number(height),
      holder: b.slice(STUDY_ID_BYTES + 52, LEASE_CLAIM_SIGNED_BYTES),
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
