import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { registerStudyTx, signTx, type RegisterStudyPayload } from '../chain/index.js'
import { mlkemFromX25519Private, sha256, type OrgKeys } from '../crypto/index.js'
import type { ChunkStore } from '../storage/index.js'
import { packageStudy, scanInputs } from '../study/index.js'
import { RadError, errorMessage, toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'

/** Where a `study add` job stands. */
export interface StudyJobView {
  readonly id: string
  readonly state: 'scanning' | 'packing' | 'registering' | 'done' | 'failed'
  /** Files found, files packed so far, bytes packed so far. */
  readonly files: number
  readonly filesDone: number
  readonly bytes: number
  /** Files that are not readable DICOM (skipped with skipBad, else the job fails naming them). */
  readonly bad: readonly { readonly path: string; readonly code: string; readonly message: string }[]
  readonly studies: readonly { readonly studyId: string; readonly tx: string; readonly height: number | null; readonly instances: number; readonly chunks: number; readonly size: number }[]
  readonly error: { readonly code: string; readonly message: string } | null
}

const MAX_JOBS = 100

/**
 * `study add` in the daemon: scans the given files and folders, and for each
 * study found de-identifies, packs and encrypts it into the chunk store with
 * its key envelope and encrypted demographics record beside the chunks, then
 * registers it on the ledger and waits until the registration is final.
 */
export class StudyJobs {
  readonly #chain: ChainService
  readonly #chunks: ChunkStore
  readonly #keys: OrgKeys
  readonly #logger: Logger
  readonly #jobs = new Map<string, StudyJobView>()

  constructor(modules: { chain: ChainService; chunks: ChunkStore; keys: OrgKeys; logger: Logger }) {
    this.#chain = modules.chain
    this.#chunks = modules.chunks
    this.#keys = modules.keys
    this.#logger = modules.logger
  }

  /** Starts a job; returns its id at once. */
  start(paths: readonly string[], opts: { skipBad: boolean }): string {
    const org = this.#chain.orgByKey(this.#keys.signer.publicKey)
    if (org === undefined) throw new RadError('STUDY_NOT_ADMITTED', 'this node\'s organization is not admitted on the ledger: it cannot keep studies')
    if (paths.length === 0) throw new RadError('STUDY_NO_INPUT', 'no files or folders given')
    const id = randomBytes(8).toString('hex')
    this.#set(id, { id, state: 'scanning', files: 0, filesDone: 0, bytes: 0, bad: [], studies: [], error: null })
    void this.#run(id, paths.map((p) => resolve(p)), opts.skipBad, org.id).catch((err: unknown) => {
      const code = err instanceof RadError ? err.code : 'STUDY_FAILED'
      this.#update(id, { state: 'failed', error: { code, message: errorMessage(err) } })
      this.#logger.warn('study job failed', { job: id, code })
    })
    return id
  }

  /** A job's current view, if known. */
  get(id: string): StudyJobView | undefined {
    return this.#jobs.get(id)
  }

  #set(id: string, v: StudyJobView): void {
    if (this.#jobs.size >= MAX_JOBS) {
      const first = this.#jobs.keys().next()
      if (first.done !== true) this.#jobs.delete(first.value)
    }
    this.#jobs.set(id, v)
  }

  #update(id: string, patch: Partial<StudyJobView>): void {
    const v = this.#jobs.get(id)
    if (v !== undefined) this.#jobs.set(id, { ...v, ...patch })
  }

  async #run(id: string, paths: string[], skipBad: boolean, custodianId: string): Promise<void> {
    const scan = await scanInputs(paths)
    const bad = scan.bad.map((b) => ({ path: b.path, code: b.error.code, message: b.error.message }))
    const files = [...scan.studies.values()].reduce((n, f) => n + f.length, 0)
    this.#update(id, { files, bad })
    if (bad.length > 0 && !skipBad) {
      throw new RadError('STUDY_BAD_INPUT', `${bad.length} file(s) are not readable DICOM (first: ${bad[0]?.message ?? ''}); nothing was registered. Fix them, or pass --skip-bad to leave them out`)
    }
    if (scan.studies.size === 0) throw new RadError('STUDY_NO_INPUT', 'no DICOM study found in the given paths')
    const custodian = { x25519: this.#keys.encryption.publicKey, mlkem: mlkemFromX25519Private(this.#keys.encryption.privateKey).publicKey }
    const studies: StudyJobView['studies'][number][] = []
    let filesBefore = 0
    let bytesBefore = 0
    for (const studyFiles of scan.studies.values()) {
      this.#update(id, { state: 'packing' })
      const packed = await packageStudy(studyFiles, {
        chunkSize: this.#chain.params().chunkSize,
        custodianId,
        custodian,
        store: this.#chunks,
        onProgress: (p) => this.#update(id, { filesDone: filesBefore + p.files, bytes: bytesBefore + p.bytes }),
      })
      filesBefore += studyFiles.length
      bytesBefore += packed.payload.size
      // Envelope and demographics ciphertext sit beside the chunks under their own hashes.
      await this.#chunks.put(sha256(packed.envelopes.custodian), packed.envelopes.custodian)
      await this.#chunks.put(sha256(packed.demographics.ciphertext), packed.demographics.ciphertext)
      this.#update(id, { state: 'registering' })
      const { hash, height } = await this.#register(packed.payload)
      studies.push({ studyId: toHex(packed.payload.studyId), tx: hash, height, instances: studyFiles.length, chunks: packed.payload.chunkCount, size: packed.payload.size })
      this.#update(id, { studies: [...studies] })
      this.#logger.info('study registered', { study: toHex(packed.payload.studyId), instances: studyFiles.length, chunks: packed.payload.chunkCount, height })
    }
    this.#update(id, { state: 'done' })
  }

  async #register(payload: RegisterStudyPayload): Promise<{ hash: string; height: number | null }> {
    const signer = this.#keys.signer
    const tx = signTx(signer, { chainId: this.#chain.chainId, type: registerStudyTx.name, nonce: this.#chain.nextNonce(signer.publicKey), payload })
    this.#chain.submit(tx)
    const hash = toHex(tx.id)
    // Wait (up to a minute) until the registration is final or refused.
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const s = await this.#chain.txStatus(hash)
      if (s.status === 'final') return { hash, height: s.height ?? null }
      if (s.status === 'rejected' || s.status === 'unknown') throw new RadError(s.error?.code ?? 'TX_REJECTED', `registration of the study was refused: ${s.error?.message ?? s.status}`)
      await new Promise<void>((r) => {
        const off = this.#chain.onCommitted(() => {
          off()
          r()
        })
        setTimeout(() => {
          off()
          r()
        }, 1000)
      })
    }
    return { hash, height: null }
  }
}
