import { setFlagsFromString } from 'node:v8'

/**
 * Heap growth of a daemon. With V8's default, the old generation may grow
 * only about 10% (at least a few MB) past what survived the last full
 * collection when collections look cheap next to allocation, which a daemon
 * moving chunks makes them: every chunk passes through several short-lived
 * megabyte buffers. The heap then stays so close to its limit that
 * incremental marking restarts as soon as one cycle ends, and a holder or a
 * fetcher spends a third to a half of its CPU time marking an unchanged
 * heap (measured on the devnet: 13 to 15 full collections for one 134 MB
 * fetch at each end). Letting the old generation double before the next
 * cycle cuts that to 3 to 5, at the price of up to twice the live heap in
 * garbage between collections.
 */
export const DAEMON_HEAP_GROWING_PERCENT = 100

/**
 * Applies {@link DAEMON_HEAP_GROWING_PERCENT} to this process (V8 reads the
 * flag each time it sets the next heap limit, so setting it at run time is
 * safe), unless the process was started with its own `--heap-growing-percent`
 * (which then wins). Returns the percent in force, or undefined when left to
 * the command line.
 */
export function tuneDaemonHeap(execArgv: readonly string[] = process.execArgv): number | undefined {
  if (execArgv.some((a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) return undefined
  setFlagsFromString(`--heap-growing-percent=${DAEMON_HEAP_GROWING_PERCENT}`)
  return DAEMON_HEAP_GROWING_PERCENT
}
