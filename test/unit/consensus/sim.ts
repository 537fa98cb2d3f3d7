// In-process multi-node harness for the BFT engine tests (not a test file itself):
// four real BftEngines, each over its own ChainService, ChainStore and
// ConsensusWal in a temporary directory, joined by an in-memory ConsensusNet.
import type { Test } from 'tap'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BftEngine, ConsensusWal, decodeMessage, type BftOpts, type ConsensusNet } from '../../../src/consensus/index.js'
import { DEFAULT_MEMPOOL_LIMITS, parseGenesis, type Genesis } from '../../../src/chain/index.js'
import { ChainStore } from '../../../src/storage/index.js'
import { ChainService } from '../../../src/node/chain-service.js'
import { nullLogger, sleep, toHex, type Logger } from '../../../src/util/index.js'
import { genesisJSON, testOrg, type TestOrg } from '../chain/fixtures.js'

/** Small timeouts so scenarios run in seconds. */
export const FAST_OPTS: BftOpts = { timeoutProposeMs: 200, timeoutVoteMs: 100, timeoutDeltaMs: 50, timeoutCapMs: 1000, gossipMs: 100, heartbeatMs: 100 }

/** What a link filter decides for one message: drop it, delay it (ms), or let it through (undefined). */
export type LinkVerdict = 'drop' | number | undefined
/** A filter on every delivery from node `from` to node `to` (indexes; -1 for an injected sender). */
export type LinkRule = (from: number, to: number, bytes: Uint8Array) => LinkVerdict

/** A penalty an engine asked its network to give a peer. */
export interface Penalty {
  readonly node: number
  readonly from: string
  readonly points: number
  readonly reason: string
}

/** A vote as broadcast by a node, with its bytes. */
export interface SeenVote {
  readonly node: number
  readonly signer: string
  readonly height: number
  readonly round: number
  readonly kind: string
  readonly id: string
  readonly bytes: Uint8Array
}

/** One authority's node: its org, files, and the current incarnation of its services. */
export interface SimNode {
  readonly index: number
  readonly org: TestOrg
  readonly key: string
  readonly dbDir: string
  readonly walPath: string
  store: ChainStore
  chain: ChainService
  wal: ConsensusWal | undefined
  engine: BftEngine | undefined
  /** Height -> block hash (hex) of every block this node committed, over all incarnations. */
  readonly committed: Map<number, string>
  syncing: Promise<void> | undefined
}

/** Logger that records error lines ('consensus halted') and prints nothing unless SIM_DEBUG is set. */
function recordingLogger(node: number, errors: string[]): Logger {
  const debug = process.env['SIM_DEBUG'] !== undefined
  const l: Logger = {
    debug: () => {},
    info: (msg, ctx) => {
      if (debug) console.error(`[${node}] info ${msg} ${JSON.stringify(ctx ?? {})}`)
    },
    warn: (msg, ctx) => {
      if (debug) console.error(`[${node}] warn ${msg} ${JSON.stringify(ctx ?? {})}`)
    },
    error: (msg, ctx) => {
      errors.push(`node ${node}: ${msg} ${JSON.stringify(ctx ?? {})}`)
      if (debug) console.error(`[${node}] ERROR ${msg} ${JSON.stringify(ctx ?? {})}`)
    },
    child: () => l,
  }
  return l
}

/** Waits until `cond` holds, polling; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(15)
  }
}

/**
 * The in-memory network: broadcast bytes reach every other live engine's
 * handler asynchronously (setImmediate, or setTimeout when a rule delays
 * them), unless a partition or a rule drops them. Records penalties, peerAhead
 * hints, and every vote each node broadcasts, flagging any two different
 * votes for one (signer, height, round, kind).
 */
export class SimNet {
  readonly #handlers: (((from: Uint8Array, bytes: Uint8Array) => void) | undefined)[] = []
  readonly #keys: Uint8Array[] = []
  readonly #blocked = new Set<string>()
  readonly rules = new Set<LinkRule>()
  readonly penalties: Penalty[] = []
  readonly aheads: { node: number; from: string; height: number }[] = []
  /** First vote seen per `signer:height:round:kind`. */
  readonly votes = new Map<string, SeenVote>()
  /** Every vote broadcast, in order. */
  readonly voteLog: SeenVote[] = []
  /** Pairs of different votes for one (signer, height, round, kind): must stay empty. */
  readonly conflicts: string[] = []
  /**
   * Called with every broadcast after it is handed to the links; `fresh` when
   * it is a vote not seen before. An observer may throw to crash the sender
   * right after the send (the engine's loop ends quietly when it was stopped).
   */
  readonly observers = new Set<(from: number, bytes: Uint8Array, fresh: boolean) => void>()
  /** Called when node `node` learns that `from` is ahead (the harness syncs it). */
  onAhead: ((node: number, from: number, height: number) => void) | undefined
  delivered = 0

