import { Command } from 'commander'
import { VERSION } from '../util/index.js'
import { registerNodeCommands } from './commands/node.js'
import { registerGenesisCommands } from './commands/genesis.js'
import { registerChainCommands } from './commands/chain.js'
import { registerDemoCommand } from './commands/demo.js'
import { registerDevnetCommands } from './commands/devnet.js'
import { registerOrgCommands } from './commands/org.js'
import { registerStudyCommands } from './commands/study.js'
import { registerSwarmCommands } from './commands/swarm.js'
import { registerPatientCommands } from './commands/patient.js'
import { registerLeaseCommands } from './commands/lease.js'
import { registerWatchCommand } from './commands/watch.js'
import { registerDicomwebCommands } from './commands/dicomweb.js'
import { registerDimseCommands } from './commands/dimse.js'

/** Builds the radchain command tree. */
export function buildProgram(): Command {
  const program = new Command('radchain')
    .description('radchain: share de-identified, encrypted imaging studies between radiology organizations on a proof-of-authority ledger')
    .version(VERSION)
    .configureOutput({ outputError: (s, write) => write(`radchain: ${s.replace(/^error: /, '')}`) })
  registerNodeCommands(program)
  registerGenesisCommands(program)
  registerChainCommands(program)
  registerOrgCommands(program)
  registerStudyCommands(program)
  registerSwarmCommands(program)
  registerPatientCommands(program)
  registerLeaseCommands(program)
  registerWatchCommand(program)
  registerDicomwebCommands(program)
  registerDimseCommands(program)
  registerDevnetCommands(program)
  registerDemoCommand(program)
  return program
}

/** Runs the CLI with `argv` (process.argv form). */
export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv)
}
