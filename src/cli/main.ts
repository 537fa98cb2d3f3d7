import { Command, Option } from 'commander'
import { LOG_LEVELS, type LogLevel } from '../util/index.js'
import { VERSION } from '../node/index.js'
import { fail } from './output.js'
import { registerNodeCommands } from './commands/node.js'
import { registerChainCommands } from './commands/chain.js'
import { registerDemoCommand } from './commands/demo.js'
import { registerDevnetCommands } from './commands/devnet.js'
import { registerOrgCommands } from './commands/org.js'
import { registerStudyCommands, registerSwarmCommands } from './commands/study.js'
import { registerPatientCommands } from './commands/patient.js'
import { registerLeaseCommands } from './commands/lease.js'
import { registerWatchCommand } from './commands/watch.js'

/** Options every command accepts. */
export interface GlobalOpts {
  readonly node?: string
  readonly json?: boolean
}

/** The `--node` and `--json` options, added to each command that talks to a node. */
export function withNodeOpts(cmd: Command): Command {
  return cmd
    .option('--node <datadir|url>', 'node to talk to: its data dir, or its API URL (token in RADCHAIN_API_TOKEN); default $RADCHAIN_HOME or the platform data dir')
    .option('--json', 'machine-readable output')
}

/** The log-level option. */
export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'log level').choices(LOG_LEVELS as unknown as string[])
}

/** Wraps a command action: any error becomes one line on stderr and exit code 1. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command
    const json = (cmd.optsWithGlobals() as GlobalOpts).json === true
    try {
      await fn(...args)
    } catch (err) {
      fail(err, json)
    }
  }
}

/** Parses a log level option value. */
export function asLogLevel(v: string | undefined): LogLevel | undefined {
  return v as LogLevel | undefined
}

/** Builds the radchain command tree. */
export function buildProgram(): Command {
  const program = new Command('radchain')
    .description('radchain: share de-identified, encrypted imaging studies between radiology organizations on a proof-of-authority ledger')
    .version(VERSION)
    .configureOutput({ outputError: (s, write) => write(`radchain: ${s.replace(/^error: /, '')}`) })
  registerNodeCommands(program)
  registerChainCommands(program)
  registerOrgCommands(program)
  registerStudyCommands(program)
  registerSwarmCommands(program)
  registerPatientCommands(program)
  registerLeaseCommands(program)
  registerWatchCommand(program)
  registerDevnetCommands(program)
  registerDemoCommand(program)
  return program
}

/** Runs the CLI with `argv` (process.argv form). */
export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv)
}
