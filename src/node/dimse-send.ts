import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { StudySendJobView } from '../api/index.js'
import { DimseClient, DimseError, splitPart10, storageProposals, storeAll, type DimseDestination } from '../dimse/index.js'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../study/index.js'
import { RadError, sleep, type Logger } from '../util/index.js'
import { jobError, type StudyJobs } from './studies.js'

/** Where a send job's study is written before it is sent (in the data dir, removed when the job ends). */
export const SEND_DIR = 'dimse-send'

/**
 * Removes what send jobs cut short by a crash or a kill left in the data
 * dir: the files of `study send` and `--deliver-to` are decrypted (with
 * the full scope, identifiable) and live only while their job runs. Called
 * at start, before any job.
 */
export async function clearSendDir(dataDir: string): Promise<void> {
  await rm(join(dataDir, SEND_DIR), { recursive: true, force: true })
}
/** Bytes read from each file to learn its SOP class (the file meta is at its start). */
const META_HEAD_BYTES = 16 * 1024
/** Send jobs remembered (the oldest is forgotten first). */
const MAX_SEND_JOBS = 256
const POLL_MS = 100

/**
 * `radchain study send`: a study this node may read (its own, or under an
 * active lease, the scope the lease allows) sent to a configured DICOM
 * peer with C-STORE. The study is written by a `study get` job into a
 * folder of the data dir (so its lease is checked and its access recorded
 * on the ledger exactly as `study get` does), sent over one association
 * (calling AE: dimse.aeTitle; each instance in its stored transfer syntax,
 * never transcoded), and the folder removed, whatever happened.
 */
export class DimseSender {
  readonly #dataDir: string
  readonly #aeTitle: string
  readonly #studies: StudyJobs
  readonly #destination: (ae: string) => Promise<DimseDestination | undefined>
  readonly #log: Logger
  readonly #timeoutMs: number | undefined
  readonly #jobs = new Map<string, StudySendJobView>()
  readonly #abort = new AbortController()

  constructor(
    opts: { dataDir: string; aeTitle: string; timeoutMs?: number },
    modules: { studies: StudyJobs; destination: (ae: string) => Promise<DimseDestination | undefined>; logger: Logger },
  ) {
    this.#dataDir = opts.dataDir
    this.#aeTitle = opts.aeTitle
    this.#timeoutMs = opts.timeoutMs
    this.#studies = modules.studies
    this.#destination = modules.destination
    this.#log = modules.logger
  }

  /** A send job's view, if known. */
  get(id: string): StudySendJobView | undefined {
    return this.#jobs.get(id)
  }

