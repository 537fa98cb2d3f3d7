import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_PARAMS } from '../src/chain/index.js'
import { generateCtStudy } from '../src/study/index.js'
import { sleep } from '../src/util/index.js'
import { clientOf, devnetDown, devnetUp, startOrg, stopOrg, waitJob, type DevnetOrg } from '../src/devnet/index.js'
import { daemonCpuMs } from './cpu.js'
import { logLines as readLog, waitLogLine } from './daemon-log.js'
import { measureChunkPipe, type ChunkPipeResult } from './chunk-pipe.js'
import { measureLibp2pStream, type StreamResult } from './libp2p-stream.js'

/** Result of {@link measureSwarm}. MB = 10^6 bytes. */
export interface SwarmBenchResult {
  /** Ciphertext bytes of the study. */
  readonly bytes: number
  readonly chunks: number
  /** One bare libp2p stream (Noise + Yamux) moving the same bytes between two processes. */
  readonly bare: StreamResult
  /** The same number of chunks through the product's pipe and chunk stores alone, one holder, no swarm (bench/chunk-pipe.ts): the work each chunk needs. */
  readonly pipe: ChunkPipeResult
  /** From the registration being final to the last of the 3 other holders holding all of it (replication uses a quarter of the fetch budget). */
  readonly replicate: { readonly seconds: number; readonly perHolder: Readonly<Record<string, number>> }
  /** The custodian, its store wiped, fetching the study's chunks alone (`study fetch`) from 3 holders, and from 1. */
  readonly fetch3: FetchSeries
  readonly fetch1: FetchSeries
  /** The same with `study get`: the chunks, and the files decrypted and written while they arrive (toFilesMbPerSec). */
  readonly get3: FetchSeries
  readonly get1: FetchSeries
  /**
   * `study get` at the custodian once it holds every chunk again: no transfer, the export
   * alone (decryption, digests, DICOM files written). A reader's fetch does
   * this while the chunks arrive, so its CPU over the transfer includes it.
   */
  readonly exportOnly: { readonly seconds: number; readonly cpuMsPerMB: number; readonly runs: number }
}

interface LogLine {
  time: number
  msg: string
  study?: string
  kind?: string
  bytes?: number
  ms?: number
  peers?: number
  cpuMs?: number
}

/** Fetches measured for each figure (each in a freshly started process), the median reported. */
const FETCH_RUNS = 3

/** What one fetch measured: throughput, and CPU per MB of the fetching daemon (from its log) and of the holders serving it. */
export interface FetchFigures {
  mbPerSec: number
  seconds: number
  /** The whole \`study get\` job, from asking to the study's files written: MB of the study per second. */
  toFilesMbPerSec: number
  peers: number
  cpuMsPerMB: { fetcher: number; holders: number }
}

/** Several fetches: the median one's figures, the slowest and fastest (MB/s), and CPU per MB averaged over all. */
export interface FetchSeries extends FetchFigures {
  runs: number
  range: { min: number; max: number }
}

/** `runs` fetches with fetchAt (each in a freshly started org1 process) summed up as a series. */
async function fetchSeries(runs: number, ...args: Parameters<typeof fetchAt>): Promise<FetchSeries> {
  const all: FetchFigures[] = []
  for (let i = 0; i < runs; i++) all.push(await fetchAt(...args))
  // A get is judged by its files written, a fetch by its chunks.
  const key = (x: FetchFigures): number => (args[0] === 'get' ? x.toFilesMbPerSec : x.mbPerSec)
  const sorted = [...all].sort((a, b) => key(a) - key(b))
  const median = sorted[Math.floor(sorted.length / 2)] as FetchFigures
  const mean = (f: (x: FetchFigures) => number): number => all.reduce((s, x) => s + f(x), 0) / all.length
  return {
    ...median,
    cpuMsPerMB: { fetcher: mean((x) => x.cpuMsPerMB.fetcher), holders: mean((x) => x.cpuMsPerMB.holders) },
    runs,
    range: { min: key(sorted[0] as FetchFigures), max: key(sorted[sorted.length - 1] as FetchFigures) },
  }
}

/**
 * Wipes org1's chunk store, restarts it, fetches the study with `study fetch`
 * (the chunks alone) or `study get` (and the files written),
 * and reads the transfer figures from its log; `holders` are the daemons
 * serving it, whose CPU time over the whole job is charged to the transfer.
 */
