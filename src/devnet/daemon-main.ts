// The daemon of a devnet organization: `radchain daemon` plus what the
// devnet's tests need and a hospital's node must never have: the fault
// switches of <datadir>/faults.json (src/node/faults.ts) and the partition
// route. The production CLI does not expose this entry; the devnet starts
// its daemons with it (devnetDaemonPath()).
//
//   node dist/src/devnet/daemon-main.js --dir <datadir> [--log-level <level>]
import '../util/polyfill.js'
import { loadFaults, runDaemon } from '../node/index.js'
import { LOG_LEVELS, errorMessage, isRadError, type LogLevel } from '../util/index.js'
import { isDevnetOrgDir } from './devnet.js'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1]
}

try {
  const dir = arg('--dir')
  if (dir === undefined) throw new Error('usage: daemon-main.js --dir <datadir> [--log-level <level>]')
  const level = arg('--log-level')
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  // Fault switches and the partition route never reach a production data dir.
  if (!(await isDevnetOrgDir(dir)))
    throw new Error(
      `${dir} is not an organization of a devnet (<devnet>/<org id>, named in <devnet>/devnet.json, on a devnet chain): run a production node with \`radchain daemon\``,
    )
  await runDaemon({ dataDir: dir, faults: await loadFaults(dir), ...(level === undefined ? {} : { logLevel: level as LogLevel }) })
} catch (err) {
  process.stderr.write(`radchain devnet daemon: ${errorMessage(err)}${isRadError(err) ? ` [${err.code}]` : ''}\n`)
  // As `radchain daemon`: a halt on a safety violation has its own exit code (EXIT_HALTED in src/cli/output.ts).
  process.exitCode = isRadError(err) && err.code === 'NODE_HALTED' ? 3 : 1
}
