import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  BlockError,
  Mempool,
  TxError,
  applyBlock,
  applyWrites,
  authoritySet,
  blockToJSON,
  buildBlock,
  certificateToJSON,
  checkTx,
  decodeBlock,
  decodeCertificate,
  decodeTx,
  encodeCertificate,
  evidenceTx,
  genesisBlock,
  getNonce,
  getParams,
  isOrgKey,
  listOrgs,
  orgBySignKey,
  proposerFor,
  signTx,
  storedBlockTx,
  txToJSON,
  verifyCertificate,
  type ApplyResult,
  type AuthoritySet,
  type Block,
  type BuildResult,
  type ChainParams,
  type CommitCertificate,
  type Genesis,
  type MempoolLimits,
  type OrgRecord,
  type Parent,
  type SignedVote,
  type StateWrites,
  type Tx,
} from '../chain/index.js'
import { Ed25519Signer } from '../crypto/index.js'
import { StoreError, type ChainStore } from '../storage/index.js'
import { equalBytes, fromHex, isHex, toHex, type Logger } from '../util/index.js'
import type { ConsensusHost } from '../consensus/index.js'
import type { TxStatus } from '../api/index.js'

/** Events of the chain service. */
export interface ChainEvents {
  block: [block: Block, cert: CommitCertificate]
  evidence: [tx: Tx]
  /** The organization registry changed. */
  orgs: [orgs: readonly OrgRecord[]]
  /** A transaction entered the mempool; `local` when it came from this node's API rather than a peer. */
  pending: [tx: Tx, local: boolean]
  rejected: [tx: Tx, error: TxError]
}

const RECENT_REJECTIONS = 10_000
/** Most equivocations held until their height is final (a few per height are expected). */
const MAX_DEFERRED_EVIDENCE = 1024

/** (id, signature) pairs of transactions whose signatures were checked: two generations, so memory stays bounded. */
class VerifiedIds {
  readonly #max: number
  #current = new Set<string>()
  #previous = new Set<string>()

  constructor(max: number) {
    this.#max = max
  }

  add(id: Uint8Array, signature: Uint8Array): void {
    if (this.#current.size >= this.#max) {
      this.#previous = this.#current
      this.#current = new Set()
    }
    this.#current.add(toHex(id) + toHex(signature))
  }

  has(id: Uint8Array, signature: Uint8Array): boolean {
    const k = toHex(id) + toHex(signature)
    return this.#current.has(k) || this.#previous.has(k)
  }
}

/**
 * The node's view of the ledger: committed state in memory, blocks in the
 * store, the mempool in front. Consensus calls `propose` and `commit`; the
 * API calls the rest.
 */
export class ChainService extends EventEmitter<ChainEvents> implements ConsensusHost {
  readonly chainId: string
  readonly genesis: Genesis
  readonly mempool: Mempool
  readonly #store: ChainStore
  readonly #logger: Logger
  readonly #state: Map<string, Uint8Array>
  #head: Parent
  /** Commit certificate of the head (null at genesis). */
  #headCert: CommitCertificate | null
  #params: ChainParams
  #authorities: AuthoritySet
  #orgs: OrgRecord[]
  readonly #rejected = new Map<string, TxError>()
  readonly #verified = new VerifiedIds(200_000)
  #commitLock: Promise<unknown> = Promise.resolve()
  /** Set when this node reports equivocations (the reports are signed by one-time keys: #submitEvidence). */
  #evidenceSigner: Ed25519Signer | undefined
  /** Equivocations seen at heights not yet final, submitted once they are. */
  #deferredEvidence: { a: SignedVote; b: SignedVote }[] = []
  readonly #pendingWaiters = new Set<() => void>()

