import { equalBytes, sleep, type Logger } from '../util/index.js'
import { signPrecommit } from '../chain/index.js'
import type { Ed25519Signer } from '../crypto/index.js'
import type { Clock, ConsensusEngine, ConsensusHost } from './engine.js'

/** Options of the single-authority engine. */
export interface SoloEngineOpts {
  /** Heartbeat override (ms); the chain parameter blockIntervalMs otherwise. */
  readonly heartbeatMs?: number
}

/**
 * Consensus for a chain whose authority set is this node alone (n = 1,
 * quorum 1): it proposes a block as soon as transactions are pending, plus an
 * empty heartbeat block when none arrived for the block interval, and
 * finalizes each with its own precommit as the commit certificate. When the
 * set is anything else it waits (the BFT engine takes over there).
 */
export class SoloEngine implements ConsensusEngine {
  readonly #opts: SoloEngineOpts
  readonly #host: ConsensusHost
  readonly #signer: Ed25519Signer
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #abort = new AbortController()
  #loop: Promise<void> | undefined

  constructor(opts: SoloEngineOpts, modules: { host: ConsensusHost; signer: Ed25519Signer; clock: Clock; logger: Logger }) {
    this.#opts = opts
    this.#host = modules.host
    this.#signer = modules.signer
    this.#clock = modules.clock
    this.#logger = modules.logger
  }

  async start(): Promise<void> {
    this.#loop = this.#run(this.#abort.signal).catch((err: unknown) => {
      if (this.#abort.signal.aborted) return
      // A failure to commit means the store is broken: stop producing rather than sign over it.
      this.#logger.error('block production halted', { err: err instanceof Error ? err.message : String(err) })
    })
  }

  async stop(): Promise<void> {
    this.#abort.abort(new Error('consensus stopped'))
    await this.#loop
  }

  #isSoleAuthority(): boolean {
    const set = this.#host.authorities()
    return set.members.length === 1 && equalBytes((set.members[0] as { signKey: Uint8Array }).signKey, this.#signer.publicKey)
  }

  async #run(signal: AbortSignal): Promise<void> {
    let warned = false
    while (!signal.aborted) {
      if (!this.#isSoleAuthority()) {
        if (!warned) this.#logger.warn('not the sole authority of this chain: waiting (multi-authority consensus is not enabled in this node)')
        warned = true
        await sleep(1000, signal)
        continue
      }
      const interval = this.#opts.heartbeatMs ?? this.#host.params().blockIntervalMs
      const head = this.#host.head()
      const due = head.header.time + interval
      if (!this.#host.hasPending()) {
        const wait = due - this.#clock()
        if (wait > 0) {
          const timer = AbortSignal.any([signal, AbortSignal.timeout(wait)])
          await this.#host.waitPending(timer).catch(() => {})
          if (signal.aborted) return
          if (!this.#host.hasPending() && this.#clock() < due) continue
        }
      }
      const time = Math.max(this.#clock(), head.header.time + 1)
      const result = this.#host.propose(time, this.#signer.publicKey)
      if (result.block.txs.length === 0 && time < due) continue
      const height = result.block.header.height
      const sig = signPrecommit(this.#signer, this.#host.chainId, height, 0, result.block.hash)
      await this.#host.commit(result, { height, round: 0, blockHash: result.block.hash, sigs: [sig] })
    }
  }
}
