import t from 'tap'
import { randomBytes } from 'node:crypto'
import { sha256 } from '../../../src/crypto/index.js'
import { Bitfield, P2PError, SwarmError, decodeHave, downloadChunks, encodeHave, type ChunkPeer, type ChunkSource } from '../../../src/p2p/index.js'
import { joinBytes, sleep, toHex } from '../../../src/util/index.js'

const CHUNK = 1024

function makeChunks(n: number): { chunks: Uint8Array[]; ids: Uint8Array[] } {
  const chunks = Array.from({ length: n }, () => new Uint8Array(randomBytes(CHUNK)))
  return { chunks, ids: chunks.map((c) => sha256(c)) }
}

function peer(name: string): ChunkPeer {
  const key = sha256(new TextEncoder().encode(name))
  return { key, id: toHex(key) }
}

interface FakePeer {
  /** Indices held. */
  holds: Set<number>
  delayMs?: number
  /** Answers garbage instead of the chunk. */
  liar?: boolean
  /** Fails every request after this many chunks served. */
  dieAfter?: number
  /** Answers each chunk as this many consecutive parts (views), as a pipe does. */
  parts?: number
}

/** `b` cut into `n` consecutive views of nearly equal length. */
function cut(b: Uint8Array, n: number): Uint8Array[] {
  const step = Math.ceil(b.length / n)
  return Array.from({ length: n }, (_, k) => b.subarray(k * step, Math.min(b.length, (k + 1) * step)))
}

/** An in-memory swarm: peers by name, with counters of what each was asked. */
function fakeSwarm(
  chunks: Uint8Array[],
  fakes: Record<string, FakePeer>,
): { source: ChunkSource; peers: ChunkPeer[]; asked: Map<string, number[]>; maxConcurrent: () => number } {
  const byId = new Map(Object.entries(fakes).map(([name, f]) => [peer(name).id, { name, f, served: 0 }]))
  const asked = new Map<string, number[]>()
  let concurrent = 0
  let max = 0
  const source: ChunkSource = {
    async have(p) {
      const e = byId.get(p.id)
      const b = new Bitfield(chunks.length)
      for (const i of e?.f.holds ?? []) b.set(i)
      return decodeHave(encodeHave({ chunks: b, list: true, objects: true }), chunks.length).chunks
    },
    async fetch(p, index, signal) {
      const e = byId.get(p.id)
      if (e === undefined) throw new P2PError('P2P_NO_PEER', 'no such peer')
      asked.set(e.name, [...(asked.get(e.name) ?? []), index])
      concurrent++
      max = Math.max(max, concurrent)
      try {
        if (e.f.dieAfter !== undefined && e.served >= e.f.dieAfter) throw new P2PError('P2P_STREAM_ERROR', 'gone')
        if (e.f.delayMs !== undefined) {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(resolve, e.f.delayMs)
            signal.addEventListener(
              'abort',
              () => {
                clearTimeout(timer)
                reject(new P2PError('P2P_ABORTED', 'aborted'))
              },
              { once: true },
            )
          })
        } else await sleep(1)
        if (e.f.dieAfter !== undefined && e.served >= e.f.dieAfter) throw new P2PError('P2P_STREAM_ERROR', 'gone')
        if (!e.f.holds.has(index)) throw new P2PError('P2P_REMOTE_ERROR', 'not held', { remoteCode: 'SWARM_NOT_HELD' })
        e.served++
        const b = e.f.liar === true ? new Uint8Array(randomBytes(CHUNK)) : (chunks[index] as Uint8Array)
        return e.f.parts === undefined ? b : cut(b, e.f.parts)
      } finally {
        concurrent--
      }
    },
  }
  return { source, peers: Object.keys(fakes).map(peer), asked, maxConcurrent: () => max }
}

const all = (n: number): Set<number> => new Set(Array.from({ length: n }, (_, i) => i))
const range = (a: number, b: number): Set<number> => new Set(Array.from({ length: b - a }, (_, i) => a + i))

