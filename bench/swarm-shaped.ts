import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateCtStudy } from '../src/study/index.js'
import { sleep } from '../src/util/index.js'
import {
  cliPath,
  clientOf,
  devnetDown,
  devnetUp,
  pidOf,
  shapeUplink,
  startOrg,
  stopOrg,
  waitJob,
  type DevnetManifest,
  type DevnetOrg,
} from '../src/devnet/index.js'
import { logLines as readLog, waitLogLine } from './daemon-log.js'
import { busyShare, daemonCpuMs, machineTicks, mainThreadCpuMs } from './cpu.js'
import { measureLibp2pStream, type StreamResult } from './libp2p-stream.js'

/** One `study get` by the lessee: the command's wall time, and the chunk transfer's from the daemon's log. MB = 10^6 bytes. */
export interface ShapedFetch {
  /** From starting `radchain study get` to its exit, the last file written. */
  readonly seconds: number
  readonly mbPerSec: number
  /** The chunk transfer alone (the daemon's 'study chunks fetched' line). */
  readonly transferSeconds: number
  readonly transferMbPerSec: number
  readonly peers: number
  /** When each step of the daemon's job ended, ms from its start (list, firstChunk, key, exported, fetched, written). */
  readonly steps: Readonly<Record<string, number>>
  /** How far behind the arrivals the export was when the last chunk arrived. */
  readonly atAllChunks: { readonly chunksRead: number; readonly bufferedMiB: number } | null
  /** Over the command: the share of the machine's cores that were busy (every process), and the cores the lessee's and the holders' daemons used. */
  readonly cpu: { readonly machineBusy: number; readonly lesseeCores: number; readonly lesseeMainCores: number; readonly holderCores: number }
}

/** Several fetches of the same kind: the median one (by command time), and the spread. */
export interface ShapedFetches {
  readonly median: ShapedFetch
  readonly min: number
  readonly max: number
  readonly runs: number
}

/** Result of {@link measureSwarmShaped}. */
export interface ShapedBenchResult {
  readonly mbit: number
  readonly fastMbit: number
  readonly bytes: number
  readonly holders: readonly string[]
  readonly lessee: string
  /** A bare libp2p stream through one link shaped to `mbit` (baseline). */
  readonly bare: StreamResult
  /** Replication with the custodian's uplink at `mbit` and the others' at `fastMbit`: registration final to the last holder complete. */
  readonly replicate: { readonly seconds: number; readonly perHolder: Readonly<Record<string, number>> }
  /** One copy of the pack through the custodian's uplink, as the bare stream moves it (the replication target's unit). */
  readonly oneCopySeconds: number
  readonly fetch3: ShapedFetches
  readonly fetch1: ShapedFetches
  /** The fetch from 3 holders again, every holder's uplink at `lowMbit`, with its own bare-stream baseline through one such link. */
  readonly low: { readonly mbit: number; readonly bare: StreamResult; readonly fetch3: ShapedFetches }
}

interface LogLine {
  readonly msg?: string
  readonly time?: number
  readonly study?: string
  readonly kind?: string
  readonly bytes?: number
  readonly ms?: number
  readonly peers?: number
  readonly steps?: Record<string, number>
  readonly atAllChunks?: { chunksRead: number; bufferedMiB: number } | null
}

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cliPath(), ...args], { timeout: 600_000 }, (err, _out, stderr) =>
      err === null ? resolve() : reject(new Error(stderr || err.message)),
    )
  })
}

