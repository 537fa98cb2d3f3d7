/**
 * A signal that aborts when any of `signals` aborts, or after `ms` with a
 * TimeoutError reason; dispose() detaches it from its sources and clears the
 * timer. Used instead of AbortSignal.any(): on Node.js 20 every signal made by
 * AbortSignal.any() from a long-lived source (the node's lifetime signal)
 * stays reachable from that source, a leak of roughly 50 bytes per call
 * (measured: +160 MiB after 3 million calls).
 */
export function scopedSignal(ms: number | undefined, ...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController()
  const sources = signals.filter((s): s is AbortSignal => s !== undefined)
  let timer: ReturnType<typeof setTimeout> | undefined
  const listeners: { s: AbortSignal; f: () => void }[] = []
  const dispose = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    for (const { s, f } of listeners) s.removeEventListener('abort', f)
    listeners.length = 0
  }
  for (const s of sources) {
    if (s.aborted) {
      ac.abort(s.reason)
      return { signal: ac.signal, dispose }
    }
  }
  for (const s of sources) {
    const f = (): void => {
      dispose()
      ac.abort(s.reason)
    }
    s.addEventListener('abort', f, { once: true })
    listeners.push({ s, f })
  }
  if (ms !== undefined) {
    timer = setTimeout(() => {
      dispose()
      ac.abort(new DOMException('The operation timed out', 'TimeoutError'))
    }, ms)
  }
  return { signal: ac.signal, dispose }
}
