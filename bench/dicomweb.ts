import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { Agent, request, type IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isJobOfKind, type ApiClient, type DaemonInfo } from '../src/api/index.js'
import { DATADIR_FILES, createDicomwebToken, initDataDir } from '../src/node/index.js'
import { TAG, firstNumber, firstString, generateCtStudy, parseDicom, type SyntheticCtStudy } from '../src/study/index.js'
import { multipartBoundary, readMultipart } from '../src/dicomweb/index.js'
import { sleep } from '../src/util/index.js'
import { DaemonProcess } from '../src/devnet/index.js'

const MIB = 1024 * 1024
/** `dicomweb.stableSeconds` of the benchmark's daemon: a received study is registered this long after its last instance. */
const STABLE_SECONDS = 1
const ROUNDS = 3
const FRAME_RUNS = 5
const POLL_MS = 50
const WAIT_MS = 15 * 60_000
const ACCEPT_DICOM = 'multipart/related; type="application/dicom"'
const ACCEPT_FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

/** One STOW-RS request of a whole series, as a PACS sends it. */
export interface StowRun {
  readonly bytes: number
  readonly instances: number
  /** From the request's start to the STOW-RS answer (every instance spooled, fsynced). */
  readonly answered: number
  /** From the request's start to the study on the ledger (final), polled every 50 ms; includes `dicomweb.stableSeconds`. */
  readonly registered: number
  /** From the request's start to the spool emptied: the index points at the study's chunks, WADO-RS decrypts from them. */
  readonly unspooled: number
}

/** One `study add` of a study's files through the API. */
export interface AddRun {
  readonly bytes: number
  /** From the submission to the study on the ledger (final), `client.studies()` polled every 50 ms. */
  readonly registered: number
  /** From the submission to the job done (indexed for DICOMweb, durable). */
  readonly done: number
}

/** Time to the first body byte and to the end of an answer, ms. */
export interface Latency {
  readonly firstByteMs: number
  readonly totalMs: number
  readonly bytes: number
}

/** The frames of one instance, fetched `runs` times. */
export interface FrameSeries {
  /** InstanceNumber (0020,0013). */
  readonly instanceNumber: number
  /** Position of the instance in the study's chunks (0 = first packed), of `instances`. */
  readonly packPosition: number
  readonly runs: readonly Latency[]
}

/** One whole-study retrieval against one `study get`. */
export interface RetrieveRound {
  readonly first: 'wado' | 'get'
  /** WADO-RS `GET /studies/{study}` read to its end. */
  readonly wado: { readonly seconds: number; readonly firstByteMs: number; readonly bytes: number }
  /** `study get --scope full` into a fresh folder, the job polled every 50 ms. */
  readonly get: { readonly seconds: number; readonly bytes: number; readonly files: number }
}

/** Result of {@link measureDicomweb}. */
export interface DicomwebBenchResult {
  readonly slices: number
  /** Bytes of one study's input files. */
  readonly bytes: number
  readonly chunkSize: number
  readonly stableSeconds: number
  /** Ingest rounds: STOW-RS and `study add`, each of a fresh study, the one first alternating. */
  readonly ingest: readonly { readonly first: 'stow' | 'add'; readonly stow: StowRun; readonly add: AddRun }[]
  /** WADO-RS frame 1 of instances of the last STOW-RS study, after its registration, interleaved run by run. */
  readonly frames: {
    readonly first: FrameSeries
    readonly last: FrameSeries
    /** The instance packed last (the worst case of the decryption up to the instance). */
    readonly packedLast: FrameSeries
    /** The listener's floor: `.../instances/{i}/metadata` of the first instance (from the index, nothing decrypted). */
    readonly metadata: readonly Latency[]
  }
  /** Whether WADO-RS answers a study's instances in InstanceNumber order (it answers them in pack order). */
  readonly wadoInInstanceOrder: boolean
  readonly retrieve: readonly RetrieveRound[]
}

/** Writes back every dirty page (sync(1)) and lets the machine settle before a measurement. */
export async function settle(): Promise<void> {
  execFileSync('sync')
  await sleep(1000)
}

/** A DICOMweb listener and a client token for it. */
export interface Dicomweb {
  readonly base: string
  readonly token: string
  readonly agent: Agent
}

