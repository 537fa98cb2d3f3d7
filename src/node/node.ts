import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Genesis } from '../chain/index.js'
import { SoloEngine, type Clock, type ConsensusEngine } from '../consensus/index.js'
import type { OrgKeys } from '../crypto/index.js'
import { ChainStore } from '../storage/index.js'
import { writeFileAtomic, type Logger } from '../util/index.js'
import { ApiServer } from '../api/index.js'
import { ChainService } from './chain-service.js'
import { NodeBackend } from './backend.js'
import { DATADIR_FILES, type NodeConfig } from './config.js'
import { VERSION } from './version.js'

/** What a node is built from. */
export interface RadNodeOpts {
  readonly dataDir: string
  readonly config: NodeConfig
  readonly genesis: Genesis
}

/** Runtime facts a running daemon publishes in `<datadir>/daemon.json`. */
export interface DaemonInfo {
  readonly pid: number
  readonly api: string
  readonly chainId: string
  readonly startedAt: string
}

/**
 * The composition root: builds store, chain, consensus and API, starts them
 * in that order and stops them in reverse.
 */
export class RadNode {
  readonly #opts: RadNodeOpts
  readonly #keys: OrgKeys
  readonly #logger: Logger
  readonly #clock: Clock
  #store: ChainStore | undefined
  #chain: ChainService | undefined
  #engine: ConsensusEngine | undefined
  #api: ApiServer | undefined
  /** True once this node wrote daemon.json (so only it removes the file). */
  #published = false
  #started = false

  constructor(opts: RadNodeOpts, modules: { keys: OrgKeys; logger: Logger; clock?: Clock }) {
    this.#opts = opts
    this.#keys = modules.keys
    this.#logger = modules.logger
    this.#clock = modules.clock ?? Date.now
  }

  /** The chain service (after start). */
  get chain(): ChainService {
    if (this.#chain === undefined) throw new Error('node not started')
    return this.#chain
  }

  /** Base URL of the local API (after start). */
  get apiUrl(): string {
    return this.#api?.url ?? ''
  }

  /** Opens the store and starts every service; writes api.token and daemon.json. */
  async start(): Promise<void> {
    const { dataDir, config, genesis } = this.#opts
    try {
      this.#store = await ChainStore.open(join(dataDir, DATADIR_FILES.db))
      this.#chain = await ChainService.open(genesis, this.#store, { mempool: config.mempool, logger: this.#logger.child({ mod: 'chain' }) })
      const chain = this.#chain
      this.#engine = new SoloEngine(
        config.heartbeatMs === undefined ? {} : { heartbeatMs: config.heartbeatMs },
        { host: chain, signer: this.#keys.signer, clock: this.#clock, logger: this.#logger.child({ mod: 'consensus' }) },
      )
      const token = randomBytes(32).toString('base64url')
      const backend = new NodeBackend({ chain, keys: this.#keys, version: VERSION, apiUrl: () => this.apiUrl, peers: () => 0 })
      this.#api = new ApiServer({ host: config.api.host, port: config.api.port, token, maxBodyBytes: config.api.maxBodyBytes, logger: this.#logger.child({ mod: 'api' }) }, { backend })
      await writeFileAtomic(join(dataDir, DATADIR_FILES.apiToken), token + '\n', 0o600)
      await this.#api.start()
      await this.#engine.start()
      const info: DaemonInfo = { pid: process.pid, api: this.#api.url, chainId: genesis.chainId, startedAt: new Date(this.#clock()).toISOString() }
      await writeFileAtomic(join(dataDir, DATADIR_FILES.daemon), JSON.stringify(info, null, 2) + '\n', 0o644)
      this.#published = true
      this.#started = true
      const org = chain.orgByKey(this.#keys.signer.publicKey)
      this.#logger.info('node started', { chainId: genesis.chainId, org: org?.id ?? null, height: chain.head().header.height, api: this.#api.url })
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Stops services in reverse order and closes the store. */
  async stop(): Promise<void> {
    await this.#engine?.stop()
    this.#engine = undefined
    await this.#api?.stop()
    this.#api = undefined
    if (this.#published) await rm(join(this.#opts.dataDir, DATADIR_FILES.daemon), { force: true })
    this.#published = false
    await this.#store?.close()
    this.#store = undefined
    if (this.#started) this.#logger.info('node stopped')
    this.#started = false
  }
}