  addNode(key: Uint8Array): number {
    this.#keys.push(key)
    this.#handlers.push(undefined)
    return this.#keys.length - 1
  }

  indexOf(key: Uint8Array): number {
    const k = toHex(key)
    return this.#keys.findIndex((x) => toHex(x) === k)
  }

  /** Detaches node `i`'s handler (its engine stopped). */
  detach(i: number): void {
    this.#handlers[i] = undefined
  }

  /** Cuts every link between the groups (each node keeps the links inside its group). */
  partition(groups: readonly (readonly number[])[]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue
        for (const x of a) for (const y of b) this.#blocked.add(`${x}>${y}`)
      }
    }
  }

  /** Cuts the links from and to node `i`. */
  isolate(i: number): void {
    for (let j = 0; j < this.#keys.length; j++) {
      if (j === i) continue
      this.#blocked.add(`${i}>${j}`)
      this.#blocked.add(`${j}>${i}`)
    }
  }

  /** Restores every link cut by partition or isolate. */
  heal(): void {
    this.#blocked.clear()
  }

  linked(from: number, to: number): boolean {
    return !this.#blocked.has(`${from}>${to}`)
  }

  /** The ConsensusNet of node `i`. */
  endpoint(i: number): ConsensusNet {
    return {
      broadcast: (bytes) => this.#broadcast(i, bytes),
      onMessage: (handler) => {
        this.#handlers[i] = handler
      },
      penalize: (from, points, reason) => {
        this.penalties.push({ node: i, from: toHex(from), points, reason })
      },
      peerAhead: (from, height) => {
        this.aheads.push({ node: i, from: toHex(from), height })
        const j = this.indexOf(from)
        if (j >= 0) this.onAhead?.(i, j, height)
      },
    }
  }

  /** Delivers `bytes` to node `to` as if sent by peer key `from`, bypassing partitions and rules. */
  inject(to: number, from: Uint8Array, bytes: Uint8Array): void {
    setImmediate(() => this.#handlers[to]?.(from, bytes))
  }

  /** Like inject, but hands the bytes to node `to`'s handler now (it queues them behind what it holds). */
  injectNow(to: number, from: Uint8Array, bytes: Uint8Array): void {
    this.#handlers[to]?.(from, bytes)
  }

  // True for a vote seen for the first time.
  #record(i: number, bytes: Uint8Array): boolean {
    const m = decodeMessage(bytes, Number.MAX_SAFE_INTEGER)
    if (m.type !== 'vote') return false
    const v = m.vote
    const seen: SeenVote = {
      node: i,
      signer: toHex(v.signer),
      height: v.height,
      round: v.round,
      kind: v.kind,
      id: v.blockHash === null ? 'nil' : toHex(v.blockHash),
      bytes,
    }
    this.voteLog.push(seen)
    const key = `${seen.signer}:${v.height}:${v.round}:${v.kind}`
    const first = this.votes.get(key)
    if (first === undefined) {
      this.votes.set(key, seen)
      return true
    }
    if (first.id !== seen.id)
      this.conflicts.push(`${v.kind} of ${seen.signer.slice(0, 8)} at (${v.height}, ${v.round}): ${first.id.slice(0, 8)} then ${seen.id.slice(0, 8)}`)
    return false
  }

  #broadcast(i: number, bytes: Uint8Array): void {
    const fresh = this.#record(i, bytes)
    const from = this.#keys[i] as Uint8Array
    for (let j = 0; j < this.#keys.length; j++) {
      if (j === i || !this.linked(i, j)) continue
      let verdict: LinkVerdict
      for (const r of this.rules) {
        const v = r(i, j, bytes)
        if (v === 'drop') {
          verdict = 'drop'
          break
        }
        if (typeof v === 'number') verdict = Math.max(typeof verdict === 'number' ? verdict : 0, v)
      }
      if (verdict === 'drop') continue
      const deliver = (): void => {
        // A partition made while the message was in flight drops it too.
        if (!this.linked(i, j)) return
        this.delivered++
        this.#handlers[j]?.(from, bytes)
      }
      if (typeof verdict === 'number' && verdict > 0) setTimeout(deliver, verdict)
      else setImmediate(deliver)
    }
    for (const o of this.observers) o(i, bytes, fresh)
  }
}

