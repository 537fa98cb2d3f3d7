import type { Command } from 'commander'
import { resolve } from 'node:path'
import type * as DevnetModule from '../../devnet/index.js'
import { action } from '../program.js'
import { print } from '../output.js'
import { CliError } from '../errors.js'

const DEFAULT_DIR = 'devnet-data'

/** The devnet module, loaded when a devnet command runs. */
function devnetModule(): Promise<typeof DevnetModule> {
  return import('../../devnet/index.js')
}

function int(v: string, what: string, min: number, max: number): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) throw new CliError('CLI_BAD_ARGUMENT', `${what} must be an integer between ${min} and ${max}`)
  return n
}

/** devnet up|status|down|kill|start|partition|heal|gen-study. */
export function registerDevnetCommands(program: Command): void {
  const devnet = program.command('devnet').description('a local multi-organization network on this machine (127.0.0.1), for testing')

  devnet
    .command('up')
    .description('create (first time) and start N organizations, each an authority, and wait until blocks are final')
    .option('--orgs <n>', 'number of organizations', '4')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .option('--base-port <port>', 'first port: org k uses base+2(k-1) for its API and the next for p2p (default 7600)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { orgs: string; dir: string; basePort?: string; json?: boolean }) => {
        const { DEFAULT_BASE_PORT, devnetStatus, devnetUp } = await devnetModule()
        const m = await devnetUp({
          dir: o.dir,
          orgs: int(o.orgs, '--orgs', 1, 32),
          basePort: o.basePort === undefined ? DEFAULT_BASE_PORT : int(o.basePort, '--base-port', 1024, 65000),
          log: (l) => {
            if (o.json !== true) process.stdout.write(l + '\n')
          },
        })
        const st = await devnetStatus(o.dir)
        const rows = st.map((s) => ({ org: s.org.id, dir: s.org.dir, api: s.status?.api ?? null, height: s.status?.height ?? null, pid: s.pid ?? null }))
        print(
          o.json === true,
          { chainId: m.chainId, orgs: rows },
          () =>
            `chain ${m.chainId}: blocks are final\n` +
            rows.map((r) => `  ${r.org}  ${r.dir}  ${r.api ?? '-'}  height ${r.height ?? '-'}`).join('\n') +
            `\nuse any command with --node ${resolve(o.dir, 'org1')} (and so on); stop with: radchain devnet down --dir ${o.dir}`,
        )
      }),
    )

  devnet
    .command('status')
    .description('height, head and peers of every organization')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { dir: string; json?: boolean }) => {
        const { devnetStatus } = await devnetModule()
        const st = await devnetStatus(o.dir)
        const rows = st.map((s) => ({
          org: s.org.id,
          running: s.pid !== undefined,
          pid: s.pid ?? null,
          height: s.status?.height ?? null,
          headHash: s.status?.headHash ?? null,
          stateRoot: s.status?.stateRoot ?? null,
          peers: s.status?.peers ?? null,
          api: s.status?.api ?? null,
          consensus: s.status?.consensus ?? null,
        }))
        print(o.json === true, rows, () =>
          rows
            .map((r) =>
              r.running
                ? `${r.org}  height ${r.height ?? '?'}  head ${String(r.headHash).slice(0, 16)}  state ${String(r.stateRoot).slice(0, 16)}  peers ${r.peers ?? '?'}  round ${r.consensus?.round ?? '?'}`
                : `${r.org}  down`,
            )
            .join('\n'),
        )
      }),
    )

  devnet
    .command('down')
    .description('stop every daemon cleanly')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .option('--purge', 'also delete the devnet folder')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { dir: string; purge?: boolean; json?: boolean }) => {
        const { devnetDown } = await devnetModule()
        const n = await devnetDown(o.dir, o.purge === true)
        print(o.json === true, { stopped: n }, `stopped ${n} daemon(s)${o.purge === true ? ', devnet deleted' : ''}`)
      }),
    )

  devnet
    .command('kill <org>')
    .description("kill one organization's daemon with SIGKILL (as a crash would)")
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .action(
      action(async (org: string, o: { dir: string }) => {
        const { loadManifest, orgOf, stopOrg } = await devnetModule()
        const m = await loadManifest(o.dir)
        const x = orgOf(m, org)
        const killed = await stopOrg(x, 'SIGKILL')
        print(false, {}, killed ? `${x.id} killed` : `${x.id} was not running`)
      }),
    )

  devnet
    .command('start <org>')
    .description("start one organization's daemon again")
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .action(
      action(async (org: string, o: { dir: string }) => {
        const { clientOf, loadManifest, orgOf, reapplyPartition, startOrg } = await devnetModule()
        const m = await loadManifest(o.dir)
        const x = orgOf(m, org)
        await startOrg(x)
        await reapplyPartition(o.dir, x)
        const s = await (await clientOf(x)).status()
        print(false, s, `${x.id} running at height ${s.height}, API ${s.api}`)
      }),
    )

  devnet
    .command('partition <orgs...>')
    .description('cut connections between two groups of live organizations, e.g. `partition org1 org2 --from org3 org4`')
    .requiredOption('--from <orgs...>', 'the other group')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .action(
      action(async (orgs: string[], o: { from: string[]; dir: string }) => {
        const { devnetPartition } = await devnetModule()
        await devnetPartition(o.dir, orgs, o.from)
        print(false, {}, `partitioned ${orgs.join(' ')} from ${o.from.join(' ')}`)
      }),
    )

  devnet
    .command('heal')
    .description('restore every connection')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .action(
      action(async (o: { dir: string }) => {
        const { devnetHeal } = await devnetModule()
        await devnetHeal(o.dir)
        print(false, {}, 'healed: every organization may connect to every other')
      }),
    )

  devnet
    .command('gen-study')
    .description('write a synthetic CT series (one study, one series, made-up patient data, one DICOM file per slice) for tests and benchmarks')
    .requiredOption('--slices <n>', 'number of slices')
    .option('--rows <n>', 'rows per slice', '512')
    .option('--cols <n>', 'columns per slice', '512')
    .requiredOption('--out <dir>', 'output folder (new or empty)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { slices: string; rows: string; cols: string; out: string; json?: boolean }) => {
        const [{ MAX_SYNTHETIC_DIM, MAX_SYNTHETIC_SLICES, generateCtStudy }, cliProgress] = await Promise.all([
          import('../../study/index.js'),
          import('cli-progress'),
        ])
        const slices = int(o.slices, '--slices', 1, MAX_SYNTHETIC_SLICES)
        const rows = int(o.rows, '--rows', 1, MAX_SYNTHETIC_DIM)
        const cols = int(o.cols, '--cols', 1, MAX_SYNTHETIC_DIM)
        const tty = process.stderr.isTTY === true && o.json !== true
        const bar = tty
          ? new cliProgress.SingleBar({ format: 'writing {bar} {value}/{total} slices, {mb} MB', hideCursor: true }, cliProgress.Presets.shades_classic)
          : null
        bar?.start(slices, 0, { mb: '0.0' })
        let study
        try {
          study = await generateCtStudy({
            slices,
            rows,
            cols,
            out: o.out,
            onProgress: (p) => bar?.update(p.written, { mb: (p.bytes / 1e6).toFixed(1) }),
          })
        } finally {
          bar?.stop()
        }
        const s = study
        print(
          o.json === true,
          { out: s.out, files: s.files.length, bytes: s.bytes, studyInstanceUid: s.studyInstanceUid },
          () => `${s.files.length} file(s), ${s.bytes} bytes, in ${s.out}\nstudy ${s.studyInstanceUid}, synthetic patient ${s.demographics.patientName}`,
        )
      }),
    )
}
