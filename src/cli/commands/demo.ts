import type { Command } from 'commander'
import { action } from '../program.js'
import { CliError } from '../errors.js'

/** demo, and the same as devnet demo. */
export function registerDemoCommand(program: Command): void {
  demoCommand(program.command('demo'))
  const devnet = program.commands.find((c) => c.name() === 'devnet')
  if (devnet !== undefined) demoCommand(devnet.command('demo'))
}

function demoCommand(cmd: Command): void {
  cmd
    .description(
      "the whole story on a local 4-organization devnet: the ledger survives a crash and a split; a study is added for a patient, leased under the patient's consent, fetched while its custodian is offline, audited; the lease expires and a further fetch is recorded as a violation",
    )
    .option('--notes <n>', 'notes to record', '1000')
    .option('--dir <dir>', 'devnet folder (default: a fresh temporary one, removed afterwards)')
    .option('--base-port <port>', 'first port of the devnet', '7900')
    .option('--keep', 'keep the devnet folder')
    .action(
      action(async (o: { notes: string; dir?: string; keep?: boolean; basePort: string }) => {
        const notes = Number(o.notes)
        if (!Number.isInteger(notes) || notes < 1 || notes > 1_000_000)
          throw new CliError('CLI_BAD_ARGUMENT', '--notes must be an integer between 1 and 1000000')
        const basePort = Number(o.basePort)
        if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65000)
          throw new CliError('CLI_BAD_ARGUMENT', '--base-port must be between 1024 and 65000')
        const { runDemo } = await import('../../devnet/index.js')
        await runDemo({ notes, keep: o.keep === true, basePort, ...(o.dir === undefined ? {} : { dir: o.dir }), say: (l) => process.stdout.write(l + '\n') })
      }),
    )
}
