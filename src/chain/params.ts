import { asArray, asU32, asU64Number, decodeCanonical, encodeTrusted, u64, type Encodable } from './codec.js'
import type { StateMap, StateOverlay } from './state.js'

/** Chain parameters, fixed in the genesis, kept in state, changed by a vote of the authorities (`org` action `params`). */
export interface ChainParams {
  /** Heartbeat: an empty block is made when no transaction arrived for this long (ms). */
  readonly blockIntervalMs: number
  /** Largest encoded block (bytes). */
  readonly maxBlockBytes: number
  /** Largest encoded transaction (bytes). */
  readonly maxTxBytes: number
  /** Most transactions in one block. */
  readonly maxBlockTxs: number
  /** How far a block's time may run ahead of a voter's clock (ms). */
  readonly maxClockDriftMs: number
  /** Organizations that keep each study's chunks (chain/placement.ts). */
  readonly replicationFactor: number
  /** Study chunk size in bytes. */
  readonly chunkSize: number
  /** Largest study a registration may declare (bytes of ciphertext over all chunks; 64-bit on the wire). */
  readonly maxStudyBytes: number
  /** Most chunks a registration may declare. Bounds every per-chunk structure a node builds for a study. */
  readonly maxStudyChunks: number
}

/**
 * Study bounds by default: 32 GiB in at most 32768 chunks. The largest
 * imaging studies (thin-slice CT, whole-slide pathology) stay well below
 * 32 GiB, and with 1 MiB chunks a study's bitfield is at most 4 KiB and its
 * chunk list 1 MiB, so no request about a study makes a node allocate more.
 */
export const DEFAULT_MAX_STUDY_BYTES = 32 * 1024 ** 3
/** See DEFAULT_MAX_STUDY_BYTES. */
export const DEFAULT_MAX_STUDY_CHUNKS = 32768

/** Defaults for a new genesis. */
export const DEFAULT_PARAMS: ChainParams = {
  blockIntervalMs: 2000,
  maxBlockBytes: 4 * 1024 * 1024,
  maxTxBytes: 16 * 1024,
  maxBlockTxs: 10_000,
  maxClockDriftMs: 2000,
  replicationFactor: 3,
  chunkSize: 1024 * 1024,
  maxStudyBytes: DEFAULT_MAX_STUDY_BYTES,
  maxStudyChunks: DEFAULT_MAX_STUDY_CHUNKS,
}

/** The parameters in wire order. The wire form appends new fields at the end. */
export const PARAM_FIELDS = [
  'blockIntervalMs',
  'maxBlockBytes',
  'maxTxBytes',
  'maxBlockTxs',
  'maxClockDriftMs',
  'replicationFactor',
  'chunkSize',
  'maxStudyBytes',
  'maxStudyChunks',
] as const

/** A parameter's name. */
export type ParamName = (typeof PARAM_FIELDS)[number]

/** Parameters written as 64-bit integers on the wire (bigint); the others are u32. */
const U64_FIELDS: ReadonlySet<ParamName> = new Set(['maxStudyBytes'])

/** Smallest value of each parameter (the genesis schema and a vote check them alike). */
export const PARAM_MIN: Readonly<Record<ParamName, number>> = {
  blockIntervalMs: 10,
  maxBlockBytes: 64 * 1024,
  maxTxBytes: 1024,
  maxBlockTxs: 1,
  maxClockDriftMs: 1,
  replicationFactor: 1,
  chunkSize: 4096,
  maxStudyBytes: 4096,
  maxStudyChunks: 1,
}

/**
 * Most chunks any genesis or vote may allow: a chunk list of 2^22 ids is
 * 128 MiB, the largest chunks.list answer a node sends or accepts (a frame
 * holds at most 2^32-1 bytes); with 1 MiB chunks, 4 TiB.
 */
export const MAX_STUDY_CHUNKS_LIMIT = 2 ** 22

/** Largest value of each parameter. */
export function paramMax(f: ParamName): number {
  if (f === 'maxStudyChunks') return MAX_STUDY_CHUNKS_LIMIT
  return U64_FIELDS.has(f) ? Number.MAX_SAFE_INTEGER : 0xffffffff
}

