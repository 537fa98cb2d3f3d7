import '../src/util/polyfill.js'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { availableParallelism, cpus } from 'node:os'
import { measureVerifyRate } from './verify-rate.js'
import { measureNodeThroughput } from './node-throughput.js'
import { measureDevnet } from './devnet-throughput.js'
import { measureLibp2pStream } from './libp2p-stream.js'
import { measureStudyIngest } from './study-ingest.js'
import { measureSwarm } from './swarm.js'
import { measureSwarmShaped, type ShapedFetch, type ShapedFetches } from './swarm-shaped.js'
import { measureLease } from './lease.js'
import { measureCliStartup } from './cli-startup.js'
import { measureDicomweb } from './dicomweb.js'
import { measureDimseIngest } from './dimse.js'
import { repoRoot } from '../src/devnet/index.js'

// Which benchmarks to run: RADCHAIN_BENCH=cli,node,devnet,devnet-hosts,stream,ingest,swarm,shaped,lease,dicomweb,dimse (default all; devnet-hosts and shaped need root). Sections of
// benchmarks not run are kept from BENCHMARKS.md, each with the date it was measured.
const only = new Set((process.env.RADCHAIN_BENCH ?? 'cli,node,devnet,devnet-hosts,stream,ingest,swarm,shaped,lease,dicomweb,dimse').split(','))
const env = (k: string, d: number): number => Number(process.env[k] ?? d)

const log = (s: string): void => {
  process.stdout.write(s + '\n')
}
const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')

const TARGET_NODE_TPS = 8000
const TARGET_DEVNET_TPS = 3000
const TARGET_P50_MS = 250
const TARGET_P99_MS = 1000
const TARGET_INGEST_RATIO = 0.5
const TARGET_INGEST_PEAK_MIB = 256
/** A fetch against the pipe-and-two-stores row (the per-chunk work alone), same run. */
const TARGET_FETCH_OF_PIPE = 0.85
/** CPU per MB moved (holders and reader, the reader's export taken off) against the bare Noise stream's, same run. */
const TARGET_CPU_OF_BARE = 2.3
const TARGET_CLI_OVER_NODE_MS = 300
/** STOW-RS ingest against `study add`, same run. */
const TARGET_STOW_OF_ADD = 0.8
/** WADO-RS frame 1 of a local study, request to answer. */
const TARGET_FIRST_FRAME_MS = 200
/** WADO-RS of a whole study against `study get`, same run. */
const TARGET_WADO_OF_GET = 0.8
/** storescu into the DIMSE listener against `study add`, same run. */
const TARGET_STORESCU_OF_ADD = 0.8

log('radchain benchmarks')
log('baseline: one-core Ed25519 verify rate (node:crypto, cached KeyObject)')
const verify = measureVerifyRate()
log(`  ${Math.round(verify)} verifications/s`)

const sections: string[] = []
const date = new Date().toISOString()

if (only.has('cli')) {
  log('CLI start-up: radchain --version and radchain status, beside node -e 0')
  const c = await measureCliStartup({ runs: env('RADCHAIN_BENCH_CLI_RUNS', 15) })
  const over = (x: { median: number }): number => x.median - c.node.median
  const met = (x: { median: number }): string => (over(x) <= TARGET_CLI_OVER_NODE_MS ? 'met' : 'not met')
  const row = (x: { median: number; min: number; max: number }): string => `${fmt(x.median)} ms (${fmt(x.min)}–${fmt(x.max)})`
  log(
    `  node -e 0 ${fmt(c.node.median)} ms; --version ${fmt(c.version.median)} ms (+${fmt(over(c.version))}); status ${fmt(c.status.median)} ms (+${fmt(over(c.status))}) (target +${TARGET_CLI_OVER_NODE_MS} ms: ${met(c.version)}, ${met(c.status)})`,
  )
  sections.push(`## CLI start-up

_Measured ${date}._

| command | wall time, median of ${c.runs} (fastest–slowest) | over \`node -e 0\` | ratio | target |
|---|---|---|---|---|
| \`node -e 0\` (baseline, same run) | ${row(c.node)} | | 1.00 | |
| \`radchain --version\` | **${row(c.version)}** | **+${fmt(over(c.version))} ms** | ${(c.version.median / c.node.median).toFixed(2)} | ≤ +${TARGET_CLI_OVER_NODE_MS} ms: ${met(c.version)} |
| \`radchain status --node <datadir>\` (a running one-node daemon) | **${row(c.status)}** | **+${fmt(over(c.status))} ms** | ${(c.status.median / c.node.median).toFixed(2)} | ≤ +${TARGET_CLI_OVER_NODE_MS} ms: ${met(c.status)} |

Each command a fresh process, as a user or a script runs it (after one warm-up run each); three rounds
in turn so that any drift of the machine hits every command alike; the median of the rounds' medians.
The CLI loads the node's modules (libp2p, the store, the DICOM code) only inside the commands that need
them: \`status\` reads \`daemon.json\` and \`api.token\` and makes one API call.`)
}

if (only.has('node')) {
  log('one node: transactions per second from submission to final')
  const tp = await measureNodeThroughput({ txs: env('RADCHAIN_BENCH_TXS', 64_000), log })
  const ratio = tp.tps / verify
  log(
    `  ${tp.txs} final in ${tp.seconds.toFixed(2)} s over ${tp.blocks} blocks: ${Math.round(tp.tps)} tx/s, ${ratio.toFixed(2)} of the verify rate (target ${TARGET_NODE_TPS}: ${tp.tps >= TARGET_NODE_TPS ? 'met' : 'NOT met'})`,
  )
  sections.push(`## One node: submission to final

_Measured ${date}._

| figure | value |
|---|---|
| one-core Ed25519 verify rate (baseline, same run) | ${Math.round(verify)} /s |
| transactions final | ${tp.txs} in ${tp.seconds.toFixed(2)} s, ${tp.blocks} blocks |
| throughput, submission to final | **${Math.round(tp.tps)} tx/s** |
| ratio to the verify rate | ${ratio.toFixed(2)} |
| target | ${TARGET_NODE_TPS} tx/s: ${tp.tps >= TARGET_NODE_TPS ? 'met' : 'not met'} |

One daemon process, sole authority of a dev chain (BFT with n = 1: proposal, votes and lock written to
the consensus WAL with fsync, block in one fsynced batch); pre-signed notes from 32 senders sent
through the HTTP API (\`POST /v1/txs\`, batches of 500, 4 in flight) from a second process on the same
machine; the clock stops when every transaction is final.`)
}

