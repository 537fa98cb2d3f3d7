import type { Command } from 'commander'
import { runDemo } from '../../../devnet/demo.js'
import { RadError } from '../../util/index.js'
import { action } from '../main.js'

/** demo. */
export function registerDemoCommand(program: Command): void {
  program.command('demo')
    .description('the whole flow on a local 4-organization devnet: start, record notes, crash and restart a node, split and heal the network, check every node agrees')
    .option('--notes <n>', 'notes to record', '1000')
    .option('--dir <dir>', 'devnet folder (default: a fresh temporary one, removed afterwards)')
    .option('--base-port <port>', 'first port of the devnet', '7900')
    .option('--keep', 'keep the devnet folder')
    .action(action(async (o: { notes: string; dir?: string; keep?: boolean; basePort: string }) => {
      const notes = Number(o.notes)
      if (!Number.isInteger(notes) || notes < 1 || notes > 1_000_000) throw new RadError('CLI_BAD_ARGUMENT', '--notes must be an integer between 1 and 1000000')
      const basePort = Number(o.basePort)
      if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65000) throw new RadError('CLI_BAD_ARGUMENT', '--base-port must be between 1024 and 65000')
      await runDemo({ notes, keep: o.keep === true, basePort, ...(o.dir === undefined ? {} : { dir: o.dir }), say: (l) => process.stdout.write(l + '\n') })
    }))
}