/** A GET timed from the request to the first body byte and to the end of the answer; `keep` keeps its body. */
async function timedGet(dw: Dicomweb, path: string, accept: string, opts: { keep?: boolean } = {}): Promise<Latency & { body?: Buffer; type: string }> {
  const t0 = performance.now()
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${dw.base}${path}`, { agent: dw.agent, headers: { accept, authorization: `Bearer ${dw.token}` } }, resolve)
    req.once('error', reject)
    req.end()
  })
  let first: number | undefined
  let bytes = 0
  const kept: Buffer[] = []
  for await (const c of res as AsyncIterable<Buffer>) {
    first ??= performance.now()
    bytes += c.length
    if (opts.keep === true) kept.push(c)
  }
  const end = performance.now()
  if (res.statusCode !== 200)
    throw new Error(`GET ${path.replace(/[0-9.]{20,}/g, '<uid>')}: HTTP ${res.statusCode}: ${Buffer.concat(kept).toString('utf8').slice(0, 300)}`)
  return {
    firstByteMs: (first ?? end) - t0,
    totalMs: end - t0,
    bytes,
    type: String(res.headers['content-type'] ?? ''),
    ...(opts.keep === true ? { body: Buffer.concat(kept) } : {}),
  }
}

/**
 * STOW-RS of a study's files in one request, as a PACS sends a series:
 * multipart/related; type="application/dicom", every part with its
 * Content-Length, the body streamed part by part (chunked transfer coding),
 * the next file read while the current one is written. Returns when the
 * answer is in, with the stored and refused counts.
 */
export async function stow(dw: Dicomweb, files: readonly string[]): Promise<{ status: number; stored: number; failed: number }> {
  const boundary = `radchain-bench-${randomBytes(12).toString('hex')}`
  const req = request(`${dw.base}/studies`, {
    method: 'POST',
    agent: dw.agent,
    headers: {
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      accept: 'application/dicom+json',
      authorization: `Bearer ${dw.token}`,
    },
  })
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('error', reject)
    req.once('response', (res: IncomingMessage) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.once('error', reject)
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }))
    })
  })
  answer.catch(() => undefined) // awaited below
  const put = async (b: Buffer): Promise<void> => {
    if (!req.write(b)) await Promise.race([once(req, 'drain'), answer])
  }
  let next: Promise<Buffer> | undefined = files.length > 0 ? readFile(files[0] as string) : undefined
  for (let i = 0; next !== undefined; i++) {
    const data = await next
    next = i + 1 < files.length ? readFile(files[i + 1] as string) : undefined
    await put(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\nContent-Length: ${data.length}\r\n\r\n`, 'latin1'))
    await put(data)
    await put(Buffer.from('\r\n', 'latin1'))
  }
  req.end(Buffer.from(`--${boundary}--\r\n`, 'latin1'))
  const { status, text } = await answer
  let body: Record<string, { Value?: unknown[] } | undefined> = {}
  try {
    body = JSON.parse(text) as typeof body
  } catch {
    throw new Error(`STOW-RS: HTTP ${status}: ${text.slice(0, 300)}`)
  }
  return { status, stored: body['00081199']?.Value?.length ?? 0, failed: body['00081198']?.Value?.length ?? 0 }
}

/** Waits until `client` lists a study not in `known`; seconds from `t0`. */
export async function untilNewStudy(client: ApiClient, known: ReadonlySet<string>, t0: number): Promise<{ studyId: string; seconds: number }> {
  for (;;) {
    const s = (await client.studies()).find((x) => !known.has(x.studyId))
    if (s !== undefined) return { studyId: s.studyId, seconds: (performance.now() - t0) / 1000 }
    if (performance.now() - t0 > WAIT_MS) throw new Error('no study registered in time')
    await sleep(POLL_MS)
  }
}

/** Waits until the DICOMweb spool folder is empty; seconds from `t0`. */
export async function untilSpoolEmpty(spool: string, t0: number): Promise<number> {
  for (;;) {
    if ((await readdir(spool).catch(() => [])).length === 0) return (performance.now() - t0) / 1000
    if (performance.now() - t0 > WAIT_MS) throw new Error('the DICOMweb spool did not empty in time')
    await sleep(POLL_MS)
  }
}

/** The ids of the studies `client` lists now. */
export async function knownStudies(client: ApiClient): Promise<Set<string>> {
  return new Set((await client.studies()).map((s) => s.studyId))
}

/** STOW-RS of a study in one request, timed to the answer, to the study final and to the spool emptied. */
export async function measureStow(client: ApiClient, dw: Dicomweb, spool: string, study: SyntheticCtStudy): Promise<StowRun & { studyId: string }> {
  const known = await knownStudies(client)
  await settle()
  const t0 = performance.now()
  const r = await stow(dw, study.files)
  const answered = (performance.now() - t0) / 1000
  if (r.status !== 200 || r.stored !== study.files.length)
    throw new Error(`STOW-RS answered ${r.status}: ${r.stored} stored, ${r.failed} refused of ${study.files.length}`)
  const reg = await untilNewStudy(client, known, t0)
  const unspooled = await untilSpoolEmpty(spool, t0)
  return { bytes: study.bytes, instances: r.stored, answered, registered: reg.seconds, unspooled, studyId: reg.studyId }
}

