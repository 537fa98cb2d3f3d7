import {
  BlockError,
  CodecError,
  lastCommitHashOf,
  merkleRoot,
  signVote,
  verifyVote,
  type ApplyResult,
  type AuthoritySet,
  type Block,
  type CommitCertificate,
  type SignedVote,
  type VoteKind,
} from '../chain/index.js'
import type { Ed25519Signer } from '../crypto/index.js'
import { equalBytes, errorMessage, toHex, type Logger } from '../util/index.js'
import type { Clock, ConsensusEngine, ConsensusHost, ConsensusNet } from './engine.js'
import { decodeMessage, encodeMessage, signProposal, verifyProposal, type ConsensusMessage, type Proposal } from './messages.js'
import type { ConsensusWal } from './wal.js'

/** Timeouts and switches of the BFT engine. */
export interface BftOpts {
  /** Propose timeout of round 0 (ms). */
  readonly timeoutProposeMs: number
  /** Prevote and precommit timeouts of round 0 (ms). */
  readonly timeoutVoteMs: number
  /** Added to every timeout per round: growth is linear, never exponential (ms). */
  readonly timeoutDeltaMs: number
  /** Upper bound of every timeout (ms). */
  readonly timeoutCapMs: number
  /** Period of re-sending this node's messages for the current height (ms). */
  readonly gossipMs: number
  /** Heartbeat override: an empty block when nothing arrived for this long (ms); the chain parameter otherwise. */
  readonly heartbeatMs?: number
  /** Test-only: sign a second, conflicting prevote (nil) beside every prevote. */
  readonly testEquivocate?: boolean
  /** Test-only: a broken invariant on entering this height (the engine halts, as on a real one). */
  readonly testHaltAtHeight?: number
}

/** Defaults: about 1 s to propose, 0.5 s per vote step, +0.5 s per round, capped at 10 s (docs/CONSENSUS.md "Timeouts and heartbeat"). */
export const DEFAULT_BFT_OPTS: BftOpts = { timeoutProposeMs: 1000, timeoutVoteMs: 500, timeoutDeltaMs: 500, timeoutCapMs: 10_000, gossipMs: 1000 }

type Step = 'propose' | 'prevote' | 'precommit'

interface Tally {
  readonly byKey: Map<string, SignedVote>
  readonly count: Map<string, number>
}

interface Candidate {
  readonly block: Block
  /** Deterministic validity (applyBlock on the head) with its effects, or the error. */
  result?: ApplyResult | BlockError
}

const NIL = 'nil'
const MAX_QUEUE = 20_000
const MAX_FUTURE = 4_096
const MAX_ROUND_AHEAD = 10_000
// Next-height messages held per signer: room for two blocks (a proposal of
// round 0 and one of a later round) and many votes; more is dropped.
const FUTURE_SLACK_BYTES = 256 * 1024

const idOf = (hash: Uint8Array | null): string => (hash === null ? NIL : toHex(hash))

/** State of one height (docs/CONSENSUS.md "Terms"). */
class HeightState {
  readonly height: number
  readonly set: AuthoritySet
  readonly members: Set<string>
  round = 0
  step: Step = 'propose'
  lockedRound = -1
  lockedBlock: Block | null = null
  validRound = -1
  validBlock: Block | null = null
  decided = false
  readonly proposals = new Map<number, Proposal>()
  readonly candidates = new Map<string, Candidate>()
  readonly prevotes = new Map<number, Tally>()
  readonly precommits = new Map<number, Tally>()
  readonly roundSigners = new Map<number, Set<string>>()
  readonly fired = new Set<string>()
  /** Messages this node signed at this height, by `kind:round`. */
  readonly sent = new Map<string, Uint8Array>()
  readonly equivocators = new Set<string>()

  constructor(height: number, set: AuthoritySet) {
    this.height = height
    this.set = set
    this.members = new Set(set.members.map((m) => toHex(m.signKey)))
  }

