import { loadGenesis } from '../chain/index.js'
import { loadKeystore, readPassphrase } from '../crypto/index.js'
import { ConfigError, DATADIR_FILES, loadConfig, resolveIn } from './config.js'
import type { RadNode } from './node.js'
import { chunkTrafficHeap } from './heap.js'
import type { Faults } from './faults.js'
import { access } from 'node:fs/promises'
import { createLogger, type Logger, type LogLevel } from '../util/index.js'

/** Options of `radchain daemon`. */
export interface DaemonOpts {
  readonly dataDir: string
  readonly logLevel?: LogLevel
  /** Fault injection and the partition route: the devnet's daemon entry only (src/devnet/daemon-main.ts). */
  readonly faults?: Faults
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

/**
 * Runs a node in the foreground until SIGINT or SIGTERM, then shuts it down
 * cleanly. Resolves after shutdown.
 */
export async function runDaemon(opts: DaemonOpts): Promise<void> {
  const { node, logger } = await loadNode(opts)
  // Chunk traffic lets the heap grow further (src/node/heap.ts), unless the command line chose.
  if (!chunkTrafficHeap.enable()) logger.info('heap growth left to the command line (--heap-growing-percent)')
  await node.start()
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      logger.info('shutting down', { signal: sig })
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
  await node.stop()
  chunkTrafficHeap.reset()
}
