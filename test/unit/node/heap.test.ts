import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { DAEMON_HEAP_GROWING_PERCENT, tuneDaemonHeap } from '../../../src/node/heap.js'

// The compiled module (npm test builds first), loaded by a child process whose heap is watched.
const heapJs = pathToFileURL(fileURLToPath(new URL('../../../dist/src/node/heap.js', import.meta.url))).href

/**
 * Runs a child Node.js with V8's heap tracing, which calls tuneDaemonHeap()
 * and then makes V8 set its next heap limit a few times (full collections
 * with a live heap); returns what tuneDaemonHeap() returned and the growing
 * factor V8 printed for each new limit.
 */
function childFactors(nodeFlags: string[]): { tuned: unknown; factors: number[] } {
  const script = `
    const { tuneDaemonHeap } = await import(${JSON.stringify(heapJs)})
    console.log('tuned=' + JSON.stringify(tuneDaemonHeap() ?? null))
    const keep = []
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 50000; i++) keep.push({ i, s: 'x'.repeat(40) + i })
      globalThis.gc()
    }
    console.log('kept=' + keep.length)
  `
  const r = spawnSync(process.execPath, [...nodeFlags, '--expose-gc', '--trace-gc-verbose', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`child failed (${String(r.status)}): ${r.stderr}`)
  const tunedLine = /tuned=(.*)/.exec(r.stdout)?.[1] ?? 'undefined'
  // [HeapController] Limit: old size: 26935 KB, new limit: 123847 KB (4.0)
  const factors = [...r.stdout.matchAll(/\[HeapController\] Limit: .*\((\d+(?:\.\d+)?)\)/g)].map((m) => Number(m[1]))
  return { tuned: JSON.parse(tunedLine) as unknown, factors }
}

t.test('a daemon lets its old generation double between full collections', async (t) => {
  t.equal(DAEMON_HEAP_GROWING_PERCENT, 100)
  const { tuned, factors } = childFactors([])
  t.equal(tuned, 100, 'applied, and says so')
  t.ok(factors.length >= 4, `V8 set a new limit after each full collection (${factors.length})`)
  // Limits set after the flag took effect all grow the heap by a factor of 2.
  t.same([...new Set(factors.slice(-4))], [2], `factors ${factors.join(', ')}`)
})

t.test('a --heap-growing-percent on the command line wins', async (t) => {
  const { tuned, factors } = childFactors(['--heap-growing-percent=50'])
  t.equal(tuned, null, 'left to the command line')
  t.same([...new Set(factors)], [1.5], `factors ${factors.join(', ')}`)
})

t.test('the check of the command line', async (t) => {
  t.equal(tuneDaemonHeap(['--heap-growing-percent=30']), undefined)
  t.equal(tuneDaemonHeap(['--heap_growing_percent=30']), undefined)
  t.equal(tuneDaemonHeap(['--max-old-space-size=512']), DAEMON_HEAP_GROWING_PERCENT)
})
