import { TxError, asArray, decodeCanonical, encodeTrusted, CodecError, type Tx } from '../chain/index.js'
import type { ConsensusNet } from '../consensus/index.js'
import type { OrgKeys } from '../crypto/index.js'
import { P2PNode, type PeerInfo } from '../p2p/index.js'
import { equalBytes, errorMessage, toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'
import { SYNC_MAX_RESPONSE_BYTES, SyncService } from './sync.js'

/** Network options of a node. */
export interface NetworkOpts {
  /** Multiaddrs to listen on. */
  readonly listen: readonly string[]
  readonly dialIntervalMs?: number
  readonly syncIntervalMs?: number
}

const TX_BATCH_MAX = 512
const TX_BATCH_DELAY_MS = 5
/** Gossiped transactions waiting for verification; beyond this, new batches are dropped. */
const INGEST_MAX = 20_000
/** ...and their bytes. */
const INGEST_MAX_BYTES = 32 * 1024 * 1024
/** The part of the waiting line one peer may hold: a peer that floods gossip does not crowd the others out. */
const INGEST_PEER_SHARE = 4
/** Transactions verified per turn of the event loop, so consensus messages never wait long behind gossip. */
const INGEST_CHUNK = 32

/**
 * The node's network: a P2PNode whose gate admits only organizations in the
 * ledger's registry, the transaction gossip channel, the consensus channel
 * and block sync. Validation of what arrives stays with chain and consensus.
 */
export class NetworkService {
  readonly p2p: P2PNode
  readonly sync: SyncService
  readonly #chain: ChainService
  readonly #logger: Logger
  readonly #self: Uint8Array
  #consensusHandler: ((from: Uint8Array, bytes: Uint8Array) => void) | undefined
  #txBatch: Uint8Array[] = []
  readonly #ingest: { from: Uint8Array; bytes: Uint8Array }[] = []
  /** Transactions and bytes waiting in #ingest, in all and per peer (hex key). */
  readonly #waiting = { txs: 0, bytes: 0 }
  readonly #waitingByPeer = new Map<string, { txs: number; bytes: number }>()
  #ingestHead = 0
  #draining = false
  #dropped = 0
  #txTimer: NodeJS.Timeout | undefined
  readonly #onPending = (tx: Tx, local: boolean): void => {
    if (local) this.#queueTx(tx.bytes)
  }
  readonly #onOrgs = (): void => this.p2p.recheck()

  constructor(opts: NetworkOpts, modules: { chain: ChainService; keys: OrgKeys; logger: Logger }) {
    this.#chain = modules.chain
    this.#logger = modules.logger
    this.#self = modules.keys.signer.publicKey
    const chain = this.#chain
    this.p2p = new P2PNode(
      {
        listen: [...opts.listen],
        identitySeed: modules.keys.identitySeed,
        networkId: chain.chainId,
        isAllowed: (key) => chain.orgByKey(key) !== undefined,
        peersToDial: () =>
          chain
            .orgs()
            .filter((o) => !equalBytes(o.signKey, this.#self) && o.addrs.length > 0)
            .map((o) => ({ publicKey: o.signKey, addrs: [...o.addrs] })),
        ...(opts.dialIntervalMs === undefined ? {} : { dialIntervalMs: opts.dialIntervalMs }),
      },
      { logger: modules.logger.child({ mod: 'p2p' }) },
    )
    this.sync = new SyncService(opts.syncIntervalMs === undefined ? {} : { intervalMs: opts.syncIntervalMs }, {
      chain,
      logger: modules.logger.child({ mod: 'sync' }),
      net: {
        peers: () => this.p2p.peers().map((p) => p.publicKey),
        request: (peer, req, o) =>
          this.p2p.request('sync', peer, req, { timeoutMs: o.timeoutMs, signal: o.signal, maxResponseBytes: SYNC_MAX_RESPONSE_BYTES + 1024 * 1024 }),
        penalize: (peer, points, reason) => this.p2p.penalize(peer, points, reason),
      },
    })
    const params = chain.params()
    this.p2p.channel('tx', {
      maxMessageBytes: TX_BATCH_MAX * (params.maxTxBytes + 8) + 64,
      onMessage: (from, data) => this.#onTxs(from, data),
    })
    this.p2p.channel('consensus', {
      maxMessageBytes: params.maxBlockBytes + 4096,
      onMessage: (from, data) => this.#consensusHandler?.(from, data),
    })
    this.p2p.handle('sync', {
      maxRequestBytes: 256,
      maxResponseBytes: SYNC_MAX_RESPONSE_BYTES + 1024 * 1024,
      timeoutMs: 20_000,
      // Answers of up to 33 MiB: two per peer at a time bound what a peer that does not read them holds.
      perPeer: 2,
      handler: (_from, req) => this.sync.serve(req),
    })
  }

  /** The consensus engine's view of the network. */
  consensusNet(): ConsensusNet {
    return {
      broadcast: (bytes) => {
        this.p2p.broadcast('consensus', bytes)
      },
      onMessage: (handler) => {
        this.#consensusHandler = handler
      },
      penalize: (from, points, reason) => this.p2p.penalize(from, points, reason),
      peerAhead: (_from, height) => this.sync.peerAhead(height),
    }
  }

  /** Gossiped transactions waiting for their signature check. */
  get ingestBacklog(): number {
    return this.#waiting.txs
  }

  /** Connected peers. */
  peers(): PeerInfo[] {
    return this.p2p.peers()
  }

  /** Listen addresses (with /p2p/<peer id>). */
  get addrs(): string[] {
    return this.p2p.addrs
  }

  async start(): Promise<void> {
    this.#chain.on('pending', this.#onPending)
    this.#chain.on('orgs', this.#onOrgs)
    await this.p2p.start()
    this.sync.start()
  }

  async stop(): Promise<void> {
    this.#chain.off('pending', this.#onPending)
    this.#chain.off('orgs', this.#onOrgs)
    if (this.#txTimer !== undefined) clearTimeout(this.#txTimer)
    await this.sync.stop()
    await this.p2p.stop()
  }

  // Local transactions go to every peer in small batches (full mesh: peers do not relay).
  #queueTx(bytes: Uint8Array): void {
    this.#txBatch.push(bytes)
    if (this.#txBatch.length >= TX_BATCH_MAX) this.#flushTxs()
    else this.#txTimer ??= setTimeout(() => this.#flushTxs(), TX_BATCH_DELAY_MS)
  }

  #flushTxs(): void {
    if (this.#txTimer !== undefined) clearTimeout(this.#txTimer)
    this.#txTimer = undefined
    const batch = this.#txBatch
    this.#txBatch = []
    if (batch.length > 0) this.p2p.broadcast('tx', encodeTrusted(batch))
  }

  #onTxs(from: Uint8Array, data: Uint8Array): void {
    let list: unknown[]
    try {
      list = asArray(decodeCanonical(data), 'tx batch', undefined, TX_BATCH_MAX)
    } catch (err) {
      if (err instanceof CodecError) this.p2p.penalize(from, 20, `malformed transaction batch: ${err.message}`)
      return
    }
    let bytes = 0
    for (const item of list) {
      if (!(item instanceof Uint8Array)) {
        this.p2p.penalize(from, 20, 'transaction batch holds a non-bytes item')
        return
      }
      bytes += item.length
    }
    const peer = toHex(from)
    const mine = this.#waitingByPeer.get(peer) ?? { txs: 0, bytes: 0 }
    if (
      this.#waiting.txs + list.length > INGEST_MAX ||
      this.#waiting.bytes + bytes > INGEST_MAX_BYTES ||
      mine.txs + list.length > INGEST_MAX / INGEST_PEER_SHARE ||
      mine.bytes + bytes > INGEST_MAX_BYTES / INGEST_PEER_SHARE
    ) {
      // Overloaded: the sender still holds these and proposes them in its turn.
      this.#dropped += list.length
      if (this.#dropped % 10_000 < list.length) this.#logger.warn('gossip ingest full: transactions dropped', { dropped: this.#dropped })
      return
    }
    // Each transaction gets its own copy: a view would keep the whole batch (up to 8 MiB) alive for as long as
    // any one of its transactions stays pending.
    for (const item of list) this.#ingest.push({ from, bytes: (item as Uint8Array).slice() })
    this.#waiting.txs += list.length
    this.#waiting.bytes += bytes
    mine.txs += list.length
    mine.bytes += bytes
    this.#waitingByPeer.set(peer, mine)
    if (!this.#draining) {
      this.#draining = true
      setImmediate(() => this.#drain())
    }
  }

  #waited(from: Uint8Array, bytes: number): void {
    this.#waiting.txs--
    this.#waiting.bytes -= bytes
    const peer = toHex(from)
    const mine = this.#waitingByPeer.get(peer)
    if (mine === undefined) return
    mine.txs--
    mine.bytes -= bytes
    if (mine.txs <= 0) this.#waitingByPeer.delete(peer)
  }

  // Verifies queued gossip a chunk per turn of the event loop.
  #drain(): void {
    const end = Math.min(this.#ingest.length, this.#ingestHead + INGEST_CHUNK)
    for (; this.#ingestHead < end; this.#ingestHead++) {
      const { from, bytes } = this.#ingest[this.#ingestHead] as { from: Uint8Array; bytes: Uint8Array }
      this.#waited(from, bytes.length)
      try {
        this.#chain.submitBytes(bytes, from)
      } catch (err) {
        if ((err instanceof TxError || err instanceof CodecError) && err.penalize) {
          this.p2p.penalize(from, 10, `bad transaction: ${err.message}`)
        } else if (!(err instanceof TxError)) {
          this.#logger.warn('gossiped transaction failed', { peer: toHex(from).slice(0, 16), err: errorMessage(err) })
        }
      }
    }
    if (this.#ingestHead >= this.#ingest.length) {
      this.#ingest.length = 0
      this.#ingestHead = 0
      this.#draining = false
      return
    }
    if (this.#ingestHead > 4096) {
      this.#ingest.splice(0, this.#ingestHead)
      this.#ingestHead = 0
    }
    setImmediate(() => this.#drain())
  }
}
