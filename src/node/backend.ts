import {
  PARAM_FIELDS,
  TxError,
  decodeCanonical,
  encode,
  headerToJSON,
  listProposals,
  noteTx,
  orgToJSON,
  orgTx,
  signTx,
  type Block,
  type ChainParams,
  type OrgAction,
} from '../chain/index.js'
import type {
  ApiBackend,
  AuditEventView,
  BlockView,
  LeaseView,
  NodeEvent,
  NodeStatus,
  OrgVote,
  OrgsView,
  PatientLinkResult,
  PatientLinkView,
  PeerView,
  StudyJobView,
  StudyView,
  SwarmStatusView,
  TxStatus,
} from '../api/index.js'
import { fromHex, isHex, toHex } from '../util/index.js'
import type { OrgKeys } from '../crypto/index.js'
import type { ChainService } from './chain-service.js'
import type { StudyJobs } from './studies.js'
import type { SwarmService } from './swarm.js'
import type { LeaseService } from './leases.js'
import type { AuditService } from './audit.js'
import type { PatientLinks } from './patient-links.js'
import { StudyServiceError } from './errors.js'
import type { DimseSender } from './dimse-send.js'
import { dimsePeerKnown, type DimseDeliveries } from './dimse.js'

/** Runtime facts and hooks the node gives the API backend. */
export interface NodeInfo {
  readonly version: string
  apiUrl(): string
  peers(): { publicKey: Uint8Array; peerId: string; addr: string; encryption: string }[]
  consensus(): { height: number; round: number; step: string } | null
  /** Why consensus stopped on its own, if it did. */
  halted?(): { reason: string; height: number; round: number } | undefined
  /** The devnet's partition switch: present on devnet daemons only (src/node/faults.ts). */
  setBlocked?(keysHex: Set<string>): void
  /** True while the node is behind on checking its peers' transactions: new local ones wait. */
  busy(): boolean
  /** The `study add` jobs. */
  studies(): StudyJobs
  /** The swarm (replication, transfers). */
  swarm(): SwarmService
  /** Leases: grants, denials, revocations as custodian. */
  leases(): LeaseService
  /** Audit trails of studies. */
  audit(): AuditService
  /** This node's patient links (Patient ID to patient key). */
  links(): PatientLinks
  /** `study send` jobs (C-STORE to a configured DICOM peer). */
  sends?(): DimseSender
  /** `lease request --deliver-to`: leases whose study goes to a DICOM peer once granted. */
  deliveries?(): DimseDeliveries
  /** Where the PACS listeners are, when on: the DICOMweb root URL, the DIMSE `AE@host:port`. */
  gateways?(): { dicomweb?: string; dimse?: string }
}

/** The node seen through the API: chain queries, submission, events. */
export class NodeBackend implements ApiBackend {
  readonly #chain: ChainService
  readonly #keys: OrgKeys
  readonly #info: NodeInfo
  readonly #waiters = new Map<string, Set<(s: TxStatus) => void>>()
  readonly #listeners = new Set<(ev: NodeEvent) => void>()

  /** The devnet's partition switch (devnet daemons only; see src/node/faults.ts). */
  readonly setBlockedPeers?: (keys: string[]) => void