/** The lessee's `study get`, timed from the command to its exit, after its chunk store was emptied. */
async function timedGet(lessee: DevnetOrg, holders: readonly DevnetOrg[], sid: string, out: string): Promise<ShapedFetch> {
  await stopOrg(lessee)
  await rm(join(lessee.dir, 'chunks'), { recursive: true, force: true })
  await rm(out, { recursive: true, force: true })
  await startOrg(lessee)
  const c = await clientOf(lessee)
  for (let i = 0; i < 100 && (await c.status()).peers < 3; i++) await sleep(100)
  await sleep(1000)
  const before = (await readLog<LogLine>(lessee)).length
  const cpuOf = async (os: readonly DevnetOrg[]): Promise<number> => (await Promise.all(os.map(daemonCpuMs))).reduce<number>((a, b) => a + (b ?? 0), 0)
  const pid = await pidOf(lessee)
  const mainOf = async (): Promise<number> => (pid === undefined ? 0 : ((await mainThreadCpuMs(pid)) ?? 0))
  const [m0, l0, h0, t0main] = [await machineTicks(), await cpuOf([lessee]), await cpuOf(holders), await mainOf()]
  const t0 = performance.now()
  await run(['study', 'get', sid, '--out', out, '--node', lessee.dir, '--json'])
  const seconds = (performance.now() - t0) / 1000
  const [m1, l1, h1, t1main] = [await machineTicks(), await cpuOf([lessee]), await cpuOf(holders), await mainOf()]
  const cpu = {
    machineBusy: busyShare(m0, m1),
    lesseeCores: (l1 - l0) / 1000 / seconds,
    lesseeMainCores: (t1main - t0main) / 1000 / seconds,
    holderCores: (h1 - h0) / 1000 / seconds,
  }
  const line = await waitLogLine<LogLine>(lessee, before, (l) => l.msg === 'study chunks fetched' && l.study === sid)
  if (line?.bytes === undefined || line.ms === undefined) throw new Error('no fetch line in the lessee log')
  const mb = line.bytes / 1e6
  const written = (await readLog<LogLine>(lessee)).slice(before).find((l) => l.msg === 'study written' && l.study === sid)
  return {
    seconds,
    mbPerSec: mb / seconds,
    transferSeconds: line.ms / 1000,
    transferMbPerSec: mb / (line.ms / 1000),
    peers: line.peers ?? 0,
    steps: written?.steps ?? {},
    atAllChunks: written?.atAllChunks ?? null,
    cpu,
  }
}

/** {@link FETCH_RUNS} timed gets, each into a freshly started lessee with an empty chunk store; the median by command time. */
async function timedGets(lessee: DevnetOrg, holders: readonly DevnetOrg[], sid: string, out: string, log: (s: string) => void): Promise<ShapedFetches> {
  const all: ShapedFetch[] = []
  for (let i = 0; i < FETCH_RUNS; i++) {
    // A new folder each time, as a user exports (writing over freed space measured a little faster).
    const f = await timedGet(lessee, holders, sid, `${out}-${i}`)
    log(
      `    ${f.mbPerSec.toFixed(1)} MB/s command to files (${f.seconds.toFixed(2)} s), transfer ${f.transferMbPerSec.toFixed(1)} MB/s; machine ${(f.cpu.machineBusy * 100).toFixed(0)}% busy, lessee ${f.cpu.lesseeCores.toFixed(2)} cores (its main thread ${f.cpu.lesseeMainCores.toFixed(2)}), holders ${f.cpu.holderCores.toFixed(2)}; job steps ${JSON.stringify(f.steps)}, at the last chunk ${JSON.stringify(f.atAllChunks)}`,
    )
    all.push(f)
  }
  const sorted = [...all].sort((a, b) => a.seconds - b.seconds)
  return {
    median: sorted[Math.floor(sorted.length / 2)] as ShapedFetch,
    min: (sorted.at(-1) as ShapedFetch).mbPerSec,
    max: (sorted[0] as ShapedFetch).mbPerSec,
    runs: all.length,
  }
}
/** Timed gets per figure. */
const FETCH_RUNS = 3

/**
 * Four organizations on a network of hosts (src/devnet/hosts.ts), each in
 * its own network namespace. Replication: org1 adds a synthetic CT study of
 * `slices` slices with its uplink shaped to `mbit` and the others' to
 * `fastMbit`; the time runs from the registration to the last of its two
 * holders complete. Fetch: every holder's uplink at `mbit`, the lessee's
 * unshaped; the organization holding no copy requests a lease, org1 grants
 * it, and `radchain study get` runs at the lessee, timed from the command to
 * its exit; then again with two holders stopped. Baseline, in the same run: a
 * bare libp2p stream through one link shaped to `mbit`.
 */
