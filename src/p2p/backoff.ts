/** Longest wait between two dials of the same peer. */
export const MAX_DIAL_BACKOFF_MS = 30_000

/**
 * Per-peer redial schedule: after the n-th consecutive failure the next dial
 * waits `baseMs * 2^(n-1)`, at most `maxMs`; a success (or an inbound
 * connection) resets it. The clock is injected for tests.
 */
export class DialBackoff {
  readonly #baseMs: number
  readonly #maxMs: number
  readonly #now: () => number
  readonly #state = new Map<string, { failures: number; nextAt: number }>()

  constructor(opts: { baseMs: number; maxMs?: number; now?: () => number }) {
    this.#baseMs = Math.max(1, opts.baseMs)
    this.#maxMs = opts.maxMs ?? MAX_DIAL_BACKOFF_MS
    this.#now = opts.now ?? Date.now
  }

  /** True when `key` may be dialed now. */
  due(key: string): boolean {
    const s = this.#state.get(key)
    return s === undefined || s.nextAt <= this.#now()
  }

  /** Records a failed dial of `key` and returns the delay before the next one. */
  failure(key: string): number {
    const failures = (this.#state.get(key)?.failures ?? 0) + 1
    const delay = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(failures - 1, 30))
    this.#state.set(key, { failures, nextAt: this.#now() + delay })
    return delay
  }

  /** Forgets the failures of `key`. */
  success(key: string): void {
    this.#state.delete(key)
  }

  /** Keeps state only for `keys` (peers no longer wanted are forgotten). */
  retain(keys: Set<string>): void {
    for (const k of this.#state.keys()) if (!keys.has(k)) this.#state.delete(k)
  }
}