  private constructor(
    genesis: Genesis,
    store: ChainStore,
    state: Map<string, Uint8Array>,
    head: Parent,
    headCert: CommitCertificate | null,
    mempoolLimits: MempoolLimits,
    logger: Logger,
  ) {
    super()
    this.setMaxListeners(0)
    this.genesis = genesis
    this.chainId = genesis.chainId
    this.#store = store
    this.#state = state
    this.#head = head
    this.#headCert = headCert
    this.#logger = logger
    this.mempool = new Mempool(mempoolLimits)
    this.#params = getParams(state)
    this.#authorities = authoritySet(state)
    this.#orgs = listOrgs(state)
  }

  /**
   * Opens the ledger in `store`: writes the genesis block into an empty
   * store, or resumes from the last committed block after checking that the
   * store belongs to this genesis.
   */
  static async open(
    genesis: Genesis,
    store: ChainStore,
    opts: { mempool: MempoolLimits; logger: Logger; evidenceSigner?: Ed25519Signer },
  ): Promise<ChainService> {
    const g = genesisBlock(genesis)
    let height = await store.headHeight()
    if (height === null) {
      await store.commitBlock({ height: 0, hash: g.block.hash, blockBytes: g.block.bytes, certBytes: new Uint8Array(0), txIds: [], stateWrites: g.writes })
      height = 0
    } else {
      const stored0 = await store.hashAt(0)
      if (stored0 === undefined || !equalBytes(stored0, g.block.hash)) {
        throw new StoreError('STORE_GENESIS_MISMATCH', 'the database was made for another genesis: use a fresh data dir or the matching genesis file')
      }
    }
    const state = await store.loadState()
    const limits = {
      chainId: genesis.chainId,
      maxBlockBytes: Number.MAX_SAFE_INTEGER,
      maxBlockTxs: Number.MAX_SAFE_INTEGER,
      maxTxBytes: Number.MAX_SAFE_INTEGER,
      verify: false,
    }
    const hash = await store.hashAt(height)
    const bytes = hash === undefined ? undefined : await store.blockBytes(hash)
    if (bytes === undefined) throw new StoreError('STORE_CORRUPT', `block at height ${height} is missing`)
    const head = decodeBlock(bytes, limits)
    const certBytes = height === 0 ? undefined : await store.certBytes(height)
    if (height > 0 && (certBytes === undefined || certBytes.length === 0))
      throw new StoreError('STORE_CORRUPT', `commit certificate of block ${height} is missing`)
    const headCert = certBytes === undefined ? null : decodeCertificate(certBytes)
    opts.logger.info('ledger opened', { chainId: genesis.chainId, height, head: toHex(head.hash) })
    const svc = new ChainService(genesis, store, state, { header: head.header, hash: head.hash }, headCert, opts.mempool, opts.logger)
    svc.#evidenceSigner = opts.evidenceSigner
    return svc
  }

  /** The last final block. */
  head(): Parent {
    return this.#head
  }

  /** Authority set for the next height. */
  authorities(): AuthoritySet {
    return this.#authorities
  }

  params(): ChainParams {
    return this.#params
  }

  /** Read-only committed state. */
  get state(): ReadonlyMap<string, Uint8Array> {
    return this.#state
  }

  /** Every admitted organization. */
  orgs(): readonly OrgRecord[] {
    return this.#orgs
  }