async function run(
  ids: Uint8Array[],
  swarm: ReturnType<typeof fakeSwarm>,
  extra: Partial<Parameters<typeof downloadChunks>[0]> = {},
): Promise<{ stored: Map<number, Uint8Array>; res: Awaited<ReturnType<typeof downloadChunks>> }> {
  const stored = new Map<number, Uint8Array>()
  const res = await downloadChunks({
    chunkIds: ids,
    held: new Bitfield(ids.length),
    peers: () => swarm.peers,
    source: swarm.source,
    chunkBytes: CHUNK,
    store: async (i, b) => {
      if (stored.has(i)) throw new Error(`chunk ${i} stored twice`)
      stored.set(i, joinBytes(b))
    },
    refreshMs: 50,
    stallMs: 500,
    ...extra,
  })
  return { stored, res }
}

t.test('fetches every chunk from several peers at once, each verified', async (t) => {
  const { chunks, ids } = makeChunks(120)
  const swarm = fakeSwarm(chunks, { a: { holds: all(120) }, b: { holds: all(120) }, c: { holds: all(120) } })
  const progress: number[] = []
  const { stored, res } = await run(ids, swarm, { onProgress: (p) => progress.push(p.done) })
  t.equal(stored.size, 120)
  for (const [i, b] of stored) t.same(sha256(b), ids[i], `chunk ${i} is the right one`)
  t.equal(res.fetched, 120)
  t.equal(res.bytes, 120 * CHUNK)
  const shares = Object.values(res.perPeer).map((p) => p.chunks)
  t.equal(shares.length, 3, 'all three peers served')
  t.ok(
    shares.every((n) => n >= 20),
    `load spread: ${shares.join(', ')}`,
  )
  t.equal(progress.at(-1), 120, 'progress reaches the total')
})

t.test('rarest first: chunks only one peer holds are asked of it before common ones', async (t) => {
  const { chunks, ids } = makeChunks(20)
  const swarm = fakeSwarm(chunks, { a: { holds: all(20) }, b: { holds: range(0, 15) }, c: { holds: range(0, 15) } })
  await run(ids, swarm, { initialWindow: 1, maxWindow: 1 })
  const first = (swarm.asked.get('a') ?? []).slice(0, 5)
  t.same(
    [...first].sort((x, y) => x - y),
    [15, 16, 17, 18, 19],
    `a was asked for the rare chunks first (${first.join(', ')})`,
  )
})

t.test('inOrder: among equally rare chunks the lowest index goes first (a reader writing in order); rarer ones still come first', async (t) => {
  const { chunks, ids } = makeChunks(40)
  // The first `n` chunks each peer was asked for, all together, sorted.
  const firstAsked = async (inOrder: boolean, fakes: Parameters<typeof fakeSwarm>[1], n: number): Promise<Map<string, number[]>> => {
    const swarm = fakeSwarm(chunks, fakes)
    await run(ids, swarm, { initialWindow: 1, maxWindow: 1, inOrder })
    return new Map([...swarm.asked].map(([name, list]) => [name, list.slice(0, n)]))
  }
  const sorted = (m: Map<string, number[]>): number[] => [...m.values()].flat().sort((x, y) => x - y)
  const even = { a: { holds: all(40) }, b: { holds: all(40) } }
  const asked = sorted(await firstAsked(true, even, 6))
  t.same(
    asked,
    Array.from({ length: 12 }, (_, i) => i),
    `the first six asked of each are 0 to 11 together (${asked.join(', ')})`,
  )
  t.notSame(
    sorted(await firstAsked(false, even, 6)),
    Array.from({ length: 12 }, (_, i) => i),
    'without it, ties go at random',
  )
  const rare = await firstAsked(true, { a: { holds: all(40) }, b: { holds: range(0, 30) } }, 10)
  t.same(
    [...(rare.get('a') ?? [])].sort((x, y) => x - y),
    Array.from({ length: 10 }, (_, i) => 30 + i),
    'chunks only one peer holds still go first',
  )
})