  /**
   * Starts sending a study to the peer of AE title `to`; returns the job id.
   * Throws DIMSE_UNKNOWN_PEER for an AE title not in dimse.peers, and what
   * `study get` throws (STUDY_UNKNOWN, STUDY_NO_ACCESS, STUDY_BAD_SCOPE, ...).
   * `onEnd` is told the job's last view.
   */
  async start(studyId: string, opts: { to: string; scope: string; onEnd?: (v: StudySendJobView) => void }): Promise<string> {
    const dest = await this.#destination(opts.to)
    if (dest === undefined)
      throw new DimseError('DIMSE_UNKNOWN_PEER', `no DICOM peer ${JSON.stringify(opts.to)} in dimse.peers: radchain dimse peer add ${opts.to} <host> <port>`, {
        penalize: false,
      })
    const id = randomBytes(8).toString('hex')
    const out = join(this.#dataDir, SEND_DIR, id)
    await mkdir(join(this.#dataDir, SEND_DIR), { recursive: true, mode: 0o700 })
    const get = await this.#studies.startGet(studyId, { out, scope: opts.scope })
    this.#set({
      id,
      kind: 'send',
      state: 'fetching',
      studyId: studyId.toLowerCase(),
      scope: opts.scope === 'full' ? 'full' : 'images',
      to: dest.aeTitle,
      chunks: 0,
      chunkCount: 0,
      total: 0,
      sent: 0,
      failed: 0,
      warning: 0,
      results: [],
      error: null,
    })
    void this.#run(id, get, out, dest)
      .catch((err: unknown) => {
        const error = jobError(err)
        this.#update(id, { state: 'failed', error })
        this.#log.warn('dimse: study send failed', { job: id, to: dest.aeTitle, code: error.code })
      })
      .finally(async () => {
        await rm(out, { recursive: true, force: true }).catch(() => undefined)
        const v = this.#jobs.get(id)
        if (v !== undefined) opts.onEnd?.(v)
      })
    return id
  }

  /** Stops the jobs running (their associations are aborted). */
  stop(): void {
    this.#abort.abort()
  }

  async #run(id: string, getJob: string, out: string, dest: DimseDestination): Promise<void> {
    // The study written by its get job (fetched from the holders under a lease first).
    for (;;) {
      const g = this.#studies.get(getJob)
      if (g === undefined || g.kind !== 'get') throw new Error('the study get job behind a send was lost')
      this.#update(id, { chunks: g.chunks, chunkCount: g.chunkCount })
      if (g.state === 'failed') {
        throw new RadError(g.error?.code ?? 'STUDY_FAILED', g.error?.message ?? 'the study could not be read')
      }
      if (g.state === 'done') break
      if (this.#abort.signal.aborted) throw new Error('the node is stopping')
      await sleep(POLL_MS)
    }
    const files = (await readdir(out)).filter((f) => f.endsWith('.dcm')).sort()
    const classes = new Set<string>()
    for (const f of files) {
      const h = await open(join(out, f))
      try {
        const buf = Buffer.alloc(META_HEAD_BYTES)
        const { bytesRead } = await h.read(buf, 0, buf.length, 0)
        classes.add(splitPart10(buf.subarray(0, bytesRead)).sopClassUid)
      } finally {
        await h.close()
      }
    }
    this.#update(id, { state: 'sending', total: files.length })
    const client = await DimseClient.associate({
      host: dest.host,
      port: dest.port,
      callingAe: this.#aeTitle,
      calledAe: dest.aeTitle,
      contexts: storageProposals([...classes].sort()),
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION_NAME,
      signal: this.#abort.signal,
      ...(this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs }),
    })
    async function* read(): AsyncGenerator<Uint8Array> {
      for (const f of files) yield await readFile(join(out, f))
    }
    let n = 0
    const r = await storeAll(client, read(), {
      signal: this.#abort.signal,
      onEach: (res, counts) => {
        const file = files[n++] as string
        const v = this.#jobs.get(id)
        if (v === undefined) return
        const result = {
          file,
          sopInstanceUid: res.sopInstanceUid,
          status: `0x${res.status.toString(16).padStart(4, '0')}`,
          ok: res.status === 0 || res.status === 0xb000 || res.status === 0xb006 || res.status === 0xb007,
          ...(res.comment === undefined ? {} : { comment: res.comment }),
        }
        this.#update(id, { sent: counts.completed, failed: counts.failed, warning: counts.warning, results: [...v.results, result] })
      },
    }).finally(() => client.release())
    const failed = r.failed + (files.length - n)
    this.#update(id, { failed })
    this.#log.info('dimse: study sent', { job: id, to: dest.aeTitle, total: files.length, completed: r.completed, failed, warning: r.warning })
    if (r.broken !== undefined) throw new RadError(r.broken.code, `${dest.aeTitle}: ${r.broken.message}`)
    this.#update(id, { state: 'done' })
  }

  #set(v: StudySendJobView): void {
    if (this.#jobs.size >= MAX_SEND_JOBS) {
      const first = this.#jobs.keys().next()
      if (first.done !== true) this.#jobs.delete(first.value)
    }
    this.#jobs.set(v.id, v)
  }

  #update(id: string, patch: Partial<StudySendJobView>): void {
    const v = this.#jobs.get(id)
    if (v === undefined || v.state === 'done' || v.state === 'failed') return
    this.#jobs.set(id, { ...v, ...patch })
  }
}
