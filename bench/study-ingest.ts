import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient } from '../src/api/index.js'
import { initDataDir } from '../src/node/index.js'
import { generateCtStudy } from '../src/study/index.js'
import { sleep } from '../src/util/index.js'
import { DaemonProcess } from '../devnet/process.js'

const MIB = 1024 * 1024

/** One `study add` measured in the daemon. */
export interface IngestRun {
  readonly slices: number
  /** Bytes of the input files. */
  readonly bytes: number
  /** From submission of the job to the registration being final. */
  readonly seconds: number
  readonly mbPerSec: number
  /** Daemon peak resident memory during the run (VmHWM, reset before the run), MiB. */
  readonly peakRssMib: number
  /** Highest VmRSS seen by polling every 50 ms, MiB (a check on VmHWM). */
  readonly sampledPeakRssMib: number
  /** Daemon resident memory just before the run, MiB. */
  readonly startRssMib: number
  readonly chunks: number
  /** Seconds from submission to the end of scanning, of packing (stored, before registering), and to final. */
  readonly phases: { readonly scanned: number; readonly packed: number; readonly final: number }
}

/** Result of {@link measureStudyIngest}. */
export interface IngestResult {
  readonly chunkSize: number
  /** Raw pipeline on the large study's files: read, AES-256-GCM in chunks, SHA-256, write with fsync. */
  readonly raw: { readonly bytes: number; readonly seconds: number; readonly mbPerSec: number }
  readonly large: IngestRun
  readonly small: IngestRun
  /** Daemon resident memory once started, before any study, MiB. */
  readonly idleRssMib: number
}

