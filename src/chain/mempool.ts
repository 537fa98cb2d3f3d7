import { toHex } from '../util/index.js'
import { TxError } from './errors.js'
import type { Tx } from './tx.js'

/** Mempool bounds. */
export interface MempoolLimits {
  /** Most transactions held. */
  readonly maxTxs: number
  /** Most bytes of transactions held. */
  readonly maxBytes: number
  /** Most transactions held per sender (also the widest nonce window accepted). */
  readonly maxPerSender: number
  /**
   * Most transactions held that one peer gossiped. Peers do not relay, so
   * the peer is the node they were submitted at: a member gone bad, flooding
   * transactions signed by as many keys as it likes (any key may sign a
   * note), fills its share and no more, and the others keep room.
   */
  readonly maxPerPeer: number
  /** Most bytes held that one peer gossiped (see maxPerPeer). */
  readonly maxBytesPerPeer: number
}

/** Default bounds. */
export const DEFAULT_MEMPOOL_LIMITS: MempoolLimits = {
  maxTxs: 50_000,
  maxBytes: 64 * 1024 * 1024,
  maxPerSender: 10_000,
  maxPerPeer: 12_500,
  maxBytesPerPeer: 16 * 1024 * 1024,
}

/** What one peer's gossip holds in the mempool. */
interface PeerShare {
  txs: number
  bytes: number
}

/**
 * Pending transactions: bounded, deduplicated by id, ordered per sender by
 * nonce. Admission rules that need state (signature, nonce, validity) are
 * checked by the caller; this structure enforces bounds and ordering.
 */
export class Mempool {
  readonly limits: MempoolLimits
  readonly #byId = new Map<string, Tx>()
  readonly #bySender = new Map<string, Map<number, Tx>>()
  /** The peer each gossiped transaction came from, by id (local ones are not here). */
  readonly #origin = new Map<string, string>()
  readonly #byPeer = new Map<string, PeerShare>()
  #bytes = 0

  constructor(limits: MempoolLimits = DEFAULT_MEMPOOL_LIMITS) {
    this.limits = limits
  }

  /** Number of transactions held. */
  get size(): number {
    return this.#byId.size
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes
  }

  /** The pending transaction with id `id`, if any. */
  get(id: Uint8Array | string): Tx | undefined {
    return this.#byId.get(typeof id === 'string' ? id : toHex(id))
  }

  /** Whether peer `peer`'s share (hex key) has room for one more transaction of `bytes` (see maxPerPeer). */
  peerHasRoom(peer: string, bytes: number): boolean {
    const share = this.#byPeer.get(peer)
    return share === undefined || (share.txs < this.limits.maxPerPeer && share.bytes + bytes <= this.limits.maxBytesPerPeer)
  }

  /** Transactions and bytes held that peer `peer` (hex key) gossiped. */
  peerShare(peer: string): PeerShare {
    const s = this.#byPeer.get(peer)
    return { txs: s?.txs ?? 0, bytes: s?.bytes ?? 0 }
  }