/** The devnet throughput section: on 127.0.0.1, or with each organization in its own network namespace. */
async function devnetSection(hosts: boolean): Promise<void> {
  log(hosts ? '4 organizations in network namespaces: saturation and finality latency' : '4-organization devnet: saturation and finality latency')
  const d = await measureDevnet({
    saturationSeconds: env('RADCHAIN_BENCH_SECONDS', 60),
    latencySeconds: env('RADCHAIN_BENCH_LATENCY_SECONDS', 20),
    offeredTps: 1000,
    basePort: 9400,
    hosts,
    log,
  })
  const s = d.saturation
  const l = d.latency
  const perTx = s.cpu.daemonUsPerTx.reduce((a, b) => a + b, 0) / s.cpu.daemonUsPerTx.length
  const needCores = (4 * perTx * TARGET_DEVNET_TPS) / 1e6
  log(
    `  cores ${(s.cpu.machineBusy * 100).toFixed(0)}% busy; ${fmt(perTx)} µs of daemon CPU per final transaction (each daemon); ${TARGET_DEVNET_TPS} tx/s would need ${needCores.toFixed(2)} cores for the daemons`,
  )
  log(
    `  saturation: ${s.final} final in ${s.seconds.toFixed(1)} s over ${s.blocks} blocks: ${Math.round(s.tps)} tx/s (${(s.tps / verify).toFixed(2)} of the verify rate; target ${TARGET_DEVNET_TPS}: ${s.tps >= TARGET_DEVNET_TPS ? 'met' : 'NOT met'})`,
  )
  log(`  latency at ${Math.round(l.offeredTps)} tx/s offered: p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms, max ${fmt(l.max)} ms over ${l.final} transactions`)
  sections.push(`## Four organizations ${hosts ? 'in network namespaces (devnet of hosts)' : '(devnet)'}: throughput and finality latency

_Measured ${date}._

| figure | value | target |
|---|---|---|
| one-core Ed25519 verify rate (baseline, same run) | ${Math.round(verify)} /s | |
| final transactions per second, sustained ${s.seconds.toFixed(0)} s at saturation | **${Math.round(s.tps)} tx/s** (${s.final} in ${s.blocks} blocks; ${(s.tps / verify).toFixed(2)} of the verify rate) | ≥ ${TARGET_DEVNET_TPS}: ${s.tps >= TARGET_DEVNET_TPS ? 'met' : `not met on this machine (its cores ${(s.cpu.machineBusy * 100).toFixed(0)}% busy)`} |
| CPU over the saturated window | this machine's ${cpus().length} cores **${(s.cpu.machineBusy * 100).toFixed(0)}% busy**; each daemon **${fmt(perTx)} µs per final transaction** (${s.cpu.daemonUsPerTx.map((u) => fmt(u)).join(', ')}; one signature verify is ${fmt(1e6 / verify)} µs of it); the load generator ${s.cpu.loadCores.toFixed(2)} cores | |
| cores the four daemons need for ${TARGET_DEVNET_TPS} tx/s at that cost | **${needCores.toFixed(2)}** (4 × ${fmt(perTx)} µs × ${TARGET_DEVNET_TPS}/s), on top of the load generator; one daemon per host needs **${(needCores / 4).toFixed(2)}** of a core | |
| finality latency p50 at ${Math.round(l.offeredTps)} tx/s offered | **${fmt(l.p50)} ms** | ≤ ${TARGET_P50_MS} ms: ${l.p50 <= TARGET_P50_MS ? 'met' : 'not met'} |
| finality latency p99 | **${fmt(l.p99)} ms** (max ${fmt(l.max)} ms, ${l.final} transactions) | ≤ ${TARGET_P99_MS} ms: ${l.p99 <= TARGET_P99_MS ? 'met' : 'not met'} |

Four daemon processes on this machine (each verifies every transaction and block), Noise + Yamux
between them, and the load generator as a fifth process: pre-signed notes, a separate group of
senders per node, sent through each node's HTTP API${hosts ? ' (its Unix socket: each node is in its own network namespace, with its own address on a bridge, links unshaped)' : ''}. Latency is from the submission of a batch to the
block event (SSE) on org1 that holds the transaction. The busy share counts every process and the
kernel over the saturated window (/proc/stat); a daemon's CPU is its time on every thread (/proc)
over the same window, divided by the transactions made final in it. Every daemon verifies every
transaction once and keeps its own copy of the chain, so at saturation the four daemons and the
load generator share this machine's cores: where they are close to fully busy, the throughput is
the machine's, and the per-transaction cost says what one organization's own host needs.`)
}

if (only.has('devnet')) await devnetSection(false)
if (only.has('devnet-hosts')) await devnetSection(true)

if (only.has('stream')) {
  const mib = env('RADCHAIN_BENCH_STREAM_MIB', 256)
  log(`bare libp2p stream between two nodes (${mib} MiB, TCP + Yamux)`)
  const noise = await measureLibp2pStream({ bytes: mib * 1024 * 1024, encryption: 'noise' })
  log(`  Noise ${fmt(noise.mbPerSec)} MB/s, ${noise.cpuMsPerMB.toFixed(2)} ms CPU per MB`)
  const tls = await measureLibp2pStream({ bytes: mib * 1024 * 1024, encryption: 'tls' })
  log(`  TLS   ${fmt(tls.mbPerSec)} MB/s, ${tls.cpuMsPerMB.toFixed(2)} ms CPU per MB`)
  sections.push(`## Bare libp2p stream between two nodes

_Measured ${date}._

| secure channel | throughput | CPU per MB (sender + receiver) |
|---|---|---|
| Noise (@chainsafe/libp2p-noise) | **${fmt(noise.mbPerSec)} MB/s** (${fmt(noise.range.min)}–${fmt(noise.range.max)}) | ${noise.cpuMsPerMB.toFixed(2)} ms |
| TLS 1.3 (@libp2p/tls; an option, not the daemons' default) | **${fmt(tls.mbPerSec)} MB/s** (${fmt(tls.range.min)}–${fmt(tls.range.max)}) | ${tls.cpuMsPerMB.toFixed(2)} ms |
| ratio TLS / Noise | ${(tls.mbPerSec / noise.mbPerSec).toFixed(2)} | ${(tls.cpuMsPerMB / noise.cpuMsPerMB).toFixed(2)} |

One stream of ${mib} MiB over TCP + Yamux on 127.0.0.1, receiver in a child process, timed after a
warm-up transfer, with an application-level acknowledgement at the end; median of 9 transfers,
3 in each of 3 fresh pairs of processes (slowest and fastest in brackets).`)
}