  tally(kind: VoteKind, round: number): Tally {
    const map = kind === 'prevote' ? this.prevotes : this.precommits
    let t = map.get(round)
    if (t === undefined) {
      t = { byKey: new Map(), count: new Map() }
      map.set(round, t)
    }
    return t
  }

  /** True the first time `key` is asked for at this height. */
  once(key: string): boolean {
    if (this.fired.has(key)) return false
    this.fired.add(key)
    return true
  }
}

type EngineEvent =
  | { readonly type: 'message'; readonly from: Uint8Array; readonly bytes: Uint8Array }
  | { readonly type: 'timeout'; readonly height: number; readonly round: number; readonly step: Step }
  | { readonly type: 'ready'; readonly height: number; readonly round: number }
  | { readonly type: 'committed'; readonly height: number }
  | { readonly type: 'gossip' }

/**
 * Tendermint BFT ("The latest gossip on BFT consensus", restated in
 * docs/CONSENSUS.md) among the authorities. One loop serializes peer messages,
 * timeouts and own actions; every rule first guards on (height, round,
 * step); every message this node signs and every lock is written to the
 * write-ahead log and fsynced before it is sent. A member organization runs
 * the same engine without signing: it follows the votes and commits.
 */
export class BftEngine implements ConsensusEngine {
  readonly #opts: BftOpts
  readonly #host: ConsensusHost
  readonly #net: ConsensusNet
  readonly #signer: Ed25519Signer
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #wal: ConsensusWal
  readonly #abort = new AbortController()
  #halted: { reason: string; height: number; round: number } | undefined
  readonly #haltListeners: ((h: { reason: string; height: number; round: number }) => void)[] = []
  readonly #queue: EngineEvent[] = []
  readonly #future: { from: Uint8Array; msg: ConsensusMessage; bytes: Uint8Array }[] = []
  /** The buffered next-height messages: one per (signer, type, round, kind), and the bytes each signer holds there. */
  readonly #futureKeys = new Set<string>()
  readonly #futureBytes = new Map<string, number>()
  readonly #timers = new Set<NodeJS.Timeout>()
  #hs!: HeightState
  #wake: (() => void) | undefined
  #loop: Promise<void> | undefined
  #unsubscribe: (() => void) | undefined
  #gossipTimer: NodeJS.Timeout | undefined
  #round0Abort: AbortController | undefined

  constructor(opts: BftOpts, modules: { host: ConsensusHost; net: ConsensusNet; signer: Ed25519Signer; clock: Clock; logger: Logger; wal: ConsensusWal }) {
    this.#opts = opts
    this.#host = modules.host
    this.#net = modules.net
    this.#signer = modules.signer
    this.#clock = modules.clock
    this.#logger = modules.logger
    this.#wal = modules.wal
  }

  /** Why consensus stopped on its own, if it did: a broken invariant or a failing store (it signs nothing more). */
  get halted(): { reason: string; height: number; round: number } | undefined {
    return this.#halted
  }

  /** Calls `fn` once, when consensus halts on its own. */
  onHalt(fn: (h: { reason: string; height: number; round: number }) => void): void {
    this.#haltListeners.push(fn)
  }