t.test('a peer that sends garbage is reported, not asked again, and the download completes', async (t) => {
  const { chunks, ids } = makeChunks(60)
  const swarm = fakeSwarm(chunks, { liar: { holds: all(60), liar: true }, b: { holds: all(60) }, c: { holds: all(60) } })
  const bad: string[] = []
  const { stored } = await run(ids, swarm, { onBadChunk: (p) => bad.push(p.id) })
  t.equal(stored.size, 60)
  for (const [i, b] of stored) if (!ids[i] || toHex(sha256(b)) !== toHex(ids[i] as Uint8Array)) t.fail(`chunk ${i} corrupt`)
  t.same([...new Set(bad)], [peer('liar').id], 'the liar was reported')
  t.ok((swarm.asked.get('liar')?.length ?? 0) <= 2, `the liar was asked ${swarm.asked.get('liar')?.length} time(s): its first window only`)
})

t.test('chunks answered in parts are verified and stored whole; a liar answering in parts is caught', async (t) => {
  const { chunks, ids } = makeChunks(40)
  const swarm = fakeSwarm(chunks, { liar: { holds: all(40), liar: true, parts: 5 }, b: { holds: all(40), parts: 7 } })
  const bad: string[] = []
  const { stored, res } = await run(ids, swarm, { onBadChunk: (p) => bad.push(p.id) })
  t.equal(stored.size, 40)
  for (const [i, b] of stored) if (toHex(b) !== toHex(chunks[i] as Uint8Array)) t.fail(`chunk ${i} differs`)
  t.same([...new Set(bad)], [peer('liar').id], 'the liar was reported')
  t.equal(res.bytes, 40 * CHUNK, 'bytes counted over the parts')
})

t.test('a peer that dies midway: its chunks come from the others', async (t) => {
  const { chunks, ids } = makeChunks(80)
  const swarm = fakeSwarm(chunks, { dying: { holds: all(80), dieAfter: 5 }, b: { holds: all(80) } })
  const { stored, res } = await run(ids, swarm)
  t.equal(stored.size, 80)
  t.ok((res.perPeer[peer('dying').id]?.chunks ?? 0) <= 5)
})

t.test('resume: chunks already held are not fetched again', async (t) => {
  const { chunks, ids } = makeChunks(40)
  const swarm = fakeSwarm(chunks, { a: { holds: all(40) } })
  const held = new Bitfield(40)
  for (let i = 0; i < 40; i += 2) held.set(i)
  const { stored, res } = await run(ids, swarm, { held })
  t.equal(res.fetched, 20)
  t.ok(
    [...stored.keys()].every((i) => i % 2 === 1),
    'only the missing half was fetched',
  )
  t.ok(
    (swarm.asked.get('a') ?? []).every((i) => i % 2 === 1),
    'held chunks were never asked for',
  )
})

t.test('a chunk nobody holds: SWARM_UNAVAILABLE after the stall time, what arrived is kept', async (t) => {
  const { chunks, ids } = makeChunks(10)
  const holds = all(10)
  holds.delete(7)
  const swarm = fakeSwarm(chunks, { a: { holds } })
  const stored = new Map<number, Uint8Array>()
  const t0 = Date.now()
  await t.rejects(
    downloadChunks({
      chunkIds: ids,
      held: new Bitfield(10),
      peers: () => swarm.peers,
      source: swarm.source,
      chunkBytes: CHUNK,
      store: async (i, b) => {
        stored.set(i, joinBytes(b))
      },
      refreshMs: 50,
      stallMs: 300,
    }),
    { name: 'SwarmError', code: 'SWARM_UNAVAILABLE', message: /1 of 10 chunk/ },
  )
  t.ok(Date.now() - t0 < 5000, 'gives up in bounded time')
  t.equal(stored.size, 9, 'the nine reachable chunks were stored')
  t.type(new SwarmError('SWARM_UNAVAILABLE', 'x'), Error)
})