  /**
   * Adds `tx`, whose sender's next nonce on the ledger is `stateNonce`,
   * gossiped by peer `from` (hex key; undefined when submitted here).
   * Accepts the next nonce or one right after a pending one; refuses
   * duplicates, stale nonces, gaps, and anything over the bounds.
   */
  add(tx: Tx, stateNonce: number, from?: string): void {
    const id = toHex(tx.id)
    if (this.#byId.has(id)) throw new TxError('TX_DUPLICATE', 'transaction is already pending')
    if (tx.nonce < stateNonce) throw new TxError('TX_BAD_NONCE', `nonce ${tx.nonce} already used (next is ${stateNonce})`)
    const sender = toHex(tx.sender)
    const queue = this.#bySender.get(sender)
    if (queue?.has(tx.nonce) === true) throw new TxError('TX_BAD_NONCE', `another pending transaction from this sender has nonce ${tx.nonce}`)
    if (tx.nonce > stateNonce && queue?.has(tx.nonce - 1) !== true) throw new TxError('TX_NONCE_GAP', `nonce ${tx.nonce} leaves a gap (next is ${stateNonce})`)
    if ((queue?.size ?? 0) >= this.limits.maxPerSender)
      throw new TxError('TX_SENDER_LIMIT', `sender already has ${this.limits.maxPerSender} pending transactions`)
    if (this.#byId.size >= this.limits.maxTxs || this.#bytes + tx.bytes.length > this.limits.maxBytes) {
      throw new TxError('TX_MEMPOOL_FULL', 'mempool is full; retry later')
    }
    const share = from === undefined ? undefined : (this.#byPeer.get(from) ?? { txs: 0, bytes: 0 })
    if (from !== undefined && share !== undefined && !this.peerHasRoom(from, tx.bytes.length)) {
      throw new TxError('TX_MEMPOOL_FULL', `this peer's share of the mempool is full (${share.txs} transactions, ${share.bytes} bytes)`)
    }
    this.#byId.set(id, tx)
    this.#bytes += tx.bytes.length
    if (from !== undefined && share !== undefined) {
      share.txs++
      share.bytes += tx.bytes.length
      this.#byPeer.set(from, share)
      this.#origin.set(id, from)
    }
    if (queue === undefined) this.#bySender.set(sender, new Map([[tx.nonce, tx]]))
    else queue.set(tx.nonce, tx)
  }

  /** Next nonce to use for `sender`: after its last pending transaction, or `stateNonce`. */
  nextNonce(sender: Uint8Array, stateNonce: number): number {
    const queue = this.#bySender.get(toHex(sender))
    let n = stateNonce
    while (queue?.has(n) === true) n++
    return n
  }

  /**
   * Block candidates: each sender's run of consecutive nonces from its state
   * nonce, senders interleaved round-robin so one busy sender cannot starve
   * the others.
   */
  *candidates(stateNonce: (sender: Uint8Array) => number): Generator<Tx> {
    const runs: { queue: Map<number, Tx>; next: number }[] = []
    for (const queue of this.#bySender.values()) {
      const first = queue.values().next().value
      if (first === undefined) continue
      runs.push({ queue, next: stateNonce(first.sender) })
    }
    while (runs.length > 0) {
      for (let i = 0; i < runs.length;) {
        const r = runs[i] as { queue: Map<number, Tx>; next: number }
        const tx = r.queue.get(r.next)
        if (tx === undefined) {
          runs[i] = runs[runs.length - 1] as { queue: Map<number, Tx>; next: number }
          runs.pop()
          continue
        }
        r.next++
        yield tx
        i++
      }
    }
  }

  /** Removes one transaction (and, to keep nonces contiguous, the same sender's later ones). */
  drop(tx: Tx): Tx[] {
    const queue = this.#bySender.get(toHex(tx.sender))
    if (queue === undefined) return []
    const dropped: Tx[] = []
    for (const [n, t] of queue) {
      if (n >= tx.nonce) dropped.push(t)
    }
    for (const t of dropped) this.#remove(t)
    return dropped
  }

  /** Removes transactions made final or made stale by a committed block. */
  prune(committed: readonly Tx[], stateNonce: (sender: Uint8Array) => number): void {
    const senders = new Map<string, Uint8Array>()
    for (const t of committed) senders.set(toHex(t.sender), t.sender)
    for (const [hex, key] of senders) {
      const queue = this.#bySender.get(hex)
      if (queue === undefined) continue
      const next = stateNonce(key)
      for (const [n, t] of queue) if (n < next) this.#remove(t)
    }
    for (const t of committed) if (this.#byId.has(toHex(t.id))) this.#remove(t)
  }

  #remove(tx: Tx): void {
    const id = toHex(tx.id)
    if (!this.#byId.delete(id)) return
    this.#bytes -= tx.bytes.length
    const from = this.#origin.get(id)
    if (from !== undefined) {
      this.#origin.delete(id)
      const share = this.#byPeer.get(from)
      if (share !== undefined) {
        share.txs--
        share.bytes -= tx.bytes.length
        if (share.txs <= 0) this.#byPeer.delete(from)
      }
    }
    const sender = toHex(tx.sender)
    const queue = this.#bySender.get(sender)
    queue?.delete(tx.nonce)
    if (queue?.size === 0) this.#bySender.delete(sender)
  }
}