  /** Current (height, round, step), for status and tests. */
  get position(): { height: number; round: number; step: Step } {
    return { height: this.#hs.height, round: this.#hs.round, step: this.#hs.step }
  }

  /** Messages for the next height held until it starts, and their bytes (bounded per signer). */
  get futureBuffered(): { messages: number; bytes: number } {
    let bytes = 0
    for (const b of this.#futureBytes.values()) bytes += b
    return { messages: this.#future.length, bytes }
  }

  async start(): Promise<void> {
    this.#hs = this.#newHeightState()
    this.#replayWal()
    this.#net.onMessage((from, bytes) => this.#enqueue({ type: 'message', from, bytes }))
    this.#unsubscribe = this.#host.onCommitted((height) => this.#enqueue({ type: 'committed', height }))
    this.#gossipTimer = setInterval(() => this.#enqueue({ type: 'gossip' }), this.#opts.gossipMs)
    this.#loop = this.#run()
    if (this.#hs.round === 0) this.#armRound0()
    else this.#enqueue({ type: 'ready', height: this.#hs.height, round: this.#hs.round })
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('consensus stopped'))
    this.#round0Abort?.abort()
    this.#unsubscribe?.()
    if (this.#gossipTimer !== undefined) clearInterval(this.#gossipTimer)
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    this.#wake?.()
    await this.#loop
    // The event being handled when stop came may have armed one more timer.
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }

  // ---- event loop ----

  #enqueue(ev: EngineEvent): void {
    if (this.#abort.signal.aborted) return
    if (ev.type === 'message' && this.#queue.length >= MAX_QUEUE) return
    this.#queue.push(ev)
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const ev = this.#queue.shift()
      if (ev === undefined) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
        continue
      }
      try {
        await this.#handle(ev)
      } catch (err) {
        if (signal.aborted) return
        // A broken invariant or a failing store: stop rather than sign something wrong.
        this.#logger.error('consensus halted', { err: errorMessage(err), height: this.#hs.height, round: this.#hs.round })
        this.#halted = { reason: errorMessage(err), height: this.#hs.height, round: this.#hs.round }
        this.#abort.abort(err)
        for (const fn of this.#haltListeners) fn(this.#halted)
        return
      }
    }
  }

  async #handle(ev: EngineEvent): Promise<void> {
    // Sync may have made this height final while the event waited behind its
    // 'committed' event: move on first, so no rule reads the new head's state
    // (proposer order, validation) for the old height.
    if (ev.type !== 'committed' && this.#host.head().header.height >= this.#hs.height) await this.#enterHeight()
    switch (ev.type) {
      case 'message':
        await this.#onMessage(ev.from, ev.bytes)
        return
      case 'timeout':
        await this.#onTimeout(ev.height, ev.round, ev.step)
        return
      case 'ready':
        if (ev.height === this.#hs.height) await this.#roundReady(ev.round)
        return
      case 'committed':
        if (ev.height >= this.#hs.height) await this.#enterHeight()
        return
      case 'gossip':
        this.#gossip()
        return
    }
  }

  #schedule(ms: number, height: number, round: number, step: Step): void {
    const t = setTimeout(
      () => {
        this.#timers.delete(t)
        this.#enqueue({ type: 'timeout', height, round, step })
      },
      Math.max(0, ms),
    )
    this.#timers.add(t)
  }

  #timeout(base: number, round: number): number {
    return Math.min(this.#opts.timeoutCapMs, base + round * this.#opts.timeoutDeltaMs)
  }

  // ---- heights and rounds ----

  #newHeightState(): HeightState {
    return new HeightState(this.#host.head().header.height + 1, this.#host.authorities())
  }

  #isAuthority(hs: HeightState = this.#hs): boolean {
    return hs.members.has(toHex(this.#signer.publicKey))
  }

  #replayWal(): void {
    const hs = this.#hs
    for (const e of this.#wal.entries()) {
      if (e.height !== hs.height) continue
      if (e.kind === 'lock') {
        try {
          const block = this.#host.decodeBlock(e.blockBytes)
          hs.lockedRound = e.round
          hs.lockedBlock = block
          hs.validRound = e.round
          hs.validBlock = block
        } catch (err) {
          throw new Error(`write-ahead log holds an unreadable locked block: ${errorMessage(err)}`, { cause: err })
        }
        continue
      }
      const msg = decodeMessage(e.bytes, Number.MAX_SAFE_INTEGER)
      if (msg.type === 'proposal') {
        hs.sent.set(`proposal:${msg.proposal.round}`, e.bytes)
        hs.round = Math.max(hs.round, msg.proposal.round)
      } else {
        hs.sent.set(`${msg.vote.kind}:${msg.vote.round}`, e.bytes)
        hs.round = Math.max(hs.round, msg.vote.round)
        this.#addVote(msg.vote)
      }
    }
    if (hs.sent.size > 0)
      this.#logger.info('resumed from the write-ahead log', { height: hs.height, round: hs.round, signed: hs.sent.size, locked: hs.lockedRound })
  }

  async #enterHeight(): Promise<void> {
    const next = this.#host.head().header.height + 1
    if (this.#opts.testHaltAtHeight !== undefined && this.#opts.testHaltAtHeight > 0 && next >= this.#opts.testHaltAtHeight)
      throw new Error(`injected safety violation at height ${next} (devnet fault haltAtHeight)`)
    this.#round0Abort?.abort()
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    await this.#wal.reset()
    this.#hs = this.#newHeightState()
    const hs = this.#hs
    this.#armRound0()
    const future = this.#future.splice(0)
    this.#futureKeys.clear()
    this.#futureBytes.clear()
    for (const f of future) {
      // Held messages had their signature checked when they were buffered.
      if (this.#msgHeight(f.msg) === hs.height) await this.#onDecoded(f.from, f.msg, f.bytes, true)
      else if (this.#msgHeight(f.msg) > hs.height) this.#future.push(f)
    }
  }

  async #startRound(round: number): Promise<void> {
    const hs = this.#hs
    hs.round = round
    hs.step = 'propose'
    if (round === 0) {
      this.#armRound0()
      return
    }
    await this.#roundReady(round)
  }

  // Round 0 waits for transactions or the heartbeat before anyone proposes or
  // starts the propose timer, so an idle chain makes no empty rounds.
  #armRound0(): void {
    const hs = this.#hs
    const interval = this.#opts.heartbeatMs ?? this.#host.params().blockIntervalMs
    const due = this.#host.head().header.time + interval
    const wait = due - this.#clock()
    if (this.#host.hasPending() || wait <= 0) {
      this.#enqueue({ type: 'ready', height: hs.height, round: 0 })
      return
    }
    const ac = new AbortController()
    this.#round0Abort = ac
    // A plain timer, not AbortSignal.any([.., AbortSignal.timeout()]): on
    // Node.js 20 a garbage collection can drop a timeout signal held only by
    // AbortSignal.any() before it fires (nodejs/node#57736), and then round 0
    // would wait for a transaction forever.
    const wake = new AbortController()
    const timer = setTimeout(() => wake.abort(), wait)
    ac.signal.addEventListener('abort', () => wake.abort(), { once: true })
    this.#host
      .waitPending(wake.signal)
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer)
        if (!ac.signal.aborted) this.#enqueue({ type: 'ready', height: hs.height, round: 0 })
      })
  }

  async #roundReady(round: number): Promise<void> {
    const hs = this.#hs
    if (hs.round !== round || hs.step !== 'propose' || !hs.once(`ready:${round}`)) return
    const proposer = this.#host.proposerFor(round)
    if (this.#isAuthority() && equalBytes(proposer.signKey, this.#signer.publicKey)) await this.#propose(round)
    else this.#schedule(this.#timeout(this.#opts.timeoutProposeMs, round), hs.height, round, 'propose')
    await this.#evaluate()
  }

  // Rule 1: propose validBlock if there is one, else a new block from the mempool.
  async #propose(round: number): Promise<void> {
    const hs = this.#hs
    const key = `proposal:${round}`
    let bytes = hs.sent.get(key)
    if (bytes === undefined) {
      let block: Block
      if (hs.validBlock !== null) {
        block = hs.validBlock
      } else {
        const time = Math.max(this.#clock(), this.#host.head().header.time + 1)
        const t0 = performance.now()
        const built = this.#host.propose(time, this.#signer.publicKey)
        this.#logger.debug('block built', { height: hs.height, txs: built.block.txs.length, ms: Math.round(performance.now() - t0) })
        block = built.block
        hs.candidates.set(toHex(block.hash), { block, result: { writes: built.writes, stateRoot: built.stateRoot } })
      }
      const p = signProposal(this.#signer, this.#host.chainId, {
        height: hs.height,
        round,
        validRound: hs.validBlock !== null ? hs.validRound : -1,
        blockHash: block.hash,
        blockBytes: block.bytes,
      })
      bytes = encodeMessage({ type: 'proposal', proposal: p })
      await this.#wal.append({ height: hs.height, kind: 'message', bytes })
      hs.sent.set(key, bytes)
    }
    this.#net.broadcast(bytes)
    const msg = decodeMessage(bytes, Number.MAX_SAFE_INTEGER)
    if (msg.type === 'proposal') this.#acceptProposal(msg.proposal)
  }

  // ---- incoming messages ----

  #msgHeight(m: ConsensusMessage): number {
    return m.type === 'proposal' ? m.proposal.height : m.vote.height
  }

