import { lookup } from 'node:dns/promises'
import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type {
  DimseBackend,
  DimseDestination,
  DimsePeer,
  DimseQuery,
  DimseRefusal,
  DimseRetrieval,
  DimseStoreResult,
  DimseStoreSession,
} from '../dimse/index.js'
import { DimseError, STATUS } from '../dimse/index.js'
import {
  DicomwebError,
  attributeByTag,
  attributeLevel,
  runQido,
  validateQidoKeys,
  type DicomwebBackend,
  type QidoMatchKey,
  type QidoQuery,
  type Selection,
} from '../dicomweb/index.js'
import { TAG, firstString, type DicomDataset } from '../study/index.js'
import { errorMessage, fromHex, isRadError, toHex, writeFileAtomic, type Logger } from '../util/index.js'
import { getLease, leaseActive, type LeaseRecord } from '../chain/index.js'
import type { StudySendJobView } from '../api/index.js'
import type { ChainService } from './chain-service.js'
import type { DimseSender } from './dimse-send.js'
import { DATADIR_FILES, loadConfig, type DimsePeerConfig } from './config.js'

/** Who may associate: the configured peers, or anyone. */
interface Admission {
  readonly peers: readonly DimsePeerConfig[]
  readonly acceptUnknown: boolean
}

/** The most matches one C-FIND answers (and C-MOVE selects): beyond, the query must be narrower. */
export const MAX_FIND_MATCHES = 10_000
const RANK = { study: 0, series: 1, instance: 2 } as const

/** What the gateway reads of the DICOMweb service: its ingest, its index and its reads. */
export type DimseIngest = Pick<DicomwebBackend, 'openStore' | 'instances' | 'retrieve'>

/** How long a host name's addresses are trusted before they are looked up again. */
const LOOKUP_TTL_MS = 60_000

/** An IP address in one form for comparison (IPv6 lower-cased). */
function normalIp(a: string): string {
  return a.toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1')
}

/**
 * The node side of the DIMSE listener (src/dimse): admits the associations
 * of the peers in `dimse.peers` (calling AE title and the host it comes
 * from; re-read from config.json when the file changes, so `radchain dimse
 * peer add` needs no restart), and stores each C-STORE's instance through the
 * same StoreSession as STOW-RS (the DICOMweb service's spool, index and
 * registration), committed before the C-STORE answer.
 */
export class DimseGateway implements DimseBackend {
  readonly #dataDir: string
  readonly #ingest: DimseIngest
  readonly #log: Logger
  #admission: Admission
  #configMtime = 0
  readonly #hosts = new Map<string, { at: number; addrs: Set<string> }>()

  constructor(opts: { dataDir: string; admission: Admission }, modules: { ingest: DimseIngest; logger: Logger }) {
    this.#dataDir = opts.dataDir
    this.#admission = opts.admission
    this.#ingest = modules.ingest
    this.#log = modules.logger
  }

