import { listStudies, type StudyRecord } from '../chain/index.js'
import type { StudyIndex } from '../storage/index.js'
import { errorMessage, toHex, type Logger } from '../util/index.js'
import type { ChainService } from './chain-service.js'
import type { SwarmLocal } from './swarm-local.js'
import type { SwarmOpts } from './swarm.js'

/**
 * Scrub: every `scrubIntervalMs`, reads back `scrubBytes` of the chunks and
 * objects of the studies complete here, a slice at a time in turn; reading
 * verifies them, and a corrupt one is dropped and its study repaired.
 */
export class SwarmScrubber {
  readonly #opts: Pick<SwarmOpts, 'scrubIntervalMs' | 'scrubBytes'>
  readonly #chain: ChainService
  readonly #index: StudyIndex
  readonly #logger: Logger
  readonly #local: SwarmLocal
  /** Aborted when the swarm stops. */
  readonly #signal: AbortSignal
  #scrubTimer: NodeJS.Timeout | undefined
  #scrubCursor = 0

  constructor(
    opts: Pick<SwarmOpts, 'scrubIntervalMs' | 'scrubBytes'>,
    modules: { chain: ChainService; index: StudyIndex; logger: Logger; local: SwarmLocal; signal: AbortSignal },
  ) {
    this.#opts = opts
    this.#chain = modules.chain
    this.#index = modules.index
    this.#logger = modules.logger
    this.#local = modules.local
    this.#signal = modules.signal
  }

  /** Starts the scrub loop (none when `scrubIntervalMs` is 0). */
  start(): void {
    if (this.#opts.scrubIntervalMs > 0) {
      const scrub = (): void => {
        void this.#scrub()
          .catch((err: unknown) => this.#logger.warn('scrub failed', { err: errorMessage(err) }))
          .finally(() => {
            if (!this.#signal.aborted) this.#scrubTimer = setTimeout(scrub, this.#opts.scrubIntervalMs)
          })
      }
      this.#scrubTimer = setTimeout(scrub, this.#opts.scrubIntervalMs)
    }
  }

  /** Stops the scrub loop. */
  stop(): void {
    clearTimeout(this.#scrubTimer)
  }

  /** Reads back a slice of the chunks of complete studies; a corrupt one is dropped and the study repaired. */
  async #scrub(): Promise<void> {
    const studies = listStudies(this.#chain.state).filter((s) => this.#local.complete.has(toHex(s.studyId)))
    if (studies.length === 0) return
    let budget = this.#opts.scrubBytes
    for (let n = 0; n < studies.length && budget > 0; n++) {
      const study = studies[(this.#scrubCursor + n) % studies.length] as StudyRecord
      const list = (await this.#index.chunkList(study.studyId)) ?? []
      for (const id of [...list, ...this.#local.objectsOf(study)]) {
        if (this.#signal.aborted) return
        const b = await this.#local.read(id, study)
        if (b === undefined) {
          this.#local.complete.delete(toHex(study.studyId))
          break
        }
        budget -= b.length
      }
    }
    this.#scrubCursor++
  }
}
