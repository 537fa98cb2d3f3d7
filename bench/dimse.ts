import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient, DaemonInfo } from '../src/api/index.js'
import { DATADIR_FILES, initDataDir } from '../src/node/index.js'
import { generateCtStudy, type SyntheticCtStudy } from '../src/study/index.js'
import { DaemonProcess } from '../src/devnet/index.js'
import { knownStudies, measureAdd, settle, untilNewStudy, untilSpoolEmpty, type AddRun } from './dicomweb.js'

const MIB = 1024 * 1024
/** `dicomweb.stableSeconds` of the benchmark's daemon: a received study is registered this long after its last instance. */
const STABLE_SECONDS = 1
const ROUNDS = 3
/** The calling AE title storescu uses, admitted as a peer from 127.0.0.1. */
const SCU_AE = 'BENCHSCU'
const WAIT_MS = 15 * 60_000

/** One `storescu` of a study's files over one association, as a PACS or a modality sends a study. */
export interface StorescuRun {
  readonly bytes: number
  readonly instances: number
  /** From storescu's start to its exit (the last C-STORE answered, the association released). */
  readonly answered: number
  /** From storescu's start to the study final on the ledger; includes `dicomweb.stableSeconds`. */
  readonly registered: number
  /** From storescu's start to the spool emptied (the index points at the study's chunks). */
  readonly unspooled: number
}

/** Result of {@link measureDimseIngest}. */
export interface DimseBenchResult {
  readonly slices: number
  /** Bytes of one study's input files. */
  readonly bytes: number
  readonly chunkSize: number
  readonly stableSeconds: number
  /** Rounds of storescu and `study add`, each of a fresh study, the one first alternating. */
  readonly ingest: readonly { readonly first: 'storescu' | 'add'; readonly storescu: StorescuRun; readonly add: AddRun }[]
}

/** Runs dcmtk's storescu on `files` to `ae@host:port`; rejects with its output when it fails or reports a failed store. */
function storescu(target: { ae: string; host: string; port: number }, files: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'storescu',
      ['-aet', SCU_AE, '-aec', target.ae, target.host, String(target.port), ...files],
      { maxBuffer: 16 * MIB, timeout: WAIT_MS },
      (err, stdout, stderr) => {
        const out = `${stdout}${stderr}`
        if (err !== null) reject(new Error(`storescu failed: ${err.message}: ${out.slice(-500)}`))
        else if (/Store Failed|Status: [^S]/.test(out)) reject(new Error(`storescu reported a failed store: ${out.slice(-500)}`))
        else resolve()
      },
    )
  })
}

/** storescu of a study's files, timed to its exit, to the study final and to the spool emptied. */
export async function measureStorescu(
  client: ApiClient,
  target: { ae: string; host: string; port: number },
  spool: string,
  study: SyntheticCtStudy,
): Promise<StorescuRun> {
  const known = await knownStudies(client)
  await settle()
  const t0 = performance.now()
  await storescu(target, study.files)
  const answered = (performance.now() - t0) / 1000
  const reg = await untilNewStudy(client, known, t0)
  const unspooled = await untilSpoolEmpty(spool, t0)
  return { bytes: study.bytes, instances: study.files.length, answered, registered: reg.seconds, unspooled }
}

/**
 * The DIMSE issue's ingest target on one dev daemon (sole authority, chunk
 * size 1 MiB, `dicomweb.stableSeconds` 1, its DIMSE listener on 127.0.0.1):
 * dcmtk's `storescu` of a synthetic CT series of `slices` 512x512 slices
 * (one association, one C-STORE at a time, each answered once durable)
 * against `study add` of another such series, each to the study final on the
 * ledger; 3 rounds, the one first alternating, after a warm-up of each path.
 */
export async function measureDimseIngest(opts: { slices: number; log: (s: string) => void }): Promise<DimseBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-dimse-'))
  const nodeDir = join(dir, 'node')
  const daemon = new DaemonProcess(nodeDir)
  try {
    const chunkSize = MIB
    await initDataDir({
      dir: nodeDir,
      dev: true,
      apiPort: 0,
      scrypt: { N: 1024, r: 8, p: 1 },
      params: { chunkSize },
      config: {
        logLevel: 'warn',
        dicomweb: { stableSeconds: STABLE_SECONDS },
        dimse: { enabled: true, listen: '127.0.0.1:0', aeTitle: 'RADCHAIN', peers: [{ aeTitle: SCU_AE, host: '127.0.0.1', port: 104 }] },
      },
    })
    const warmSlices = Math.min(opts.slices, 16)
    opts.log(`  generating ${2 * ROUNDS} studies of ${opts.slices} slices of 512x512 (and two of ${warmSlices} to warm up)`)
    const t = performance.now()
    const gen = (name: string, slices: number): Promise<SyntheticCtStudy> => generateCtStudy({ slices, out: join(dir, name) })
    const warm = { scu: await gen('warm-scu', warmSlices), add: await gen('warm-add', warmSlices) }
    const studies: { scu: SyntheticCtStudy; add: SyntheticCtStudy }[] = []
    for (let i = 0; i < ROUNDS; i++) studies.push({ scu: await gen(`scu-${i}`, opts.slices), add: await gen(`add-${i}`, opts.slices) })
    const bytes = studies[0]?.scu.bytes ?? 0
    opts.log(`  generated in ${((performance.now() - t) / 1000).toFixed(1)} s; one study ${(bytes / 1e6).toFixed(0)} MB`)

    const client = await daemon.start({ timeoutMs: 60_000 })
    const info = JSON.parse(await readFile(join(nodeDir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
    const m = /^([^@]+)@(.+):(\d+)$/.exec(info.dimse ?? '')
    if (m === null) throw new Error('the daemon runs no DIMSE listener')
    const target = { ae: m[1] as string, host: m[2] as string, port: Number(m[3]) }
    const spool = join(nodeDir, DATADIR_FILES.dicomwebSpool)

    const w = await measureStorescu(client, target, spool, warm.scu)
    await measureAdd(client, warm.add)
    opts.log(`  warm-up: storescu of ${warmSlices} slices answered in ${w.answered.toFixed(2)} s, registered at ${w.registered.toFixed(2)} s`)

    const ingest: DimseBenchResult['ingest'][number][] = []
    for (let i = 0; i < ROUNDS; i++) {
      const s = studies[i] as (typeof studies)[number]
      const first = i % 2 === 0 ? 'storescu' : 'add'
      let sr: StorescuRun | undefined
      let ar: AddRun | undefined
      for (const which of first === 'storescu' ? (['storescu', 'add'] as const) : (['add', 'storescu'] as const)) {
        if (which === 'storescu') {
          sr = await measureStorescu(client, target, spool, s.scu)
          opts.log(
            `  round ${i + 1}: storescu ${sr.instances} instances, ${(sr.bytes / 1e6).toFixed(0)} MB: last answer ${sr.answered.toFixed(2)} s, registered ${sr.registered.toFixed(2)} s, spool emptied ${sr.unspooled.toFixed(2)} s`,
          )
        } else {
          ar = await measureAdd(client, s.add)
          opts.log(`  round ${i + 1}: study add ${(ar.bytes / 1e6).toFixed(0)} MB: registered ${ar.registered.toFixed(2)} s, job done ${ar.done.toFixed(2)} s`)
        }
      }
      if (sr === undefined || ar === undefined) throw new Error('a round measured nothing')
      ingest.push({ first, storescu: sr, add: ar })
    }
    await daemon.stop()
    return { slices: opts.slices, bytes, chunkSize, stableSeconds: STABLE_SECONDS, ingest }
  } finally {
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  }
}