/** `study add` of a study's folder through the API, timed to the study final and to the job done. */
export async function measureAdd(client: ApiClient, study: SyntheticCtStudy): Promise<AddRun> {
  const known = await knownStudies(client)
  await settle()
  const t0 = performance.now()
  const id = await client.addStudies([study.out])
  let registered: number | undefined
  for (;;) {
    const j = await client.job(id)
    if (!isJobOfKind(j, 'add')) throw new Error(`job ${id} is not a study add job`)
    if (registered === undefined && (await client.studies()).some((x) => !known.has(x.studyId))) registered = (performance.now() - t0) / 1000
    if (j.state === 'failed') throw new Error(`study add failed: ${j.error?.code ?? ''} ${j.error?.message ?? ''}`)
    if (j.state === 'done') {
      const done = (performance.now() - t0) / 1000
      if (j.studies.length !== 1 || j.studies[0]?.height === null) throw new Error('study add did not end with one final registration')
      return { bytes: study.bytes, registered: registered ?? done, done }
    }
    if (performance.now() - t0 > WAIT_MS) throw new Error('study add did not end in time')
    await sleep(POLL_MS)
  }
}

async function measureGet(client: ApiClient, studyId: string, out: string): Promise<RetrieveRound['get']> {
  await settle()
  const t0 = performance.now()
  const id = await client.getStudy(studyId, { out, scope: 'full' })
  for (;;) {
    const j = await client.job(id)
    if (!isJobOfKind(j, 'get')) throw new Error(`job ${id} is not a study get job`)
    if (j.state === 'failed') throw new Error(`study get failed: ${j.error?.code ?? ''} ${j.error?.message ?? ''}`)
    if (j.state === 'done') return { seconds: (performance.now() - t0) / 1000, bytes: j.bytes, files: j.files }
    if (performance.now() - t0 > WAIT_MS) throw new Error('study get did not end in time')
    await sleep(POLL_MS)
  }
}

async function measureWado(dw: Dicomweb, studyUid: string): Promise<RetrieveRound['wado']> {
  await settle()
  const r = await timedGet(dw, `/studies/${studyUid}`, ACCEPT_DICOM)
  return { seconds: r.totalMs / 1000, firstByteMs: r.firstByteMs, bytes: r.bytes }
}

/** The instances of a study as WADO-RS answers them (SOP Instance UID and InstanceNumber, in the answer's order), checked against the study. */
async function answerOrder(dw: Dicomweb, study: SyntheticCtStudy): Promise<{ sop: string; number: number }[]> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      `${dw.base}/studies/${study.studyInstanceUid}`,
      { agent: dw.agent, headers: { accept: ACCEPT_DICOM, authorization: `Bearer ${dw.token}` } },
      resolve,
    )
    req.once('error', reject)
    req.end()
  })
  if (res.statusCode !== 200) throw new Error(`WADO-RS study: HTTP ${res.statusCode}`)
  const order: { sop: string; number: number }[] = []
  const boundary = multipartBoundary(String(res.headers['content-type'] ?? ''), { expectType: 'application/dicom' })
  for await (const part of readMultipart(res, boundary, { maxBodyBytes: 64 * 1024 ** 3, maxPartBytes: 1024 ** 3 })) {
    const ds = parseDicom(part.body).dataset
    order.push({ sop: firstString(ds, TAG.SOPInstanceUID) ?? '', number: firstNumber(ds, '00200013') ?? 0 })
  }
  const want = new Set(study.sopInstanceUids)
  if (order.length !== want.size || !order.every((o) => want.has(o.sop)))
    throw new Error(`WADO-RS answered ${order.length} instances, not the ${want.size} sent`)
  return order
}

/** Checks a frames answer: one part of rows x columns x 2 bytes. */
async function checkFrame(body: Buffer, type: string, frameBytes: number): Promise<void> {
  const parts: number[] = []
  for await (const p of readMultipart([body], multipartBoundary(type), { maxBodyBytes: body.length, maxPartBytes: body.length })) parts.push(p.body.length)
  if (parts.length !== 1 || parts[0] !== frameBytes)
    throw new Error(`frames answer of ${parts.length} part(s) (${parts.join(', ')} bytes), not one frame of ${frameBytes}`)
}