export async function measureSwarmShaped(opts: {
  slices: number
  mbit: number
  fastMbit: number
  lowMbit: number
  log: (s: string) => void
}): Promise<ShapedBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-shaped-'))
  const input = join(dir, 'input')
  const netDir = join(dir, 'net')
  try {
    opts.log(`  generating a ${opts.slices}-slice CT study`)
    await generateCtStudy({ slices: opts.slices, rows: 512, cols: 512, out: input, seed: 11 })
    const swarm = { repairAfterMs: 3_600_000, reconcileMs: 200, scrubIntervalMs: 0, durableTimeoutMs: 600_000 }
    const m: DevnetManifest = await devnetUp({
      dir: netDir,
      orgs: 4,
      basePort: 7600,
      hosts: true,
      linkMbit: { org1: opts.mbit, org2: opts.fastMbit, org3: opts.fastMbit, org4: opts.fastMbit },
      blockIntervalMs: 500,
      replicationFactor: 3,
      // DICOMweb's own fetch of a leased study is not what is measured: `study get` is.
      config: { logLevel: 'info', swarm, dicomweb: { showLeased: false } },
    })
    const net = m.hosts
    if (net === undefined) throw new Error('not a devnet of hosts')
    try {
      const [o1] = m.orgs as [DevnetOrg]
      const c1 = await clientOf(o1)
      opts.log(`  study add at org1 (uplink ${opts.mbit} Mbit/s, the others ${opts.fastMbit}), replication to its two holders`)
      const job = await waitJob(c1, await c1.addStudies([input]), 'add')
      const added = job.studies[0]
      if (added === undefined || !added.durable) throw new Error('the study did not become durable')
      const sid = added.studyId
      const final = (await readLog<LogLine>(o1)).find((l) => l.msg === 'study registered' && l.study === sid)?.time ?? 0
      const holders = m.orgs.filter((o) => added.holders.includes(o.id))
      const perHolder: Record<string, number> = {}
      for (const o of holders.filter((x) => x.id !== o1.id)) {
        const t = (await readLog<LogLine>(o)).find((l) => l.msg === 'study replicated' && l.study === sid)?.time
        if (t === undefined) throw new Error(`${o.id} did not log the replication`)
        perHolder[o.id] = (t - final) / 1000
      }
      const replicate = { seconds: Math.max(...Object.values(perHolder)), perHolder }
      opts.log(`  replicated in ${replicate.seconds.toFixed(2)} s`)

      const lessee = m.orgs.find((o) => !added.holders.includes(o.id)) as DevnetOrg
      // Fetch: every holder's uplink at `mbit`, the lessee's unshaped.
      for (const o of holders) await shapeUplink(net, o.id, opts.mbit)
      await shapeUplink(net, lessee.id, undefined)
      const cl = await clientOf(lessee)
      const leaseId = await cl.requestLease(sid, { scope: 'images', durationMs: 3_600_000, purpose: 'benchmark' })
      for (let i = 0; ; i++) {
        const l = (await c1.leases('incoming')).find((x) => x.leaseId === leaseId)
        if (l?.status === 'requested') break
        if (i > 600) throw new Error('the lease request did not reach the custodian')
        await sleep(50)
      }
      await c1.decideLease(leaseId, 'grant')
      for (let i = 0; (await cl.leases('outgoing')).find((x) => x.leaseId === leaseId)?.status !== 'granted'; i++) {
        if (i > 600) throw new Error('the lease was not granted')
        await sleep(50)
      }
      opts.log(`  ${lessee.id} (unshaped) leases the study; study get from ${holders.length} holders at ${opts.mbit} Mbit/s each`)
      const fetch3 = await timedGets(lessee, holders, sid, join(dir, 'out3'), opts.log)
      for (const o of holders) await shapeUplink(net, o.id, opts.lowMbit)
      opts.log(`  study get from ${holders.length} holders at ${opts.lowMbit} Mbit/s each`)
      const fetch3Low = await timedGets(lessee, holders, sid, join(dir, 'out3-low'), opts.log)
      for (const o of holders) await shapeUplink(net, o.id, opts.mbit)
      const [keep, ...others] = holders as [DevnetOrg, ...DevnetOrg[]]
      for (const o of others) await stopOrg(o)
      opts.log(`  ${others.map((o) => o.id).join(', ')} stopped: study get from ${keep.id} alone`)
      const fetch1 = await timedGets(lessee, [keep], sid, join(dir, 'out1'), opts.log)

      // The baseline: a bare stream from a holder to the lessee through one link shaped to `mbit`.
      const bareThrough = async (mbit: number, pairs: number): Promise<StreamResult> => {
        await shapeUplink(net, keep.id, mbit)
        opts.log(`  bare libp2p stream through one link at ${mbit} Mbit/s`)
        const r = await measureLibp2pStream({
          bytes: added.size,
          encryption: 'noise',
          runs: 1,
          pairs,
          hosts: { senderNs: keep.netns as string, receiverNs: lessee.netns as string, receiverHost: lessee.host as string },
        })
        opts.log(`  ${r.mbPerSec.toFixed(1)} MB/s`)
        return r
      }
      const bare = await bareThrough(opts.mbit, 3)
      const bareLow = await bareThrough(opts.lowMbit, 1)
      return {
        mbit: opts.mbit,
        fastMbit: opts.fastMbit,
        bytes: added.size,
        holders: holders.map((o) => o.id),
        lessee: lessee.id,
        bare,
        replicate,
        oneCopySeconds: added.size / 1e6 / bare.mbPerSec,
        fetch3,
        fetch1,
        low: { mbit: opts.lowMbit, bare: bareLow, fetch3: fetch3Low },
      }
    } finally {
      await devnetDown(netDir, true).catch(() => 0)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