t.test('endgame: the last chunks are also asked of a fast peer, and the slow copies are cancelled', async (t) => {
  const { chunks, ids } = makeChunks(12)
  const swarm = fakeSwarm(chunks, { slow: { holds: all(12), delayMs: 3000 }, fast: { holds: all(12) } })
  const t0 = Date.now()
  const { stored, res } = await run(ids, swarm)
  const ms = Date.now() - t0
  t.equal(stored.size, 12)
  t.ok(ms < 2000, `done in ${ms} ms, without waiting for the slow peer`)
  t.ok(res.duplicates >= 1, `${res.duplicates} duplicate request(s) in the endgame`)
  t.equal(res.perPeer[peer('slow').id], undefined, 'the slow peer delivered nothing: its copies were cancelled')
})

t.test('memory bound: never more than maxInFlightBytes of chunks in flight', async (t) => {
  const { chunks, ids } = makeChunks(60)
  const swarm = fakeSwarm(chunks, { a: { holds: all(60), delayMs: 5 }, b: { holds: all(60), delayMs: 5 }, c: { holds: all(60), delayMs: 5 } })
  await run(ids, swarm, { maxInFlightBytes: 3 * CHUNK, maxWindow: 16 })
  t.ok(swarm.maxConcurrent() <= 3, `at most 3 in flight (saw ${swarm.maxConcurrent()})`)
  t.ok(swarm.maxConcurrent() >= 2, 'several in flight')
})

t.test('it returns only once every verified chunk is stored', async (t) => {
  const { chunks, ids } = makeChunks(20)
  const swarm = fakeSwarm(chunks, { a: { holds: all(20) }, b: { holds: all(20) } })
  let stored = 0
  const res = await downloadChunks({
    chunkIds: ids,
    held: new Bitfield(20),
    peers: () => swarm.peers,
    source: swarm.source,
    chunkBytes: CHUNK,
    store: async () => {
      await sleep(30)
      stored++
    },
  })
  t.equal(stored, 20, 'no store still pending')
  t.equal(res.fetched, 20)
})

t.test('a failing store ends the download with its error', async (t) => {
  const { chunks, ids } = makeChunks(10)
  const swarm = fakeSwarm(chunks, { a: { holds: all(10) } })
  await t.rejects(
    downloadChunks({
      chunkIds: ids,
      held: new Bitfield(10),
      peers: () => swarm.peers,
      source: swarm.source,
      chunkBytes: CHUNK,
      store: async () => {
        throw new Error('disk full')
      },
    }),
    { message: 'disk full' },
  )
})

t.test('bitfields: BitTorrent bit order, spare bits refused, counts', async (t) => {
  const b = new Bitfield(10)
  b.set(0)
  b.set(9)
  t.same([...b.bytes], [0x80, 0x40])
  t.equal(b.count, 2)
  t.notOk(b.complete)
  b.clear(0)
  t.equal(b.count, 1)
  t.throws(() => new Bitfield(10, Uint8Array.of(0, 0x20)), { code: 'SWARM_BAD_REQUEST' }, 'a spare bit set')
  t.throws(() => decodeHave(encodeHave({ chunks: new Bitfield(9), list: true, objects: false }), 10), { code: 'SWARM_BAD_REQUEST' }, 'wrong chunk count')
  const h = decodeHave(encodeHave({ chunks: b, list: true, objects: false }), 10)
  t.same([h.list, h.objects, h.chunks.has(9), h.chunks.has(0)], [true, false, true, false])
  const bytes = encodeHave({ chunks: b, list: false, objects: true })
  bytes[4] = 0x80
  t.throws(() => decodeHave(bytes, 10), { code: 'SWARM_BAD_REQUEST' }, 'unknown flags')
})
