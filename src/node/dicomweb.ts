import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { getLease, getStudy, leaseActive, listLeases, listStudies, nextVersion, studyVersions, type LeaseRecord, type StudyRecord } from '../chain/index.js'
import type { OrgKeys } from '../crypto/index.js'
import type { ChunkStore, KeyValueSpace, StudyIndex } from '../storage/index.js'
import {
  TAG,
  decryptDemographics,
  firstNumber,
  firstString,
  instanceDigestOfBytes,
  openPack,
  parseDicom,
  readDicom,
  restoreIdentity,
  unpackStudy,
  writeDicom,
  type DemographicsRecord,
  type DicomDataset,
  type DicomInstance,
  type InstanceIdentityRecord,
  type PackReader,
  type ScannedPatient,
} from '../study/index.js'
import { errorMessage, fromHex, fsyncPath, sleep, toHex, utf8, type Logger } from '../util/index.js'
import {
  DicomwebError,
  FAILURE_REASON,
  splitLevels,
  type DicomwebBackend,
  type DicomwebClient,
  type IndexedInstance,
  type Selection,
  type StoreOutcome,
  type StoreSession,
} from '../dicomweb/index.js'
import type { ChainService } from './chain-service.js'
import { unwrapLeaseKey, unwrapStudyKey, type LeaseService } from './leases.js'
import type { StudyJobs } from './studies.js'
import type { SwarmService } from './swarm.js'
import { DicomwebTokens } from './dicomweb-tokens.js'

/** HKDF info of the key that encrypts this node's DICOMweb index at rest (derived from the organization's keys). */
const INDEX_KEY_INFO = 'radchain/dicomweb-index-key/v1'
const ENTRY_PREFIX = 'e/'
/** Studies whose instances are in the index (by study id: a random number, no patient data). */
const INDEXED_PREFIX = 's/'
/** Written with sync at the end of a STOW-RS request: it makes the request's index entries durable with it. */
const COMMIT_KEY = 'c/commit'
/** Spooled files fsynced at once when a STOW-RS request commits. */
const SYNCS_AT_ONCE = 16
/** The registration being sent for a spool folder: its study id and files, so that a restart finishes it rather than sending another. */
const REGISTERING_PREFIX = 'r/'
/** How long a registration recorded before a stop may still become final (on its way through the other organizations' mempools). */
const PENDING_REGISTRATION_MS = 120_000
/** Instances of one study read on their own, each from the chunks it lies in; more are read by decrypting the study in order. */
const RANDOM_ACCESS_MAX = 32
/** How often a registration, or the indexing of a leased study, that failed is tried again. */
const RETRY_MS = 60_000
/** The first wait before a leased study whose indexing failed is tried again; it doubles with each failure, up to RETRY_MS. */
const LEASE_RETRY_FIRST_MS = 3_000
/** Leases (by id) whose study is in the index. */
const LEASED_PREFIX = 'l/'
/** Studies (by an HMAC of the Study Instance UID the caller saw) shown under a lease that has ended: asked for again, they get a clear refusal. */
const ENDED_PREFIX = 'x/'
/**
 * Reads under one lease (WADO-RS retrieve, metadata, frames) are recorded on
 * the ledger at most once in this long: a viewer asks for every frame.
 */
export const LEASE_READ_RECORD_MS = 60_000

/**
 * Where an indexed instance's bytes are: received and waiting in the spool,
 * in a study this organization registered, or in a study leased to it (what
 * the lease shows: de-identified with the images scope, identity restored
 * with the full scope).
 */
type Where =
  /** `bytes`: the file's length as received (absent in entries written before it was recorded). */
  | { readonly kind: 'spool'; readonly file: string; readonly bytes?: number }
  | { readonly kind: 'study'; readonly studyId: string }
  | { readonly kind: 'lease'; readonly studyId: string; readonly leaseId: string }

/** Why a study shown under a lease is no longer shown. */
type EndedWhy = 'ended' | 'revoked' | 'erased'

/** A registered study opened for reading: its chunks, its key, and the identity records when the reader may restore them. */
interface OpenedStudy {
  readonly record: StudyRecord
  readonly list: readonly Uint8Array[]
  /** The study key, or the data key alone (an images-scope lease). */
  readonly key: Uint8Array | { readonly dataKey: Uint8Array }
  /** The custodian's and a full-scope lessee's: instances are shown with their identity restored. Without: as packed, de-identified. */
  readonly demo: DemographicsRecord | undefined
  /** Encrypted chunk `index` (fetched from the swarm first under a lease, if this node no longer has it). */
  chunk(index: number): Promise<Uint8Array>
  /** Forgets the key. */
  close(): void
}

/** One instance the DICOMweb listener may show (kept encrypted in the database, whole in memory). */
interface Entry {
  readonly sop: string
  readonly sopClass: string
  readonly study: string
  readonly series: string
  readonly pixelDigest: string
  readonly levels: IndexedInstance
  where: Where
}

/** Options of the DICOMweb service. */
export interface DicomwebServiceOpts {
  /** Folder of received instances waiting for their study to be stable (in the data dir). */
  readonly spoolDir: string
  /** The token file (`radchain dicomweb token create` writes it). */
  readonly tokensFile: string
  /** A study is registered once no instance of it arrived for this long. */
  readonly stableMs: number
  /** Studies leased to this organization are fetched when granted and indexed (default true; what was indexed still leaves at the lease's end). */
  readonly showLeased?: boolean
}

/**
 * The node side of DICOMweb (src/dicomweb): receives instances into a spool
 * (durable before the STOW-RS answer), registers each study through the same
 * path as `study add` once no instance of it arrived for `stableMs`, keeps
 * an index of what it may show (encrypted at rest under a key derived from
 * the organization's keys) and reads instances back from the spool or from
 * the registered study's chunks.
 *
 * The spool holds the instances as received, identifiable, in the data dir
 * (mode 0600) until their study is registered; then they are removed, and
 * what is retrieved afterwards is decrypted from the study's chunks with its
 * identity restored (this organization is the custodian). Instances of a
 * study that arrive while or after it is registered make a further study
 * with the same Study Instance UID.
 */
