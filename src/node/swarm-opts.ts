// The swarm's settings on their own, so that loading a config does not load
// the swarm (and with it the network stack and the DICOM code).

/** Swarm settings (config `swarm`). */
export interface SwarmOpts {
  /** A holder unreachable for this long is replaced by the next organization in placement order. */
  readonly repairAfterMs: number
  /** How often this node checks which studies it should hold. */
  readonly reconcileMs: number
  /** How often a slice of the local chunks is read back and verified (0: never). */
  readonly scrubIntervalMs: number
  /** Bytes verified per scrub tick. */
  readonly scrubBytes: number
  /** Bytes in flight of a user's fetch; replication and repair use a quarter, so they never starve it. */
  readonly maxInFlightBytes: number
  /** Fault injection (devnet tests only): delay before each chunk served, and random bytes instead of chunks. */
  readonly testServeDelayMs?: number
  readonly testServeGarbage?: boolean
  readonly testNoPull?: boolean
}

/** Defaults of {@link SwarmOpts}. */
export const DEFAULT_SWARM_OPTS: SwarmOpts = {
  repairAfterMs: 5 * 60_000,
  reconcileMs: 2_000,
  scrubIntervalMs: 60_000,
  scrubBytes: 64 * 1024 * 1024,
  maxInFlightBytes: 64 * 1024 * 1024,
}
