import { TX_TYPES, getLease, orgBySignKey, type Block, type RegisterStudyPayload, type Tx } from '../chain/index.js'
import type { KeyValueSpace } from '../storage/index.js'
import { errorMessage, toHex, utf8, type Logger } from '../util/index.js'
import type { AuditEventView } from '../api/index.js'
import type { ChainService } from './chain-service.js'

const STUDY_TYPES = new Set(['study.register', 'study.erase', 'lease.request', 'consent.set'])
const LEASE_TYPES = new Set(['lease.approve', 'lease.grant', 'lease.deny', 'lease.revoke', 'access.record', 'access.served', 'violation.report'])
const LAST_KEY = 'last'

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0')
}

/**
 * Every study's trail, from the ledger: registration, consent, lease
 * requests, approvals, grants, denials, revocations, access records (the
 * lessee's unwraps and retrievals, and what each holder served under the
 * lease, with the holder as `by`), violations, erasure, in ledger order. The
 * registration of a new version is in both trails: in its own (its `detail`
 * names the version it extends) and in the extended study's, marked
 * `extendedBy`. Kept in a node-local index (built from the
 * blocks, so every node lists the same events in the same order), caught up
 * at start from the last indexed height.
 */
export class AuditService {
  readonly #chain: ChainService
  readonly #kv: KeyValueSpace
  readonly #logger: Logger
  #indexed = 0
  #queue: Promise<void> = Promise.resolve()

  constructor(modules: { chain: ChainService; kv: KeyValueSpace; logger: Logger }) {
    this.#chain = modules.chain
    this.#kv = modules.kv
    this.#logger = modules.logger
  }

  async start(): Promise<void> {
    const b = await this.#kv.get(LAST_KEY)
    this.#indexed = b === undefined ? 0 : Number(Buffer.from(b).toString('utf8'))
    this.#chain.on('block', this.#onBlock)
    await this.#catchUp()
  }

  stop(): void {
    this.#chain.off('block', this.#onBlock)
  }

  readonly #onBlock = (): void => {
    this.#queue = this.#queue
      .then(() => this.#catchUp())
      .catch((err: unknown) => this.#logger.warn('audit index behind; retried at the next block', { err: errorMessage(err) }))
  }

  async #catchUp(): Promise<void> {
    const head = this.#chain.head().header.height
    while (this.#indexed < head) {
      const b = await this.#chain.blockAt(this.#indexed + 1)
      if (b === undefined) return
      await this.#index(b)
      this.#indexed = b.header.height
      await this.#kv.put(LAST_KEY, utf8(String(this.#indexed)))
    }
  }

  #studyOf(tx: Tx): { study: string; lease: string | null } | undefined {
    const p = tx.payload as { studyId?: Uint8Array | null; leaseId?: Uint8Array }
    if (STUDY_TYPES.has(tx.type)) {
      if (p.studyId === undefined || p.studyId === null) return undefined
      return { study: toHex(p.studyId), lease: tx.type === 'lease.request' ? toHex(tx.id) : null }
    }
    if (LEASE_TYPES.has(tx.type) && p.leaseId !== undefined) {
      const l = getLease(this.#chain.state, p.leaseId)
      return l === undefined ? undefined : { study: toHex(l.studyId), lease: toHex(p.leaseId) }
    }
    return undefined
  }

  async #index(b: Block): Promise<void> {
    for (const [i, tx] of b.txs.entries()) {
      const s = this.#studyOf(tx)
      if (s === undefined) continue
      const org = orgBySignKey(this.#chain.state, tx.sender)
      const detail = (TX_TYPES.get(tx.type)?.toJSON(tx.payload) ?? {}) as Record<string, unknown>
      const ev: AuditEventView = {
        height: b.header.height,
        time: b.header.time,
        index: i,
        type: tx.type,
        tx: toHex(tx.id),
        by: org?.id ?? `patient:${toHex(tx.sender)}`,
        leaseId: s.lease,
        detail,
      }
      await this.#kv.put(`e/${s.study}/${pad(b.header.height, 16)}/${pad(i, 6)}`, utf8(JSON.stringify(ev)))
      // A new version: the earlier one's trail says by which registration it was extended.
      const earlier = tx.type === 'study.register' ? (tx.payload as RegisterStudyPayload).extends : undefined
      if (earlier !== undefined)
        await this.#kv.put(`e/${toHex(earlier.studyId)}/${pad(b.header.height, 16)}/${pad(i, 6)}`, utf8(JSON.stringify({ ...ev, extendedBy: s.study })))
    }
  }

  /** The audit trail of a study, in ledger order. */
  async events(studyIdHex: string): Promise<AuditEventView[]> {
    await this.#queue
    const out: AuditEventView[] = []
    for await (const [, v] of this.#kv.entries(`e/${studyIdHex.toLowerCase()}/`)) out.push(JSON.parse(Buffer.from(v).toString('utf8')) as AuditEventView)
    return out
  }
}
