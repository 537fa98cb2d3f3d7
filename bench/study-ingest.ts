import { execFileSync } from 'node:child_process'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isJobOfKind, type ApiClient, type StudyAddJobView } from '../src/api/index.js'
import { initDataDir } from '../src/node/index.js'
import { STORE_PUTS_IN_FLIGHT, generateCtStudy } from '../src/study/index.js'
import { sleep } from '../src/util/index.js'
import { DaemonProcess } from '../src/devnet/index.js'

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

/** One run of the raw pipeline. */
export interface RawRun {
  readonly bytes: number
  readonly seconds: number
  readonly mbPerSec: number
}

/** Result of {@link measureStudyIngest}. */
export interface IngestResult {
  readonly chunkSize: number
  /** Rounds of the raw pipeline then the ingest, both on the large study's files. */
  readonly rounds: readonly { readonly raw: RawRun; readonly ingest: IngestRun }[]
  /** The small study, ingested after a warm-up ingest of it. */
  readonly small: IngestRun
  /** The warm-up: the small study ingested first by the fresh daemon. */
  readonly warmUp: IngestRun
  /** Daemon resident memory once started, before any study, MiB. */
  readonly idleRssMib: number
}

/**
 * Writes back every dirty page (sync(1)) and lets the machine settle, so a
 * measurement does not pay for the write-back of the files made before it.
 */
async function settle(): Promise<void> {
  execFileSync('sync')
  await sleep(1000)
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
 * its own file with fsync, with up to STORE_PUTS_IN_FLIGHT writes running
 * while the next chunk is made (as packageStudy stores its chunks). No DICOM
 * parsing, no de-identification, no index.
 */
async function rawPipeline(files: readonly string[], chunkSize: number, dir: string): Promise<{ bytes: number; seconds: number }> {
  await mkdir(dir, { recursive: true })
  const key = randomBytes(32)
  const aad = randomBytes(46)
  const buf = Buffer.allocUnsafeSlow(chunkSize)
  let fill = 0
  let index = 0
  let bytes = 0
  const inFlight = new Set<Promise<void>>()
  const write = async (ct: Buffer): Promise<void> => {
    const id = createHash('sha256').update(ct).digest('hex')
    const fh = await open(join(dir, id), 'wx')
    try {
      await fh.writeFile(ct)
      await fh.sync()
    } finally {
      await fh.close()
    }
  }
  const flush = async (plain: Buffer): Promise<void> => {
    const nonce = Buffer.alloc(12)
    nonce.writeUInt32BE(index++, 8)
    const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 })
    c.setAAD(aad)
    const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
    const w: Promise<void> = write(ct).finally(() => inFlight.delete(w))
    inFlight.add(w)
    if (inFlight.size >= STORE_PUTS_IN_FLIGHT) await Promise.race(inFlight)
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
  await Promise.all(inFlight)
  return { bytes, seconds: (performance.now() - t0) / 1000 }
}

async function ingest(client: ApiClient, pid: number, dir: string, files: readonly string[], bytes: number): Promise<IngestRun> {
  await settle()
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
    let job: StudyAddJobView
    let scanned: number | undefined
    let packed: number | undefined
    for (;;) {
      const j = await client.job(id)
      if (!isJobOfKind(j, 'add')) throw new Error(`job ${id} is not a study add job`)
      job = j
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
      slices: files.length,
      bytes,
      seconds,
      mbPerSec: bytes / 1e6 / seconds,
      peakRssMib: Math.max(hwm, sampled) / 1024,
      sampledPeakRssMib: sampled / 1024,
      startRssMib: startRss / 1024,
      chunks: s.chunks,
      phases: { scanned: scanned ?? seconds, packed: packed ?? seconds, final: seconds },
    }
  } finally {
    clearInterval(timer)
  }
}

function describe(label: string, r: IngestRun): string {
  return (
    `  ${label}: ${(r.bytes / 1e6).toFixed(0)} MB in ${r.seconds.toFixed(2)} s: ${r.mbPerSec.toFixed(1)} MB/s (scanned at ${r.phases.scanned.toFixed(2)} s, ` +
    `packed at ${r.phases.packed.toFixed(2)} s), daemon peak RSS ${r.peakRssMib.toFixed(0)} MiB (${r.startRssMib.toFixed(0)} MiB before)`
  )
}

/**
 * Ingest (`study add`: scan, de-identify, digest, pack, encrypt, hash, write
 * to the chunk store, register and wait until final) of a synthetic CT study
 * of `slices` 512x512 slices through a real daemon process, in `rounds`
 * rounds each beside the raw pipeline over the same files; and a smaller
 * study of `smallSlices` slices (after a warm-up ingest of it), to show the
 * daemon's peak memory does not grow with the study's size.
 */
export async function measureStudyIngest(opts: { slices: number; smallSlices: number; rounds: number; log: (s: string) => void }): Promise<IngestResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-ingest-'))
  const daemon = new DaemonProcess(join(dir, 'node'))
  try {
    const chunkSize = MIB
    await initDataDir({
      dir: join(dir, 'node'),
      dev: true,
      apiPort: 0,
      scrypt: { N: 1024, r: 8, p: 1 },
      params: { chunkSize },
      config: { logLevel: 'warn' },
    })
    opts.log(`  generating ${opts.slices} + ${opts.smallSlices} slices of 512x512`)
    const large = await generateCtStudy({ slices: opts.slices, out: join(dir, 'large') })
    const small = await generateCtStudy({ slices: opts.smallSlices, out: join(dir, 'small') })
    // The raw pipeline's files stay until the end: deleting them would make the
    // file system discard their blocks (mounted with -o discard) during the
    // next measurement.
    let rawRuns = 0
    const raw = async (): Promise<RawRun> => {
      await settle()
      const r = await rawPipeline(large.files, chunkSize, join(dir, `raw-${rawRuns++}`))
      return { ...r, mbPerSec: r.bytes / 1e6 / r.seconds }
    }
    await rawPipeline(small.files, chunkSize, join(dir, 'raw-warm-up'))

    const client = await daemon.start({ timeoutMs: 60_000 })
    const pid = daemon.pid
    if (pid === undefined) throw new Error('daemon has no pid')
    const idleRssMib = procStatusKib(pid, 'VmRSS') / 1024
    const warmUp = await ingest(client, pid, small.out, small.files, small.bytes)
    opts.log(describe(`warm-up, ingest ${small.files.length} slices`, warmUp))
    const smallRun = await ingest(client, pid, small.out, small.files, small.bytes)
    opts.log(describe(`ingest ${small.files.length} slices`, smallRun))
    const rounds: { raw: RawRun; ingest: IngestRun }[] = []
    for (let i = 0; i < opts.rounds; i++) {
      const r = await raw()
      opts.log(`  round ${i + 1}: raw pipeline ${(r.bytes / 1e6).toFixed(0)} MB in ${r.seconds.toFixed(2)} s: ${r.mbPerSec.toFixed(1)} MB/s`)
      const g = await ingest(client, pid, large.out, large.files, large.bytes)
      opts.log(describe(`round ${i + 1}: ingest ${large.files.length} slices`, g))
      rounds.push({ raw: r, ingest: g })
    }
    await daemon.stop()
    return { chunkSize, rounds, small: smallRun, warmUp, idleRssMib }
  } finally {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  }
}