  constructor(modules: { chain: ChainService; keys: OrgKeys; info: NodeInfo }) {
    this.#chain = modules.chain
    this.#keys = modules.keys
    this.#info = modules.info
    // A production daemon has no partition switch, and so no partition route.
    const setBlocked = modules.info.setBlocked
    if (setBlocked !== undefined) this.setBlockedPeers = (keys) => setBlocked(new Set(keys))
    this.#chain.on('block', (b) => this.#onBlock(b))
    this.#chain.on('rejected', (tx, err) => {
      const hash = toHex(tx.id)
      this.#resolve(hash, { hash, status: 'rejected', error: { code: err.code, message: err.message } })
      this.#emit(() => ({ type: 'tx', data: { hash, status: 'rejected' } }))
    })
    this.#chain.on('pending', (tx) => this.#emit(() => ({ type: 'tx', data: { hash: toHex(tx.id), status: 'pending' } })))
  }

  #emit(make: () => NodeEvent): void {
    if (this.#listeners.size === 0) return
    const ev = make()
    for (const l of this.#listeners) l(ev)
  }

  #resolve(hash: string, s: TxStatus): void {
    const ws = this.#waiters.get(hash)
    if (ws === undefined) return
    this.#waiters.delete(hash)
    for (const w of ws) w(s)
  }

  #onBlock(b: Block): void {
    const height = b.header.height
    if (this.#waiters.size > 0) {
      b.txs.forEach((tx, index) => {
        const hash = toHex(tx.id)
        if (this.#waiters.has(hash)) this.#resolve(hash, { hash, status: 'final', height, index, blockHash: toHex(b.hash) })
      })
    }
    // One event per block, listing its transactions: they are final with it.
    this.#emit(() => ({ type: 'block', data: { ...headerToJSON(b.header, b.hash), txCount: b.txs.length, txs: b.txs.map((t) => toHex(t.id)) } }))
  }

  status(): NodeStatus {
    const head = this.#chain.head()
    const org = this.#chain.orgByKey(this.#keys.signer.publicKey)
    return {
      chainId: this.#chain.chainId,
      orgId: org?.id ?? null,
      role: org?.role ?? null,
      height: head.header.height,
      headHash: toHex(head.hash),
      headTime: head.header.time,
      stateRoot: toHex(head.header.stateRoot),
      peers: this.#info.peers().length,
      api: this.#info.apiUrl(),
      mempool: { size: this.#chain.mempool.size, bytes: this.#chain.mempool.bytes },
      authorities: this.#chain.authorities().members.length,
      version: this.#info.version,
      consensus: this.#info.consensus(),
      ...(this.#info.halted?.() === undefined ? {} : { halted: this.#info.halted() }),
      ...this.#info.gateways?.(),
    }
  }

  submitTx(bytes: Uint8Array): string {
    this.#admit()
    return toHex(this.#chain.submitBytes(bytes).id)
  }

  // Backpressure: a transaction accepted here must be checked by every peer
  // too; while this node is behind on theirs, so are they.
  #admit(): void {
    if (this.#info.busy()) throw new TxError('TX_MEMPOOL_FULL', "node busy checking peers' transactions; retry shortly")
  }

  submitNote(text: string): string {
    if (typeof text !== 'string') throw new TxError('TX_MALFORMED', 'note text must be a string')
    this.#admit()
    const signer = this.#keys.signer
    const tx = signTx(signer, { chainId: this.#chain.chainId, type: noteTx.name, nonce: this.#chain.nextNonce(signer.publicKey), payload: { text } })
    if (tx.bytes.length > this.#chain.params().maxTxBytes)
      throw new TxError('TX_TOO_LARGE', `note transaction of ${tx.bytes.length} bytes exceeds ${this.#chain.params().maxTxBytes}`)
    this.#chain.submit(tx)
    return toHex(tx.id)
  }

  txStatus(hash: string): Promise<TxStatus> {
    return this.#chain.txStatus(hash.toLowerCase())
  }

  async waitTx(hash: string, timeoutMs: number, signal?: AbortSignal): Promise<TxStatus> {
    const h = hash.toLowerCase()
    if (!isHex(h, 32)) throw new TxError('TX_MALFORMED', 'transaction hash must be 64 hex digits')
    let resolveFn: ((s: TxStatus) => void) | undefined
    const waiting = new Promise<TxStatus | null>((resolve) => {
      resolveFn = resolve
      const set = this.#waiters.get(h) ?? new Set()
      set.add(resolve)
      this.#waiters.set(h, set)
    })
    const cleanup = (): void => {
      const set = this.#waiters.get(h)
      if (resolveFn !== undefined) set?.delete(resolveFn)
      if (set?.size === 0) this.#waiters.delete(h)
    }
    try {
      const now = await this.#chain.txStatus(h)
      if (now.status === 'final' || now.status === 'rejected') return now
      // A plain timer, not AbortSignal.timeout() inside AbortSignal.any(): on
      // Node.js 20 a garbage collection can drop such a timeout before it
      // fires (nodejs/node#57736), and the wait would outlive its deadline.
      let timer: NodeJS.Timeout | undefined
      let onAbort: (() => void) | undefined
      const timedOut = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs)
        onAbort = () => resolve(null)
        if (signal?.aborted === true) resolve(null)
        else signal?.addEventListener('abort', onAbort, { once: true })
      })
      const r = await Promise.race([waiting, timedOut]).finally(() => {
        clearTimeout(timer)
        if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
      })
      if (r !== null && r.status !== 'final') return r
      return this.#chain.txStatus(h)
    } finally {
      cleanup()
    }
  }

  block(ref: string): Promise<BlockView | undefined> {
    return this.#chain.blockView(ref)
  }

  peers(): PeerView[] {
    return this.#info.peers().map((p) => ({
      org: this.#chain.orgByKey(p.publicKey)?.id ?? null,
      publicKey: toHex(p.publicKey),
      peerId: p.peerId,
      addr: p.addr,
      encryption: p.encryption,
    }))
  }

  orgs(): OrgsView {
    return {
      orgs: this.#chain.orgs().map(orgToJSON),
      proposals: listProposals(this.#chain.state).map((p) => ({
        proposal: toHex(p.proposal),
        action: orgTx.toJSON(p.action) as Record<string, unknown>,
        voters: p.voters,
      })),
      params: { ...this.#chain.params() },
    }
  }

  voteOrg(vote: OrgVote): string {
    let action: OrgAction
    if (vote.action === 'admit')
      action = {
        kind: 'admit',
        org: { id: vote.id, name: vote.name, role: vote.role, signKey: fromHex(vote.signKey), encKey: fromHex(vote.encKey), addrs: [...vote.addrs] },
      }
    else if (vote.action === 'remove') action = { kind: 'remove', id: vote.id }
    else if (vote.action === 'rekey') action = { kind: 'rekey', id: vote.id, signKey: fromHex(vote.signKey), encKey: fromHex(vote.encKey) }
    else {
      const unknown = Object.keys(vote.params).filter((k) => !(PARAM_FIELDS as readonly string[]).includes(k))
      if (unknown.length > 0)
        throw new TxError('TX_MALFORMED', `invalid parameter change: no chain parameter ${unknown.join(', ')} (known: ${PARAM_FIELDS.join(', ')})`)
      action = { kind: 'params', params: vote.params as Partial<ChainParams> }
    }
    // Round-trip through the codec so a malformed id or address fails here, not in a block.
    try {
      orgTx.decode(decodeCanonical(encode(orgTx.encode(action))))
    } catch (err) {
      throw new TxError('TX_MALFORMED', `invalid registry change: ${err instanceof Error ? err.message : String(err)}`)
    }
    const signer = this.#keys.signer
    const tx = signTx(signer, { chainId: this.#chain.chainId, type: orgTx.name, nonce: this.#chain.nextNonce(signer.publicKey), payload: action })
    this.#chain.submit(tx)
    return toHex(tx.id)
  }

  addStudies(paths: string[], opts: { skipBad: boolean; patient?: string; extends?: string }): string {
    const { extends: earlier, ...rest } = opts
    if (earlier === undefined) return this.#info.studies().start(paths, rest)
    if (!isHex(earlier, 16)) throw new StudyServiceError('STUDY_BAD_ID', 'a study id is 32 hex digits')
    return this.#info.studies().start(paths, { ...rest, extends: fromHex(earlier) })
  }

  getStudy(studyId: string, opts: { out: string | null; scope: string }): Promise<string> {
    return this.#info.studies().startGet(studyId, opts)
  }

  async sendStudy(studyId: string, opts: { to: string; scope: string }): Promise<string> {
    const sends = this.#info.sends?.()
    if (sends === undefined) throw new StudyServiceError('STUDY_FAILED', 'this node cannot send studies over DICOM')
    return sends.start(studyId, opts)
  }

  async studies(): Promise<StudyView[]> {
    return this.#info.studies().list()
  }

  async study(studyId: string): Promise<StudyView> {
    return this.#info.studies().show(studyId)
  }

  async audit(studyId: string): Promise<AuditEventView[]> {
    if (!isHex(studyId, 16)) throw new StudyServiceError('STUDY_BAD_ID', 'a study id is 32 hex digits')
    const events = await this.#info.audit().events(studyId)
    if (events.length === 0) throw new StudyServiceError('STUDY_UNKNOWN', `no study ${studyId.toLowerCase()} on the ledger`)
    return events
  }

  eraseStudy(studyId: string): string {
    return this.#info.studies().erase(studyId)
  }

  requestLease(studyId: string, opts: { scope: string; durationMs: number; purpose: string }): string {
    this.#admit()
    return this.#info.leases().request(studyId, opts)
  }

  async checkDimsePeer(aeTitle: string): Promise<void> {
    const deliveries = this.#info.deliveries?.()
    if (deliveries === undefined) throw new StudyServiceError('STUDY_FAILED', 'this node cannot send studies over DICOM')
    await dimsePeerKnown(deliveries.dataDir, aeTitle)
  }

  async deliverLease(leaseId: string, aeTitle: string): Promise<void> {
    const deliveries = this.#info.deliveries?.()
    if (deliveries === undefined) throw new StudyServiceError('STUDY_FAILED', 'this node cannot send studies over DICOM')
    await deliveries.add(leaseId, aeTitle)
  }

  leases(direction?: 'incoming' | 'outgoing'): LeaseView[] {
    return this.#info.leases().list(direction)
  }

  grantLease(leaseId: string): Promise<string> {
    return this.#info.leases().grant(leaseId)
  }

  denyLease(leaseId: string, reason: string): string {
    return this.#info.leases().deny(leaseId, reason)
  }

  revokeLease(leaseId: string): string {
    return this.#info.leases().revoke(leaseId)
  }

  nonce(key: string): number {
    if (!isHex(key, 32)) throw new TxError('TX_MALFORMED', 'a key is 64 hex digits')
    return this.#chain.nextNonce(fromHex(key))
  }

  swarmStatus(): SwarmStatusView {
    return this.#info.swarm().status()
  }

  linkPatient(link: { patientId: string; issuer: string; patientKey: string; replace: boolean }): Promise<PatientLinkResult> {
    return this.#info.links().link(link.patientId, link.issuer, link.patientKey, { replace: link.replace })
  }

  unlinkPatient(patientId: string, issuer: string): Promise<void> {
    return this.#info.links().unlink(patientId, issuer)
  }

  patientLinks(): PatientLinkView[] {
    return this.#info.links().list()
  }

  studyJob(id: string): StudyJobView | undefined {
    const v: StudyJobView | undefined = this.#info.studies().get(id) ?? this.#info.sends?.().get(id)
    return v === undefined ? undefined : { ...v }
  }

  subscribe(listener: (ev: NodeEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
}