if (only.has('ingest')) {
  const slices = env('RADCHAIN_BENCH_INGEST_SLICES', 512)
  const smallSlices = env('RADCHAIN_BENCH_INGEST_SMALL_SLICES', 128)
  const rounds = env('RADCHAIN_BENCH_INGEST_ROUNDS', 3)
  log(`study ingest: synthetic CT of ${slices} and ${smallSlices} slices of 512x512, beside the raw pipeline`)
  const r = await measureStudyIngest({ slices, smallSlices, rounds, log })
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b)
    const m = Math.floor(s.length / 2)
    return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
  }
  const range = (xs: number[]): string => `${fmt(Math.min(...xs), 1)}–${fmt(Math.max(...xs), 1)}`
  const rawRates = r.rounds.map((x) => x.raw.mbPerSec)
  const ingestRates = r.rounds.map((x) => x.ingest.mbPerSec)
  const rawMb = median(rawRates)
  const ingestMb = median(ingestRates)
  // Each round's ingest against the raw pipeline run just before it: the disk's speed drifts between rounds.
  const ratios = r.rounds.map((x) => x.ingest.mbPerSec / x.raw.mbPerSec)
  const ratio = median(ratios)
  const large = r.rounds.map((x) => x.ingest)
  const L = large[0] as (typeof large)[number]
  const S = r.small
  const largePeak = Math.max(...large.map((x) => x.peakRssMib))
  const mb = (b: number): string => (b / 1e6).toFixed(0)
  const ratioMet = ratio >= TARGET_INGEST_RATIO
  const peakMet = Math.max(largePeak, S.peakRssMib) <= TARGET_INGEST_PEAK_MIB
  log(
    `  ingest ${fmt(ingestMb, 1)} MB/s, raw ${fmt(rawMb, 1)} MB/s (medians of ${rounds}); ratio ${ratio.toFixed(2)} (median of the rounds' ratios ${ratios.map((x) => x.toFixed(2)).join(', ')}; target ${TARGET_INGEST_RATIO}: ${ratioMet ? 'met' : 'NOT met'}); daemon peak RSS ${fmt(largePeak)} MiB (${mb(L.bytes)} MB study), ${fmt(S.peakRssMib)} MiB (${mb(S.bytes)} MB study) (target ${TARGET_INGEST_PEAK_MIB} MiB: ${peakMet ? 'met' : 'NOT met'})`,
  )
  sections.push(`## Study ingest: de-identify, digest, encrypt, hash, write, register

_Measured ${date}._

| figure | value | target |
|---|---|---|
| raw pipeline (baseline, same run): read, AES-256-GCM in ${r.chunkSize / 1024 / 1024} MiB chunks, SHA-256, write with fsync | ${fmt(rawMb, 1)} MB/s (median of ${rounds}; ${range(rawRates)}) | |
| \`study add\` of a ${mb(L.bytes)} MB CT study (${L.slices} slices of 512x512), submission to final | **${fmt(ingestMb, 1)} MB/s** (median of ${rounds}; ${range(ingestRates)}; ${L.chunks} chunks) | |
| ratio to the raw pipeline, round by round | **${ratio.toFixed(2)}** (median of ${ratios.map((x) => x.toFixed(2)).join(', ')}) | ≥ ${TARGET_INGEST_RATIO}: ${ratioMet ? 'met' : 'not met'} |
| daemon peak RSS, ${mb(L.bytes)} MB study | **${fmt(largePeak)} MiB** (highest of ${rounds}) | ≤ ${TARGET_INGEST_PEAK_MIB} MiB: ${largePeak <= TARGET_INGEST_PEAK_MIB ? 'met' : 'not met'} |
| daemon peak RSS, ${mb(S.bytes)} MB study (${S.slices} slices) | **${fmt(S.peakRssMib)} MiB** | ≤ ${TARGET_INGEST_PEAK_MIB} MiB: ${S.peakRssMib <= TARGET_INGEST_PEAK_MIB ? 'met' : 'not met'} |

One daemon process (dev chain, sole authority, chunk size ${r.chunkSize / 1024 / 1024} MiB; idle RSS ${fmt(r.idleRssMib)} MiB, ${fmt(r.warmUp.peakRssMib)} MiB at the
peak of a first, warm-up ingest of the small study); synthetic CT series from the generator behind
\`radchain devnet gen-study\` (phantom with seeded noise, made-up demographics). \`study add\` goes through
the HTTP API and the job is polled every 50 ms until the registration is final. ${rounds} rounds each run the
raw pipeline (in the benchmark's process: one fsync per chunk, with as many writes in flight as the
ingest's chunk store puts) and then the ingest over the same files, which sit in the page cache for
both; each measurement starts after sync(1) has written back every dirty page. The daemon's peak RSS
is its VmHWM, reset before each study, checked against VmRSS polled every 50 ms. MB = 10^6 bytes of
input files.`)
}

