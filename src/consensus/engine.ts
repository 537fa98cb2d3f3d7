import type { ApplyResult, AuthoritySet, Block, BuildResult, CommitCertificate, ChainParams, OrgRecord, Parent, SignedVote } from '../chain/index.js'

/**
 * What a consensus engine needs from the node's chain. The single-authority
 * engine uses part of it; the BFT engine all of it.
 */
export interface ConsensusHost {
  readonly chainId: string
  /** The last final block. */
  head(): Parent
  /** Authority set for the next height. */
  authorities(): AuthoritySet
  params(): ChainParams
  /** Proposer of `round` at the next height (rotation with the missed-turn rule). */
  proposerFor(round: number): OrgRecord
  /** True when the mempool holds transactions that could go into a block. */
  hasPending(): boolean
  /** Resolves when a transaction enters the mempool, or when `signal` aborts. */
  waitPending(signal: AbortSignal): Promise<void>
  /** Builds the next block at `time`, proposed by `proposer`, from the mempool. */
  propose(time: number, proposer: Uint8Array): BuildResult
  /** Decodes a proposed block's bytes (size limits, shapes, transaction signatures). Throws BlockError. */
  decodeBlock(bytes: Uint8Array): Block
  /** Validates a block on top of the head (deterministic: applyBlock). Throws BlockError. */
  validate(block: Block): ApplyResult
  /** Stores a final block with its certificate and applies it. */
  commit(result: { readonly block: Block; readonly writes: ApplyResult['writes'] }, cert: CommitCertificate): Promise<void>
  /** Puts evidence of equivocation into the mempool. */
  reportEquivocation(a: SignedVote, b: SignedVote): void
  /** Calls `listener` after every block committed by anyone (consensus or sync); returns the unsubscribe function. */
  onCommitted(listener: (height: number) => void): () => void
}

/** How consensus messages reach the other authorities. */
export interface ConsensusNet {
  /** Sends to every connected peer. */
  broadcast(bytes: Uint8Array): void
  /** Registers the handler of incoming consensus messages. */
  onMessage(handler: (from: Uint8Array, bytes: Uint8Array) => void): void
  /** Lowers a peer's score for a bad message. */
  penalize(from: Uint8Array, points: number, reason: string): void
  /** Tells the sync service that a peer showed a height above ours. */
  peerAhead(from: Uint8Array, height: number): void
}

/** A consensus engine: started once, stopped once. */
export interface ConsensusEngine {
  start(): Promise<void>
  stop(): Promise<void>
}

/** Source of wall-clock time, injected so consensus never reads the clock itself. */
export type Clock = () => number
