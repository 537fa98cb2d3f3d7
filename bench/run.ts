import '../src/util/polyfill.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cpus } from 'node:os'
import { measureVerifyRate } from './verify-rate.js'
import { measureNodeThroughput } from './node-throughput.js'
import { repoRoot } from '../devnet/process.js'

const log = (s: string): void => {
  process.stdout.write(s + '\n')
}

const TARGET_TPS = 8000

log('radchain benchmarks')
log('1. one-core Ed25519 verify rate (node:crypto, cached KeyObject)')
const verify = measureVerifyRate()
log(`  ${Math.round(verify)} verifications/s`)
log('2. one node: transactions per second from submission to final')
const tp = await measureNodeThroughput({ txs: Number(process.env.RADCHAIN_BENCH_TXS ?? 64_000), log })
const ratio = tp.tps / verify
log(`  ${tp.txs} transactions final in ${tp.seconds.toFixed(2)} s over ${tp.blocks} blocks: ${Math.round(tp.tps)} tx/s (${tp.rejected} refused)`)
log(`  ratio to the one-core verify rate: ${ratio.toFixed(2)} (target: ${TARGET_TPS} tx/s, ${tp.tps >= TARGET_TPS ? 'met' : 'NOT met'})`)

const date = new Date().toISOString()
const md = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts); each figure beside its baseline from the same run.

Last run: ${date}, Node.js ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}).

## One node: submission to final

| figure | value |
|---|---|
| one-core Ed25519 verify rate (baseline) | ${Math.round(verify)} /s |
| transactions final | ${tp.txs} in ${tp.seconds.toFixed(2)} s, ${tp.blocks} blocks |
| throughput, submission to final | **${Math.round(tp.tps)} tx/s** |
| ratio to the verify rate | ${ratio.toFixed(2)} |
| target | ${TARGET_TPS} tx/s (about half the verify rate): ${tp.tps >= TARGET_TPS ? 'met' : 'not met'} |

Setup: one daemon process, sole authority of a dev chain; ${tp.txs} pre-signed notes from 32 senders,
sent through the HTTP API (\`POST /v1/txs\`, batches of 500, 4 in flight) from a second process on the
same 2-core machine; the clock stops when every transaction is final (stored in an fsynced batch).
`
await writeFile(join(repoRoot(), 'BENCHMARKS.md'), md)
log('written to BENCHMARKS.md')