if (only.has('swarm')) {
  const slices = env('RADCHAIN_BENCH_SWARM_SLICES', 512)
  log(`swarm: a ${slices}-slice CT study on a 4-organization devnet, beside a bare libp2p stream`)
  const r = await measureSwarm({ slices, basePort: env('RADCHAIN_BENCH_SWARM_PORT', 9500), log })
  const mb = (r.bytes / 1e6).toFixed(0)
  const ratio3 = r.fetch3.mbPerSec / r.bare.mbPerSec
  const ratio1 = r.fetch1.mbPerSec / r.bare.mbPerSec
  const ofPipe3 = r.fetch3.mbPerSec / r.pipe.mbPerSec
  const ofPipe1 = r.fetch1.mbPerSec / r.pipe.mbPerSec
  const repFactor = r.replicate.seconds / r.bare.seconds
  const met = (ok: boolean): string => (ok ? 'met' : 'not met')
  log(
    `  bare ${fmt(r.bare.mbPerSec)} MB/s; fetch from 3 ${fmt(r.fetch3.mbPerSec)} MB/s (${ratio3.toFixed(2)}; get to files ${fmt(r.get3.toFilesMbPerSec)}), from 1 ${fmt(r.fetch1.mbPerSec)} MB/s (${ratio1.toFixed(2)}; get to files ${fmt(r.get1.toFilesMbPerSec)}); replication to 3 in ${r.replicate.seconds.toFixed(2)} s = ${repFactor.toFixed(1)} bare transfers`,
  )
  // CPU time per MB moved (every thread of every process taking part), and the throughput this many cores allow at that cost.
  const cores = availableParallelism()
  const cpu = (x: number): string => `${x.toFixed(1)} ms`
  const cap = (msPerMB: number): string => fmt((cores * 1000) / msPerMB)
  // A fetch alone moves the chunks and nothing else: its CPU per MB is what moving them costs.
  const f3 = r.fetch3.cpuMsPerMB.fetcher + r.fetch3.cpuMsPerMB.holders
  const f1 = r.fetch1.cpuMsPerMB.fetcher + r.fetch1.cpuMsPerMB.holders
  const pp = r.pipe.cpuMsPerMB.fetcher + r.pipe.cpuMsPerMB.holder
  const pipeRatio = r.pipe.mbPerSec / r.bare.mbPerSec
  const x = (v: number): string => `${(v / r.bare.cpuMsPerMB).toFixed(2)} ×`
  log(
    `  CPU per MB: bare ${cpu(r.bare.cpuMsPerMB)}, fetch from 3 ${cpu(f3)}, from 1 ${cpu(f1)}, the export alone ${cpu(r.exportOnly.cpuMsPerMB)} (${cores} cores)`,
  )
  log(
    `  moving the chunks: from 3 ${x(f3)}, from 1 ${x(f1)} the bare stream's CPU per MB; pipe and chunk stores alone ${fmt(r.pipe.mbPerSec)} MB/s (${pipeRatio.toFixed(2)} of bare, ${x(pp)}); fetch from 3 / 1 is ${ofPipe3.toFixed(2)} / ${ofPipe1.toFixed(2)} of it`,
  )
  sections.push(`## Swarm: replication and multi-source fetch

_Measured ${date}._

| figure | value | target |
|---|---|---|
| bare libp2p stream, Noise + Yamux, the same ${mb} MB between two processes (baseline, same run; median of 9 transfers in 3 pairs of processes) | ${fmt(r.bare.mbPerSec)} MB/s (${r.bare.seconds.toFixed(2)} s; ${fmt(r.bare.range.min)}–${fmt(r.bare.range.max)}) | |
| the same ${r.chunks} chunks through the pipe and two chunk stores alone, one holder, no swarm (the work every chunk needs; baseline, same run) | ${fmt(r.pipe.mbPerSec)} MB/s (${fmt(r.pipe.range.min)}–${fmt(r.pipe.range.max)}), ${pipeRatio.toFixed(2)} of bare; CPU per MB ${cpu(pp)} (${cpu(r.pipe.cpuMsPerMB.fetcher)} + ${cpu(r.pipe.cpuMsPerMB.holder)}) = **${x(pp)}** bare | |
| fetch from 3 holders (\`study fetch\` at org1 after its store was wiped: the chunks alone, stored and synced; median of ${r.fetch3.runs}) | **${fmt(r.fetch3.mbPerSec)} MB/s** (${fmt(r.fetch3.range.min)}–${fmt(r.fetch3.range.max)}): **${ofPipe3.toFixed(2)}** of the pipe row, ${ratio3.toFixed(2)} of bare | ≥ ${TARGET_FETCH_OF_PIPE} of the pipe: ${met(ofPipe3 >= TARGET_FETCH_OF_PIPE)} |
| fetch from 1 holder (median of ${r.fetch1.runs}) | **${fmt(r.fetch1.mbPerSec)} MB/s** (${fmt(r.fetch1.range.min)}–${fmt(r.fetch1.range.max)}): **${ofPipe1.toFixed(2)}** of the pipe row, ${ratio1.toFixed(2)} of bare | ≥ ${TARGET_FETCH_OF_PIPE} of the pipe: ${met(ofPipe1 >= TARGET_FETCH_OF_PIPE)} |
| \`study get\` from 3 holders, the job from asking to the files written (decrypted and written while the chunks arrive; median of ${r.get3.runs}) | **${fmt(r.get3.toFilesMbPerSec)} MB/s** (${fmt(r.get3.range.min)}–${fmt(r.get3.range.max)}); its chunks ${fmt(r.get3.mbPerSec)} MB/s | |
| \`study get\` from 1 holder (median of ${r.get1.runs}) | **${fmt(r.get1.toFilesMbPerSec)} MB/s** (${fmt(r.get1.range.min)}–${fmt(r.get1.range.max)}); its chunks ${fmt(r.get1.mbPerSec)} MB/s | |
| replication to 3 holders, registration final to the last holder complete | **${r.replicate.seconds.toFixed(2)} s** = ${repFactor.toFixed(1)} bare transfers (${Object.entries(
    r.replicate.perHolder,
  )
    .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
    .join(', ')}) | |
| CPU time per MB moved, bare stream (sender and receiver; baseline, same run) | ${cpu(r.bare.cpuMsPerMB)}: at most ${cap(r.bare.cpuMsPerMB)} MB/s on ${cores} cores | |
| CPU time per MB, fetch from 3 (fetching daemon + holders) | ${cpu(f3)} (${cpu(r.fetch3.cpuMsPerMB.fetcher)} + ${cpu(r.fetch3.cpuMsPerMB.holders)}): at most ${cap(f3)} MB/s on ${cores} cores; **${x(f3)}** bare | ≤ ${TARGET_CPU_OF_BARE} ×: ${met(f3 / r.bare.cpuMsPerMB <= TARGET_CPU_OF_BARE)} |
| CPU time per MB, fetch from 1 | ${cpu(f1)} (${cpu(r.fetch1.cpuMsPerMB.fetcher)} + ${cpu(r.fetch1.cpuMsPerMB.holders)}): at most ${cap(f1)} MB/s on ${cores} cores; **${x(f1)}** bare | ≤ ${TARGET_CPU_OF_BARE} ×: ${met(f1 / r.bare.cpuMsPerMB <= TARGET_CPU_OF_BARE)} |
| the export alone: \`study get\` at org1 once it holds every chunk (decryption, digests, DICOM files; median ${r.exportOnly.seconds.toFixed(2)} s) | ${cpu(r.exportOnly.cpuMsPerMB)} per MB | |

Four daemon processes on this machine (dev chain, replication factor 4 so that org2, org3 and org4
all hold the study; ${r.chunks} chunks of 1 MiB). org1 adds a synthetic CT series and the three others
pull it (replication uses a quarter of the in-flight budget and at most 4 requests per peer). Then
org1 loses its chunk store and \`study fetch\` brings the chunks back from the 3 holders, ${r.fetch3.runs} times,
each time in a freshly started org1, then \`study get\` the same way; then, with two holders stopped,
from 1 (org1 pulls nothing by itself: its noPull fault switch). Fetch figures come from org1's log:
bytes, and time from the chunk list to the last chunk stored and synced (the fetch ends with the chunk
store's flush). A \`study get\` decrypts and writes the study's files while the chunks arrive, on the same
cores, so its chunks come slower than a fetch's and it is judged by its files; the export row measures
that work alone (org1 again, holding every chunk after its last get).

CPU time counts every thread of a process, user and system: the fetching daemon's over the transfer
(from its log), the holders' over the whole job (from /proc), each less its idle rate (its chain and
reconcile work, measured in the second before the job), averaged over the fetches; the bare stream's over its timed runs. A chunk
transfer does more per byte than the bare stream: each chunk is read from disk at the holder, and
hashed, written and synced at the fetcher; and all the daemons share this machine's cores, so the CPU
time per MB bounds the throughput.

The pipe row (bench/chunk-pipe.ts) does that per-chunk work and nothing else: two processes with
the daemons' Node.js flags and heap growth, the product's pipe over Noise + Yamux, the holder serving
each chunk from its chunk store (not re-hashed, as a daemon serves it), the fetcher keeping 6 requests
in flight (the fetch's window per peer), hashing each chunk and storing it deferred, then syncing the
store; median of 9 runs into fresh stores, 3 in each of 3 fresh pairs of processes, after a warm-up. It
is what the per-chunk work alone allows on this machine, so its ratio to the bare stream bounds what a
fetch through this pipe and these stores can reach here.`)
}