  /** The admitted organization with signing key `key`. */
  orgByKey(key: Uint8Array): OrgRecord | undefined {
    return orgBySignKey(this.#state, key)
  }

  /** Next nonce to sign with for `sender`, counting pending transactions. */
  nextNonce(sender: Uint8Array): number {
    return this.mempool.nextNonce(sender, getNonce(this.#state, sender))
  }

  /**
   * Decodes, verifies and admits signed transaction bytes, submitted here or
   * gossiped by peer `from`. Throws TxError.
   */
  submitBytes(bytes: Uint8Array, from?: Uint8Array): Tx {
    const local = from === undefined
    // Refuse before spending a signature check when there is no room. Local
    // submissions may fill only half the mempool: the rest stays open to
    // peers' gossip, so it is verified as it arrives rather than on the
    // critical path of a proposal.
    const limits = this.mempool.limits
    const room = local ? Math.floor(limits.maxTxs / 2) : limits.maxTxs
    if (this.mempool.size >= room) throw new TxError('TX_MEMPOOL_FULL', 'mempool is full; retry later')
    // Nor on gossip from a peer whose share is full (see Mempool.add).
    if (from !== undefined && !this.mempool.peerHasRoom(toHex(from), bytes.length))
      throw new TxError('TX_MEMPOOL_FULL', "this peer's share of the mempool is full")
    const tx = decodeTx(bytes, { chainId: this.chainId, maxBytes: this.#params.maxTxBytes, alreadyVerified: this.#alreadyVerified })
    this.#verified.add(tx.id, tx.signature)
    this.submit(tx, from)
    return tx
  }

  // A transaction whose signature this node checked before (in the mempool, or
  // seen in a block or a proposal) is not checked again. The id does not cover
  // the signature, so the check is on the pair: a relay cannot swap in other bytes.
  readonly #alreadyVerified = (id: Uint8Array, signature: Uint8Array): boolean => {
    const pending = this.mempool.get(id)
    if (pending !== undefined && equalBytes(pending.signature, signature)) return true
    return this.#verified.has(id, signature)
  }

  /** Admits a decoded, signature-checked transaction, submitted here or gossiped by peer `from`. Throws TxError. */
  submit(tx: Tx, from?: Uint8Array): void {
    if (this.mempool.get(tx.id) !== undefined) throw new TxError('TX_DUPLICATE', 'transaction is already pending')
    const stateNonce = getNonce(this.#state, tx.sender)
    if (tx.nonce === stateNonce) checkTx(this.#state, this.#head, tx)
    this.mempool.add(tx, stateNonce, from === undefined ? undefined : toHex(from))
    this.#rejected.delete(toHex(tx.id))
    this.emit('pending', tx, from === undefined)
    for (const w of this.#pendingWaiters) w()
    this.#pendingWaiters.clear()
  }

  hasPending(): boolean {
    return this.mempool.size > 0
  }

  waitPending(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason)
        return
      }
      const done = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => {
        this.#pendingWaiters.delete(done)
        reject(signal.reason)
      }
      this.#pendingWaiters.add(done)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  propose(time: number, proposer: Uint8Array): BuildResult {
    const r = buildBlock(
      this.#state,
      this.#head,
      this.mempool.candidates((s) => getNonce(this.#state, s)),
      { time, proposer, lastCommit: this.#headCert },
    )
    for (const { tx, error } of r.rejected) {
      if (error.code === 'TX_NONCE_GAP') continue
      for (const t of this.mempool.drop(tx)) {
        const e = t === tx ? error : new TxError('TX_NONCE_GAP', 'an earlier transaction from this sender was rejected')
        this.#remember(t, e)
      }
    }
    return r
  }

  #remember(tx: Tx, error: TxError): void {
    if (this.#rejected.size >= RECENT_REJECTIONS) {
      const first = this.#rejected.keys().next()
      if (first.done !== true) this.#rejected.delete(first.value)
    }
    this.#rejected.set(toHex(tx.id), error)
    this.#logger.debug('transaction rejected', { tx: toHex(tx.id), code: error.code })
    this.emit('rejected', tx, error)
  }

  /** Commit certificate of the head block (null at genesis). */
  headCertificate(): CommitCertificate | null {
    return this.#headCert
  }

  proposerFor(round: number): OrgRecord {
    return proposerFor(this.#state, round)
  }

  decodeBlock(bytes: Uint8Array): Block {
    const p = this.#params
    let checked = 0
    const t0 = performance.now()
    const block = decodeBlock(bytes, {
      chainId: this.chainId,
      maxBlockBytes: p.maxBlockBytes,
      maxBlockTxs: p.maxBlockTxs,
      maxTxBytes: p.maxTxBytes,
      alreadyVerified: (id, signature) => {
        const known = this.#alreadyVerified(id, signature)
        if (!known) checked++
        return known
      },
    })
    this.#logger.debug('block decoded', {
      height: block.header.height,
      txs: block.txs.length,
      signaturesChecked: checked,
      ms: Math.round(performance.now() - t0),
    })
    for (const tx of block.txs) this.#verified.add(tx.id, tx.signature)
    return block
  }

  validate(block: Block): ApplyResult {
    return applyBlock(this.#state, this.#head, block)
  }

  reportEquivocation(a: SignedVote, b: SignedVote): void {
    if (this.#evidenceSigner === undefined) return
    // Evidence is valid only in a block above its height (evidenceTx): hold
    // it until that height is final, then submit it (commit()).
    if (a.height > this.#head.header.height) {
      if (this.#deferredEvidence.length < MAX_DEFERRED_EVIDENCE) this.#deferredEvidence.push({ a, b })
      return
    }
    this.#submitEvidence(a, b)
  }

  #submitEvidence(a: SignedVote, b: SignedVote): void {
    try {
      // Every honest node reports the same equivocation and all but the first
      // report are rejected as already recorded. Under the organization's key
      // that rejection would drop the organization's later transactions with
      // it (nonce gap), so each report is signed by a one-time key, nonce 0.
      const signer = new Ed25519Signer(new Uint8Array(randomBytes(32)))
      const tx = signTx(signer, { chainId: this.chainId, type: evidenceTx.name, nonce: 0, payload: { a, b } })
      this.submit(tx)
      this.emit('evidence', tx)
    } catch (err) {
      this.#logger.warn('could not submit equivocation evidence', { err: err instanceof Error ? err.message : String(err) })
    }
  }

  onCommitted(listener: (height: number) => void): () => void {
    const l = (b: Block): void => listener(b.header.height)
    this.on('block', l)
    return () => this.off('block', l)
  }

  // Commits are serialized: consensus and sync may both finish the same height.
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#commitLock.then(fn, fn)
    this.#commitLock = run.catch(() => {})
    return run
  }

  /**
   * Stores a final block with its certificate and applies it. Committing a
   * block that is already final is a no-op; a different block at a final
   * height means the safety invariant broke, and throws.
   */
  commit(result: { readonly block: Block; readonly writes: StateWrites }, cert: CommitCertificate): Promise<void> {
    return this.#locked(async () => {
      const b = result.block
      if (b.header.height <= this.#head.header.height) {
        const stored = await this.#store.hashAt(b.header.height)
        if (stored !== undefined && equalBytes(stored, b.hash)) return
        throw new Error(`SAFETY: a different block is already final at height ${b.header.height}`)
      }
      if (b.header.height !== this.#head.header.height + 1 || !equalBytes(b.header.parentHash, this.#head.hash)) {
        throw new Error('refusing to commit a block that does not extend the head')
      }
      await this.#store.commitBlock({
        height: b.header.height,
        hash: b.hash,
        blockBytes: b.bytes,
        certBytes: encodeCertificate(cert),
        txIds: b.txs.map((t) => t.id),
        stateWrites: result.writes,
      })
      applyWrites(this.#state, result.writes)
      this.#head = { header: b.header, hash: b.hash }
      this.#headCert = cert
      this.#params = getParams(this.#state)
      this.#authorities = authoritySet(this.#state)
      const orgsChanged = [...result.writes.keys()].some(isOrgKey)
      if (orgsChanged) this.#orgs = listOrgs(this.#state)
      this.mempool.prune(b.txs, (s) => getNonce(this.#state, s))
      this.#logger.debug('block final', { height: b.header.height, txs: b.txs.length })
      this.emit('block', b, cert)
      if (orgsChanged) this.emit('orgs', this.#orgs)
      const due = this.#deferredEvidence.filter((e) => e.a.height <= b.header.height)
      if (due.length > 0) {
        this.#deferredEvidence = this.#deferredEvidence.filter((e) => e.a.height > b.header.height)
        for (const e of due) this.#submitEvidence(e.a, e.b)
      }
    })
  }

  /**
   * Imports a block fetched by sync: checks its certificate against the
   * authority set in force at its height, validates and applies it.
   * Throws BlockError (the sender is to be penalized).
   */
  importBlock(blockBytes: Uint8Array, certBytes: Uint8Array): Promise<boolean> {
    return this.#locked(async () => {
      const block = this.decodeBlock(blockBytes)
      if (block.header.height <= this.#head.header.height) return false
      if (block.header.height !== this.#head.header.height + 1)
        throw new BlockError('BLOCK_BAD_HEIGHT', `sync block ${block.header.height} does not follow ${this.#head.header.height}`)
      const cert = decodeCertificate(certBytes)
      verifyCertificate(cert, this.chainId, block.header.height, block.hash, this.#authorities)
      const r = applyBlock(this.#state, this.#head, block)
      return { block, writes: r.writes, cert }
    }).then(async (v) => {
      if (v === false) return false
      await this.commit({ block: v.block, writes: v.writes }, v.cert)
      return true
    })
  }

  /** Encoded block and certificate at `height`, for peers that sync. */
  async syncEntry(height: number): Promise<{ block: Uint8Array; cert: Uint8Array } | undefined> {
    const hash = await this.#store.hashAt(height)
    if (hash === undefined) return undefined
    const block = await this.#store.blockBytes(hash)
    const cert = await this.#store.certBytes(height)
    if (block === undefined || cert === undefined) return undefined
    return { block, cert }
  }

  /** Where transaction `hash` (64 hex) stands. */
  async txStatus(hash: string): Promise<TxStatus> {
    const pending = this.mempool.get(hash)
    if (pending !== undefined) return { hash, status: 'pending', tx: txToJSON(pending) }
    const loc = await this.#store.txLocation(hash)
    if (loc !== undefined) {
      const blockHash = await this.#store.hashAt(loc.height)
      const bytes = blockHash === undefined ? undefined : await this.#store.blockBytes(blockHash)
      const tx = bytes === undefined ? undefined : storedBlockTx(bytes, loc.index, this.chainId)
      return {
        hash,
        status: 'final',
        height: loc.height,
        index: loc.index,
        ...(blockHash === undefined ? {} : { blockHash: toHex(blockHash) }),
        ...(tx === undefined ? {} : { tx: txToJSON(tx) }),
      }
    }
    const err = this.#rejected.get(hash)
    if (err !== undefined) return { hash, status: 'rejected', error: { code: err.code, message: err.message } }
    return { hash, status: 'unknown' }
  }

  /** Block at `height`, or undefined. */
  async blockAt(height: number): Promise<Block | undefined> {
    const hash = await this.#store.hashAt(height)
    return hash === undefined ? undefined : this.blockByHash(hash)
  }

  /** Block with hash `hash`, or undefined. */
  async blockByHash(hash: Uint8Array): Promise<Block | undefined> {
    const bytes = await this.#store.blockBytes(hash)
    if (bytes === undefined) return undefined
    return decodeBlock(bytes, {
      chainId: this.chainId,
      maxBlockBytes: Number.MAX_SAFE_INTEGER,
      maxBlockTxs: Number.MAX_SAFE_INTEGER,
      maxTxBytes: Number.MAX_SAFE_INTEGER,
      verify: false,
    })
  }

  /** Block JSON with its certificate for a ref: 'head', a height, or a 64-hex hash. */
  async blockView(ref: string): Promise<Record<string, unknown> | undefined> {
    let block: Block | undefined
    if (ref === 'head') block = await this.blockAt(this.#head.header.height)
    else if (/^\d{1,15}$/.test(ref)) block = await this.blockAt(Number(ref))
    else if (isHex(ref, 32)) block = await this.blockByHash(fromHex(ref))
    else return undefined
    if (block === undefined) return undefined
    const certBytes = await this.#store.certBytes(block.header.height)
    const cert = certBytes === undefined || certBytes.length === 0 ? null : certificateToJSON(decodeCertificate(certBytes))
    return { ...blockToJSON(block), certificate: cert }
  }
}
