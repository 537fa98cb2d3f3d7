import { Option, type Command } from 'commander'
import { LOG_LEVELS, type LogLevel } from '../util/index.js'
import { fail } from './output.js'

// What every command module shares. Command modules import this file, never
// main.ts (which imports them), and load the node's heavier modules inside
// their actions, so that `radchain --version` or `radchain status` does not
// pay for the network stack, the DICOM parser or the store.

/** Options every command accepts. */
export interface GlobalOpts {
  readonly node?: string
  readonly json?: boolean
}

/** The `--node` and `--json` options, added to each command that talks to a node. */
export function withNodeOpts(cmd: Command): Command {
  return cmd
    .option(
      '--node <datadir|url>',
      'node to talk to: its data dir, or its API URL (token in RADCHAIN_API_TOKEN); default $RADCHAIN_HOME or the platform data dir',
    )
    .option('--json', 'machine-readable output')
}

/** The log-level option. */
export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'log level').choices(LOG_LEVELS)
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