function procStatusKib(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no ${field} for process ${pid}`)
  return Number(m[1])
}

/** Resets the peak RSS (VmHWM) of `pid` to its current RSS (Linux 4.0+: clear_refs 5). */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * The baseline: the same input files read one at a time, cut into `chunkSize`
 * pieces, each encrypted with AES-256-GCM, hashed with SHA-256 and written to
 * its own file with fsync. No DICOM parsing, no de-identification, no index.
 */
async function rawPipeline(files: readonly string[], chunkSize: number, dir: string): Promise<{ bytes: number; seconds: number }> {
  await mkdir(dir, { recursive: true })
  const key = randomBytes(32)
  const aad = randomBytes(46)
  const buf = Buffer.allocUnsafeSlow(chunkSize)
  let fill = 0
  let index = 0
  let bytes = 0
  const flush = async (plain: Buffer): Promise<void> => {
    const nonce = Buffer.alloc(12)
    nonce.writeUInt32BE(index, 8)
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 })
    c.setAAD(aad)
    const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
    const id = createHash('sha256').update(ct).digest('hex')
    const fh = await open(join(dir, id), 'wx')
    try {
      await fh.writeFile(ct)
      await fh.sync()
    } finally {
      await fh.close()
    }
    index++
  }
  const t0 = performance.now()
  for (const f of files) {
    const data = await readFile(f)
    bytes += data.length
    let off = 0
    while (off < data.length) {
      const n = Math.min(chunkSize - fill, data.length - off)
      data.copy(buf, fill, off, off + n)
      fill += n
      off += n
      if (fill === chunkSize) {
        await flush(buf)
        fill = 0
      }
    }
  }
  await flush(buf.subarray(0, fill))
  return { bytes, seconds: (performance.now() - t0) / 1000 }
}

interface JobView {
  state: string
  error: { code: string; message: string } | null
  studies: { height: number | null; chunks: number }[]
}

async function ingest(client: ApiClient, pid: number, dir: string, files: readonly string[], bytes: number): Promise<IngestRun> {
  // Let the previous run's garbage go before measuring from the current RSS.
  await sleep(1000)
  const startRss = procStatusKib(pid, 'VmRSS')
  const hwmReset = resetPeak(pid)
  let sampled = startRss
  const timer = setInterval(() => {
    try {
      sampled = Math.max(sampled, procStatusKib(pid, 'VmRSS'))
    } catch {
      // The daemon exited: the job poll reports it.
    }
  }, 50)
  try {
    const t0 = performance.now()
    const id = await client.addStudies([dir])
    let job: JobView
    let scanned: number | undefined
    let packed: number | undefined
    for (;;) {
      job = (await client.job(id)) as unknown as JobView
      const now = (performance.now() - t0) / 1000
      if (job.state !== 'scanning') scanned ??= now
      if (job.state !== 'scanning' && job.state !== 'packing') packed ??= now
      if (job.state === 'done' || job.state === 'failed') break
      await sleep(50)
    }
    const seconds = (performance.now() - t0) / 1000
    if (job.state === 'failed') throw new Error(`study add failed: ${job.error?.code ?? ''} ${job.error?.message ?? ''}`)
    const s = job.studies[0]
    if (job.studies.length !== 1 || s === undefined || s.height === null) throw new Error('study add did not end with one final registration')
    const hwm = hwmReset ? procStatusKib(pid, 'VmHWM') : sampled
    return {
      slices: files.length, bytes, seconds, mbPerSec: bytes / 1e6 / seconds,
      peakRssMib: Math.max(hwm, sampled) / 1024, sampledPeakRssMib: sampled / 1024, startRssMib: startRss / 1024, chunks: s.chunks,
      phases: { scanned: scanned ?? seconds, packed: packed ?? seconds, final: seconds },
    }
  } finally {
    clearInterval(timer)
  }
}

/**
 * Ingest (`study add`: scan, de-identify, digest, pack, encrypt, hash, write
 * to the chunk store, register and wait until final) of a synthetic CT study
 * of `slices` 512x512 slices through a real daemon process, beside the raw
 * pipeline over the same files in the same run; and a smaller study of
 * `smallSlices` slices, to show the daemon's peak memory does not grow with
 * the study's size.
 */
export async function measureStudyIngest(opts: { slices: number; smallSlices: number; log: (s: string) => void }): Promise<IngestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-ingest-'))
  const daemon = new DaemonProcess(join(dir, 'node'))
  try {
    const chunkSize = MIB
    await initDataDir({
      dir: join(dir, 'node'), dev: true, apiPort: 0, scrypt: { N: 1024, r: 8, p: 1 },
      params: { chunkSize }, config: { logLevel: 'warn' },
    })
    opts.log(`  generating ${opts.slices} + ${opts.smallSlices} slices of 512x512`)
    const large = await generateCtStudy({ slices: opts.slices, out: join(dir, 'large') })
    const small = await generateCtStudy({ slices: opts.smallSlices, out: join(dir, 'small') })

    // Warm-up of the raw pipeline on the small study, then the measured run on the large one.
    await rawPipeline(small.files, chunkSize, join(dir, 'raw-warm-up'))
    await rm(join(dir, 'raw-warm-up'), { recursive: true, force: true })
    const raw = await rawPipeline(large.files, chunkSize, join(dir, 'raw'))
    await rm(join(dir, 'raw'), { recursive: true, force: true })
    opts.log(`  raw pipeline: ${(raw.bytes / 1e6).toFixed(0)} MB in ${raw.seconds.toFixed(2)} s: ${(raw.bytes / 1e6 / raw.seconds).toFixed(0)} MB/s`)

    const client = await daemon.start({ timeoutMs: 60_000 })
    const pid = daemon.pid
    if (pid === undefined) throw new Error('daemon has no pid')
    const idleRssMib = procStatusKib(pid, 'VmRSS') / 1024
    const smallRun = await ingest(client, pid, small.out, small.files, small.bytes)
    opts.log(`  ingest ${smallRun.slices} slices: ${(smallRun.bytes / 1e6).toFixed(0)} MB in ${smallRun.seconds.toFixed(2)} s: ${smallRun.mbPerSec.toFixed(0)} MB/s, daemon peak RSS ${smallRun.peakRssMib.toFixed(0)} MiB; scanned at ${smallRun.phases.scanned.toFixed(2)} s, stored at ${smallRun.phases.packed.toFixed(2)} s`)
    const largeRun = await ingest(client, pid, large.out, large.files, large.bytes)
    opts.log(`  ingest ${largeRun.slices} slices: ${(largeRun.bytes / 1e6).toFixed(0)} MB in ${largeRun.seconds.toFixed(2)} s: ${largeRun.mbPerSec.toFixed(0)} MB/s, daemon peak RSS ${largeRun.peakRssMib.toFixed(0)} MiB; scanned at ${largeRun.phases.scanned.toFixed(2)} s, stored at ${largeRun.phases.packed.toFixed(2)} s`)
    await daemon.stop()
    return { chunkSize, raw: { ...raw, mbPerSec: raw.bytes / 1e6 / raw.seconds }, large: largeRun, small: smallRun, idleRssMib }
  } finally {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  }
}