/**
 * Parameters an authority vote may change, because running nodes read them
 * again at every block or request: the heartbeat and clock drift (consensus
 * engine), transactions per block (block building and checking),
 * replication factor (placement, recomputed at every reconcile) and the
 * study bounds (registration, and the bounds of the chunks.have and
 * chunks.list answers). The others are fixed by the genesis: the network
 * sizes its message bounds from maxTxBytes and maxBlockBytes once at start,
 * and registered studies are cut in chunkSize.
 */
export const VOTABLE_PARAMS: ReadonlySet<ParamName> = new Set([
  'blockIntervalMs',
  'maxBlockTxs',
  'maxClockDriftMs',
  'replicationFactor',
  'maxStudyBytes',
  'maxStudyChunks',
])

/**
 * Why a set of parameters is inconsistent, naming the field (undefined when
 * it is fine). The genesis and a parameter vote are checked alike.
 */
export function paramsProblem(p: ChainParams): string | undefined {
  for (const f of PARAM_FIELDS) {
    const v = p[f]
    if (!Number.isInteger(v) || v < PARAM_MIN[f] || v > paramMax(f)) return `params.${f} must be an integer from ${PARAM_MIN[f]} to ${paramMax(f)}`
  }
  if (p.maxTxBytes * 2 > p.maxBlockBytes) return 'params.maxBlockBytes must be at least twice params.maxTxBytes'
  if (p.maxStudyBytes < p.chunkSize) return 'params.maxStudyBytes must be at least params.chunkSize (a one-chunk study)'
  // Both bounds must be reachable: a byte bound the chunk bound never lets a study reach would only mislead.
  if (BigInt(p.maxStudyChunks) * BigInt(p.chunkSize) < BigInt(p.maxStudyBytes))
    return `params.maxStudyBytes (${p.maxStudyBytes}) must be at most params.maxStudyChunks * params.chunkSize (${BigInt(p.maxStudyChunks) * BigInt(p.chunkSize)})`
  return undefined
}

/**
 * Parameters from a partial set over the defaults. The study byte bound,
 * when not given, is the default or what maxStudyChunks chunks of chunkSize
 * hold, whichever is smaller (a genesis with small chunks stays consistent).
 */
export function withDefaults(p: Partial<ChainParams>): ChainParams {
  const chunkSize = p.chunkSize ?? DEFAULT_PARAMS.chunkSize
  const maxStudyChunks = p.maxStudyChunks ?? DEFAULT_PARAMS.maxStudyChunks
  const maxStudyBytes = p.maxStudyBytes ?? Math.min(DEFAULT_MAX_STUDY_BYTES, maxStudyChunks * chunkSize)
  return { ...DEFAULT_PARAMS, ...p, chunkSize, maxStudyChunks, maxStudyBytes }
}

/** Wire form of one parameter's value. */
export function paramToWire(f: ParamName, v: number): Encodable {
  return U64_FIELDS.has(f) ? u64(v) : v
}

/** One parameter's value from its wire form. */
export function paramFromWire(f: ParamName, v: unknown, what = `params.${f}`): number {
  return U64_FIELDS.has(f) ? asU64Number(v, what) : asU32(v, what)
}

/** Fixed-order array form of the parameters. */
export function paramsToWire(p: ChainParams): Encodable {
  return PARAM_FIELDS.map((f) => paramToWire(f, p[f]))
}

/** Parameters from their wire form. */
export function paramsFromWire(v: unknown): ChainParams {
  const a = asArray(v, 'params', PARAM_FIELDS.length)
  const out: Record<string, number> = {}
  PARAM_FIELDS.forEach((f, i) => {
    out[f] = paramFromWire(f, a[i])
  })
  return out as unknown as ChainParams
}

const PARAMS_KEY = 'params'

/** Chain parameters in force. */
export function getParams(s: StateMap | StateOverlay): ChainParams {
  const b = s.get(PARAMS_KEY)
  if (b === undefined) throw new Error('state has no chain parameters')
  return paramsFromWire(decodeCanonical(b))
}

/** Writes the chain parameters: the genesis, and a parameter vote that reached its quorum. */
export function putParams(s: StateOverlay, p: ChainParams): void {
  s.set(PARAMS_KEY, encodeTrusted(paramsToWire(p)))
}
