import t, { type Test } from 'tap'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateCtStudy, packageStudy } from '../../../src/study/index.js'
import { generateOrgKeys, mlkemFromX25519Private } from '../../../src/crypto/index.js'
import { StudyJobs } from '../../../src/node/studies.js'
import { encodeTrusted, u64 } from '../../../src/chain/codec.js'
import { registerStudyTx } from '../../../src/chain/index.js'
import { nullLogger, sleep, toHex } from '../../../src/util/index.js'

/**
 * StudyJobs with a fake swarm: the download delivers every chunk, then
 * spends `flushMs` in its final flush (the chunk store making its copy
 * durable), which a get does not wait for.
 */
async function harness(t: Test, flushMs: number): Promise<{ jobs: StudyJobs; sid: string; files: number; dir: string; flushed: () => boolean }> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-get-job-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const ct = await generateCtStudy({ slices: 12, rows: 32, cols: 32, out: join(dir, 'src'), seed: 2 })
  const { keys } = generateOrgKeys()
  const custodian = { x25519: keys.encryption.publicKey, mlkem: mlkemFromX25519Private(keys.encryption.privateKey).publicKey }
  const store = new Map<string, Uint8Array>()
  const packed = await packageStudy(ct.files, {
    chunkSize: 4096,
    custodianId: 'org1',
    custodian,
    store: { put: async (id: Uint8Array, b: Uint8Array) => void store.set(toHex(id), b) },
  } as never)
  const p = packed.payload
  // The study's record as a registration at height 5 leaves it in the chain state.
  const state = new Map([[`st/${toHex(p.studyId)}`, encodeTrusted([registerStudyTx.encode(p), u64(5)] as never)]])
  const chain = { state, orgByKey: () => ({ id: 'org1' }), head: () => ({ header: { time: Date.now(), height: 5 } }) }
  let flushed = false
  const swarm = {
    hasDuty: () => true,
    fetchObject: async () => packed.envelopes.custodian,
    fetchChunks: async (
      _r: unknown,
      opts: { onList?: (l: readonly Uint8Array[], h: (i: number) => boolean) => void; onChunk?: (i: number, b: Uint8Array) => void },
    ) => {
      opts.onList?.(packed.chunkIds, () => false)
      for (const [i, id] of packed.chunkIds.entries()) {
        await sleep(1)
        opts.onChunk?.(i, store.get(toHex(id)) as Uint8Array)
      }
      await sleep(flushMs)
      flushed = true
      return packed.chunkIds
    },
    dropStudy: async () => 0,
  }
  const jobs = new StudyJobs({ durableTimeoutMs: 1000 }, {
    chain,
    chunks: { get: async (id: Uint8Array) => store.get(toHex(id)) },
    index: {},
    swarm,
    leases: {},
    keys,
    logger: nullLogger(),
  } as never)
  return { jobs, sid: toHex(p.studyId), files: ct.files.length, dir, flushed: () => flushed }
}

async function states(jobs: StudyJobs, id: string, untilMs: number): Promise<string[]> {
  const seen: string[] = []
  const end = Date.now() + untilMs
  while (Date.now() < end) {
    const s = jobs.get(id)?.state ?? 'none'
    if (seen.at(-1) !== s) seen.push(s)
    await sleep(5)
  }
  return seen
}

t.test("a get is done when its files are written, and stays done when the download's flush ends after it", async (t) => {
  const h = await harness(t, 400)
  const out = join(h.dir, 'out')
  const id = await h.jobs.startGet(h.sid, { out, scope: 'images' })
  for (let i = 0; i < 400 && h.jobs.get(id)?.state !== 'done'; i++) await sleep(5)
  const doneBeforeFlush = h.jobs.get(id)?.state === 'done' && !h.flushed()
  t.ok(doneBeforeFlush, 'done while the flush still runs')
  t.equal((await readdir(out)).length, h.files, 'every file written')
  const after = await states(h.jobs, id, 700)
  t.ok(h.flushed(), 'the flush ended meanwhile')
  t.same(after, ['done'], 'and the job never left done')
})

t.test('a fetch alone (out null) is done when the download is, and writes nothing', async (t) => {
  const h = await harness(t, 100)
  const id = await h.jobs.startGet(h.sid, { out: null, scope: 'images' })
  const seen = await states(h.jobs, id, 600)
  t.same(seen, ['fetching', 'done'])
  t.ok(h.flushed(), 'done only after the download, flush included')
  t.equal(h.jobs.get(id)?.kind === 'get' ? (h.jobs.get(id) as { out: unknown }).out : 'x', null)
  t.same((await readdir(h.dir)).sort(), ['src'], 'no folder written')
})