if (only.has('shaped')) {
  const slices = env('RADCHAIN_BENCH_SHAPED_SLICES', 512)
  const mbit = env('RADCHAIN_BENCH_SHAPED_MBIT', 200)
  const fastMbit = env('RADCHAIN_BENCH_SHAPED_FAST_MBIT', 1000)
  const lowMbit = env('RADCHAIN_BENCH_SHAPED_LOW_MBIT', 100)
  log(`shaped: a ${slices}-slice CT study on 4 organizations in network namespaces, uplinks shaped to ${mbit} Mbit/s (and ${lowMbit})`)
  const r = await measureSwarmShaped({ slices, mbit, fastMbit, lowMbit, log })
  const link = r.bare.mbPerSec
  const linkLow = r.low.bare.mbPerSec
  const f3 = r.fetch3.median
  const f3Low = r.low.fetch3.median
  const f1 = r.fetch1.median
  const ratio3 = f3.mbPerSec / (3 * link)
  const ratio3Low = f3Low.mbPerSec / (3 * linkLow)
  const ratio1 = f1.mbPerSec / link
  const rep = r.replicate.seconds / r.oneCopySeconds
  const met = (ok: boolean): string => (ok ? 'met' : 'not met')
  const cores = cpus().length
  const cpu = (f: ShapedFetch): string =>
    `this machine's ${cores} cores ${(f.cpu.machineBusy * 100).toFixed(0)}% busy: the lessee's daemon ${f.cpu.lesseeCores.toFixed(2)} cores (its main thread ${f.cpu.lesseeMainCores.toFixed(2)}), the holders' ${f.cpu.holderCores.toFixed(2)}`
  const fetchRow = (fs: ShapedFetches, l: number, n: number): string =>
    `**${fmt(fs.median.mbPerSec, 1)} MB/s** (${fs.median.seconds.toFixed(2)} s; median of ${fs.runs}, ${fmt(fs.min, 1)}–${fmt(fs.max, 1)}), **${(fs.median.mbPerSec / (n * l)).toFixed(2)}** of the ${n === 1 ? 'link' : `${n} links`}; the chunk transfer alone ${fmt(fs.median.transferMbPerSec, 1)} MB/s (${fs.median.transferSeconds.toFixed(2)} s, ${(fs.median.transferMbPerSec / (n * l)).toFixed(2)}); ${cpu(fs.median)}`
  log(
    `  fetch from 3: ${ratio3.toFixed(2)} of 3 links at ${mbit}, ${ratio3Low.toFixed(2)} at ${lowMbit}; from 1: ${ratio1.toFixed(2)} of one; replication ${rep.toFixed(2)} x one copy`,
  )
  sections.push(`## Swarm on shaped links: four organizations in network namespaces

_Measured ${date}._

| figure | value | target |
|---|---|---|
| bare libp2p stream (Noise + Yamux) of the same ${(r.bytes / 1e6).toFixed(0)} MB through one link shaped to ${r.mbit} Mbit/s (baseline, same run; median of ${3}) | ${fmt(link, 1)} MB/s (${fmt(r.bare.range.min, 1)}–${fmt(r.bare.range.max, 1)}) | |
| \`radchain study get\` by a lessee from ${r.holders.length} holders (${r.holders.join(', ')}), each uplink at ${r.mbit} Mbit/s, the lessee's unshaped: command to last file written | ${fetchRow(r.fetch3, link, 3)} | ≥ 0.85: ${met(ratio3 >= 0.85)} |
| the same from 1 holder (two stopped) | ${fetchRow(r.fetch1, link, 1)} | ≥ 0.90: ${met(ratio1 >= 0.9)} |
| bare stream through one link shaped to ${r.low.mbit} Mbit/s (baseline, same run; one transfer) | ${fmt(linkLow, 1)} MB/s | |
| \`study get\` from the ${r.holders.length} holders, each uplink at ${r.low.mbit} Mbit/s | ${fetchRow(r.low.fetch3, linkLow, 3)} | ≥ 0.85: ${met(ratio3Low >= 0.85)} |
| replication: custodian's uplink at ${r.mbit} Mbit/s, the others' at ${r.fastMbit}; registration final to the last of its holders complete | **${r.replicate.seconds.toFixed(2)} s** = **${rep.toFixed(2)}** × one copy through the custodian's uplink (${r.oneCopySeconds.toFixed(2)} s) (${Object.entries(
    r.replicate.perHolder,
  )
    .map(([id, s]) => `${id} ${s.toFixed(2)} s`)
    .join(', ')}) | ≤ 1.5: ${met(rep <= 1.5)} |

\`radchain devnet up --hosts\`: each organization in its own Linux network namespace, on a bridge,
its uplink shaped with the kernel's token-bucket filter (\`tc ... tbf\`, 10 ms burst); latency is
the machine's own (no \`netem\` here). The lessee is the organization that holds no copy; the
custodian grants its lease. \`study get\` is timed as a user sees it: from starting the command to
its exit, after the study's files are written (CLI start, chunk transfer, envelope, decryption,
DICOM writing), each time into a new folder, by a freshly started lessee whose chunk store was emptied.
The command ends when the files are written and checked; the lessee's chunk store makes its copy of
the chunks durable right after (a flush of 0.2-0.4 s here), and the transfer figure runs to the end
of that flush. MB = 10^6 bytes.

The namespaces are hosts in their network only: every daemon runs on this machine's ${cores} cores.
The busy share counts every process and the kernel's network work (the bridge, the filters) over
the command, from /proc/stat; the daemons' cores are their CPU time (every thread, from /proc) over
the command's wall time. On separate hosts each holder sends from its own cores and the lessee
decrypts and writes on its own; here they take turns, so where the cores are close to fully busy
the figure is the machine's, and the fetch at the lower rate shows the same command where the
cores keep up.`)
}

