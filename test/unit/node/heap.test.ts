import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CHUNK_TRAFFIC_HEAP_GROWING_PERCENT, ChunkTrafficHeap, type IdleTimers } from '../../../src/node/heap.js'

/** Timers on a clock that moves only when the test says so. */
class ManualTimers implements IdleTimers {
  now = 0
  readonly #pending = new Map<number, { at: number; fn: () => void }>()
  #next = 1
  set(fn: () => void, ms: number): unknown {
    const id = this.#next++
    this.#pending.set(id, { at: this.now + ms, fn })
    return id
  }
  clear(handle: unknown): void {
    this.#pending.delete(handle as number)
  }
  /** Moves the clock by `ms`, running every timer due on the way, in order. */
  advance(ms: number): void {
    const end = this.now + ms
    for (;;) {
      const due = [...this.#pending.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0]
      if (due === undefined) break
      this.#pending.delete(due[0])
      this.now = due[1].at
      due[1].fn()
    }
    this.now = end
  }
}

/** A switch recording what it applies, on a manual clock. */
function recorded(idleMs = 40): { heap: ChunkTrafficHeap; applied: number[]; clock: ManualTimers } {
  const applied: number[] = []
  const clock = new ManualTimers()
  const heap = new ChunkTrafficHeap({ apply: (p) => applied.push(p), idleMs, timers: clock })
  return { heap, applied, clock }
}

t.test('nothing is applied until enabled', async (t) => {
  const { heap, applied } = recorded()
  const release = heap.hold()
  heap.touch()
  release()
  t.same(applied, [])
  t.equal(heap.active, false)
})

t.test('a command line that sets the heap growth wins', async (t) => {
  const { heap, applied } = recorded()
  t.equal(heap.enable(['--heap-growing-percent=30']), false)
  t.equal(heap.enable(['--heap_growing_percent=30']), false)
  heap.hold()
  t.same(applied, [], 'never applied')
  t.equal(recorded().heap.enable(['--max-old-space-size=512']), true)
})

t.test('holds: on at the first, off after the idle time once all are released', async (t) => {
  const { heap, applied, clock } = recorded(40)
  heap.enable([])
  const a = heap.hold()
  const b = heap.hold()
  t.same(applied, [CHUNK_TRAFFIC_HEAP_GROWING_PERCENT], 'switched on once')
  a()
  a() // a second call does nothing
  clock.advance(80)
  t.equal(heap.active, true, 'still on while one hold is left')
  b()
  clock.advance(39)
  t.equal(heap.active, true, 'on for the idle time after the last release')
  clock.advance(1)
  t.equal(heap.active, false, 'off once the idle time has passed')
  t.same(applied, [CHUNK_TRAFFIC_HEAP_GROWING_PERCENT, 0], "then back to V8's own choice (0)")
})

t.test('touches keep it on while chunks keep being served; a hold meanwhile keeps it on', async (t) => {
  const { heap, applied, clock } = recorded(250)
  heap.enable([])
  for (let i = 0; i < 12; i++) {
    heap.touch()
    clock.advance(25)
  }
  t.equal(heap.active, true, 'served every 25 ms for 300 ms: never idle for 250 ms')
  const release = heap.hold()
  clock.advance(350)
  t.equal(heap.active, true, 'a hold outlasts the idle time of the touches')
  release()
  clock.advance(249)
  t.equal(heap.active, true, 'on until the idle time after the release')
  clock.advance(1)
  t.same(applied, [CHUNK_TRAFFIC_HEAP_GROWING_PERCENT, 0], 'one switch on, one off')
  heap.touch()
  heap.reset()
  t.equal(heap.active, false, 'reset switches off at once')
  t.same(applied.slice(2), [CHUNK_TRAFFIC_HEAP_GROWING_PERCENT, 0])
})

// The compiled module (npm test builds first), in a child process whose heap limits V8 prints.
const heapJs = pathToFileURL(fileURLToPath(new URL('../../../dist/src/node/heap.js', import.meta.url))).href

/**
 * Runs a child Node.js with V8's heap tracing that enables the process's
 * switch and makes V8 set its next heap limit a few times (full collections
 * with a live heap) during a hold, then a few times after it; returns the
 * growing factor V8 printed for each limit, during and after.
 */
function childFactors(nodeFlags: string[]): { enabled: boolean; during: number[]; after: number[] } {
  const script = `
    const { chunkTrafficHeap } = await import(${JSON.stringify(heapJs)})
    const keep = []
    const collect = () => {
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 50000; i++) keep.push({ i, s: 'x'.repeat(40) + i })
        globalThis.gc()
      }
    }
    console.log('enabled=' + chunkTrafficHeap.enable())
    const release = chunkTrafficHeap.hold()
    console.log('--during--')
    collect()
    release()
    chunkTrafficHeap.reset()
    console.log('--after--')
    collect()
    console.log('kept=' + keep.length)
  `
  const r = spawnSync(process.execPath, [...nodeFlags, '--expose-gc', '--trace-gc-verbose', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (r.status !== 0) throw new Error(`child failed (${String(r.status)}): ${r.stderr}`)
  // [HeapController] Limit: old size: 26935 KB, new limit: 123847 KB (4.0)
  const factors = (text: string): number[] => [...text.matchAll(/\[HeapController\] Limit: .*\((\d+(?:\.\d+)?)\)/g)].map((m) => Number(m[1]))
  const [, rest = ''] = r.stdout.split('--during--')
  const [during = '', after = ''] = rest.split('--after--')
  return { enabled: /enabled=true/.test(r.stdout), during: factors(during), after: factors(after) }
}

t.test('in a real process: the old generation doubles during chunk traffic, and V8 chooses again after', async (t) => {
  const { enabled, during, after } = childFactors([])
  t.equal(enabled, true)
  t.ok(during.length >= 4 && after.length >= 4, `V8 set new limits (${during.length} during, ${after.length} after)`)
  t.same([...new Set(during)], [2], `factor 2 during: ${during.join(', ')}`)
  t.notOk(after.includes(2), `V8's own factors after: ${after.join(', ')}`)
})

t.test('in a real process: a --heap-growing-percent on the command line is left alone', async (t) => {
  const { enabled, during, after } = childFactors(['--heap-growing-percent=50'])
  t.equal(enabled, false)
  t.same([...new Set([...during, ...after])], [1.5], `factors ${[...during, ...after].join(', ')}`)
})