  async #onMessage(from: Uint8Array, bytes: Uint8Array): Promise<void> {
    let msg: ConsensusMessage
    try {
      msg = decodeMessage(bytes, this.#host.params().maxBlockBytes)
    } catch (err) {
      if (err instanceof CodecError) {
        this.#net.penalize(from, 20, `malformed consensus message: ${err.message}`)
        return
      }
      throw err
    }
    await this.#onDecoded(from, msg, bytes)
  }

  async #onDecoded(from: Uint8Array, msg: ConsensusMessage, bytes: Uint8Array, signatureChecked = false): Promise<void> {
    const hs = this.#hs
    const height = this.#msgHeight(msg)
    if (height < hs.height) return
    if (height > hs.height) {
      if (height === hs.height + 1 && !this.#bufferFuture(from, msg, bytes)) return
      this.#net.peerAhead(from, height - 1)
      return
    }
    const round = msg.type === 'proposal' ? msg.proposal.round : msg.vote.round
    if (round > hs.round + MAX_ROUND_AHEAD) {
      this.#net.penalize(from, 10, 'consensus message from an absurd round')
      return
    }
    const signer = msg.type === 'proposal' ? msg.proposal.signer : msg.vote.signer
    if (!hs.members.has(toHex(signer))) {
      this.#net.penalize(from, 10, 'consensus message signed by a key outside the authority set')
      return
    }
    if (msg.type === 'vote') {
      if (!signatureChecked && !verifyVote(msg.vote, this.#host.chainId)) {
        this.#net.penalize(from, 50, 'vote with a bad signature')
        return
      }
      this.#addVote(msg.vote)
    } else {
      const p = msg.proposal
      if (!signatureChecked && !verifyProposal(p, this.#host.chainId)) {
        this.#net.penalize(from, 50, 'proposal with a bad signature')
        return
      }
      if (!equalBytes(this.#host.proposerFor(p.round).signKey, p.signer)) {
        this.#net.penalize(from, 20, 'proposal from an authority whose turn it is not')
        return
      }
      if (!this.#acceptProposal(p)) {
        this.#net.penalize(from, 50, 'proposal with a malformed block')
        return
      }
    }
    this.#seen(round, signer)
    await this.#evaluate()
  }

  /**
   * Holds a message for the next height until it starts, once it is known to
   * be worth holding: a round in range, a signer of the current authority set
   * (a set changed by the block being decided gets the new members' messages
   * again by gossip), a valid signature, not a copy, and within the signer's
   * share of the buffer. Returns false for a message that cost its sender a
   * penalty.
   */
  #bufferFuture(from: Uint8Array, msg: ConsensusMessage, bytes: Uint8Array): boolean {
    const hs = this.#hs
    const round = msg.type === 'proposal' ? msg.proposal.round : msg.vote.round
    if (round > MAX_ROUND_AHEAD) {
      this.#net.penalize(from, 10, 'consensus message from an absurd round')
      return false
    }
    const signer = toHex(msg.type === 'proposal' ? msg.proposal.signer : msg.vote.signer)
    if (!hs.members.has(signer)) return true
    const key = msg.type === 'proposal' ? `${signer}:p:${round}` : `${signer}:${msg.vote.kind}:${round}`
    if (this.#futureKeys.has(key)) return true
    const valid = msg.type === 'proposal' ? verifyProposal(msg.proposal, this.#host.chainId) : verifyVote(msg.vote, this.#host.chainId)
    if (!valid) {
      this.#net.penalize(from, 50, `${msg.type} with a bad signature`)
      return false
    }
    const held = this.#futureBytes.get(signer) ?? 0
    if (held + bytes.length > 2 * this.#host.params().maxBlockBytes + FUTURE_SLACK_BYTES) return true
    if (this.#future.length >= MAX_FUTURE) return true
    this.#futureKeys.add(key)
    this.#futureBytes.set(signer, held + bytes.length)
    this.#future.push({ from, msg, bytes })
    return true
  }

  // Records the first proposal of a round; false when its block cannot be decoded.
  #acceptProposal(p: Proposal): boolean {
    const hs = this.#hs
    if (hs.proposals.has(p.round)) return true
    const id = toHex(p.blockHash)
    let cand = hs.candidates.get(id)
    if (cand === undefined) {
      let block: Block
      const t0 = performance.now()
      try {
        block = this.#host.decodeBlock(p.blockBytes)
        this.#logger.debug('proposal decoded', { height: hs.height, round: p.round, txs: block.txs.length, ms: Math.round(performance.now() - t0) })
      } catch (err) {
        if (err instanceof BlockError) return false
        throw err
      }
      if (!equalBytes(block.hash, p.blockHash) || block.header.height !== hs.height) return false
      // The hash covers the header only: a body that does not match it (a relay's edit) must not become this id's candidate.
      if (
        !equalBytes(block.header.txRoot, merkleRoot(block.txs.map((t) => t.id))) ||
        !equalBytes(block.header.lastCommitHash, lastCommitHashOf(block.lastCommit))
      )
        return false
      // A fresh proposal is made by its proposer; a re-proposal carries an earlier round's block.
      if (p.validRound < 0 && !equalBytes(block.header.proposer, p.signer)) return false
      cand = { block }
      hs.candidates.set(id, cand)
    }
    hs.proposals.set(p.round, p)
    return true
  }

  #addVote(v: SignedVote): void {
    const hs = this.#hs
    if (v.height !== hs.height) return
    const t = hs.tally(v.kind, v.round)
    const k = toHex(v.signer)
    const prev = t.byKey.get(k)
    if (prev !== undefined) {
      if (idOf(prev.blockHash) !== idOf(v.blockHash)) {
        const e = `${k}:${v.kind}:${v.round}`
        if (!hs.equivocators.has(e)) {
          hs.equivocators.add(e)
          this.#logger.warn('equivocation detected', { signer: k, height: v.height, round: v.round, kind: v.kind })
          this.#host.reportEquivocation(prev, v)
        }
      }
      return
    }
    t.byKey.set(k, v)
    const id = idOf(v.blockHash)
    t.count.set(id, (t.count.get(id) ?? 0) + 1)
  }

  #seen(round: number, signer: Uint8Array): void {
    const hs = this.#hs
    let s = hs.roundSigners.get(round)
    if (s === undefined) {
      s = new Set()
      hs.roundSigners.set(round, s)
    }
    s.add(toHex(signer))
  }

  // ---- the rules of docs/CONSENSUS.md ----

  #valid(c: Candidate): boolean {
    if (c.result === undefined) {
      const t0 = performance.now()
      try {
        c.result = this.#host.validate(c.block)
        this.#logger.debug('block validated', { height: c.block.header.height, txs: c.block.txs.length, ms: Math.round(performance.now() - t0) })
      } catch (err) {
        if (!(err instanceof BlockError)) throw err
        c.result = err
        this.#logger.warn('invalid block proposed', { height: c.block.header.height, code: err.code, reason: err.message })
      }
    }
    return !(c.result instanceof BlockError)
  }

  // Prevote validity adds the clock bound: a block stamped too far in our future gets nil.
  #validForPrevote(c: Candidate): boolean {
    return this.#valid(c) && c.block.header.time <= this.#clock() + this.#host.params().maxClockDriftMs
  }

  #quorumFor(t: Tally | undefined, id: string): boolean {
    return t !== undefined && (t.count.get(id) ?? 0) >= this.#hs.set.quorum
  }