export class DicomwebService implements DicomwebBackend {
  readonly #opts: DicomwebServiceOpts
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #index: StudyIndex
  readonly #studies: StudyJobs
  readonly #keys: OrgKeys
  readonly #kv: KeyValueSpace
  readonly #log: Logger
  readonly #tokens: DicomwebTokens
  readonly #key: Uint8Array
  readonly #entries = new Map<string, Entry>()
  /** Per spool folder (a study being received): its timer until it is stable. */
  readonly #timers = new Map<string, NodeJS.Timeout>()
  /** Spool folders being registered now. */
  readonly #registering = new Set<string>()
  /** Folders whose timer fired during their registration. */
  readonly #again = new Set<string>()
  /** The input of the registration packing each folder as its instances arrive. */
  readonly #feeds = new Map<string, SpoolFeed>()
  /** Folders left by an earlier run: registered at their stable timer, not fed (their registration may have been sent already). */
  readonly #held = new Set<string>()
  /** Serializes writes per study folder (a STOW of many instances, and the registration's move of the folder). */
  readonly #folderLocks = new Map<string, Promise<void>>()
  /** Serializes the stores of one SOP Instance UID. */
  readonly #sopLocks = new Map<string, Promise<void>>()
  readonly #swarm: SwarmService
  readonly #leases: LeaseService
  /** Leases (hex ids) whose study is in the index. */
  readonly #leased = new Set<string>()
  /** When the indexing of a leased study that failed may be tried again (this node's clock), by lease id. */
  /** Leases whose indexing failed: when to try again, and how many tries failed. */
  readonly #leaseRetryAt = new Map<string, { at: number; tries: number }>()
  /** When reads under each lease were last recorded on the ledger (this node's clock). */
  readonly #readRecordedAt = new Map<string, number>()
  #leaseSync: Promise<void> = Promise.resolve()
  #leaseSyncQueued = false
  readonly #leaseAbort = new AbortController()
  #stopped = false
  #backfilling: Promise<void> = Promise.resolve()

