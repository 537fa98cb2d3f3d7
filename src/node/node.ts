import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Genesis } from '../chain/index.js'
import { BftEngine, ConsensusWal, type Clock } from '../consensus/index.js'
import type { OrgKeys } from '../crypto/index.js'
import { ChainStore, ChunkStore, StudyIndex } from '../storage/index.js'
import { VERSION, writeFileAtomic, type Logger } from '../util/index.js'
import { ApiServer, UNIX_SOCKET_PATH_MAX, type DaemonInfo } from '../api/index.js'
import { DicomwebServer } from '../dicomweb/index.js'
import { DimseServer } from '../dimse/index.js'
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../study/index.js'
import { DicomwebService } from './dicomweb.js'
import { DIMSE_DELIVERIES_FILE, DimseDeliveries, DimseGateway, deliveryChain, dimsePeer } from './dimse.js'
import { DimseSender, clearSendDir } from './dimse-send.js'
import { ChainService } from './chain-service.js'
import { NodeBackend } from './backend.js'
import { NetworkService } from './network.js'
import { StudyJobs } from './studies.js'
import { SwarmService } from './swarm.js'
import { LeasePolicy, LeaseService } from './leases.js'
import { AuditService } from './audit.js'
import { PatientLinks } from './patient-links.js'
import { ConfigError, DATADIR_FILES, isLocalOnlyAddr, isLoopbackAddr, resolveIn, splitHostPort, type NodeConfig } from './config.js'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import type { Faults } from './faults.js'

/** Whether a listen host is loopback: an address, not a name that merely starts like one (127.0.0.1.example resolves anywhere). */
function isLoopbackHost(host: string): boolean {
  return (isIP(host) === 4 && host.startsWith('127.')) || host === '::1' || host === 'localhost'
}

/** Gossip backlog (transactions) above which the API refuses new local transactions for a moment. */
const INGEST_BUSY = 3000

/** What a node is built from. */
export interface RadNodeOpts {
  readonly dataDir: string
  readonly config: NodeConfig
  readonly genesis: Genesis
}

/**
 * The composition root: builds store, chain, network, consensus and API,
 * starts them in that order and stops them in reverse.
 */
export class RadNode {
  readonly #opts: RadNodeOpts
  readonly #keys: OrgKeys
  readonly #logger: Logger
  readonly #clock: Clock
  #store: ChainStore | undefined
  #chunks: ChunkStore | undefined
  #chain: ChainService | undefined
  #network: NetworkService | undefined
  #wal: ConsensusWal | undefined
  #engine: BftEngine | undefined
  #swarm: SwarmService | undefined
  #leases: LeaseService | undefined
  #audit: AuditService | undefined
  #api: ApiServer | undefined
  /** The ingest and index shared by DICOMweb and DIMSE: present when either listener is on. */
  #ingest: DicomwebService | undefined
  #dicomweb: DicomwebServer | undefined
  #dimse: DimseServer | undefined
  #sends: DimseSender | undefined
  #deliveries: DimseDeliveries | undefined
  /** True once this node wrote daemon.json (so only it removes the file). */
  #published = false
  #started = false
  readonly #faults: Faults | undefined

  /**
   * `faults` (src/node/faults.ts) only from the devnet's daemon entry: fault
   * injection and the partition route. A production daemon passes none.
   */
  constructor(opts: RadNodeOpts, modules: { keys: OrgKeys; logger: Logger; clock?: Clock; faults?: Faults }) {
    this.#opts = opts
    this.#keys = modules.keys
    this.#logger = modules.logger
    this.#faults = modules.faults
    this.#clock = modules.clock ?? Date.now
  }

