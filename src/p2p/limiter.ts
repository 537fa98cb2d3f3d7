import { P2PError } from './errors.js'
import { abortError } from './stream-io.js'

/**
 * Counting semaphore with a bounded FIFO of waiters: at most `max` holders;
 * up to `maxWaiting` callers wait (each until its signal aborts); beyond that
 * acquire() fails at once with P2P_REFUSED.
 */
export class Limiter {
  readonly max: number
  readonly maxWaiting: number
  #active = 0
  #waiters: { resolve: () => void; cancel: () => void }[] = []

  constructor(max: number, maxWaiting = 1024) {
    this.max = max
    this.maxWaiting = maxWaiting
  }

  /** True when nobody holds or waits. */
  get idle(): boolean {
    return this.#active === 0 && this.#waiters.length === 0
  }

  /** Takes a slot, waiting in line when all are taken. */
  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortError(signal, 'waiting for a request slot'))
    if (this.#active < this.max) {
      this.#active++
      return Promise.resolve()
    }
    if (this.#waiters.length >= this.maxWaiting) return Promise.reject(new P2PError('P2P_REFUSED', 'too many requests waiting for this peer'))
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(w)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(abortError(signal, 'waiting for a request slot'))
      }
      const w = {
        resolve: (): void => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
        cancel: onAbort,
      }
      this.#waiters.push(w)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Gives a slot back (to the first waiter, if any). */
  release(): void {
    const w = this.#waiters.shift()
    if (w !== undefined) w.resolve()
    else if (this.#active > 0) this.#active--
  }
}
