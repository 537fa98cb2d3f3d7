import { setFlagsFromString } from 'node:v8'

/**
 * Heap growth of a daemon while chunks move through it.
 *
 * V8 picks how far the old generation may grow past what survived the last
 * full collection by how cheap collections look next to allocation. Moving
 * chunks allocates few objects but many short-lived megabyte buffers, so
 * collections look cheap, V8 allows only about 10% (at least a few MB), and
 * the heap then sits so close to its limit that incremental marking
 * restarts as soon as a cycle ends: a holder or a fetcher spent a third to a
 * half of its CPU time marking an unchanged heap (measured on the devnet:
 * 13 to 15 full collections at each end of one 134 MB fetch). Letting the
 * old generation double (V8's --heap-growing-percent=100) cuts that to 3 to
 * 5. A fixed factor of 2 is worse than V8's own choice for other work,
 * though (one daemon finalizing transactions at full speed lost about 5%),
 * so it applies only while chunks are fetched or served, and for a short
 * while after.
 */
export const CHUNK_TRAFFIC_HEAP_GROWING_PERCENT = 100
/** How long after the last chunk fetched or served V8's own heap growth comes back. */
export const CHUNK_TRAFFIC_IDLE_MS = 2000

/** The timer of the idle switch-off (injected by tests). */
export interface IdleTimers {
  set(fn: () => void, ms: number): unknown
  clear(handle: unknown): void
}

const REAL_TIMERS: IdleTimers = {
  // Unreferenced: a pending switch-off never keeps the process alive.
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/**
 * Switches the heap growth for chunk traffic on and off: on at the first
 * hold() or touch(), off once no hold is left and nothing was touched for
 * `idleMs`. Applies nothing until enable() (a daemon enables it; nodes built
 * in-process by tests leave the process's flags alone), and never when the
 * process was started with its own --heap-growing-percent.
 */
export class ChunkTrafficHeap {
  readonly #apply: (percent: number) => void
  readonly #idleMs: number
  readonly #timers: IdleTimers
  #enabled = false
  #on = false
  #holds = 0
  #idle: unknown

  constructor(opts: { apply?: (percent: number) => void; idleMs?: number; timers?: IdleTimers } = {}) {
    this.#apply = opts.apply ?? ((percent) => setFlagsFromString(`--heap-growing-percent=${percent}`))
    this.#idleMs = opts.idleMs ?? CHUNK_TRAFFIC_IDLE_MS
    this.#timers = opts.timers ?? REAL_TIMERS
  }

  /** Starts applying, unless `execArgv` already sets the heap growth (which then wins). Returns whether it applies. */
  enable(execArgv: readonly string[] = process.execArgv): boolean {
    if (execArgv.some((a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) return false
    this.#enabled = true
    return true
  }

  /** Whether the chunk traffic growth is in force now. */
  get active(): boolean {
    return this.#on
  }

  /** Chunk traffic until the returned function is called (once; later calls do nothing). */
  hold(): () => void {
    this.#holds++
    this.#switchOn()
    let released = false
    return () => {
      if (released) return
      released = true
      this.#holds--
      this.#armIdle()
    }
  }

  /** One chunk served: the growth stays on for `idleMs` after the last touch. */
  touch(): void {
    this.#switchOn()
    this.#armIdle()
  }

  /** Switches off now (at shutdown) and drops the idle timer. */
  reset(): void {
    if (this.#idle !== undefined) this.#timers.clear(this.#idle)
    this.#idle = undefined
    this.#holds = 0
    if (this.#on) this.#set(false)
  }

  #switchOn(): void {
    if (this.#idle !== undefined) {
      this.#timers.clear(this.#idle)
      this.#idle = undefined
    }
    if (!this.#on && this.#enabled) this.#set(true)
  }

  #armIdle(): void {
    if (!this.#on || this.#holds > 0) return
    if (this.#idle !== undefined) this.#timers.clear(this.#idle)
    this.#idle = this.#timers.set(() => {
      this.#idle = undefined
      if (this.#holds === 0 && this.#on) this.#set(false)
    }, this.#idleMs)
  }

  #set(on: boolean): void {
    // V8 reads the flag each time it sets the next heap limit; 0 is its own choice.
    this.#apply(on ? CHUNK_TRAFFIC_HEAP_GROWING_PERCENT : 0)
    this.#on = on
  }
}

/** The process's switch: the swarm holds and touches it; `radchain daemon` enables it. */
export const chunkTrafficHeap = new ChunkTrafficHeap()