  #anyQuorum(t: Tally | undefined): boolean {
    return t !== undefined && t.byKey.size >= this.#hs.set.quorum
  }

  async #evaluate(): Promise<void> {
    // Each pass may change (round, step); loop until nothing more fires.
    for (let guard = 0; guard < 64; guard++) {
      const hs = this.#hs
      const before = `${hs.height}:${hs.round}:${hs.step}:${hs.decided}`
      if (await this.#tryDecide()) return
      await this.#rulesForRound()
      await this.#tryRoundSkip()
      const after = `${this.#hs.height}:${this.#hs.round}:${this.#hs.step}:${this.#hs.decided}`
      if (after === before) return
    }
  }

  // Rule 8: a proposal and a precommit quorum for its block, in any round.
  async #tryDecide(): Promise<boolean> {
    const hs = this.#hs
    if (hs.decided) return false
    for (const [round, t] of hs.precommits) {
      for (const [id, n] of t.count) {
        if (id === NIL || n < hs.set.quorum) continue
        const cand = hs.candidates.get(id)
        if (cand === undefined || !this.#valid(cand)) continue
        const sigs = [...t.byKey.values()].filter((v) => idOf(v.blockHash) === id).map((v) => ({ signer: v.signer, signature: v.signature }))
        const cert: CommitCertificate = { height: hs.height, round, blockHash: cand.block.hash, sigs }
        if (this.#host.head().header.height !== hs.height - 1) {
          // Sync committed this height meanwhile.
          await this.#enterHeight()
          return true
        }
        hs.decided = true
        const result = cand.result as ApplyResult
        this.#logger.debug('decided', { height: hs.height, round, txs: cand.block.txs.length })
        const t0 = performance.now()
        await this.#host.commit({ block: cand.block, writes: result.writes }, cert)
        this.#logger.debug('committed', { height: hs.height, ms: Math.round(performance.now() - t0) })
        await this.#enterHeight()
        return true
      }
    }
    return false
  }

  async #rulesForRound(): Promise<void> {
    const hs = this.#hs
    const r = hs.round
    const p = hs.proposals.get(r)
    const cand = p === undefined ? undefined : hs.candidates.get(toHex(p.blockHash))
    const prevotes = hs.prevotes.get(r)

    // Rules 2 and 3: prevote on the round's proposal.
    if (hs.step === 'propose' && p !== undefined && cand !== undefined) {
      if (p.validRound < 0) {
        const ok = this.#validForPrevote(cand) && (hs.lockedRound < 0 || (hs.lockedBlock !== null && equalBytes(hs.lockedBlock.hash, cand.block.hash)))
        await this.#vote('prevote', r, ok ? cand.block.hash : null)
        hs.step = 'prevote'
      } else if (p.validRound < r && this.#quorumFor(hs.prevotes.get(p.validRound), toHex(p.blockHash))) {
        const ok =
          this.#validForPrevote(cand) && (hs.lockedRound <= p.validRound || (hs.lockedBlock !== null && equalBytes(hs.lockedBlock.hash, cand.block.hash)))
        await this.#vote('prevote', r, ok ? cand.block.hash : null)
        hs.step = 'prevote'
      }
    }

    // Rule 4: any prevote quorum starts the prevote timeout.
    if (hs.step === 'prevote' && this.#anyQuorum(prevotes) && hs.once(`prevote-timeout:${r}`)) {
      this.#schedule(this.#timeout(this.#opts.timeoutVoteMs, r), hs.height, r, 'prevote')
    }

    // Rule 5: a prevote quorum for the proposal's block: lock and precommit it.
    if (
      p !== undefined &&
      cand !== undefined &&
      hs.step !== 'propose' &&
      this.#quorumFor(prevotes, toHex(cand.block.hash)) &&
      this.#valid(cand) &&
      hs.once(`lock:${r}`)
    ) {
      if (hs.step === 'prevote') {
        hs.lockedRound = r
        hs.lockedBlock = cand.block
        await this.#wal.append({ height: hs.height, kind: 'lock', round: r, blockBytes: cand.block.bytes })
        await this.#vote('precommit', r, cand.block.hash)
        hs.step = 'precommit'
      }
      hs.validRound = r
      hs.validBlock = cand.block
    }

    // Rule 6: a prevote quorum for nil: precommit nil.
    if (hs.step === 'prevote' && this.#quorumFor(prevotes, NIL)) {
      await this.#vote('precommit', r, null)
      hs.step = 'precommit'
    }

    // Rule 7: any precommit quorum starts the precommit timeout.
    if (this.#anyQuorum(hs.precommits.get(r)) && hs.once(`precommit-timeout:${r}`)) {
      this.#schedule(this.#timeout(this.#opts.timeoutVoteMs, r), hs.height, r, 'precommit')
    }
  }

  // Rule 9: f + 1 authorities already in a later round: join it.
  async #tryRoundSkip(): Promise<void> {
    const hs = this.#hs
    let target = -1
    for (const [round, signers] of hs.roundSigners) {
      if (round > hs.round && signers.size >= hs.set.maxFaulty + 1 && round > target) target = round
    }
    if (target > hs.round) {
      this.#logger.debug('joining a later round', { height: hs.height, from: hs.round, to: target })
      await this.#startRound(target)
    }
  }

  async #onTimeout(height: number, round: number, step: Step): Promise<void> {
    const hs = this.#hs
    if (height !== hs.height || hs.decided) return
    if (round !== hs.round) return
    // Rule 10.
    if (step === 'propose' && hs.step === 'propose') {
      await this.#vote('prevote', round, null)
      hs.step = 'prevote'
    } else if (step === 'prevote' && hs.step === 'prevote') {
      await this.#vote('precommit', round, null)
      hs.step = 'precommit'
    } else if (step === 'precommit') {
      await this.#startRound(round + 1)
    }
    await this.#evaluate()
  }

  // Signs (once per kind and round, WAL first) and sends a vote; a vote
  // already signed for this (height, round, kind) is re-sent unchanged.
  async #vote(kind: VoteKind, round: number, blockHash: Uint8Array | null): Promise<void> {
    const hs = this.#hs
    if (!this.#isAuthority()) return
    const key = `${kind}:${round}`
    let bytes = hs.sent.get(key)
    if (bytes === undefined) {
      const v = signVote(this.#signer, this.#host.chainId, kind, hs.height, round, blockHash)
      bytes = encodeMessage({ type: 'vote', vote: v })
      await this.#wal.append({ height: hs.height, kind: 'message', bytes })
      hs.sent.set(key, bytes)
      this.#logger.debug('voted', { height: hs.height, round, kind, nil: blockHash === null })
      this.#addVote(v)
      this.#seen(round, v.signer)
      if (this.#opts.testEquivocate === true && kind === 'prevote') {
        const other = signVote(this.#signer, this.#host.chainId, kind, hs.height, round, blockHash === null ? new Uint8Array(32).fill(0xee) : null)
        this.#net.broadcast(encodeMessage({ type: 'vote', vote: other }))
      }
    }
    this.#net.broadcast(bytes)
  }

  // Re-sends this node's messages of the current height and the round's
  // proposal, so peers that missed them (a healed partition) can catch up.
  #gossip(): void {
    const hs = this.#hs
    for (const [key, bytes] of hs.sent) {
      const round = Number(key.slice(key.indexOf(':') + 1))
      if (round >= hs.round - 1) this.#net.broadcast(bytes)
    }
    const p = hs.proposals.get(hs.round)
    if (p !== undefined && !hs.sent.has(`proposal:${hs.round}`)) this.#net.broadcast(encodeMessage({ type: 'proposal', proposal: p }))
  }
}
