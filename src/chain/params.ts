import { asArray, asU32, type Encodable } from './codec.js'

/** Chain parameters, fixed in the genesis and kept in state. */
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
}

/** Defaults for a new genesis. */
export const DEFAULT_PARAMS: ChainParams = {
  blockIntervalMs: 2000,
  maxBlockBytes: 4 * 1024 * 1024,
  maxTxBytes: 16 * 1024,
  maxBlockTxs: 10_000,
  maxClockDriftMs: 2000,
  replicationFactor: 3,
  chunkSize: 1024 * 1024,
}

const FIELDS = ['blockIntervalMs', 'maxBlockBytes', 'maxTxBytes', 'maxBlockTxs', 'maxClockDriftMs', 'replicationFactor', 'chunkSize'] as const

/** Fixed-order array form of the parameters. */
export function paramsToWire(p: ChainParams): Encodable {
  return FIELDS.map((f) => p[f])
}

/** Parameters from their wire form. */
export function paramsFromWire(v: unknown): ChainParams {
  const a = asArray(v, 'params', FIELDS.length)
  const out: Record<string, number> = {}
  FIELDS.forEach((f, i) => {
    out[f] = asU32(a[i], `params.${f}`)
  })
  return out as unknown as ChainParams
}