  /** The chain service (after start). */
  get chain(): ChainService {
    if (this.#chain === undefined) throw new Error('node not started')
    return this.#chain
  }

  /** The chunk store (after start): study chunks, key envelopes, encrypted demographics, by content hash. */
  get chunks(): ChunkStore {
    if (this.#chunks === undefined) throw new Error('node not started')
    return this.#chunks
  }

  /** Base URL of the local API (after start). */
  /** Calls `fn` once if consensus halts on a safety violation (a broken invariant or a failing store). */
  onHalt(fn: (h: { reason: string; height: number; round: number }) => void): void {
    const engine = this.#engine
    if (engine === undefined) throw new Error('the node is not started')
    const h = engine.halted
    if (h !== undefined) fn(h)
    else engine.onHalt(fn)
  }

  get apiUrl(): string {
    return this.#api?.url ?? ''
  }

  /** Opens the store and starts every service; writes api.token and daemon.json. */
  async start(): Promise<void> {
    const { dataDir, config, genesis } = this.#opts
    const faults = this.#faults
    if (faults !== undefined) {
      const on = Object.entries(faults).filter(([, v]) => v !== false && v !== 0)
      this.#logger.info('devnet daemon: the partition route is on', { faults: Object.fromEntries(on) })
      if (on.length > 0) this.#logger.warn('fault injection on (devnet tests only)', { faults: Object.fromEntries(on) })
    }
    try {
      this.#store = await ChainStore.open(join(dataDir, DATADIR_FILES.db))
      this.#chunks = await ChunkStore.open({
        dir: resolveIn(dataDir, config.chunks.dir),
        quotaBytes: config.chunks.quotaBytes,
        index: this.#store.keyspace('k'),
      })
      if (this.#chunks.droppedAtOpen > 0)
        this.#logger.warn('chunk store: entries without a file dropped; the swarm fetches them again', { entries: this.#chunks.droppedAtOpen })
      this.#chain = await ChainService.open(genesis, this.#store, {
        mempool: config.mempool,
        logger: this.#logger.child({ mod: 'chain' }),
        evidenceSigner: this.#keys.signer,
      })
      const chain = this.#chain
      this.#network = new NetworkService(
        { listen: config.p2p.listen, dialIntervalMs: config.p2p.dialIntervalMs },
        { chain, keys: this.#keys, logger: this.#logger },
      )
      const network = this.#network
      this.#wal = await ConsensusWal.open(join(dataDir, DATADIR_FILES.wal))
      this.#engine = new BftEngine(
        {
          ...config.consensus,
          ...(config.heartbeatMs === undefined ? {} : { heartbeatMs: config.heartbeatMs }),
          testEquivocate: faults?.equivocate === true,
          ...(faults === undefined || faults.haltAtHeight === 0 ? {} : { testHaltAtHeight: faults.haltAtHeight }),
        },
        {
          host: chain,
          net: network.consensusNet(),
          signer: this.#keys.signer,
          clock: this.#clock,
          logger: this.#logger.child({ mod: 'consensus' }),
          wal: this.#wal,
        },
      )
      const engine = this.#engine
      const index = new StudyIndex(this.#store.keyspace('i'))
      const leasePolicy = new LeasePolicy({ chain, keys: this.#keys, logger: this.#logger.child({ mod: 'lease' }) })
      this.#swarm = new SwarmService(
        {
          ...config.swarm,
          ...(faults === undefined ? {} : { testServeDelayMs: faults.serveDelayMs, testServeGarbage: faults.serveGarbage, testNoPull: faults.noPull }),
        },
        {
          chain,
          chunks: this.#chunks,
          index,
          p2p: network.p2p,
          keys: this.#keys,
          logger: this.#logger.child({ mod: 'swarm' }),
          leases: leasePolicy,
          clock: this.#clock,
        },
      )
      const swarm = this.#swarm
      this.#leases = new LeaseService({
        chain,
        chunks: this.#chunks,
        swarm,
        policy: leasePolicy,
        keys: this.#keys,
        logger: this.#logger.child({ mod: 'lease' }),
      })
      const leases = this.#leases
      this.#audit = new AuditService({ chain, kv: this.#store.keyspace('a'), logger: this.#logger.child({ mod: 'audit' }) })
      const audit = this.#audit
      // Read whole before any study can be added (the API and DICOMweb start below).
      const links = await PatientLinks.open({ keys: this.#keys, kv: this.#store.keyspace('p') })
      const studies = new StudyJobs(
        { durableTimeoutMs: config.swarm.durableTimeoutMs },
        { chain, chunks: this.#chunks, index, swarm, leases, keys: this.#keys, logger: this.#logger.child({ mod: 'study' }), links },
      )
      await clearSendDir(dataDir)
      const sends = new DimseSender(
        { dataDir, aeTitle: config.dimse.aeTitle, timeoutMs: config.dimse.timeoutSeconds * 1000 },
        { studies, destination: (ae) => dimsePeer(dataDir, ae), logger: this.#logger.child({ mod: 'dimse' }) },
      )
      this.#sends = sends
      const deliveries = new DimseDeliveries(
        { file: join(dataDir, DIMSE_DELIVERIES_FILE), dataDir },
        { chain: deliveryChain(chain), sender: sends, logger: this.#logger.child({ mod: 'dimse' }) },
      )
      this.#deliveries = deliveries
      const token = randomBytes(32).toString('base64url')
      const backend = new NodeBackend({
        chain,
        keys: this.#keys,
        info: {
          version: VERSION,
          apiUrl: () => this.apiUrl,
          peers: () => network.peers(),
          consensus: () => engine.position,
          halted: () => engine.halted,
          // The partition switch exists on devnet daemons only.
          ...(faults === undefined ? {} : { setBlocked: (keys: Set<string>) => network.p2p.setBlocked(keys) }),
          busy: () => network.ingestBacklog > INGEST_BUSY,
          studies: () => studies,
          swarm: () => swarm,
          leases: () => leases,
          audit: () => audit,
          links: () => links,
          sends: () => sends,
          deliveries: () => deliveries,
          gateways: () => ({
            ...(this.#dicomweb === undefined ? {} : { dicomweb: this.#dicomweb.url }),
            ...(this.#dimse === undefined ? {} : { dimse: this.#dimse.address }),
          }),
        },
      })
      // The Unix socket beside the TCP port: the CLI's way in, from any network namespace of the machine.
      const socketPath = join(resolve(dataDir), DATADIR_FILES.apiSocket)
      const socketFits = Buffer.byteLength(socketPath) <= UNIX_SOCKET_PATH_MAX
      if (!socketFits)
        this.#logger.warn('data dir path too long for the API socket: the API listens on TCP only', {
          bytes: Buffer.byteLength(socketPath),
          max: UNIX_SOCKET_PATH_MAX,
        })
      this.#api = new ApiServer(
        {
          host: config.api.host,
          port: config.api.port,
          ...(socketFits ? { socketPath } : {}),
          token,
          maxBodyBytes: config.api.maxBodyBytes,
          logger: this.#logger.child({ mod: 'api' }),
        },
        { backend },
      )
      this.#ingest = config.dicomweb.enabled || config.dimse.enabled ? this.#makeIngest(studies, index) : undefined
      this.#dicomweb = config.dicomweb.enabled ? await this.#makeDicomweb(this.#ingest as DicomwebService) : undefined
      this.#dimse = config.dimse.enabled ? await this.#makeDimse(this.#ingest as DicomwebService) : undefined
      await network.start()
      await audit.start()
      swarm.start()
      leases.start()
      await engine.start()
      await deliveries.start()
      await writeFileAtomic(join(dataDir, DATADIR_FILES.apiToken), token + '\n', 0o600)
      await this.#api.start()
      await this.#ingest?.start()
      await this.#dicomweb?.start()
      await this.#dimse?.start()
      const info: DaemonInfo = {
        pid: process.pid,
        api: this.#api.url,
        ...(this.#api.socketPath === undefined ? {} : { socket: this.#api.socketPath }),
        chainId: genesis.chainId,
        p2p: network.addrs,
        ...(this.#dicomweb === undefined ? {} : { dicomweb: this.#dicomweb.url }),
        ...(this.#dimse === undefined ? {} : { dimse: this.#dimse.address }),
        startedAt: new Date(this.#clock()).toISOString(),
      }
      await writeFileAtomic(join(dataDir, DATADIR_FILES.daemon), JSON.stringify(info, null, 2) + '\n', 0o644)
      this.#published = true
      this.#started = true
      const org = chain.orgByKey(this.#keys.signer.publicKey)
      this.#logger.info('node started', {
        chainId: genesis.chainId,
        org: org?.id ?? null,
        height: chain.head().header.height,
        api: this.#api.url,
        p2p: network.addrs,
      })
      // Listening on this machine only while other organizations are elsewhere: nobody can dial this node.
      const elsewhere = chain.orgs().filter((o) => org?.id !== o.id && o.addrs.some((a) => !isLocalOnlyAddr(a)))
      if (config.p2p.listen.every(isLoopbackAddr) && elsewhere.length > 0) {
        this.#logger.warn('p2p listens on this machine only, while other organizations are on other hosts: none of them can reach this node', {
          listen: config.p2p.listen,
          others: elsewhere.map((o) => o.id),
          fix: 'set p2p.listen in config.json (e.g. /ip4/0.0.0.0/tcp/7461) and restart',
        })
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /**
   * The service both listeners store into and read from (src/node/dicomweb.ts):
   * spool, index, stable-study registration. Its log module stays `dicomweb`.
   */
  #makeIngest(studies: StudyJobs, index: StudyIndex): DicomwebService {
    const { dataDir, config } = this.#opts
    const c = config.dicomweb
    return new DicomwebService(
      {
        spoolDir: join(dataDir, DATADIR_FILES.dicomwebSpool),
        tokensFile: join(dataDir, DATADIR_FILES.dicomwebTokens),
        stableMs: c.stableSeconds * 1000,
        showLeased: c.showLeased,
      },
      {
        chain: this.chain,
        chunks: this.chunks,
        index,
        studies,
        swarm: this.#swarm as SwarmService,
        leases: this.#leases as LeaseService,
        keys: this.#keys,
        kv: (this.#store as ChainStore).keyspace('w'),
        logger: this.#logger.child({ mod: 'dicomweb' }),
      },
    )
  }

  /** The DIMSE listener (C-ECHO, C-STORE); a non-loopback address without TLS is refused unless dimse.insecure is set. */
  async #makeDimse(ingest: DicomwebService): Promise<DimseServer> {
    const { dataDir, config } = this.#opts
    const c = config.dimse
    const { host, port } = splitHostPort(c.listen)
    if (!isLoopbackHost(host) && c.tls === undefined && !c.insecure)
      throw new ConfigError(
        'CONFIG_INVALID',
        `dimse.listen ${c.listen} is not a loopback address: set dimse.tls (cert and key), or dimse.insecure: true to allow plain DICOM on a network you trust`,
      )
    const logger = this.#logger.child({ mod: 'dimse' })
    if (!isLoopbackHost(host) && c.tls === undefined)
      logger.warn('dimse: plain DICOM on a non-loopback address (dimse.insecure): images cross the network unencrypted', { listen: c.listen })
    if (c.acceptUnknown) logger.warn('dimse: associations from any AE title and address are accepted (dimse.acceptUnknown)', { listen: c.listen })
    const tls = c.tls === undefined ? undefined : { cert: await readFile(resolveIn(dataDir, c.tls.cert)), key: await readFile(resolveIn(dataDir, c.tls.key)) }
    const gateway = new DimseGateway({ dataDir, admission: { peers: c.peers, acceptUnknown: c.acceptUnknown } }, { ingest, logger })
    return new DimseServer(
      {
        host,
        port,
        aeTitle: c.aeTitle,
        ...(tls === undefined ? {} : { tls }),
        maxInstanceBytes: c.maxInstanceBytes,
        idleMs: c.idleSeconds * 1000,
        scuTimeoutMs: c.timeoutSeconds * 1000,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        logger,
      },
      { backend: gateway },
    )
  }

  /** The DICOMweb listener; a non-loopback address without TLS is refused unless insecureHttp is set. */
  async #makeDicomweb(service: DicomwebService): Promise<DicomwebServer> {
    const { dataDir, config } = this.#opts
    const c = config.dicomweb
    const { host, port } = splitHostPort(c.listen)
    const loopback = isLoopbackHost(host)
    if (!loopback && c.tls === undefined && !c.insecureHttp)
      throw new ConfigError(
        'CONFIG_INVALID',
        `dicomweb.listen ${c.listen} is not a loopback address: set dicomweb.tls (cert and key), or dicomweb.insecureHttp: true to allow plain HTTP on a network you trust`,
      )
    if (!loopback && c.tls === undefined)
      this.#logger.warn('dicomweb: plain HTTP on a non-loopback address (dicomweb.insecureHttp): tokens and images cross the network unencrypted', {
        listen: c.listen,
      })
    const tls = c.tls === undefined ? undefined : { cert: await readFile(resolveIn(dataDir, c.tls.cert)), key: await readFile(resolveIn(dataDir, c.tls.key)) }
    const logger = this.#logger.child({ mod: 'dicomweb' })
    return new DicomwebServer(
      { host, port, ...(tls === undefined ? {} : { tls }), corsOrigins: c.corsOrigins, maxBodyBytes: c.maxBodyBytes, maxPartBytes: c.maxPartBytes, logger },
      { backend: service },
    )
  }

  /** Stops services in reverse order and closes the store. */
  async stop(): Promise<void> {
    this.#deliveries?.stop()
    this.#deliveries = undefined
    this.#sends?.stop()
    this.#sends = undefined
    await this.#dimse?.stop()
    this.#dimse = undefined
    await this.#dicomweb?.stop()
    this.#dicomweb = undefined
    await this.#ingest?.stop()
    this.#ingest = undefined
    await this.#api?.stop()
    this.#api = undefined
    await this.#engine?.stop()
    this.#engine = undefined
    this.#leases?.stop()
    this.#leases = undefined
    this.#audit?.stop()
    this.#audit = undefined
    this.#swarm?.stop()
    this.#swarm = undefined
    await this.#network?.stop()
    this.#network = undefined
    await this.#wal?.close()
    this.#wal = undefined
    if (this.#published) await rm(join(this.#opts.dataDir, DATADIR_FILES.daemon), { force: true })
    this.#published = false
    await this.#chunks?.close()
    this.#chunks = undefined
    await this.#store?.close()
    this.#store = undefined
    if (this.#started) this.#logger.info('node stopped')
    this.#started = false
  }
}
