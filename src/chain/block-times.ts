import { asArray, asU64Number, decodeCanonical, encodeTrusted, u64 } from './codec.js'
import type { StateMap, StateOverlay } from './state.js'

/*
 * The chain times of the latest blocks, kept in state so that a
 * transaction can prove when a block named in signed evidence was made
 * (a lease claim names its sender's head block: see `violation.report`).
 *
 * State:
 *   bt/<height mod BLOCK_TIME_RING>   [height, time] of that block, written at the start of the block
 *
 * A ring: each block overwrites the slot of the block BLOCK_TIME_RING
 * heights before it, so the state holds at most BLOCK_TIME_RING entries.
 */

/** How many recent blocks' times the state keeps. */
export const BLOCK_TIME_RING = 256

const KEY = (height: number): string => `bt/${height % BLOCK_TIME_RING}`

/** Records the chain time of the block at `height` (the state machine, at the start of every block). */
export function putBlockTime(s: StateOverlay, height: number, time: number): void {
  s.set(KEY(height), encodeTrusted([u64(height), u64(time)]))
}

/** The chain time of the block at `height`, if it is one of the last BLOCK_TIME_RING blocks (the current one included). */
export function blockTimeAt(s: StateMap | StateOverlay, height: number): number | undefined {
  if (!Number.isSafeInteger(height) || height < 1) return undefined
  const b = s.get(KEY(height))
  if (b === undefined) return undefined
  const a = asArray(decodeCanonical(b), 'block time', 2)
  return asU64Number(a[0], 'block time height') === height ? asU64Number(a[1], 'block time') : undefined
}