async function fetchAt(mode: 'fetch' | 'get', o1: DevnetOrg, holders: DevnetOrg[], sid: string, out: string): Promise<FetchFigures> {
  await stopOrg(o1, 'SIGKILL')
  await rm(join(o1.dir, 'chunks'), { recursive: true, force: true })
  await rm(out, { recursive: true, force: true })
  await startOrg(o1)
  const c = await clientOf(o1)
  // Let it reconnect to its peers before asking.
  for (let i = 0; i < 100 && (await c.status()).peers === 0; i++) await sleep(100)
  // Every daemon's CPU time over this idle second is its background work (chain, reconcile: 60-80 ms a
  // second measured at the fetcher), taken off below: the pipe row has none.
  const idleFrom = await Promise.all(holders.map(daemonCpuMs))
  const fetcherIdleFrom = await daemonCpuMs(o1)
  await sleep(1000)
  const fetcherIdlePerMs = ((await daemonCpuMs(o1)) ?? Number.NaN) / 1000 - (fetcherIdleFrom ?? Number.NaN) / 1000
  const before = (await readLog<LogLine>(o1)).length
  const cpuBefore = await Promise.all(holders.map(daemonCpuMs))
  const jobStart = Date.now()
  await waitJob(c, mode === 'fetch' ? await c.fetchStudy(sid) : await c.getStudy(sid, { out }), 'get')
  const jobMs = Date.now() - jobStart
  const cpuAfter = await Promise.all(holders.map(daemonCpuMs))
  const line = await waitLogLine<LogLine>(o1, before, (l) => l.msg === 'study chunks fetched' && l.study === sid && l.kind === 'fetch')
  if (line?.bytes === undefined || line.ms === undefined || line.cpuMs === undefined) throw new Error('no fetch line in the log')
  if (process.env.RADCHAIN_BENCH_DEBUG !== undefined) console.log(JSON.stringify(line))
  const mb = line.bytes / 1e6
  let holdersMs = 0
  for (const [i, a] of cpuAfter.entries()) {
    const b = cpuBefore[i] ?? Number.NaN
    const idlePerMs = (b - (idleFrom[i] ?? Number.NaN)) / 1000
    holdersMs += Math.max(0, (a ?? Number.NaN) - b - idlePerMs * jobMs)
  }
  return {
    mbPerSec: mb / (line.ms / 1000),
    seconds: line.ms / 1000,
    toFilesMbPerSec: mb / (jobMs / 1000),
    peers: line.peers ?? 0,
    cpuMsPerMB: { fetcher: Math.max(0, line.cpuMs - fetcherIdlePerMs * line.ms) / mb, holders: holdersMs / mb },
  }
}

/** `study get` at `o`, which holds every chunk: the export alone, `runs` times; the mean CPU per MB of `o` (less its idle rate) and the median time. */
async function exportAt(o: DevnetOrg, sid: string, out: string, mbOfStudy: number, runs: number): Promise<SwarmBenchResult['exportOnly']> {
  const c = await clientOf(o)
  const seconds: number[] = []
  let cpuPerMB = 0
  for (let i = 0; i < runs; i++) {
    await rm(out, { recursive: true, force: true })
    execFileSync('sync')
    const idleFrom = await daemonCpuMs(o)
    await sleep(1000)
    const before = await daemonCpuMs(o)
    const t0 = Date.now()
    await waitJob(c, await c.getStudy(sid, { out }), 'get')
    const ms = Date.now() - t0
    const after = await daemonCpuMs(o)
    if (idleFrom === undefined || before === undefined || after === undefined) throw new Error('no /proc: the CPU time of a daemon is not known')
    seconds.push(ms / 1000)
    cpuPerMB += Math.max(0, after - before - ((before - idleFrom) / 1000) * ms) / mbOfStudy / runs
  }
  seconds.sort((a, b) => a - b)
  return { seconds: seconds[Math.floor(seconds.length / 2)] as number, cpuMsPerMB: cpuPerMB, runs }
}

/**
 * On a 4-organization devnet where every organization holds every study
 * (replication factor 4), org1 adds a synthetic CT study of `slices` slices
 * of 512 x 512; the three others replicate it; then org1 loses its chunk
 * store and fetches it back from the 3 holders, and again with two holders
 * stopped, from 1. org1 does not pull by itself (its noPull fault switch), so its
 * fetch is the reader's `study get` alone. Beside them, a bare
 * libp2p stream moves the same number of bytes between two processes, and
 * the same number of chunks goes through the pipe and two chunk stores
 * with no swarm logic (the per-chunk work alone).
 */
