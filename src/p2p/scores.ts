/** Score at or below which a peer is disconnected and banned. */
export const BAN_THRESHOLD = -100
/** How long a banned peer is refused. */
export const BAN_MS = 60_000
/** The score a peer starts from once its ban has expired. */
export const SCORE_AFTER_BAN = -50

/** Points a score recovers per second toward 0, so rare small faults never add up to a ban. */
export const RECOVERY_PER_SECOND = 1

/** Points for each kind of misbehaviour the network layer detects itself. */
export const PENALTY = {
  /** A frame longer than the protocol's bound. */
  FRAME_TOO_LARGE: 50,
  /** Broken framing: truncated frame, bytes where none belong, bad status byte. */
  MALFORMED: 25,
  /** A frame begun but not finished within FRAME_TIMEOUT_MS. */
  FRAME_TIMEOUT: 10,
  /** A request whose handler reported it as invalid (RadError with penalize). */
  BAD_REQUEST: 10,
} as const

/** Outcome of one penalty. */
export interface PenaltyResult {
  /** Score after the penalty (SCORE_AFTER_BAN once banned). */
  score: number
  /** True when this penalty crossed BAN_THRESHOLD: the caller disconnects the peer. */
  banned: boolean
}

interface Entry {
  score: number
  bannedUntil: number
  /** When `score` was last brought up to date. */
  at: number
}

/**
 * Per-peer scores keyed by hex public key. A score starts at 0, goes down
 * with each penalty and recovers RECOVERY_PER_SECOND toward 0 (not while
 * banned); at BAN_THRESHOLD or below the peer is banned for `banMs`, after which
 * it may come back with SCORE_AFTER_BAN. The clock is injected for tests.
 * Entries of peers at score 0 are not kept, so the map holds only peers that
 * misbehaved; it is bounded by `maxEntries` (the oldest entry that is not
 * banned goes first).
 */
export class PeerScores {
  readonly #now: () => number
  readonly #banMs: number
  readonly #maxEntries: number
  readonly #recovery: number
  readonly #entries = new Map<string, Entry>()

  constructor(opts: { now?: () => number; banMs?: number; maxEntries?: number; recoveryPerSecond?: number } = {}) {
    this.#now = opts.now ?? Date.now
    this.#banMs = opts.banMs ?? BAN_MS
    this.#recovery = opts.recoveryPerSecond ?? RECOVERY_PER_SECOND
    this.#maxEntries = opts.maxEntries ?? 10_000
  }

  /** Current score of `key` (0 for a peer never penalized). */
  score(key: string): number {
    const e = this.#entries.get(key)
    if (e === undefined) return 0
    this.#recover(e)
    return e.score
  }

  #recover(e: Entry): void {
    const now = this.#now()
    const from = Math.max(e.at, e.bannedUntil)
    if (now > from && e.score < 0) e.score = Math.min(0, e.score + ((now - from) / 1000) * this.#recovery)
    e.at = now
  }

  /** True while `key` is banned. */
  isBanned(key: string): boolean {
    const e = this.#entries.get(key)
    return e !== undefined && e.bannedUntil > this.#now()
  }

  /** Milliseconds of ban left for `key` (0 when not banned). */
  banRemainingMs(key: string): number {
    const e = this.#entries.get(key)
    return e === undefined ? 0 : Math.max(0, e.bannedUntil - this.#now())
  }

  /** Subtracts `points` (a non-negative number) from `key`'s score. */
  penalize(key: string, points: number): PenaltyResult {
    if (!Number.isFinite(points) || points < 0) throw new RangeError('penalty points must be a finite number >= 0')
    let e = this.#entries.get(key)
    if (e === undefined) {
      this.#evictIfFull()
      e = { score: 0, bannedUntil: 0, at: this.#now() }
      this.#entries.set(key, e)
    }
    this.#recover(e)
    // While banned, further penalties change nothing: the peer is refused anyway.
    if (e.bannedUntil > this.#now()) return { score: e.score, banned: false }
    e.score -= points
    if (e.score <= BAN_THRESHOLD) {
      e.score = SCORE_AFTER_BAN
      e.bannedUntil = this.#now() + this.#banMs
      return { score: e.score, banned: true }
    }
    return { score: e.score, banned: false }
  }

  #evictIfFull(): void {
    if (this.#entries.size < this.#maxEntries) return
    const now = this.#now()
    for (const [k, e] of this.#entries) {
      if (e.bannedUntil <= now) {
        this.#entries.delete(k)
        return
      }
    }
    // Every entry is banned: drop the oldest anyway to stay bounded.
    const first = this.#entries.keys().next()
    if (first.done !== true) this.#entries.delete(first.value)
  }
}