/** Four (or `n`) authorities with their engines, stores and WALs. */
export class Cluster {
  readonly genesis: Genesis
  readonly nodes: SimNode[] = []
  readonly net = new SimNet()
  /** Error lines logged by the engines (a halt), and failed sync imports. */
  readonly errors: string[] = []
  readonly opts: BftOpts
  #closed = false

  private constructor(orgs: readonly TestOrg[], opts: BftOpts) {
    this.opts = opts
    this.genesis = parseGenesis(genesisJSON(orgs))
    this.net.onAhead = (i, j, height) => this.#sync(i, j, height)
  }

  /** Builds `n` nodes (auth-0 ...) over fresh temporary directories; engines are not started. Closed in teardown. */
  static async create(t: Test, opts: { n?: number; bft?: BftOpts } = {}): Promise<Cluster> {
    const dir = await mkdtemp(join(tmpdir(), 'radchain-bft-'))
    const n = opts.n ?? 4
    const orgs = Array.from({ length: n }, (_, i) => testOrg(`auth-${i}`, 'authority'))
    const c = new Cluster(orgs, opts.bft ?? FAST_OPTS)
    t.teardown(async () => {
      await c.close()
      await rm(dir, { recursive: true, force: true })
    })
    for (const org of orgs) {
      const index = c.net.addNode(org.signer.publicKey)
      const dbDir = join(dir, `node-${index}`, 'db')
      await mkdir(dbDir, { recursive: true })
      const store = await ChainStore.open(dbDir)
      const node: SimNode = {
        index,
        org,
        key: toHex(org.signer.publicKey),
        dbDir,
        walPath: join(dir, `node-${index}`, 'wal'),
        store,
        chain: await c.#openChain(store, org),
        wal: undefined,
        engine: undefined,
        committed: new Map(),
        syncing: undefined,
      }
      c.#watch(node)
      c.nodes.push(node)
    }
    return c
  }