  constructor(
    opts: DicomwebServiceOpts,
    modules: {
      chain: ChainService
      chunks: ChunkStore
      index: StudyIndex
      studies: StudyJobs
      swarm: SwarmService
      leases: LeaseService
      keys: OrgKeys
      kv: KeyValueSpace
      logger: Logger
    },
  ) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#index = modules.index
    this.#studies = modules.studies
    this.#swarm = modules.swarm
    this.#leases = modules.leases
    this.#keys = modules.keys
    this.#kv = modules.kv
    this.#log = modules.logger
    this.#tokens = new DicomwebTokens(opts.tokensFile)
    this.#key = new Uint8Array(hkdfSync('sha256', modules.keys.encryption.privateKey, new Uint8Array(0), INDEX_KEY_INFO, 32))
  }

  /** Loads the index, and schedules the registration of every study left in the spool (received before a stop or a crash). */
  async start(): Promise<void> {
    const forgotten: string[] = []
    for await (const [k, v] of this.#kv.entries(ENTRY_PREFIX)) {
      const e = this.#open(v)
      // An entry is written before its file is made durable, and another request's synced write can carry it to
      // disk first: after a crash its file may be missing or cut short. Its request was never answered success
      // (the answer waits for the file's fsync), so the entry is forgotten and a retry stores the instance again.
      if (e.where.kind === 'spool' && !(await spooledWhole(e.where.file, e.where.bytes))) {
        forgotten.push(k)
        // What is left of its file goes too, or the study's registration would read it.
        await rm(e.where.file, { force: true })
        continue
      }
      this.#entries.set(e.sop, e)
    }
    if (forgotten.length > 0) {
      for (const k of forgotten) await this.#kv.del(k)
      await this.#kv.put(COMMIT_KEY, new Uint8Array([1]), { sync: true })
      this.#log.warn('dicomweb: instances received but not made durable before a crash are forgotten; their senders were not answered', {
        instances: forgotten.length,
      })
    }
    for await (const [k, v] of this.#kv.entries(LEASED_PREFIX)) {
      const id = k.slice(LEASED_PREFIX.length)
      // An indexing a stop or a crash cut short: what it indexed goes, and the study is indexed again while its lease lasts.
      if (v[0] === 1) this.#leased.add(id)
      else {
        await this.#dropEntries((e) => e.where.kind === 'lease' && e.where.leaseId === id, undefined)
        await this.#kv.del(LEASED_PREFIX + id, { sync: true })
      }
    }
    await mkdir(this.#opts.spoolDir, { recursive: true, mode: 0o700 })
    let waiting = 0
    for (const f of await readdir(this.#opts.spoolDir, { withFileTypes: true })) {
      if (!f.isDirectory()) continue
      // A registration's snapshot left by a crash: its instances are still in their study's folder.
      if (f.name.startsWith('.')) await rm(join(this.#opts.spoolDir, f.name), { recursive: true, force: true })
      else {
        this.#held.add(f.name)
        this.#schedule(f.name, this.#opts.stableMs)
        waiting++
      }
    }
    if (waiting > 0) this.#log.info('dicomweb: studies waiting in the spool', { studies: waiting })
    this.#studies.onRegistered = (studyId, files) => this.#indexFiles(studyId, files)
    this.#backfilling = this.#backfill().catch((err: unknown) => this.#log.warn('dicomweb: indexing earlier studies failed', { err: errorMessage(err) }))
    this.#chain.on('block', this.#onBlock)
    this.#syncLeasesSoon()
  }

  /** Waits for the indexing of studies registered before the index existed (tests; the daemon does not wait). */
  async settled(): Promise<void> {
    await this.#backfilling
  }

  readonly #onBlock = (): void => this.#syncLeasesSoon()

  /** Looks at this organization's leases after the running look (at most one waits behind it). */
  #syncLeasesSoon(): void {
    if (this.#stopped || this.#leaseSyncQueued) return
    // Not showing leased studies: none is indexed; those indexed before still leave at their lease's end.
    if (this.#opts.showLeased === false && this.#leased.size === 0) return
    this.#leaseSyncQueued = true
    this.#leaseSync = this.#leaseSync
      .then(async () => {
        this.#leaseSyncQueued = false
        await this.#syncLeases()
      })
      .catch((err: unknown) => this.#log.warn('dicomweb: looking at leased studies failed', { err: errorMessage(err) }))
  }

  /**
   * Shows the studies leased to this organization: a lease granted is
   * fetched from the swarm (the holders record what they serve under it),
   * its key opened (recorded on the ledger as `study get` does) and its
   * instances indexed as the lease shows them; a lease that ended, was
   * revoked or whose study was erased leaves the index. One study at a
   * time; a failure is tried again after LEASE_RETRY_FIRST_MS, doubling up
   * to RETRY_MS.
   */
  async #syncLeases(): Promise<void> {
    const me = this.#chain.orgByKey(this.#keys.signer.publicKey)?.id
    if (me === undefined) return
    for (const l of listLeases(this.#chain.state)) {
      if (this.#stopped) return
      if (l.requester !== me) continue
      const id = toHex(l.leaseId)
      const study = getStudy(this.#chain.state, l.studyId)
      const now = this.#chain.head().header.time
      if (study === undefined || !leaseActive(l, now)) {
        if (this.#leased.has(id)) await this.#dropLease(id, study === undefined ? 'erased' : l.status === 'revoked' ? 'revoked' : 'ended')
        continue
      }
      if (this.#opts.showLeased === false || l.envelope === null || this.#leased.has(id) || (this.#leaseRetryAt.get(id)?.at ?? 0) > Date.now()) continue
      try {
        await this.#indexLease(l, study)
        this.#leaseRetryAt.delete(id)
      } catch (err) {
        if (this.#stopped) return
        // Soon at first (a lease just granted may reach the holders a moment after the lessee asks), then less often.
        const tries = (this.#leaseRetryAt.get(id)?.tries ?? 0) + 1
        const retryMs = Math.min(RETRY_MS, LEASE_RETRY_FIRST_MS * 2 ** (tries - 1))
        this.#leaseRetryAt.set(id, { at: Date.now() + retryMs, tries })
        this.#log.warn('dicomweb: a leased study could not be indexed; tried again later', {
          lease: id,
          code: (err as { code?: string }).code ?? 'error',
          err: errorMessage(err),
          retryMs,
        })
      }
    }
  }

  /** Fetches a leased study, opens it with the lease's key and indexes its instances as the lease shows them. */
  async #indexLease(lease: LeaseRecord, record: StudyRecord): Promise<void> {
    const id = toHex(lease.leaseId)
    const where: Where = { kind: 'lease', studyId: toHex(record.studyId), leaseId: id }
    // Marked before the first entry (0: being indexed): entries written before a failure or a crash are found and removed.
    await this.#kv.put(LEASED_PREFIX + id, new Uint8Array([0]), { sync: true })
    let n = 0
    try {
      const opened = await this.#openStudy(where, this.#leaseAbort.signal)
      try {
        this.#leases.recordAccess(lease, 'unwrap')
        for await (const part10 of this.#decrypted(opened, undefined, this.#leaseAbort.signal)) {
          const entry = this.#entryOf(parseDicom(part10), instanceDigestOfBytes(part10).digest, where)
          const known = this.#entries.get(entry.sop)
          // This organization's own instance (received, or of a study it registered) stays its own: a lease does not replace it.
          if (known !== undefined && known.where.kind !== 'lease') continue
          await this.#persist(entry, false)
          this.#entries.set(entry.sop, entry)
          n++
        }
      } finally {
        opened.close()
      }
    } catch (err) {
      await this.#dropEntries((e) => e.where.kind === 'lease' && e.where.leaseId === id, undefined)
      await this.#kv.del(LEASED_PREFIX + id, { sync: true })
      throw err
    }
    await this.#kv.put(LEASED_PREFIX + id, new Uint8Array([1]), { sync: true })
    this.#leased.add(id)
    this.#log.info('dicomweb: a leased study is indexed', { lease: id, study: where.studyId, scope: lease.scope, instances: n })
  }

  /** Removes what a lease showed from the index, and remembers its studies so that asking again gets a clear refusal. */
  async #dropLease(leaseIdHex: string, why: EndedWhy): Promise<void> {
    await this.#dropEntries((e) => e.where.kind === 'lease' && e.where.leaseId === leaseIdHex, why)
    await this.#kv.del(LEASED_PREFIX + leaseIdHex, { sync: true })
    this.#leased.delete(leaseIdHex)
    // Another lease of the same study and scope still active showed the same UIDs, so its entries were replaced by
    // this one's: it is indexed again. A lease of the other scope shows other UIDs and keeps its entries.
    const ended = getLease(this.#chain.state, fromHex(leaseIdHex))
    if (ended !== undefined)
      for (const other of [...this.#leased]) {
        const l = getLease(this.#chain.state, fromHex(other))
        if (l === undefined || toHex(l.studyId) !== toHex(ended.studyId) || l.scope !== ended.scope) continue
        this.#leased.delete(other)
        await this.#dropEntries((e) => e.where.kind === 'lease' && e.where.leaseId === other, undefined)
        await this.#kv.del(LEASED_PREFIX + other, { sync: true })
        this.#syncLeasesSoon()
      }
    this.#log.info('dicomweb: a lease ended; what it showed left the index', { lease: leaseIdHex, why })
  }

  /** Deletes the index entries `pred` picks; those shown under a lease leave a marker of their study (an HMAC of its UID) saying why. */
  async #dropEntries(pred: (e: Entry) => boolean, why: EndedWhy | undefined): Promise<void> {
    const gone = [...this.#entries.values()].filter(pred)
    const studies = new Set<string>()
    for (const e of gone) {
      this.#entries.delete(e.sop)
      await this.#kv.del(ENTRY_PREFIX + this.#hmac(`sop:${e.sop}`))
      if (e.where.kind === 'lease') studies.add(e.study)
    }
    if (why !== undefined) for (const uid of studies) await this.#kv.put(ENDED_PREFIX + this.#hmac(`ended:${uid}`), utf8(why))
    await this.#kv.put(COMMIT_KEY, new Uint8Array([1]), { sync: true })
  }

  /** Indexes a study `study add` registered, from the files it was made from (those received over STOW-RS are indexed already). */
  async #indexFiles(studyId: Uint8Array, files: readonly string[]): Promise<void> {
    const sid = toHex(studyId)
    // A study from the spool: its instances are indexed already, and its registration points them at it.
    if (files.length > 0 && files.every((f) => f.startsWith(this.#opts.spoolDir + '/'))) return
    for (const path of files) {
      const inst = await readDicom(path)
      const sop = firstString(inst.dataset, TAG.SOPInstanceUID) ?? ''
      const known = this.#entries.get(sop)
      // A received instance: its registration points it at the study.
      if (known?.where.kind === 'spool') continue
      const entry = this.#entryOf(inst, instanceDigestOfBytes(await readFile(path)).digest, { kind: 'study', studyId: sid })
      await this.#persist(entry)
      this.#entries.set(sop, entry)
    }
    await this.#kv.put(INDEXED_PREFIX + sid, new Uint8Array([1]), { sync: true })
  }

  /**
   * Indexes this organization's studies registered before (an earlier
   * version, or a crash between a registration and its indexing): each is
   * decrypted once from its chunks, one at a time, in the background.
   */
  async #backfill(): Promise<void> {
    const me = this.#chain.orgByKey(this.#keys.signer.publicKey)?.id
    if (me === undefined) return
    const own = listStudies(this.#chain.state).filter((r) => r.custodian === me)
    let done = 0
    for (const r of own) {
      if (this.#stopped) return
      const sid = toHex(r.studyId)
      if ((await this.#kv.get(INDEXED_PREFIX + sid)) !== undefined) continue
      if ([...this.#entries.values()].some((e) => e.where.kind === 'study' && e.where.studyId === sid)) {
        await this.#kv.put(INDEXED_PREFIX + sid, new Uint8Array([1]), { sync: true })
        continue
      }
      if ((await this.#index.chunkList(r.studyId)) === undefined) continue
      const opened = await this.#openStudy({ kind: 'study', studyId: sid }, new AbortController().signal)
      try {
        for await (const part10 of this.#decrypted(opened, undefined, new AbortController().signal)) {
          const inst = parseDicom(part10)
          const sop = firstString(inst.dataset, TAG.SOPInstanceUID) ?? ''
          if (this.#entries.has(sop)) continue
          const entry = this.#entryOf(inst, instanceDigestOfBytes(part10).digest, { kind: 'study', studyId: sid })
          await this.#persist(entry)
          this.#entries.set(sop, entry)
        }
      } finally {
        opened.close()
      }
      await this.#kv.put(INDEXED_PREFIX + sid, new Uint8Array([1]), { sync: true })
      done++
    }
    if (done > 0) this.#log.info('dicomweb: earlier studies indexed', { studies: done })
  }

  #entryOf(inst: DicomInstance, pixelDigest: string, where: Where): Entry {
    const ds = inst.dataset
    return {
      sop: firstString(ds, TAG.SOPInstanceUID) ?? '',
      sopClass: firstString(ds, TAG.SOPClassUID) ?? '',
      study: firstString(ds, TAG.StudyInstanceUID) ?? '',
      series: firstString(ds, TAG.SeriesInstanceUID) ?? '',
      pixelDigest,
      levels: splitLevels(ds),
      where,
    }
  }

  /** Stops the timers and the indexing of leased studies (waits for it to end, before the store closes). */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#chain.off('block', this.#onBlock)
    this.#leaseAbort.abort(new Error('the DICOMweb service is stopping'))
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    // A registration still receiving fails; its instances stay in the spool for the next start.
    for (const f of this.#feeds.values()) f.abort()
    await this.#leaseSync
  }

  authenticate(token: string): DicomwebClient | undefined {
    return this.#tokens.authenticate(token)
  }

  openStore(client: string): StoreSession {
    const pending = { files: [] as string[], folders: new Set<string>(), newFolder: false }
    return {
      store: (part10, opts) => this.#store(part10, { ...opts, client }, pending),
      commit: async () => {
        // Every file, its folder, a new folder's name, then the index entries (one synced write carries the earlier ones).
        const files = pending.files.splice(0)
        for (let i = 0; i < files.length; i += SYNCS_AT_ONCE) await Promise.all(files.slice(i, i + SYNCS_AT_ONCE).map((f) => fsyncPath(f)))
        for (const folder of pending.folders) await fsyncPath(join(this.#opts.spoolDir, folder))
        if (pending.newFolder) await fsyncPath(this.#opts.spoolDir)
        await this.#kv.put(COMMIT_KEY, new Uint8Array([1]), { sync: true })
        for (const folder of pending.folders) {
          this.#schedule(folder, this.#opts.stableMs)
          this.#committed(
            folder,
            files.filter((f) => dirname(f) === join(this.#opts.spoolDir, folder)),
          )
        }
        pending.folders.clear()
        pending.newFolder = false
      },
    }
  }

  async #store(
    part10: Uint8Array,
    opts: { study?: string; sopClassUid?: string; sopInstanceUid?: string; client: string },
    pending: { files: string[]; folders: Set<string>; newFolder: boolean },
  ): Promise<StoreOutcome> {
    let sop: string | undefined
    let sopClass: string | undefined
    try {
      const inst = parseDicom(part10, undefined, { requireUids: true })
      sop = firstString(inst.dataset, TAG.SOPInstanceUID) ?? ''
      sopClass = firstString(inst.dataset, TAG.SOPClassUID) ?? ''
      const study = firstString(inst.dataset, TAG.StudyInstanceUID) ?? ''
      const series = firstString(inst.dataset, TAG.SeriesInstanceUID) ?? ''
      if (opts.study !== undefined && opts.study !== study)
        return {
          ok: false,
          sopClassUid: sopClass,
          sopInstanceUid: sop,
          reason: FAILURE_REASON.studyMismatch,
          message: 'the instance is of another study than the URL names',
        }
      if ((opts.sopClassUid !== undefined && opts.sopClassUid !== sopClass) || (opts.sopInstanceUid !== undefined && opts.sopInstanceUid !== sop))
        return {
          ok: false,
          sopClassUid: sopClass,
          sopInstanceUid: sop,
          reason: FAILURE_REASON.datasetMismatch,
          message: 'the dataset names another SOP Class or Instance UID than the request',
        }
      const pixelDigest = instanceDigestOfBytes(part10).digest
      const ok: StoreOutcome = { ok: true, sopClassUid: sopClass, sopInstanceUid: sop, studyUid: study, seriesUid: series, duplicate: true }
      const sopUid = sop
      const classUid = sopClass
      // One SOP Instance UID at a time: two requests carrying it cannot both pass the duplicate check.
      return await this.#bySop(sopUid, async (): Promise<StoreOutcome> => {
        // An instance shown under a lease is not this organization's: receiving it stores its own copy, which stays when the lease ends.
        const shown = this.#entries.get(sopUid)
        const known = shown?.where.kind === 'lease' ? undefined : shown
        if (known !== undefined) {
          if (known.pixelDigest === pixelDigest && known.study === study && known.series === series) {
            // Acknowledged again: durable by this request's commit too, in case another request stored it and has not committed yet.
            if (known.where.kind === 'spool') {
              pending.files.push(known.where.file)
              pending.folders.add(this.#hmac(`study:${known.study}`))
            }
            return ok
          }
          return {
            ok: false,
            sopClassUid: classUid,
            sopInstanceUid: sopUid,
            reason: FAILURE_REASON.duplicateConflict,
            message:
              known.pixelDigest === pixelDigest
                ? 'an instance of this SOP Instance UID is stored already, in another study or series'
                : 'an instance of this SOP Instance UID is stored already, with other pixels',
          }
        }
        const folder = this.#hmac(`study:${study}`)
        const file = join(this.#opts.spoolDir, folder, `${this.#hmac(`sop:${sopUid}`)}.dcm`)
        const entry = this.#entryOf(inst, pixelDigest, { kind: 'spool', file, bytes: part10.length })
        // Written here, made durable by the request's commit before its answer.
        pending.newFolder =
          (await this.#inFolder(folder, async (created) => {
            const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`
            await writeFile(tmp, part10, { mode: 0o600, flag: 'wx' })
            await rename(tmp, file)
            await this.#persist(entry, false)
            return created
          })) || pending.newFolder
        pending.files.push(file)
        pending.folders.add(folder)
        this.#entries.set(sopUid, entry)
        return { ...ok, duplicate: false }
      })
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      const unreadable = code.startsWith('DICOM_')
      const nospace = code === 'ENOSPC' || code === 'EDQUOT'
      if (!unreadable) this.#log.warn('dicomweb: an instance could not be stored', { client: opts.client, code, err: errorMessage(err) })
      return {
        ok: false,
        ...(sopClass === undefined ? {} : { sopClassUid: sopClass }),
        ...(sop === undefined ? {} : { sopInstanceUid: sop }),
        reason: unreadable ? FAILURE_REASON.cannotUnderstand : nospace ? FAILURE_REASON.outOfResources : FAILURE_REASON.processingFailure,
        message: unreadable ? `not a readable DICOM instance (${code})` : `could not be stored on this node (${code || 'error'})`,
      }
    }
  }

  async instances(): Promise<Iterable<IndexedInstance>> {
    return this.#visible().map((e) => e.levels)
  }

  /**
   * Entries this node may show: received ones, those of registered studies
   * still on the ledger (an erased study is gone), and those of studies
   * leased to this organization while the lease is active in chain time (an
   * ended one is not shown from the moment the head says so, before the
   * index forgets it).
   */
  #visible(): Entry[] {
    const onLedger = new Map<string, boolean>()
    const leaseOk = new Map<string, boolean>()
    const now = this.#chain.head().header.time
    return [...this.#entries.values()].filter((e) => {
      if (e.where.kind === 'spool') return true
      const id = e.where.studyId
      let ok = onLedger.get(id)
      if (ok === undefined) {
        ok = getStudy(this.#chain.state, fromHex(id)) !== undefined
        onLedger.set(id, ok)
        if (!ok) void this.#forget(id)
      }
      if (!ok || e.where.kind !== 'lease') return ok
      const lid = e.where.leaseId
      let active = leaseOk.get(lid)
      if (active === undefined) {
        const l = getLease(this.#chain.state, fromHex(lid))
        active = l !== undefined && leaseActive(l, now)
        leaseOk.set(lid, active)
        if (!active) this.#syncLeasesSoon()
      }
      return active
    })
  }

  /** Removes the index entries of a study that left the ledger (erased): its demographics must not outlive it here either. */
  async #forget(studyIdHex: string): Promise<void> {
    try {
      await this.#dropEntries((e) => e.where.kind !== 'spool' && e.where.studyId === studyIdHex, 'erased')
      this.#log.info('dicomweb: an erased study left the index', { study: studyIdHex })
    } catch (err) {
      this.#log.warn('dicomweb: could not remove an erased study from the index', { study: studyIdHex, err: errorMessage(err) })
    }
  }

  /**
   * The entries a WADO-RS request names. Nothing found for a study shown
   * under a lease that has ended: a refusal saying so (DICOMWEB_LEASE_ENDED),
   * not "no such study". Reads under a lease are recorded on the ledger (at
   * most once per LEASE_READ_RECORD_MS per lease), before anything is served.
   */
  async #selectRead(sel: Selection): Promise<Entry[]> {
    const found = this.#select(sel)
    if (found.length === 0) {
      const why = await this.#kv.get(ENDED_PREFIX + this.#hmac(`ended:${sel.study}`))
      if (why !== undefined) {
        const text = Buffer.from(why).toString('utf8')
        throw new DicomwebError(
          'DICOMWEB_LEASE_ENDED',
          text === 'erased'
            ? 'this study was shown under a lease, and has been erased: nothing of it is served'
            : `the lease that showed this study ${text === 'revoked' ? 'was revoked' : 'has ended'}: nothing of it is served`,
        )
      }
      return found
    }
    const now = Date.now()
    for (const e of found) {
      if (e.where.kind !== 'lease') continue
      const lid = e.where.leaseId
      if (now - (this.#readRecordedAt.get(lid) ?? -Infinity) < LEASE_READ_RECORD_MS) continue
      const lease = getLease(this.#chain.state, fromHex(lid))
      if (lease === undefined) continue
      // Throws when the ledger does not take it (the lease ended meanwhile, a full mempool): then nothing is served.
      this.#leases.recordAccess(lease, 'retrieve')
      this.#readRecordedAt.set(lid, now)
    }
    return found
  }

  async metadata(sel: Selection): Promise<DicomDataset[] | undefined> {
    const found = await this.#selectRead(sel)
    if (found.length === 0) return undefined
    return found.map((e) => ({ ...e.levels.study, ...e.levels.series, ...e.levels.instance, ...pixelPlaceholder(e) }))
  }

  async retrieve(sel: Selection, signal: AbortSignal): Promise<AsyncIterable<Uint8Array> | undefined> {
    const found = await this.#selectRead(sel)
    if (found.length === 0) return undefined
    return this.#read(found, signal)
  }

  async instance(sel: Required<Selection>, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const found = await this.#selectRead(sel)
    if (found.length === 0) return undefined
    for await (const b of this.#read(found.slice(0, 1), signal)) return b
    return undefined
  }

  async *#read(found: Entry[], signal: AbortSignal): AsyncGenerator<Uint8Array> {
    // Spooled ones from their files; registered and leased ones study by study, each opened once.
    const byStudy = new Map<string, { where: Exclude<Where, { kind: 'spool' }>; sops: Set<string> }>()
    for (const e of found) {
      if (e.where.kind === 'spool') {
        signal.throwIfAborted()
        yield await readFile(e.where.file)
      } else {
        const k = e.where.kind === 'lease' ? `l:${e.where.leaseId}` : `s:${e.where.studyId}`
        const group = byStudy.get(k) ?? { where: e.where, sops: new Set<string>() }
        group.sops.add(e.sop)
        byStudy.set(k, group)
      }
    }
    for (const { where, sops } of byStudy.values()) {
      const opened = await this.#openStudy(where, signal)
      try {
        yield* this.#fromStudy(opened, sops, signal)
      } finally {
        opened.close()
      }
    }
  }

  /**
   * Opens a registered study for reading: this organization's own with its
   * custodian envelope (identity restored), a leased one with the lease's
   * envelope (images: the data key, shown de-identified; full: the study key,
   * identity restored). A leased study's chunks this node does not have are
   * fetched from the swarm under the lease first; a lease no longer active
   * is refused.
   */
  async #openStudy(where: Exclude<Where, { kind: 'spool' }>, signal: AbortSignal): Promise<OpenedStudy> {
    const record = getStudy(this.#chain.state, fromHex(where.studyId))
    if (record === undefined) throw new Error('a study of the DICOMweb index is no longer on the ledger')
    const studyId = record.studyId
    let lease: LeaseRecord | undefined
    if (where.kind === 'lease') {
      lease = getLease(this.#chain.state, fromHex(where.leaseId))
      if (lease === undefined || lease.envelope === null || !leaseActive(lease, this.#chain.head().header.time))
        throw new DicomwebError('DICOMWEB_LEASE_ENDED', 'the lease that shows this study has ended: nothing of it is served')
    }
    const under = lease
    let list = await this.#index.chunkList(studyId)
    if (list === undefined) {
      if (under === undefined) throw new Error('a registered study of the DICOMweb index is not on this node')
      list = await this.#swarm.fetchChunks(record, { kind: 'fetch', lease: under, signal })
    }
    const ids = list
    // Chunks are checked by their reader (openPack, unpackStudy) against their ids: not hashed twice.
    const chunk = async (i: number): Promise<Uint8Array> => {
      const id = ids[i] as Uint8Array
      let b = await this.#chunks.get(id, { verify: false })
      if (b === undefined && under !== undefined) {
        await this.#swarm.fetchChunks(record, { kind: 'fetch', lease: under, signal })
        b = await this.#chunks.get(id, { verify: false })
      }
      if (b === undefined) throw new Error('a chunk of a registered study is missing from the chunk store')
      return b
    }
    const own = async (id: Uint8Array): Promise<Uint8Array> => {
      const b = await this.#chunks.get(id)
      if (b === undefined) throw new Error('an object of a registered study is missing from the chunk store')
      return b
    }
    let secret: Uint8Array
    let key: OpenedStudy['key']
    let demo: DemographicsRecord | undefined
    if (under === undefined) {
      secret = unwrapStudyKey(this.#keys, await own(record.custodianEnvelope), studyId)
      key = secret
    } else {
      secret = unwrapLeaseKey(this.#keys, await this.#swarm.fetchObject(record, under.envelope as Uint8Array, signal), under)
      key = under.scope === 'full' ? secret : { dataKey: secret }
    }
    try {
      if (under === undefined) demo = decryptDemographics(await own(record.demographics), secret, studyId)
      else if (under.scope === 'full') demo = decryptDemographics(await this.#swarm.fetchObject(record, record.demographics, signal), secret, studyId)
    } catch (err) {
      secret.fill(0)
      throw err
    }
    return { record, list: ids, key, demo, chunk, close: () => secret.fill(0) }
  }

  /**
   * The instances `sops` (the UIDs the caller sees) of an opened study. A
   * few are read on their own (only the chunks they lie in are decrypted: a
   * viewer's frame does not wait for the study); many, by decrypting the
   * study in order.
   */
  async *#fromStudy(opened: OpenedStudy, sops: Set<string>, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    if (sops.size > RANDOM_ACCESS_MAX) {
      yield* this.#decrypted(opened, sops, signal)
      return
    }
    let pack: PackReader | undefined
    try {
      pack = await openPack((i) => opened.chunk(i), opened.list, opened.record, opened.key)
      // The UID the caller sees -> its identity record (which names the de-identified one the pack knows).
      const byShown = new Map<string, InstanceIdentityRecord>()
      for (const r of opened.demo?.instances ?? []) {
        const orig = r.changes.find((c) => c.path === TAG.SOPInstanceUID)?.original?.Value?.[0]
        byShown.set(typeof orig === 'string' ? orig : r.sopInstanceUid, r)
      }
      const entries = new Map(pack.manifest.instances.map((e) => [e.sopInstanceUid, e]))
      for (const sop of sops) {
        signal.throwIfAborted()
        const rec = byShown.get(sop)
        const e = entries.get(opened.demo === undefined ? sop : (rec?.sopInstanceUid ?? ''))
        if (e === undefined || (opened.demo !== undefined && rec === undefined))
          throw new Error('an instance of the DICOMweb index is not in its registered study')
        const bytes = await pack.instance(e)
        yield rec === undefined ? bytes : writeDicom(restoreIdentity(parseDicom(bytes), rec))
      }
    } finally {
      pack?.close()
    }
  }

  /** An opened study decrypted in order: every instance, or those of `sops` (the UIDs the caller sees). */
  async *#decrypted(opened: OpenedStudy, sops: Set<string> | undefined, signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const records = opened.demo === undefined ? undefined : new Map<string, InstanceIdentityRecord>(opened.demo.instances.map((r) => [r.sopInstanceUid, r]))
    for await (const part10 of unpackStudy((i) => opened.chunk(i), opened.record, opened.key)) {
      signal.throwIfAborted()
      if (records === undefined) {
        if (sops === undefined || sops.has(firstString(parseDicom(part10).dataset, TAG.SOPInstanceUID) ?? '')) yield part10
        continue
      }
      const inst = parseDicom(part10)
      const rec = records.get(firstString(inst.dataset, TAG.SOPInstanceUID) ?? '')
      if (rec === undefined) throw new Error('an instance of a registered study has no demographics record')
      const restored = restoreIdentity(inst, rec)
      if (sops === undefined || sops.has(firstString(restored.dataset, TAG.SOPInstanceUID) ?? '')) yield writeDicom(restored)
    }
  }

  #select(sel: Selection): Entry[] {
    const out = this.#visible().filter(
      (e) => e.study === sel.study && (sel.series === undefined || e.series === sel.series) && (sel.instance === undefined || e.sop === sel.instance),
    )
    const num = (ds: DicomDataset, tag: string): number => firstNumber(ds, tag) ?? 0
    return out.sort(
      (a, b) =>
        num(a.levels.series, '00200011') - num(b.levels.series, '00200011') ||
        (a.series < b.series ? -1 : a.series > b.series ? 1 : 0) ||
        num(a.levels.instance, '00200013') - num(b.levels.instance, '00200013') ||
        (a.sop < b.sop ? -1 : a.sop > b.sop ? 1 : 0),
    )
  }

  #schedule(folder: string, ms: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timers.get(folder))
    const t = setTimeout(() => {
      this.#timers.delete(folder)
      void this.#register(folder)
    }, ms)
    t.unref()
    this.#timers.set(folder, t)
  }

  /**
   * A spool folder's study is stable (no instance for `stableMs`): the
   * registration packing it as its instances arrived ends its input and
   * registers; without one (a start, a retry), one is run over the folder's
   * files. A registration sent before a crash or a stop is finished if final,
   * and not sent twice while it may still become final.
   */
  async #register(folder: string): Promise<void> {
    if (this.#stopped) return
    const feed = this.#feeds.get(folder)
    if (feed !== undefined) {
      // Instances committed after its input ended wait for the next registration.
      if (feed.ended) this.#again.add(folder)
      else feed.end()
      return
    }
    if (this.#registering.has(folder)) {
      this.#again.add(folder)
      return
    }
    // Held while its record is read: a commit meanwhile must not start a registration of the same files.
    this.#held.add(folder)
    // A registration sent before a crash or a stop: finished here if final, not sent twice.
    const pendingRec = await this.#kv.get(REGISTERING_PREFIX + folder)
    if (pendingRec !== undefined) {
      const rec = JSON.parse(Buffer.from(pendingRec).toString('utf8')) as { studyId: string; files: string[]; at: number }
      if (getStudy(this.#chain.state, fromHex(rec.studyId)) !== undefined) {
        await this.#finish(folder, rec.studyId, rec.files)
        this.#held.delete(folder)
        this.#log.info('dicomweb: a registration sent before the last stop is final; its instances point at it', { study: rec.studyId })
        await this.#afterRegistration(folder, undefined)
        return
      }
      // Perhaps still on its way to a block (sent to the other organizations before the stop): wait a while before sending another.
      if (Date.now() - rec.at < PENDING_REGISTRATION_MS) {
        this.#schedule(folder, 15_000)
        return
      }
      await this.#kv.del(REGISTERING_PREFIX + folder, { sync: true })
    }
    this.#held.delete(folder)
    await this.#runRegistration(folder, true)
  }

  /**
   * Registers the instances of one spool folder as a study (as `study add`
   * does, `StudyJobs.startStream`), then points their index entries at it and
   * removes them from the spool. The folder's files are packed as they are
   * committed while the input is open (`ended` false: the study is still
   * arriving, and its stable timer ends the input); instances committed after
   * the input ended stay for the next registration.
   */
  async #runRegistration(folder: string, ended: boolean, committed: readonly string[] = []): Promise<void> {
    this.#registering.add(folder)
    const dir = join(this.#opts.spoolDir, folder)
    let retryMs: number | undefined
    const feed = new SpoolFeed()
    this.#feeds.set(folder, feed)
    try {
      // The files just committed first, in the order they arrived (the pack, and a whole-study answer, follow it), then any others.
      feed.push(committed.map((f) => basename(f)))
      const names = await this.#inFolder(folder, async () => (await readdir(dir)).filter((f) => f.endsWith('.dcm')))
      feed.push(names)
      if (ended) feed.end()
      // The patient the instances name, for a patient link: those here now decide; one naming another later stops this
      // registration, and the next one (all of them, 'mixed') registers the study without an owner.
      const scanned = this.#patientOf(names.map((n) => join(dir, n)))
      const packed: string[] = []
      const patientOf = (path: string): ScannedPatient | undefined => this.#patientOf([path])
      const source = async function* (): AsyncGenerator<string> {
        for await (const name of feed.names()) {
          const path = join(dir, name)
          const p = scanned === 'mixed' ? undefined : patientOf(path)
          if (
            scanned !== undefined &&
            scanned !== 'mixed' &&
            p !== undefined &&
            p !== 'mixed' &&
            (p.patientId !== scanned.patientId || p.issuer !== scanned.issuer)
          ) {
            mixed = true
            throw new Error('an instance of the study names another patient than the first ones')
          }
          packed.push(name)
          yield path
        }
      }
      let mixed = false
      const earlier = this.#latestVersion(folder)
      const job = this.#studies.startStream(source(), {
        ...(scanned === undefined ? {} : { scanned }),
        ...(earlier === undefined ? {} : { extends: earlier }),
        onPacked: async (studyId) => {
          const rec = { studyId: toHex(studyId), files: packed, at: Date.now() }
          await this.#kv.put(REGISTERING_PREFIX + folder, utf8(JSON.stringify(rec)), { sync: true })
        },
      })
      let view = this.#studies.get(job)
      while (view !== undefined && view.kind === 'add' && !['replicating', 'done', 'failed'].includes(view.state)) {
        await sleep(100)
        view = this.#studies.get(job)
      }
      const added = view?.kind === 'add' && view.state !== 'failed' ? view.studies[0] : undefined
      const studyId = added?.studyId
      // Sent, but not final (yet): its record stays, its files stay, and the folder waits for the timer's look at
      // the record (finished once final; sent again only after PENDING_REGISTRATION_MS). A commit meanwhile does
      // not start another registration of the same files.
      if ((added !== undefined && added.height === null) || (studyId === undefined && (await this.#kv.get(REGISTERING_PREFIX + folder)) !== undefined)) {
        this.#held.add(folder)
        if (this.#stopped) return
        this.#log.warn('dicomweb: a received study was sent for registration and is not final yet; its instances stay in the spool until it is', {
          instances: packed.length,
        })
        retryMs = 15_000
        return
      }
      if (studyId === undefined) {
        if (this.#stopped) return
        if (packed.length === 0 && feed.ended && !mixed) {
          // Nothing to register (the folder was empty).
          await this.#inFolder(folder, () => rm(dir, { recursive: true, force: true }))
          return
        }
        if (mixed) {
          this.#log.warn('dicomweb: a study being received names more than one patient; it is registered again without a patient link', {
            instances: packed.length,
          })
          return
        }
        this.#log.warn('dicomweb: registering a received study failed; it stays in the spool and is tried again', {
          code: view?.error?.code ?? 'unknown',
          instances: packed.length,
          retryMs: RETRY_MS,
        })
        retryMs = RETRY_MS
        return
      }
      await this.#finish(folder, studyId, packed)
      this.#log.info('dicomweb: received study registered', { study: studyId, instances: packed.length })
    } catch (err) {
      this.#log.warn('dicomweb: registering a received study failed; it is tried again', { err: errorMessage(err), retryMs: RETRY_MS })
      retryMs = RETRY_MS
    } finally {
      feed.abort()
      this.#feeds.delete(folder)
      this.#registering.delete(folder)
      await this.#afterRegistration(folder, retryMs)
    }
  }

  /**
   * The newest version on the ledger of the study a spool folder receives
   * (its Study Instance UID registered before by this node), when it can be
   * extended: then the folder's instances register a new version naming it.
   * An erased newest version ends the chain: they register a study of its own.
   */
  #latestVersion(folder: string): Uint8Array | undefined {
    const dir = join(this.#opts.spoolDir, folder)
    let uid: string | undefined
    for (const e of this.#entries.values()) {
      if (e.where.kind === 'spool' && dirname(e.where.file) === dir) {
        uid = e.study
        break
      }
    }
    if (uid === undefined) return undefined
    let newest: { id: Uint8Array; height: number } | undefined
    for (const e of this.#entries.values()) {
      if (e.where.kind !== 'study' || e.study !== uid) continue
      const versions = studyVersions(this.#chain.state, fromHex(e.where.studyId))
      const last = versions[versions.length - 1]
      if (last !== undefined && (newest === undefined || last.height > newest.height)) newest = { id: last.studyId, height: last.height }
      if (last !== undefined && last.erased) newest = { id: last.studyId, height: Number.MAX_SAFE_INTEGER }
    }
    if (newest === undefined || getStudy(this.#chain.state, newest.id) === undefined || nextVersion(this.#chain.state, newest.id) !== undefined)
      return undefined
    return newest.id
  }

  /**
   * The patient (Patient ID and issuer, for a patient link) the index
   * entries of these spooled files name: the same in all, 'mixed', or
   * undefined when none is indexed.
   */
  #patientOf(files: readonly string[]): ScannedPatient | undefined {
    const wanted = new Set(files)
    let found: ScannedPatient | undefined
    for (const e of this.#entries.values()) {
      if (e.where.kind !== 'spool' || !wanted.has(e.where.file)) continue
      const p = {
        patientId: (firstString(e.levels.study, TAG.PatientID) ?? '').trim(),
        issuer: (firstString(e.levels.study, TAG.IssuerOfPatientID) ?? '').trim(),
      }
      if (found === undefined) found = p
      else if (found !== 'mixed' && (found.patientId !== p.patientId || found.issuer !== p.issuer)) return 'mixed'
    }
    return found
  }

  /** After a registration: a retry, or the next registration for the instances that arrived meanwhile, once stable. */
  async #afterRegistration(folder: string, retryMs: number | undefined): Promise<void> {
    const again = this.#again.delete(folder)
    const left = await readdir(join(this.#opts.spoolDir, folder)).then(
      (names) => names.some((f) => f.endsWith('.dcm')),
      () => false,
    )
    if (retryMs !== undefined) this.#schedule(folder, retryMs)
    else if (again || (left && !this.#timers.has(folder))) this.#schedule(folder, this.#opts.stableMs)
  }

  /**
   * Instances of a folder just made durable by a STOW-RS commit: given to the
   * registration packing the folder while its input is open, or starting one
   * (which takes every file in the folder). A folder left by an earlier run
   * waits for its stable timer (its registration may have been sent already).
   */
  #committed(folder: string, files: readonly string[]): void {
    if (this.#stopped || this.#held.has(folder)) return
    const feed = this.#feeds.get(folder)
    if (feed !== undefined) {
      if (!feed.ended) feed.push(files.map((f) => basename(f)))
      return
    }
    if (this.#registering.has(folder)) return
    void this.#runRegistration(folder, false, files)
  }

  /** Points the entries of the registered files at their study, then removes the files from the spool and the registration's record. */
  async #finish(folder: string, studyId: string, files: readonly string[]): Promise<void> {
    const dir = join(this.#opts.spoolDir, folder)
    const paths = new Set(files.map((f) => join(dir, f)))
    const entries = [...this.#entries.values()].filter((e) => e.where.kind === 'spool' && paths.has(e.where.file))
    for (const [i, e] of entries.entries()) {
      e.where = { kind: 'study', studyId }
      await this.#persist(e, i === entries.length - 1)
    }
    await this.#inFolder(folder, async () => {
      for (const p of paths) await rm(p, { force: true })
      if ((await readdir(dir)).length === 0) await rm(dir, { recursive: true, force: true })
    })
    await this.#kv.del(REGISTERING_PREFIX + folder, { sync: true })
  }

  /** Runs `fn` alone for one SOP Instance UID. */
  #bySop<T>(sop: string, fn: () => Promise<T>): Promise<T> {
    return serialized(this.#sopLocks, sop, fn)
  }

  /** Runs `fn` alone on a study's spool folder (made if missing: `created` says so; its name is the caller's to make durable). */
  #inFolder<T>(folder: string, fn: (created: boolean) => Promise<T>): Promise<T> {
    return serialized(this.#folderLocks, folder, async () =>
      fn((await mkdir(join(this.#opts.spoolDir, folder), { recursive: true, mode: 0o700 })) !== undefined),
    )
  }

  #hmac(s: string): string {
    return createHmac('sha256', this.#key).update(s, 'utf8').digest('hex').slice(0, 32)
  }

  async #persist(e: Entry, sync = true): Promise<void> {
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', this.#key, iv)
    const body = Buffer.concat([c.update(utf8(JSON.stringify(e))), c.final()])
    await this.#kv.put(ENTRY_PREFIX + this.#hmac(`sop:${e.sop}`), Buffer.concat([iv, body, c.getAuthTag()]), { sync })
  }

  #open(v: Uint8Array): Entry {
    const b = Buffer.from(v)
    const d = createDecipheriv('aes-256-gcm', this.#key, b.subarray(0, 12))
    d.setAuthTag(b.subarray(b.length - 16))
    const text = Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString('utf8')
    return JSON.parse(text) as Entry
  }
}

/** Whether a spooled file is there whole: present, and as long as it was received (when that was recorded). */
async function spooledWhole(file: string, bytes: number | undefined): Promise<boolean> {
  try {
    const st = await stat(file)
    return st.isFile() && (bytes === undefined ? st.size > 0 : st.size === bytes)
  } catch {
    return false
  }
}

/** Runs `fn` after every earlier call for the same key has settled; `locks` holds each key's last call while it runs. */
function serialized<T>(locks: Map<string, Promise<void>>, key: string, fn: () => Promise<T>): Promise<T> {
  const run = (locks.get(key) ?? Promise.resolve()).then(fn)
  const done = run.then(
    () => undefined,
    () => undefined,
  )
  locks.set(key, done)
  void done.then(() => {
    if (locks.get(key) === done) locks.delete(key)
  })
  return run
}

/** Pixel Data named, without its value, so that the metadata answer can point at it (PS3.18 F.2.6). */
function pixelPlaceholder(e: Entry): DicomDataset {
  return e.levels.instance['7FE00010'] === undefined && (firstNumber(e.levels.instance, '00280010') ?? 0) > 0 ? { '7FE00010': { vr: 'OW' } } : {}
}

/**
 * The input of a registration that packs a study while its instances still
 * arrive: file names pushed as STOW-RS requests commit them, each given once,
 * until the input is ended (the study is stable) or aborted (the service
 * stops: the registration fails and its instances stay in the spool).
 */
class SpoolFeed {
  readonly #queue: string[] = []
  readonly #seen = new Set<string>()
  #ended = false
  #aborted = false
  #wake: (() => void) | undefined

  get ended(): boolean {
    return this.#ended || this.#aborted
  }

  push(names: readonly string[]): void {
    if (this.ended) return
    for (const n of names) {
      if (this.#seen.has(n)) continue
      this.#seen.add(n)
      this.#queue.push(n)
    }
    this.#notify()
  }

  end(): void {
    this.#ended = true
    this.#notify()
  }

  abort(): void {
    this.#aborted = true
    this.#notify()
  }

  #notify(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  async *names(): AsyncGenerator<string> {
    for (;;) {
      if (this.#aborted) throw new Error('the DICOMweb service stopped while a study was being received')
      const n = this.#queue.shift()
      if (n !== undefined) {
        yield n
        continue
      }
      if (this.#ended) return
      await new Promise<void>((resolve) => (this.#wake = resolve))
    }
  }
}