export async function measureSwarm(opts: { slices: number; basePort: number; log: (s: string) => void }): Promise<SwarmBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-swarm-'))
  const input = join(dir, 'input')
  try {
    opts.log(`  generating a ${opts.slices}-slice CT study`)
    await generateCtStudy({ slices: opts.slices, rows: 512, cols: 512, out: input, seed: 11 })
    const swarm = { repairAfterMs: 3_600_000, reconcileMs: 200, scrubIntervalMs: 0, durableTimeoutMs: 600_000 }
    const m = await devnetUp({
      dir: join(dir, 'net'),
      orgs: 4,
      basePort: opts.basePort,
      blockIntervalMs: 500,
      replicationFactor: 4,
      // DICOMweb's own fetch of a leased study is not what is measured: `study get` is.
      config: { logLevel: 'info', swarm, dicomweb: { showLeased: false } },
      orgFaults: { org1: { noPull: true } },
    })
    const [o1, o2, o3, o4] = m.orgs as [DevnetOrg, DevnetOrg, DevnetOrg, DevnetOrg]
    try {
      execFileSync('sync')
      const c1 = await clientOf(o1)
      opts.log('  study add at org1, replication to org2, org3, org4')
      const job = await waitJob(c1, await c1.addStudies([input]), 'add')
      const added = job.studies[0]
      if (added === undefined || !added.durable) throw new Error('the study did not become durable')
      const sid = added.studyId
      const final = (await readLog<LogLine>(o1)).find((l) => l.msg === 'study registered' && l.study === sid)?.time ?? 0
      const perHolder: Record<string, number> = {}
      for (const o of [o2, o3, o4]) {
        // Durable means enough holders, not every one: the last may still be pulling.
        let t: number | undefined
        for (let i = 0; i < 1200 && t === undefined; i++) {
          t = (await readLog<LogLine>(o)).find((l) => l.msg === 'study replicated' && l.study === sid)?.time
          if (t === undefined) await sleep(100)
        }
        if (t === undefined) throw new Error(`${o.id} did not log the replication within 2 min`)
        perHolder[o.id] = (t - final) / 1000
      }
      const replicate = { seconds: Math.max(...Object.values(perHolder)), perHolder }
      opts.log(`  replicated to 3 holders in ${replicate.seconds.toFixed(2)} s`)
      execFileSync('sync')
      opts.log('  org1 store wiped: study fetch from 3 holders')
      const fetch3 = await fetchSeries(FETCH_RUNS, 'fetch', o1, [o2, o3, o4], sid, join(dir, 'out3'))
      opts.log(`  ${fetch3.mbPerSec.toFixed(0)} MB/s from ${fetch3.peers} peers (median of ${fetch3.runs})`)
      opts.log('  org1 store wiped: study get from 3 holders')
      const get3 = await fetchSeries(FETCH_RUNS, 'get', o1, [o2, o3, o4], sid, join(dir, 'out3'))
      opts.log(`  ${get3.toFilesMbPerSec.toFixed(0)} MB/s to files written, the chunks ${get3.mbPerSec.toFixed(0)} MB/s (median of ${get3.runs})`)
      await stopOrg(o3)
      await stopOrg(o4)
      execFileSync('sync')
      opts.log('  org3, org4 stopped, org1 store wiped: study fetch from 1 holder')
      const fetch1 = await fetchSeries(FETCH_RUNS, 'fetch', o1, [o2], sid, join(dir, 'out1'))
      opts.log(`  ${fetch1.mbPerSec.toFixed(0)} MB/s from ${fetch1.peers} peer (median of ${fetch1.runs})`)
      opts.log('  org1 store wiped: study get from 1 holder')
      const get1 = await fetchSeries(FETCH_RUNS, 'get', o1, [o2], sid, join(dir, 'out1'))
      opts.log(`  ${get1.toFilesMbPerSec.toFixed(0)} MB/s to files written, the chunks ${get1.mbPerSec.toFixed(0)} MB/s (median of ${get1.runs})`)
      opts.log('  study get at org1, which now holds every chunk: the export alone')
      const exportOnly = await exportAt(o1, sid, join(dir, 'out-export'), added.size / 1e6, FETCH_RUNS)
      opts.log(`  ${exportOnly.seconds.toFixed(2)} s, CPU ${exportOnly.cpuMsPerMB.toFixed(1)} ms per MB`)
      // Each measurement starts with nothing left to write back from the one before (the
      // fetch's export writes the study's files), so the kernel's flushing does not take CPU from it.
      execFileSync('sync')
      opts.log('  bare libp2p stream of the same bytes')
      const bare = await measureLibp2pStream({ bytes: added.size, encryption: 'noise', runs: 3, pairs: 3 })
      execFileSync('sync')
      opts.log('  the same chunks through the pipe and two chunk stores, no swarm')
      // As many requests in flight as the fetch keeps on one peer (maxWindow), chunks of the study's size.
      const pipe = await measureChunkPipe({ chunks: added.chunks, chunkBytes: DEFAULT_PARAMS.chunkSize, inFlight: 6, runs: 3, pairs: 3 })
      return { bytes: added.size, chunks: added.chunks, bare, pipe, replicate, fetch3, fetch1, get3, get1, exportOnly }
    } finally {
      await devnetDown(join(dir, 'net'), true).catch(() => 0)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