  async #openChain(store: ChainStore, org: TestOrg): Promise<ChainService> {
    return ChainService.open(this.genesis, store, { mempool: DEFAULT_MEMPOOL_LIMITS, logger: nullLogger(), evidenceSigner: org.signer })
  }

  #watch(node: SimNode): void {
    node.chain.on('block', (b) => {
      const h = toHex(b.hash)
      const prev = node.committed.get(b.header.height)
      if (prev !== undefined && prev !== h) this.errors.push(`node ${node.index} committed two blocks at ${b.header.height}`)
      node.committed.set(b.header.height, h)
    })
  }

  node(i: number): SimNode {
    const n = this.nodes[i]
    if (n === undefined) throw new Error(`no node ${i}`)
    return n
  }

  /** Starts node `i`'s engine over its current chain service and a (re)opened WAL. */
  async start(i: number): Promise<void> {
    const node = this.node(i)
    if (node.engine !== undefined) throw new Error(`node ${i} is running`)
    node.wal = await ConsensusWal.open(node.walPath)
    node.engine = new BftEngine(this.opts, {
      host: node.chain,
      net: this.net.endpoint(i),
      signer: node.org.signer,
      clock: () => Date.now(),
      logger: recordingLogger(i, this.errors),
      wal: node.wal,
    })
    await node.engine.start()
  }

  async startAll(): Promise<void> {
    for (const n of this.nodes) await this.start(n.index)
  }

  /**
   * Stops node `i`'s engine and closes its WAL; the store and chain service stay
   * open (restart can reopen them). Detached at once: nothing reaches it after.
   */
  async stop(i: number): Promise<void> {
    const node = this.node(i)
    this.net.detach(i)
    const engine = node.engine
    node.engine = undefined
    await engine?.stop()
    await node.syncing
    await node.wal?.close()
    node.wal = undefined
  }

  /** Stops node `i` and starts a new engine over the same store and WAL file; `reopenStore` also reopens the store and chain service. */
  async restart(i: number, opts: { reopenStore?: boolean } = {}): Promise<void> {
    await this.stop(i)
    if (opts.reopenStore === true) {
      const node = this.node(i)
      await node.store.close()
      node.store = await ChainStore.open(node.dbDir)
      node.chain = await this.#openChain(node.store, node.org)
      this.#watch(node)
    }
    await this.start(i)
  }

  running(i: number): boolean {
    return this.node(i).engine !== undefined
  }

  /** Head heights, by node. */
  heights(): number[] {
    return this.nodes.map((n) => n.chain.head().header.height)
  }

  /** Waits until every node in `which` has a head at or above `height`. */
  async waitHeight(height: number, which: readonly number[] = this.nodes.map((n) => n.index), timeoutMs = 10_000): Promise<void> {
    await waitFor(
      `nodes ${which.join(',')} at height ${height} (now ${this.heights().join(',')})`,
      () => which.every((i) => this.node(i).chain.head().header.height >= height),
      timeoutMs,
    )
  }

  // Sync as the node's SyncService would: fetch the blocks it lacks, with their
  // certificates, from the peer that showed a greater height, and import them.
  #sync(i: number, j: number, height: number): void {
    const me = this.node(i)
    if (me.syncing !== undefined || me.engine === undefined || height <= me.chain.head().header.height) return
    const peer = this.node(j)
    const run = async (): Promise<void> => {
      while (me.engine !== undefined && this.net.linked(j, i)) {
        const next = me.chain.head().header.height + 1
        if (next > peer.chain.head().header.height) return
        const e = await peer.chain.syncEntry(next)
        if (e === undefined) return
        await me.chain.importBlock(e.block, e.cert)
      }
    }
    me.syncing = run()
      .catch((err: unknown) => {
        if (this.#closed) return
        const name = err instanceof Error ? err.name : 'Error'
        // A peer whose store is being reopened answers with a closed-database error; retry on the next hint.
        if (name === 'BlockError' || name === 'StoreError' || (err instanceof Error && err.message.startsWith('SAFETY')))
          this.errors.push(`node ${i} sync from ${j}: ${String(err)}`)
      })
      .finally(() => {
        me.syncing = undefined
      })
  }

  /**
   * Safety over the stores: at every height up to the highest head, no two
   * stores hold different blocks; also over every block each node committed
   * in any incarnation. Returns the number of (height, store) pairs compared.
   */
  async checkSafety(t: Test): Promise<number> {
    const top = Math.max(...this.heights())
    const problems: string[] = []
    let compared = 0
    for (let h = 1; h <= top; h++) {
      const hashes = new Map<string, number[]>()
      for (const n of this.nodes) {
        const b = await n.chain.blockAt(h)
        const fromEvents = n.committed.get(h)
        if (b !== undefined) {
          compared++
          const k = toHex(b.hash)
          hashes.set(k, [...(hashes.get(k) ?? []), n.index])
          if (fromEvents !== undefined && fromEvents !== k) problems.push(`node ${n.index} store and events differ at ${h}`)
        } else if (fromEvents !== undefined) {
          problems.push(`node ${n.index} committed ${h} but its store lacks it`)
        }
      }
      if (hashes.size > 1) problems.push(`height ${h}: ${[...hashes].map(([k, v]) => `${k.slice(0, 8)} at ${v.join(',')}`).join(' vs ')}`)
    }
    t.same(problems, [], `safety: one block per height in every store (${compared} (height, store) pairs up to height ${top})`)
    t.same(this.net.conflicts, [], `no signer broadcast two different votes for one (height, round, kind) (${this.net.voteLog.length} votes seen)`)
    t.same(this.errors, [], 'no engine halted, no sync import failed')
    return compared
  }

  /** Penalties given to the peers in `keys` (hex), or to any of the cluster's own nodes when omitted. */
  penaltiesOf(keys?: readonly string[]): Penalty[] {
    const ks = new Set(keys ?? this.nodes.map((n) => n.key))
    return this.net.penalties.filter((p) => ks.has(p.from))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const n of this.nodes) await this.stop(n.index)
    for (const n of this.nodes) {
      await n.syncing
      await n.store.close()
    }
  }
}