if (only.has('lease')) {
  const slices = env('RADCHAIN_BENCH_LEASE_SLICES', 128)
  log(`lease: ledger bytes per transaction, and request to retrieved files for a ${slices}-slice study on a 4-organization devnet`)
  const r = await measureLease({ slices, basePort: env('RADCHAIN_BENCH_LEASE_PORT', 9600), log })
  const met = (n: number): string => (n > 0 && n <= 512 ? 'met' : 'not met')
  log(`  request ${r.bytes.request} B, grant ${r.bytes.grant} B, access record ${r.bytes.access} B; request to files ${r.seconds.total.toFixed(2)} s`)
  sections.push(`## Leases: ledger bytes and time to a retrieved study

_Measured ${date}._

| figure | value | target |
|---|---|---|
| \`lease.request\`, signature included | **${r.bytes.request} B** | ≤ 512 B: ${met(r.bytes.request)} |
| \`lease.grant\` | **${r.bytes.grant} B** | ≤ 512 B: ${met(r.bytes.grant)} |
| \`access.record\` | **${r.bytes.access} B** | ≤ 512 B: ${met(r.bytes.access)} |
| for reference: \`consent.set\`, \`study.register\` | ${r.bytes.consent} B, ${r.bytes.register} B | |
| lease request to the ${(r.studyBytes / 1e6).toFixed(0)} MB study's files written at the lessee | **${r.seconds.total.toFixed(2)} s** (to the grant ${r.seconds.toGrant.toFixed(2)} s, then fetch, decrypt and write ${r.seconds.fetchAndWrite.toFixed(2)} s) | |

Four daemon processes on this machine; the patient has consented beforehand to images for any
organization, so the custodian's node grants on its own at the first block after the request; the
lessee is the organization that holds no copy, so every chunk comes from the holders under its lease
(signed chunk requests), then the lease envelope, then decryption and the DICOM files. Sizes are the
largest of each type in the run, as the blocks carry them.`)
}

