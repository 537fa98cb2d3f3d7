import type { AuthoritySet, BuildResult, CommitCertificate, ChainParams, Parent } from '../chain/index.js'

/**
 * What a consensus engine needs from the node. The single-authority engine
 * uses it now; the BFT engine of the network issue uses the same interface.
 */
export interface ConsensusHost {
  readonly chainId: string
  /** The last final block. */
  head(): Parent
  /** Authority set for the next height. */
  authorities(): AuthoritySet
  params(): ChainParams
  /** True when the mempool holds transactions that could go into a block. */
  hasPending(): boolean
  /** Resolves when a transaction enters the mempool, or when `signal` aborts. */
  waitPending(signal: AbortSignal): Promise<void>
  /** Builds the next block at `time`, proposed by `proposer`, from the mempool. */
  propose(time: number, proposer: Uint8Array): BuildResult
  /** Stores a final block with its certificate and applies it. */
  commit(result: BuildResult, cert: CommitCertificate): Promise<void>
}

/** A consensus engine: started once, stopped once. */
export interface ConsensusEngine {
  start(): Promise<void>
  stop(): Promise<void>
}

/** Source of wall-clock time, injected so consensus never reads the clock itself. */
export type Clock = () => number
