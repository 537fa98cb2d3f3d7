import { loadGenesis } from '../chain/index.js'
import { loadKeystore, readPassphrase } from '../crypto/index.js'
import { ConfigError, DATADIR_FILES, loadConfig, resolveIn } from './config.js'
import type { RadNode } from './node.js'
import { chunkTrafficHeap } from './heap.js'
import type { Faults } from './faults.js'
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RadError, createLogger, writeFileAtomic, type Logger, type LogLevel } from '../util/index.js'

/** Options of `radchain daemon`. */
export interface DaemonOpts {
  readonly dataDir: string
  readonly logLevel?: LogLevel
  /** Fault injection and the partition route: the devnet's daemon entry only (src/devnet/daemon-main.ts). */
  readonly faults?: Faults
}

/**
 * Threads of libuv's pool a daemon should run with (the environment variable
 * UV_THREADPOOL_SIZE, read once when the process starts; Node.js's default is
 * 4). A daemon does its disk work there: chunk files, the files `study get`
 * writes, the database's writes and their syncs. With 4, a sync of the
 * database (each block) or of the chunk store holds a thread for as long as
 * the disk takes, and the writes behind it wait: measured in a devnet of hosts,
 * a lessee's `study get` from 3 holders spent 3 of its 4 s waiting on its
 * file writes with 4 threads, and kept up with the transfer with 16. The
 * devnet starts its daemons with this, and deploy/radchain.service sets it.
 */
export const DAEMON_THREADPOOL_SIZE = 16

/** `env` with UV_THREADPOOL_SIZE set to DAEMON_THREADPOOL_SIZE unless it names a size already: for a daemon's process. */
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.UV_THREADPOOL_SIZE === undefined || env.UV_THREADPOOL_SIZE === '' ? { ...env, UV_THREADPOOL_SIZE: String(DAEMON_THREADPOOL_SIZE) } : env
}

/** Loads the data dir (config, genesis, keys) and builds a node, not yet started. */
export async function loadNode(opts: DaemonOpts): Promise<{ node: RadNode; logger: Logger }> {
  const config = await loadConfig(opts.dataDir)
  const logger = createLogger({ level: opts.logLevel ?? config.logLevel })
  const genesisPath = resolveIn(opts.dataDir, config.genesis)
  try {
    await access(genesisPath)
  } catch {
    throw new ConfigError(
      'CONFIG_INVALID',
      `no genesis at ${genesisPath}: copy the network's ${DATADIR_FILES.genesis} there, or run \`radchain init --dev\` for a one-node chain`,
    )
  }
  const genesis = await loadGenesis(genesisPath)
  const passphrase = await readPassphrase(resolveIn(opts.dataDir, config.passphraseFile))
  const keys = await loadKeystore(resolveIn(opts.dataDir, config.keystore), passphrase)
  // The node and its network stack load only when a daemon starts, so CLI commands start fast.
  const { RadNode } = await import('./node.js')
  return {
    node: new RadNode({ dataDir: opts.dataDir, config, genesis }, { keys, logger, ...(opts.faults === undefined ? {} : { faults: opts.faults }) }),
    logger,
  }
}

/** What a daemon that halted on a safety violation leaves in its data dir (see runDaemon). */
export interface HaltRecord {
  readonly reason: string
  readonly height: number
  readonly round: number
  readonly at: string
}

/**
 * Runs a node in the foreground until SIGINT or SIGTERM, then shuts it down
 * cleanly. Resolves after shutdown. When consensus halts on a safety
 * violation (a broken invariant or a failing store), the daemon records why
 * in `<datadir>/halted.json`, stops, and throws NODE_HALTED (the CLI exits
 * with EXIT_HALTED): it does not keep serving as if all were well, and it
 * will not start again until an operator has looked and removed that file.
 */
export async function runDaemon(opts: DaemonOpts): Promise<void> {
  const haltFile = join(opts.dataDir, DATADIR_FILES.halted)
  const earlier = await readHalt(haltFile)
  if (earlier !== undefined) {
    throw new RadError(
      'NODE_HALTED',
      `this node halted at height ${earlier.height} on ${earlier.at}: ${earlier.reason}; find the cause in the daemon's log, then delete ${haltFile} to start it again`,
    )
  }
  const { node, logger } = await loadNode(opts)
  // Chunk traffic lets the heap grow further (src/node/heap.ts), unless the command line chose.
  if (!chunkTrafficHeap.enable()) logger.info('heap growth left to the command line (--heap-growing-percent)')
  if (daemonEnv() !== process.env)
    logger.info(
      `disk work on libuv's default pool of 4 threads: start the daemon with UV_THREADPOOL_SIZE=${DAEMON_THREADPOOL_SIZE}, as deploy/radchain.service does`,
    )
  await node.start()
  const halted = await new Promise<{ reason: string; height: number; round: number } | undefined>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      logger.info('shutting down', { signal: sig })
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(undefined)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    node.onHalt((h) => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(h)
    })
  })
  if (halted !== undefined) {
    const record: HaltRecord = { ...halted, at: new Date().toISOString() }
    await writeFileAtomic(haltFile, JSON.stringify(record, null, 2) + '\n', 0o644)
    logger.error('halted on a safety violation: stopping', { ...halted, file: haltFile })
  }
  await node.stop()
  chunkTrafficHeap.reset()
  if (halted !== undefined) throw new RadError('NODE_HALTED', `consensus halted at height ${halted.height}: ${halted.reason} (recorded in ${haltFile})`)
}

/** The halt record in `file`, if there is one. */
export async function readHalt(file: string): Promise<HaltRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as HaltRecord
  } catch {
    return undefined
  }
}