if (only.has('dicomweb')) {
  const slices = env('RADCHAIN_BENCH_DICOMWEB_SLICES', 512)
  log(`DICOMweb: STOW-RS, WADO-RS frames and whole study of a ${slices}-slice CT study, beside study add and study get`)
  const r = await measureDicomweb({ slices, log })
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b)
    const m = Math.floor(s.length / 2)
    return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
  }
  const met = (ok: boolean): string => (ok ? 'met' : 'not met')
  const mbs = (seconds: number): number => r.bytes / 1e6 / seconds
  const secs = (xs: number[]): string => `${fmt(median(xs), 2)} s (${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)})`
  const mb = (r.bytes / 1e6).toFixed(0)
  const stable = r.stableSeconds
  // STOW-RS against study add, each to the study final on the ledger. The daemon packs a received study from its
  // first commit on, through the quiet time it waits by design (stableSeconds): that wait is not idle, so the
  // ratio judged is on the whole time; the one less the wait is an upper bound, shown beside it.
  const addReg = r.ingest.map((x) => x.add.registered)
  const stowNet = r.ingest.map((x) => x.stow.registered - stable)
  const ingestRatios = r.ingest.map((x) => x.add.registered / x.stow.registered)
  const ingestRatio = median(ingestRatios)
  const ingestRatioLessWait = median(r.ingest.map((x) => x.add.registered / (x.stow.registered - stable)))
  const frameMs = (runs: readonly { totalMs: number }[]): number => median(runs.map((x) => x.totalMs))
  const firstByteMs = (runs: readonly { firstByteMs: number }[]): number => median(runs.map((x) => x.firstByteMs))
  const metaMs = frameMs(r.frames.metadata)
  const frameRow = (label: string, f: (typeof r.frames)['first']): string => {
    const ms = frameMs(f.runs)
    const all = f.runs.map((x) => x.totalMs)
    return `| WADO-RS frame 1 of the ${label} (InstanceNumber ${f.instanceNumber}; place ${f.packPosition + 1} of ${r.slices} in the study's chunks), request to whole answer (median of ${f.runs.length}) | **${fmt(ms)} ms** (${fmt(Math.min(...all))}–${fmt(Math.max(...all))}; first body byte ${fmt(firstByteMs(f.runs))} ms); ${(ms / metaMs).toFixed(0)} × the metadata request | ≤ ${TARGET_FIRST_FRAME_MS} ms: ${met(ms <= TARGET_FIRST_FRAME_MS)} |`
  }
  const getS = r.retrieve.map((x) => x.get.seconds)
  const wadoS = r.retrieve.map((x) => x.wado.seconds)
  const retrieveRatios = r.retrieve.map((x) => x.get.seconds / x.wado.seconds)
  const retrieveRatio = median(retrieveRatios)
  const worst = Math.max(frameMs(r.frames.first.runs), frameMs(r.frames.last.runs))
  log(
    `  STOW-RS ${fmt(median(r.ingest.map((x) => mbs(x.stow.registered))), 1)} MB/s to registered (${fmt(median(stowNet.map(mbs)), 1)} less the ${stable} s wait), study add ${fmt(median(addReg.map(mbs)), 1)} MB/s: ratio ${ingestRatio.toFixed(2)} (less the wait ${ingestRatioLessWait.toFixed(2)}; target ${TARGET_STOW_OF_ADD}: ${ingestRatio >= TARGET_STOW_OF_ADD ? 'met' : 'NOT met'}); frame 1 of the first instance ${fmt(frameMs(r.frames.first.runs))} ms, of the last ${fmt(frameMs(r.frames.last.runs))} ms (target ${TARGET_FIRST_FRAME_MS} ms: ${worst <= TARGET_FIRST_FRAME_MS ? 'met' : 'NOT met'}), of the one packed last ${fmt(frameMs(r.frames.packedLast.runs))} ms; WADO-RS study ${fmt(median(wadoS.map(mbs)), 1)} MB/s, study get ${fmt(median(getS.map(mbs)), 1)} MB/s: ratio ${retrieveRatio.toFixed(2)} (target ${TARGET_WADO_OF_GET}: ${retrieveRatio >= TARGET_WADO_OF_GET ? 'met' : 'NOT met'})`,
  )
  const stowAnswered = r.ingest.map((x) => x.stow.answered)
  const stowReg = r.ingest.map((x) => x.stow.registered)
  const unspooled = r.ingest.map((x) => x.stow.unspooled)
  const addDone = r.ingest.map((x) => x.add.done)
  sections.push(`## DICOMweb: STOW-RS ingest, WADO-RS frames and whole study

_Measured ${date}._

| figure | value | target |
|---|---|---|
| \`study add\` of a ${mb} MB CT study (${r.slices} slices of 512x512) through the API, submission to the study final on the ledger (baseline, same run; median of ${r.ingest.length}) | ${fmt(median(addReg.map(mbs)), 1)} MB/s: ${secs(addReg)}; job done (indexed for DICOMweb) at ${secs(addDone)} | |
| STOW-RS of another such study, one request of its series: request start to the answer (every instance spooled and fsynced) | ${secs(stowAnswered)}: ${fmt(median(stowAnswered.map(mbs)), 1)} MB/s | |
| STOW-RS: request start to the study final on the ledger (includes \`dicomweb.stableSeconds\` = ${stable} s, during which the study is packed) | **${fmt(median(stowReg.map(mbs)), 1)} MB/s**: ${secs(stowReg)}; less ${stable} s: ${fmt(median(stowNet.map(mbs)), 1)} MB/s | |
| ratio STOW-RS / \`study add\`, round by round, each to the study final | **${ingestRatio.toFixed(2)}** (median of ${ingestRatios.map((x) => x.toFixed(2)).join(', ')}); ${ingestRatioLessWait.toFixed(2)} with the STOW-RS time less ${stable} s (an upper bound: the wait is not idle) | ≥ ${TARGET_STOW_OF_ADD}: ${met(ingestRatio >= TARGET_STOW_OF_ADD)} |
| STOW-RS: request start to the spool emptied (the index points at the chunks) | ${secs(unspooled)} | |
| WADO-RS metadata of one instance (the listener's floor: from the index, nothing decrypted; baseline, same run; median of ${r.frames.metadata.length}) | ${fmt(metaMs, 1)} ms | |
${frameRow('first instance', r.frames.first)}
${frameRow('last instance', r.frames.last)}
${frameRow('instance packed last', r.frames.packedLast)}
| \`study get --scope full\` of the study received over STOW-RS, same daemon, its chunks local: asking to the files written (baseline, same run; median of ${r.retrieve.length}) | ${fmt(median(getS.map(mbs)), 1)} MB/s: ${secs(getS)} | |
| WADO-RS \`GET /studies/{study}\` of it, read to the end (median of ${r.retrieve.length}) | **${fmt(median(wadoS.map(mbs)), 1)} MB/s**: ${secs(wadoS)}; first body byte ${fmt(median(r.retrieve.map((x) => x.wado.firstByteMs)))} ms | |
| ratio WADO-RS / \`study get\`, round by round | **${retrieveRatio.toFixed(2)}** (median of ${retrieveRatios.map((x) => x.toFixed(2)).join(', ')}) | ≥ ${TARGET_WADO_OF_GET}: ${met(retrieveRatio >= TARGET_WADO_OF_GET)} |

One daemon process (dev chain, sole authority, chunk size ${r.chunkSize / 1024 / 1024} MiB, \`dicomweb.stableSeconds\` ${stable}), its DICOMweb
listener on 127.0.0.1 and a client token of scope readwrite; every measurement a fresh synthetic CT series
(the same instances twice would be duplicates), after sync(1) and a second's rest; a small study through
each path first, unmeasured. STOW-RS is sent as a PACS sends a series: one \`POST /studies\` of
\`multipart/related; type="application/dicom"\`, every part with its Content-Length, the body streamed
part by part (chunked transfer coding). The daemon registers a received study once no instance of it
arrived for \`stableSeconds\`; it packs the study from the request's commit on (before the answer every
instance is written to the spool and fsynced), so the wait overlaps the packing. The ratio compares the
whole STOW-RS time with \`study add\` to the same point (the study in \`GET /v1/studies\`, polled every
50 ms; its job ends later, once the files are indexed for DICOMweb). ${r.ingest.length} rounds, the one first alternating. MB = 10^6 bytes of input files.

WADO-RS is measured on the last study received over STOW-RS once its spool is emptied, so that it is
served from its chunks: frame 1 with \`Accept: ${'multipart/related; type="application/octet-stream"; transfer-syntax=*'}\`, timed
from the request to the first byte of the body and to the end of the answer (one frame of 512 KiB; the
target is judged on the whole answer), ${r.frames.first.runs.length} runs interleaved with the metadata request of the
first instance. A frame is cut from its instance, which the daemon decrypts from the study's chunks
from the start of the study up to that instance, so its time follows the instance's place in the
chunks, not its InstanceNumber: a study received over STOW-RS is packed in the order its instances
arrived; the instance packed last is the worst case.
${r.wadoInInstanceOrder ? 'The whole-study answer lists the instances in InstanceNumber order.' : 'The whole-study answer lists the instances in that pack order, not by InstanceNumber.'} The whole study is
compared with \`study get --scope full\` (identity restored, as WADO-RS restores it) into a fresh folder,
the job polled every 50 ms; ${r.retrieve.length} rounds, the one first alternating; MB/s of the study's ${mb} MB of input files.`)
}

