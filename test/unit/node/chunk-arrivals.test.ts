import t from 'tap'
import { ChunkArrivals } from '../../../src/node/chunk-arrivals.js'

const ids = [0, 1, 2, 3].map((i) => Uint8Array.of(100 + i))
const chunk = (i: number, n = 4): Uint8Array => new Uint8Array(n).fill(i)

function arrivals(max = 1024): { a: ChunkArrivals; reads: number[] } {
  const reads: number[] = []
  const a = new ChunkArrivals(
    4,
    (id, i) => {
      reads.push(i)
      return Promise.resolve(chunk((id[0] as number) - 100, 8))
    },
    max,
  )
  return { a, reads }
}

t.test('a chunk asked for before it arrives is answered when it does; one that arrived first is answered from memory', async (t) => {
  const { a, reads } = arrivals()
  a.setList(ids, () => false)
  const waiting = a.get(1)
  a.put(0, chunk(0))
  a.put(1, [Uint8Array.of(1, 1), Uint8Array.of(1, 1)])
  const one = await waiting
  t.same([...one.bytes], [1, 1, 1, 1], 'parts joined')
  t.same(one.id, ids[1], 'with the id it was checked against')
  t.equal(a.bufferedBytes, 4, 'chunk 0 waits in memory')
  const zero = await a.get(0)
  t.same([...zero.bytes], [0, 0, 0, 0])
  t.same(zero.id, ids[0])
  t.equal(a.bufferedBytes, 0, 'and leaves it once read')
  t.same(reads, [], 'nothing read from the store')
})

t.test('chunks held before the download, and those beyond the memory bound, are read from the store', async (t) => {
  const { a, reads } = arrivals(4)
  const early = a.get(2)
  a.setList(ids, (i) => i === 2)
  const two = await early
  t.same([...two.bytes], new Array(8).fill(2), 'a wait for a held chunk ends once the list says so')
  t.same(two.id, ids[2])
  a.put(0, chunk(0))
  a.put(1, chunk(1))
  t.equal(a.bufferedBytes, 4, 'only what fits is kept')
  const fromStore = await a.get(1)
  t.same([...fromStore.bytes], new Array(8).fill(1), 'the other comes from the store')
  t.same(fromStore.id, ids[1])
  t.same(reads, [2, 1])
  a.put(1, chunk(9))
  t.equal(a.bufferedBytes, 4, 'a chunk that arrives twice is taken once')
})

t.test('a failed download ends every wait with its error', async (t) => {
  const { a } = arrivals()
  a.setList(ids, () => false)
  const w = a.get(3)
  const boom = new Error('no holder left')
  a.fail(boom)
  await t.rejects(w, boom)
  await t.rejects(a.get(0), boom, 'and every later ask')
})
