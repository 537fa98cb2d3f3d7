import '../src/util/polyfill.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cpus } from 'node:os'
import { measureVerifyRate } from './verify-rate.js'
import { measureNodeThroughput } from './node-throughput.js'
import { measureDevnet } from './devnet-throughput.js'
import { measureLibp2pStream } from './libp2p-stream.js'
import { measureStudyIngest } from './study-ingest.js'
import { repoRoot } from '../devnet/process.js'

// Which benchmarks to run: RADCHAIN_BENCH=node,devnet,stream,ingest (default all).
const only = new Set((process.env.RADCHAIN_BENCH ?? 'node,devnet,stream,ingest').split(','))
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

log('radchain benchmarks')
log('baseline: one-core Ed25519 verify rate (node:crypto, cached KeyObject)')
const verify = measureVerifyRate()
log(`  ${Math.round(verify)} verifications/s`)

const sections: string[] = []
const date = new Date().toISOString()

if (only.has('node')) {
  log('one node: transactions per second from submission to final')
  const tp = await measureNodeThroughput({ txs: env('RADCHAIN_BENCH_TXS', 64_000), log })
  const ratio = tp.tps / verify
  log(`  ${tp.txs} final in ${tp.seconds.toFixed(2)} s over ${tp.blocks} blocks: ${Math.round(tp.tps)} tx/s, ${ratio.toFixed(2)} of the verify rate (target ${TARGET_NODE_TPS}: ${tp.tps >= TARGET_NODE_TPS ? 'met' : 'NOT met'})`)
  sections.push(`## One node: submission to final

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

if (only.has('devnet')) {
  log('4-organization devnet: saturation and finality latency')
  const d = await measureDevnet({
    saturationSeconds: env('RADCHAIN_BENCH_SECONDS', 60),
    latencySeconds: env('RADCHAIN_BENCH_LATENCY_SECONDS', 20),
    offeredTps: 1000,
    basePort: 9400,
    log,
  })
  const s = d.saturation
  const l = d.latency
  log(`  saturation: ${s.final} final in ${s.seconds.toFixed(1)} s over ${s.blocks} blocks: ${Math.round(s.tps)} tx/s (${(s.tps / verify).toFixed(2)} of the verify rate; target ${TARGET_DEVNET_TPS}: ${s.tps >= TARGET_DEVNET_TPS ? 'met' : 'NOT met'})`)
  log(`  latency at ${Math.round(l.offeredTps)} tx/s offered: p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms, max ${fmt(l.max)} ms over ${l.final} transactions`)
  sections.push(`## Four organizations (devnet): throughput and finality latency

| figure | value | target |
|---|---|---|
| one-core Ed25519 verify rate (baseline, same run) | ${Math.round(verify)} /s | |
| final transactions per second, sustained ${s.seconds.toFixed(0)} s at saturation | **${Math.round(s.tps)} tx/s** (${s.final} in ${s.blocks} blocks; ${(s.tps / verify).toFixed(2)} of the verify rate) | ≥ ${TARGET_DEVNET_TPS}: ${s.tps >= TARGET_DEVNET_TPS ? 'met' : 'not met'} |
| finality latency p50 at ${Math.round(l.offeredTps)} tx/s offered | **${fmt(l.p50)} ms** | ≤ ${TARGET_P50_MS} ms: ${l.p50 <= TARGET_P50_MS ? 'met' : 'not met'} |
| finality latency p99 | **${fmt(l.p99)} ms** (max ${fmt(l.max)} ms, ${l.final} transactions) | ≤ ${TARGET_P99_MS} ms: ${l.p99 <= TARGET_P99_MS ? 'met' : 'not met'} |

Four daemon processes on this machine (each verifies every transaction and block), Noise + Yamux
between them, and the load generator as a fifth process: pre-signed notes, a separate group of
senders per node, sent through each node's HTTP API. Latency is from the submission of a batch to the
block event (SSE) on org1 that holds the transaction.`)
}

if (only.has('stream')) {
  const mib = env('RADCHAIN_BENCH_STREAM_MIB', 256)
  log(`bare libp2p stream between two nodes (${mib} MiB, TCP + Yamux)`)
  const noise = await measureLibp2pStream({ bytes: mib * 1024 * 1024, encryption: 'noise' })
  log(`  Noise ${fmt(noise.mbPerSec)} MB/s`)
  const tls = await measureLibp2pStream({ bytes: mib * 1024 * 1024, encryption: 'tls' })
  log(`  TLS   ${fmt(tls.mbPerSec)} MB/s`)
  sections.push(`## Bare libp2p stream between two nodes

| secure channel | throughput |
|---|---|
| Noise (@chainsafe/libp2p-noise) | **${fmt(noise.mbPerSec)} MB/s** |
| TLS (@libp2p/tls) | **${fmt(tls.mbPerSec)} MB/s** |
| ratio TLS / Noise | ${(tls.mbPerSec / noise.mbPerSec).toFixed(2)} |

One stream of ${mib} MiB over TCP + Yamux on 127.0.0.1, receiver in a child process, timed after a
warm-up transfer, with an application-level acknowledgement at the end; median of 3.`)
}

if (only.has('ingest')) {
  const slices = env('RADCHAIN_BENCH_INGEST_SLICES', 512)
  const smallSlices = env('RADCHAIN_BENCH_INGEST_SMALL_SLICES', 128)
  log(`study ingest: synthetic CT of ${slices} and ${smallSlices} slices of 512x512, beside the raw pipeline`)
  const r = await measureStudyIngest({ slices, smallSlices, log })
  const L = r.large
  const S = r.small
  const ratio = L.mbPerSec / r.raw.mbPerSec
  const peak = Math.max(L.peakRssMib, S.peakRssMib)
  const mb = (b: number): string => (b / 1e6).toFixed(0)
  const ratioMet = ratio >= TARGET_INGEST_RATIO
  const peakMet = peak <= TARGET_INGEST_PEAK_MIB
  log(`  ingest ${fmt(L.mbPerSec, 1)} MB/s, raw ${fmt(r.raw.mbPerSec, 1)} MB/s: ratio ${ratio.toFixed(2)} (target ${TARGET_INGEST_RATIO}: ${ratioMet ? 'met' : 'NOT met'}); daemon peak RSS ${fmt(L.peakRssMib)} MiB (${mb(L.bytes)} MB study), ${fmt(S.peakRssMib)} MiB (${mb(S.bytes)} MB study) (target ${TARGET_INGEST_PEAK_MIB} MiB: ${peakMet ? 'met' : 'NOT met'})`)
  sections.push(`## Study ingest: de-identify, digest, encrypt, hash, write, register

| figure | value | target |
|---|---|---|
| raw pipeline (baseline, same run): read, AES-256-GCM in ${r.chunkSize / 1024 / 1024} MiB chunks, SHA-256, write with fsync | ${fmt(r.raw.mbPerSec, 1)} MB/s (${mb(r.raw.bytes)} MB in ${r.raw.seconds.toFixed(2)} s) | |
| \`study add\` of a ${mb(L.bytes)} MB CT study (${L.slices} slices of 512x512), submission to final | **${fmt(L.mbPerSec, 1)} MB/s** (${L.seconds.toFixed(2)} s, ${L.chunks} chunks) | |
| ratio to the raw pipeline | **${ratio.toFixed(2)}** | ≥ ${TARGET_INGEST_RATIO}: ${ratioMet ? 'met' : 'not met'} |
| daemon peak RSS, ${mb(L.bytes)} MB study | **${fmt(L.peakRssMib)} MiB** (${fmt(L.startRssMib)} MiB before) | ≤ ${TARGET_INGEST_PEAK_MIB} MiB: ${L.peakRssMib <= TARGET_INGEST_PEAK_MIB ? 'met' : 'not met'} |
| daemon peak RSS, ${mb(S.bytes)} MB study (${S.slices} slices) | **${fmt(S.peakRssMib)} MiB** (${fmt(S.startRssMib)} MiB before); ${fmt(S.mbPerSec, 1)} MB/s | ≤ ${TARGET_INGEST_PEAK_MIB} MiB: ${S.peakRssMib <= TARGET_INGEST_PEAK_MIB ? 'met' : 'not met'} |

One daemon process (dev chain, sole authority, chunk size ${r.chunkSize / 1024 / 1024} MiB, idle RSS ${fmt(r.idleRssMib)} MiB); synthetic
CT series written by \`radchain devnet gen-study\`'s generator (phantom with seeded noise, made-up demographics);
\`study add\` through the HTTP API, the job polled every 50 ms until the registration is final. The
daemon's peak RSS is its VmHWM, reset before each study, checked against VmRSS polled every 50 ms.
The smaller study runs first and warms the daemon up; the raw pipeline is warmed up on it too. MB = 10^6 bytes
of input files.`)
}

const md = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts); every figure sits beside its baseline from the same run.

Last run: ${date}, Node.js ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}).

${sections.join('\n\n')}
`
await writeFile(join(repoRoot(), 'BENCHMARKS.md'), md)
log('written to BENCHMARKS.md')