  async admit(peer: DimsePeer): Promise<boolean> {
    await this.#reload()
    const a = this.#admission
    if (a.acceptUnknown) return true
    const known = a.peers.find((p) => p.aeTitle === peer.callingAe)
    if (known === undefined) return false
    return (await this.#addressesOf(known.host)).has(normalIp(peer.address))
  }

  openStore(peer: DimsePeer): DimseStoreSession {
    const session = this.#ingest.openStore(`dimse:${peer.callingAe}`)
    return {
      store: async (part10, expect): Promise<DimseStoreResult> => {
        const out = await session.store(part10, expect)
        if (!out.ok) return { status: out.reason, comment: out.message }
        // Durable (files, folders, index) before the C-STORE-RSP: a kill -9 after the answer loses nothing.
        await session.commit()
        return { status: STATUS.success, duplicate: out.duplicate }
      },
    }
  }

  /**
   * C-FIND matching: the identifier's keys as a QIDO-RS query over the same
   * index and visibility rules (src/dicomweb/qido.ts, PS3.4 C.2.2.2). A key
   * of a level below the query's is not matched (returned empty); a value
   * its VR does not allow is refused with 0xA900.
   */
  async find(_peer: DimsePeer, q: DimseQuery): Promise<{ ok: true; matches: readonly DicomDataset[] } | DimseRefusal> {
    const keys: QidoMatchKey[] = q.keys.map((k) => {
      const info = attributeByTag(k.tag)
      const lvl = attributeLevel(k.tag)
      const below = lvl !== 'all' && RANK[lvl] > RANK[q.level]
      const key: QidoMatchKey = { tag: k.tag, value: below ? '' : k.value.trim(), param: info?.keyword ?? k.tag }
      const vr = info?.vr ?? (k.vr === 'UN' ? undefined : k.vr)
      if (vr !== undefined) key.vr = vr
      return key
    })
    const query: QidoQuery = {
      level: q.level,
      scope: {},
      keys,
      includeFields: [],
      includeAll: false,
      fuzzy: false,
      limit: MAX_FIND_MATCHES,
      offset: 0,
      warnings: [],
    }
    try {
      validateQidoKeys(query)
      const r = runQido(query, await this.#ingest.instances(), '')
      // Never a cut answer given as complete: a PACS would take the first matches for all of them.
      if (r.total > MAX_FIND_MATCHES) return { ok: false, status: STATUS.outOfResources, comment: `more than ${MAX_FIND_MATCHES} matches: narrow the query` }
      return { ok: true, matches: r.results }
    } catch (err) {
      if (err instanceof DicomwebError && err.code === 'DICOMWEB_BAD_QUERY')
        return { ok: false, status: STATUS.datasetMismatch, comment: err.message.replace(/^query parameter /, '') }
      throw err
    }
  }

  /**
   * C-MOVE selection: the matches of the identifier at its level, each read
   * through the DICOMweb service's retrieve (a leased study fetched and its
   * access recorded on the ledger as WADO-RS and `study get` do).
   */
  async retrieve(peer: DimsePeer, q: DimseQuery, signal: AbortSignal): Promise<DimseRetrieval | DimseRefusal> {
    const found = await this.find(peer, q)
    // Too many matches to select: Unable to calculate number of matches (PS3.4 C.4.2.1.5), never a part moved as all.
    if (!found.ok) return found.status === STATUS.outOfResources ? { ...found, status: STATUS.unableToCountMatches } : found
    const sels: Selection[] = []
    const studies = new Set<string>()
    const series = new Set<string>()
    const sops = new Set<string>()
    for (const m of found.matches) {
      const study = firstString(m, TAG.StudyInstanceUID)?.trim()
      if (study === undefined) continue
      const se = firstString(m, TAG.SeriesInstanceUID)?.trim()
      const sop = firstString(m, TAG.SOPInstanceUID)?.trim()
      if (q.level === 'study') {
        studies.add(study)
        sels.push({ study })
      } else if (se !== undefined && q.level === 'series') {
        series.add(`${study}/${se}`)
        sels.push({ study, series: se })
      } else if (se !== undefined && sop !== undefined) {
        sops.add(sop)
        sels.push({ study, series: se, instance: sop })
      }
    }
    let total = 0
    const classes = new Set<string>()
    for (const inst of await this.#ingest.instances()) {
      const st = firstString(inst.study, TAG.StudyInstanceUID)?.trim() ?? ''
      const se = firstString(inst.series, TAG.SeriesInstanceUID)?.trim() ?? ''
      const sop = firstString(inst.instance, TAG.SOPInstanceUID)?.trim() ?? ''
      if (!studies.has(st) && !series.has(`${st}/${se}`) && !sops.has(sop)) continue
      total++
      const c = firstString(inst.instance, TAG.SOPClassUID)?.trim()
      if (c !== undefined) classes.add(c)
    }
    const ingest = this.#ingest
    async function* instances(): AsyncGenerator<Uint8Array> {
      for (const sel of sels) {
        const it = await ingest.retrieve(sel, signal)
        if (it !== undefined) yield* it
      }
    }
    return { ok: true, total, sopClasses: [...classes].sort(), instances: instances() }
  }

  async destination(aeTitle: string): Promise<DimseDestination | undefined> {
    await this.#reload()
    return this.#admission.peers.find((p) => p.aeTitle === aeTitle)
  }

  /** Takes the peers from config.json again when the file changed since it was last read. */
  async #reload(): Promise<void> {
    try {
      const mtime = (await stat(join(this.#dataDir, DATADIR_FILES.config))).mtimeMs
      if (mtime === this.#configMtime) return
      const c = await loadConfig(this.#dataDir)
      this.#admission = { peers: c.dimse.peers, acceptUnknown: c.dimse.acceptUnknown }
      this.#configMtime = mtime
    } catch (err) {
      this.#log.warn('dimse: config.json could not be read again; the peers known before stay', { err: errorMessage(err) })
    }
  }

  /** The addresses of a peer's host: itself for an IP address, else its lookup (cached a minute). */
  async #addressesOf(host: string): Promise<Set<string>> {
    if (isIP(host) !== 0) return new Set([normalIp(host)])
    const now = Date.now()
    const hit = this.#hosts.get(host)
    if (hit !== undefined && now - hit.at < LOOKUP_TTL_MS) return hit.addrs
    try {
      const addrs = new Set((await lookup(host, { all: true })).map((r) => normalIp(r.address)))
      this.#hosts.set(host, { at: now, addrs })
      return addrs
    } catch (err) {
      this.#log.warn('dimse: a peer host name could not be looked up', { host, err: errorMessage(err) })
      return new Set()
    }
  }
}

/** A configured DICOM peer by AE title (dimse.peers in config.json, read at each call: `radchain dimse peer add` needs no restart). */
export async function dimsePeer(dataDir: string, aeTitle: string): Promise<DimseDestination | undefined> {
  return (await loadConfig(dataDir)).dimse.peers.find((p) => p.aeTitle === aeTitle)
}

/** The file of the data dir that keeps the pending `--deliver-to` deliveries. */
export const DIMSE_DELIVERIES_FILE = 'dimse-deliveries.json'

/** A lease whose study is sent to a DICOM peer once granted (`radchain lease request --deliver-to`). */
interface Delivery {
  readonly leaseId: string
  readonly to: string
  state: 'waiting' | 'sending' | 'delivered' | 'failed' | 'dropped'
  attempts: number
  /** When a failed attempt may be tried again (this node's clock). */
  retryAt: number
  job?: string
}

/** What the delivery watcher reads of the chain: block events, a lease by id (hex), the head's time. */
export interface DeliveryChain {
  on(ev: 'block', fn: () => void): unknown
  off(ev: 'block', fn: () => void): unknown
  lease(leaseIdHex: string): LeaseRecord | undefined
  time(): number
}

/** The chain service as the delivery watcher reads it. */
export function deliveryChain(chain: ChainService): DeliveryChain {
  return {
    on: (ev, fn) => chain.on(ev, fn),
    off: (ev, fn) => chain.off(ev, fn),
    lease: (id) => getLease(chain.state, fromHex(id)),
    time: () => chain.head().header.time,
  }
}

/** Attempts of one delivery before it is given up on (each failure is logged). */
export const DELIVERY_ATTEMPTS = 3
/** How long after a failed attempt the next one starts. */
export const DELIVERY_RETRY_MS = 60_000

/**
 * `radchain lease request ... --deliver-to <AE>`: watches this node's
 * leases as blocks come; once one asked for with a delivery is granted, the
 * study is sent to the peer with the lease's scope (a `study send` job: read
 * as `study get` reads it, its access recorded on the ledger, so the audit
 * and `radchain watch` show the retrieval), without another command. A lease
 * denied, revoked or ended before it is delivered is dropped. Pending
 * deliveries are kept in a file of the data dir (lease ids and AE titles,
 * no patient data) and survive a restart; the outcome is logged.
 */
export class DimseDeliveries {
  readonly #file: string
  readonly #chain: DeliveryChain
  readonly #sender: Pick<DimseSender, 'start'>
  readonly #log: Logger
  #list: Delivery[] = []
  #ticking = false
  #saving: Promise<void> = Promise.resolve()

  /** The data dir (dimse.peers are read from its config.json). */
  readonly dataDir: string

  constructor(opts: { file: string; dataDir: string }, modules: { chain: DeliveryChain; sender: Pick<DimseSender, 'start'>; logger: Logger }) {
    this.#file = opts.file
    this.dataDir = opts.dataDir
    this.#chain = modules.chain
    this.#sender = modules.sender
    this.#log = modules.logger
  }

  /** Loads the pending deliveries and starts watching the blocks. */
  async start(): Promise<void> {
    try {
      this.#list = (JSON.parse(await readFile(this.#file, 'utf8')) as Delivery[]).map((d) => (d.state === 'sending' ? { ...d, state: 'waiting' } : d))
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
    }
    this.#chain.on('block', this.#onBlock)
    this.#onBlock()
  }

  stop(): void {
    this.#chain.off('block', this.#onBlock)
  }

  /** The deliveries known, newest last. */
  list(): readonly Readonly<Delivery>[] {
    return this.#list
  }

  /** Delivers the study of lease `leaseId` (hex) to the peer `to` once it is granted. */
  async add(leaseId: string, to: string): Promise<void> {
    this.#list = [...this.#list.filter((d) => d.leaseId !== leaseId), { leaseId, to, state: 'waiting', attempts: 0, retryAt: 0 }]
    await this.#save()
    this.#onBlock()
  }

  readonly #onBlock = (): void => {
    if (this.#ticking) return
    this.#ticking = true
    void this.#tick()
      .catch((err: unknown) => this.#log.warn('dimse: looking at deliveries failed', { err: errorMessage(err) }))
      .finally(() => {
        this.#ticking = false
      })
  }

  async #tick(): Promise<void> {
    let changed = false
    const now = this.#chain.time()
    for (const d of this.#list) {
      if (d.state !== 'waiting' || d.retryAt > Date.now()) continue
      const l = this.#chain.lease(d.leaseId)
      // Not on the ledger yet (the request is on its way), or not decided yet.
      if (l === undefined || l.status === 'requested') continue
      if (!leaseActive(l, now) || l.envelope === null) {
        d.state = 'dropped'
        changed = true
        this.#log.info('dimse: a delivery was dropped: its lease is not active', { lease: d.leaseId, to: d.to, status: l.status })
        continue
      }
      d.state = 'sending'
      d.attempts++
      changed = true
      try {
        d.job = await this.#sender.start(toHex(l.studyId), { to: d.to, scope: l.scope, onEnd: (v) => void this.#ended(d, v) })
        this.#log.info('dimse: delivering a leased study', { lease: d.leaseId, to: d.to, job: d.job, attempt: d.attempts })
      } catch (err) {
        await this.#ended(d, undefined, err)
      }
    }
    if (changed) await this.#save()
  }

  async #ended(d: Delivery, v: StudySendJobView | undefined, err?: unknown): Promise<void> {
    if (v !== undefined && v.state === 'done' && v.failed === 0) {
      d.state = 'delivered'
      this.#log.info('dimse: a leased study was delivered', { lease: d.leaseId, to: d.to, job: d.job, instances: v.sent + v.warning })
    } else {
      const code = v?.error?.code ?? (isRadError(err) ? err.code : v !== undefined && v.failed > 0 ? 'DIMSE_STORE_FAILED' : 'error')
      const last = d.attempts >= DELIVERY_ATTEMPTS
      d.state = last ? 'failed' : 'waiting'
      d.retryAt = Date.now() + DELIVERY_RETRY_MS
      this.#log.warn(last ? 'dimse: a delivery failed; given up' : 'dimse: a delivery failed; tried again later', {
        lease: d.leaseId,
        to: d.to,
        attempt: d.attempts,
        code,
        ...(last ? {} : { retryMs: DELIVERY_RETRY_MS }),
      })
    }
    await this.#save().catch((e: unknown) => this.#log.warn('dimse: deliveries could not be saved', { err: errorMessage(e) }))
  }

  /** Writes the list, after any write in progress (the watcher and a job's end may both write). */
  #save(): Promise<void> {
    const next = this.#saving.then(() => this.#write())
    this.#saving = next.catch(() => undefined)
    return next
  }

  async #write(): Promise<void> {
    // Delivered, failed and dropped ones are kept for a while (the newest 256): what happened stays visible.
    const keep = [
      ...this.#list.filter((d) => d.state === 'waiting' || d.state === 'sending'),
      ...this.#list.filter((d) => d.state !== 'waiting' && d.state !== 'sending').slice(-256),
    ]
    this.#list = keep
    await writeFileAtomic(this.#file, JSON.stringify(this.#list, null, 2) + '\n', 0o600)
  }
}

/** Throws DIMSE_UNKNOWN_PEER unless dimse.peers has this AE title. */
export async function dimsePeerKnown(dataDir: string, aeTitle: string): Promise<void> {
  if ((await dimsePeer(dataDir, aeTitle)) === undefined)
    throw new DimseError('DIMSE_UNKNOWN_PEER', `no DICOM peer ${JSON.stringify(aeTitle)} in dimse.peers: radchain dimse peer add ${aeTitle} <host> <port>`, {
      penalize: false,
    })
}