if (only.has('dimse')) {
  const slices = env('RADCHAIN_BENCH_DIMSE_SLICES', 512)
  log(`DIMSE: storescu of a ${slices}-slice CT study into the C-STORE listener, beside study add`)
  const r = await measureDimseIngest({ slices, log })
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b)
    const m = Math.floor(s.length / 2)
    return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
  }
  const met = (ok: boolean): string => (ok ? 'met' : 'not met')
  const mbs = (seconds: number): number => r.bytes / 1e6 / seconds
  const secs = (xs: number[]): string => `${fmt(median(xs), 2)} s (${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)})`
  const mb = (r.bytes / 1e6).toFixed(0)
  const stable = r.stableSeconds
  const addReg = r.ingest.map((x) => x.add.registered)
  const scuAnswered = r.ingest.map((x) => x.storescu.answered)
  const scuReg = r.ingest.map((x) => x.storescu.registered)
  const ratios = r.ingest.map((x) => x.add.registered / x.storescu.registered)
  const ratio = median(ratios)
  const answeredRatios = r.ingest.map((x) => x.add.registered / x.storescu.answered)
  log(
    `  storescu ${fmt(median(scuReg.map(mbs)), 1)} MB/s to registered (last answer at ${fmt(median(scuAnswered), 2)} s), study add ${fmt(median(addReg.map(mbs)), 1)} MB/s: ratio ${ratio.toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(', ')}; target ${TARGET_STORESCU_OF_ADD}: ${ratio >= TARGET_STORESCU_OF_ADD ? 'met' : 'NOT met'})`,
  )
  sections.push(`## DIMSE: C-STORE ingest with storescu

_Measured ${date}._

| figure | value | target |
|---|---|---|
| \`study add\` of a ${mb} MB CT study (${r.slices} slices of 512x512) through the API, submission to the study final on the ledger (baseline, same run; median of ${r.ingest.length}) | ${fmt(median(addReg.map(mbs)), 1)} MB/s: ${secs(addReg)} | |
| dcmtk \`storescu\` of another such study, one association: start to its exit (the last C-STORE answered, each once durable) | ${secs(scuAnswered)}: ${fmt(median(scuAnswered.map(mbs)), 1)} MB/s; ratio to \`study add\` ${median(answeredRatios).toFixed(2)} | |
| \`storescu\`: start to the study final on the ledger (includes \`dicomweb.stableSeconds\` = ${stable} s) | **${fmt(median(scuReg.map(mbs)), 1)} MB/s**: ${secs(scuReg)} | |
| ratio \`storescu\` / \`study add\`, round by round, each to the study final | **${ratio.toFixed(2)}** (median of ${ratios.map((x) => x.toFixed(2)).join(', ')}) | ≥ ${TARGET_STORESCU_OF_ADD}: ${met(ratio >= TARGET_STORESCU_OF_ADD)} |
| \`storescu\`: start to the spool emptied (the index points at the chunks) | ${secs(r.ingest.map((x) => x.storescu.unspooled))} | |

One daemon process (dev chain, sole authority, chunk size ${r.chunkSize / 1024 / 1024} MiB, \`dicomweb.stableSeconds\` ${stable}), its DIMSE
listener on 127.0.0.1 admitting storescu's AE title; every measurement a fresh synthetic CT series (the
same instances twice would be duplicates), after sync(1) and a second's rest; a small study through each
path first, unmeasured. \`storescu\` sends the files in slice order over one association, one C-STORE at a
time: each waits for its answer, which the daemon sends once the instance is durable (spooled, fsynced,
indexed), as a modality or a PACS sends a study; the daemon packs the study as its instances arrive and
registers it once none arrived for \`stableSeconds\`. \`study add\` is timed to the same point (the study in
\`GET /v1/studies\`, polled every 50 ms). ${r.ingest.length} rounds, the one first alternating. MB = 10^6 bytes of input files.`)
}

// Sections of benchmarks not run this time are kept from the last file, with their own dates.
const kept = new Map<string, string>()
try {
  const old = await readFile(join(repoRoot(), 'BENCHMARKS.md'), 'utf8')
  for (const part of old.split(/^(?=## )/m).slice(1)) kept.set(part.split('\n')[0] ?? '', part.trimEnd())
} catch {
  // no earlier file
}
const fresh = new Map(sections.map((x) => [x.split('\n')[0] ?? '', x]))
const order = [...new Set([...kept.keys(), ...fresh.keys()])]
const all = order.map((h) => fresh.get(h) ?? kept.get(h) ?? '').filter((x) => x !== '')
sections.length = 0
sections.push(...all)

const md = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts); every figure sits beside its baseline from the same run.

Last run: ${date} (${[...only].join(', ')}), Node.js ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}).

${sections.join('\n\n')}
`
await writeFile(join(repoRoot(), 'BENCHMARKS.md'), md)
log('written to BENCHMARKS.md')
