import { DOMAIN, taggedHash } from '../crypto/index.js'
import { encodeTrusted, type Encodable } from './codec.js'

/**
 * Ledger state: string keys to canonical encoded values. The state machine
 * reads a committed StateMap and writes through an overlay; the overlay's
 * write set goes to storage in the block's atomic batch.
 */
export type StateMap = ReadonlyMap<string, Uint8Array>

/** A write set: value, or null for a deletion. */
export type StateWrites = ReadonlyMap<string, Uint8Array | null>

/** Copy-on-write view over a base state (or over another overlay). */
export class StateOverlay {
  readonly #base: StateMap | StateOverlay
  readonly #writes = new Map<string, Uint8Array | null>()

  constructor(base: StateMap | StateOverlay) {
    this.#base = base
  }

  /** The value at `key`, or undefined. */
  get(key: string): Uint8Array | undefined {
    const w = this.#writes.get(key)
    if (w !== undefined) return w === null ? undefined : w
    return this.#base.get(key)
  }

  /** Sets `key`. */
  set(key: string, value: Uint8Array): void {
    this.#writes.set(key, value)
  }

  /** Deletes `key`. */
  delete(key: string): void {
    this.#writes.set(key, null)
  }

  /** A nested overlay whose writes can be merged back with `mergeInto`. */
  child(): StateOverlay {
    return new StateOverlay(this)
  }

  /** Copies this overlay's writes into `parent`. */
  mergeInto(parent: StateOverlay): void {
    for (const [k, v] of this.#writes) parent.#writes.set(k, v)
  }

  /** This overlay's own writes. */
  writes(): StateWrites {
    return this.#writes
  }
}

/**
 * State root after a block: sha256(STATE tag || previous root || encoding of
 * the block's writes sorted by key). Every node applying the same blocks from
 * the same genesis computes the same chain of roots, so a node whose state
 * diverged notices at the next block header.
 */
export function nextStateRoot(prevRoot: Uint8Array, writes: StateWrites): Uint8Array {
  const keys = [...writes.keys()].sort()
  const list: Encodable[] = keys.map((k) => [k, writes.get(k) ?? null])
  return taggedHash(DOMAIN.STATE, prevRoot, encodeTrusted(list))
}

/** Applies a write set to a mutable map (after the block is committed). */
export function applyWrites(target: Map<string, Uint8Array>, writes: StateWrites): void {
  for (const [k, v] of writes) {
    if (v === null) target.delete(k)
    else target.set(k, v)
  }
}