const med = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/**
 * The DICOMweb issue's targets on one dev daemon (sole authority, chunk size
 * 1 MiB, `dicomweb.stableSeconds` 1): STOW-RS ingest of a synthetic CT
 * series of `slices` 512x512 slices against `study add` of another such
 * series (each measurement a fresh study: the same instances twice would be
 * duplicates), 3 rounds, the one first alternating; then, on the last study
 * received over STOW-RS once it is served from its chunks, WADO-RS frame 1
 * of its first and last instances (and of the one packed last) beside its
 * metadata, 5 runs interleaved; then WADO-RS of the whole study against
 * `study get --scope full` of it, 3 rounds, alternating.
 */
export async function measureDicomweb(opts: { slices: number; log: (s: string) => void }): Promise<DicomwebBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bench-dicomweb-'))
  const nodeDir = join(dir, 'node')
  const daemon = new DaemonProcess(nodeDir)
  const agent = new Agent({ keepAlive: true })
  try {
    const chunkSize = MIB
    await initDataDir({
      dir: nodeDir,
      dev: true,
      apiPort: 0,
      scrypt: { N: 1024, r: 8, p: 1 },
      params: { chunkSize },
      config: { logLevel: 'warn', dicomweb: { stableSeconds: STABLE_SECONDS } },
    })
    const token = await createDicomwebToken(join(nodeDir, DATADIR_FILES.dicomwebTokens), 'bench', 'readwrite')
    const warmSlices = Math.min(opts.slices, 16)
    opts.log(`  generating ${2 * ROUNDS} studies of ${opts.slices} slices of 512x512 (and two of ${warmSlices} to warm up)`)
    const t = performance.now()
    const gen = (name: string, slices: number): Promise<SyntheticCtStudy> => generateCtStudy({ slices, out: join(dir, name) })
    const warm = { stow: await gen('warm-stow', warmSlices), add: await gen('warm-add', warmSlices) }
    const studies: { stow: SyntheticCtStudy; add: SyntheticCtStudy }[] = []
    for (let i = 0; i < ROUNDS; i++) studies.push({ stow: await gen(`stow-${i}`, opts.slices), add: await gen(`add-${i}`, opts.slices) })
    const bytes = studies[0]?.stow.bytes ?? 0
    opts.log(`  generated in ${((performance.now() - t) / 1000).toFixed(1)} s; one study ${(bytes / 1e6).toFixed(0)} MB`)

    const client = await daemon.start({ timeoutMs: 60_000 })
    const info = JSON.parse(await readFile(join(nodeDir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
    if (info.dicomweb === undefined) throw new Error('the daemon runs no DICOMweb listener')
    const dw: Dicomweb = { base: info.dicomweb, token, agent }
    const spool = join(nodeDir, DATADIR_FILES.dicomwebSpool)

    // Warm-up: each path once on a small study, and WADO-RS of it once served from its chunks.
    const w = await measureStow(client, dw, spool, warm.stow)
    await measureAdd(client, warm.add)
    await answerOrder(dw, warm.stow)
    await timedGet(
      dw,
      `/studies/${warm.stow.studyInstanceUid}/series/${warm.stow.seriesInstanceUid}/instances/${warm.stow.sopInstanceUids[0]}/frames/1`,
      ACCEPT_FRAMES,
    )
    opts.log(`  warm-up: STOW-RS of ${warmSlices} slices answered in ${w.answered.toFixed(2)} s, registered at ${w.registered.toFixed(2)} s`)

    const ingest: DicomwebBenchResult['ingest'][number][] = []
    let last: { study: SyntheticCtStudy; studyId: string } | undefined
    for (let i = 0; i < ROUNDS; i++) {
      const s = studies[i] as (typeof studies)[number]
      const first = i % 2 === 0 ? 'stow' : 'add'
      let sr: (StowRun & { studyId: string }) | undefined
      let ar: AddRun | undefined
      for (const which of first === 'stow' ? (['stow', 'add'] as const) : (['add', 'stow'] as const)) {
        if (which === 'stow') {
          sr = await measureStow(client, dw, spool, s.stow)
          opts.log(
            `  round ${i + 1}: STOW-RS ${sr.instances} instances, ${(sr.bytes / 1e6).toFixed(0)} MB: answered ${sr.answered.toFixed(2)} s, registered ${sr.registered.toFixed(2)} s, spool emptied ${sr.unspooled.toFixed(2)} s`,
          )
        } else {
          ar = await measureAdd(client, s.add)
          opts.log(`  round ${i + 1}: study add ${(ar.bytes / 1e6).toFixed(0)} MB: registered ${ar.registered.toFixed(2)} s, job done ${ar.done.toFixed(2)} s`)
        }
      }
      if (sr === undefined || ar === undefined) throw new Error('a round measured nothing')
      last = { study: s.stow, studyId: sr.studyId }
      ingest.push({
        first,
        stow: { bytes: sr.bytes, instances: sr.instances, answered: sr.answered, registered: sr.registered, unspooled: sr.unspooled },
        add: ar,
      })
    }
    if (last === undefined) throw new Error('no study received')

    // WADO-RS of the last received study, now served from its chunks.
    const { study } = last
    const order = await answerOrder(dw, study)
    const wadoInInstanceOrder = order.every((o, k) => o.number === k + 1)
    const position = new Map(order.map((o, k) => [o.sop, k]))
    const instPath = (sop: string): string => `/studies/${study.studyInstanceUid}/series/${study.seriesInstanceUid}/instances/${sop}`
    const firstSop = study.sopInstanceUids[0] as string
    const lastSop = study.sopInstanceUids[study.sopInstanceUids.length - 1] as string
    const packedLastSop = (order[order.length - 1] as (typeof order)[number]).sop
    const picks = { first: firstSop, last: lastSop, packedLast: packedLastSop } as const
    const runs: Record<keyof typeof picks, Latency[]> = { first: [], last: [], packedLast: [] }
    const metadata: Latency[] = []
    const frameBytes = 512 * 512 * 2
    opts.log(
      `  WADO-RS frames: first instance packed at ${position.get(firstSop)}, last at ${position.get(lastSop)} of ${order.length}; answer in InstanceNumber order: ${wadoInInstanceOrder}`,
    )
    for (let k = 0; k < FRAME_RUNS; k++) {
      const m = await timedGet(dw, `${instPath(firstSop)}/metadata`, 'application/dicom+json')
      metadata.push({ firstByteMs: m.firstByteMs, totalMs: m.totalMs, bytes: m.bytes })
      for (const key of ['first', 'last', 'packedLast'] as const) {
        const r = await timedGet(dw, `${instPath(picks[key])}/frames/1`, ACCEPT_FRAMES, { keep: k === 0 })
        if (r.body !== undefined) await checkFrame(r.body, r.type, frameBytes)
        runs[key].push({ firstByteMs: r.firstByteMs, totalMs: r.totalMs, bytes: r.bytes })
      }
    }
    const series = (key: keyof typeof picks): FrameSeries => ({
      instanceNumber: study.sopInstanceUids.indexOf(picks[key]) + 1,
      packPosition: position.get(picks[key]) ?? -1,
      runs: runs[key],
    })
    const frames = { first: series('first'), last: series('last'), packedLast: series('packedLast'), metadata }
    for (const key of ['first', 'last', 'packedLast'] as const)
      opts.log(
        `  frame 1 of instance ${frames[key].instanceNumber} (packed ${frames[key].packPosition + 1} of ${order.length}): first byte ${med(runs[key].map((x) => x.firstByteMs)).toFixed(0)} ms, whole ${med(runs[key].map((x) => x.totalMs)).toFixed(0)} ms (median of ${FRAME_RUNS})`,
      )
    opts.log(`  metadata of one instance: ${med(metadata.map((x) => x.totalMs)).toFixed(1)} ms (median of ${FRAME_RUNS})`)

    const retrieve: RetrieveRound[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 === 0 ? 'wado' : 'get'
      let wado: RetrieveRound['wado'] | undefined
      let get: RetrieveRound['get'] | undefined
      for (const which of first === 'wado' ? (['wado', 'get'] as const) : (['get', 'wado'] as const)) {
        if (which === 'wado') wado = await measureWado(dw, study.studyInstanceUid)
        else get = await measureGet(client, last.studyId, join(dir, `get-${i}`))
      }
      if (wado === undefined || get === undefined) throw new Error('a round measured nothing')
      if (get.files !== study.files.length) throw new Error(`study get wrote ${get.files} files, not ${study.files.length}`)
      opts.log(
        `  round ${i + 1}: WADO-RS study ${(wado.bytes / 1e6).toFixed(0)} MB in ${wado.seconds.toFixed(2)} s (first byte ${wado.firstByteMs.toFixed(0)} ms); study get ${get.files} files, ${(get.bytes / 1e6).toFixed(0)} MB in ${get.seconds.toFixed(2)} s`,
      )
      retrieve.push({ first, wado, get })
    }
    await daemon.stop()
    return { slices: opts.slices, bytes, chunkSize, stableSeconds: STABLE_SECONDS, ingest, frames, wadoInInstanceOrder, retrieve }
  } finally {
    agent.destroy()
    await daemon.kill()
    await rm(dir, { recursive: true, force: true })
  }
}
