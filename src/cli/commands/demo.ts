import type { Command } from 'commander'
import { runSoloDemo } from '../../../devnet/solo-demo.js'
import { RadError } from '../../util/index.js'
import { action } from '../main.js'

/** demo. */
export function registerDemoCommand(program: Command): void {
  program.command('demo')
    .description('run the whole flow on a local node: create it, start it, record notes, kill -9 and restart it, check nothing was lost')
    .option('--notes <n>', 'notes to record', '1000')
    .option('--dir <dir>', 'data dir to use (default: a fresh temporary dir, removed afterwards)')
    .option('--keep', 'keep the data dir')
    .action(action(async (o: { notes: string; dir?: string; keep?: boolean }) => {
      const notes = Number(o.notes)
      if (!Number.isInteger(notes) || notes < 1 || notes > 1_000_000) throw new RadError('CLI_BAD_ARGUMENT', '--notes must be an integer between 1 and 1000000')
      await runSoloDemo({ notes, keep: o.keep === true, ...(o.dir === undefined ? {} : { dir: o.dir }), say: (l) => process.stdout.write(l + '\n') })
    }))
}
