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
  const devnet = program
    .command('devnet')
    .description('a local multi-organization network on this machine (127.0.0.1, or a network namespace each with --hosts), for testing')

  devnet
    .command('up')
    .description('create (first time) and start N organizations, each an authority, and wait until blocks are final')
    .option('--orgs <n>', 'number of organizations', '4')
    .option('--dir <dir>', 'devnet folder', DEFAULT_DIR)
    .option('--base-port <port>', 'first port: org k uses base+2(k-1) for its API and the next for p2p (default 7600)')
    .option('--hosts', 'a network of hosts: each organization in its own network namespace with its own address (root and iproute2)')
    .option('--link-mbit <rates>', 'with --hosts: shape uplinks, in Mbit/s: `200` for all, `org1=200,org2=1000` each, or `1000,org1=200`')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { orgs: string; dir: string; basePort?: string; hosts?: boolean; linkMbit?: string; json?: boolean }) => {
        const { DEFAULT_BASE_PORT, devnetStatus, devnetUp, loadManifest, parseLinkMbit } = await devnetModule()
        const orgs = int(o.orgs, '--orgs', 1, 32)
        // --hosts is a property of the devnet: once made, `up` finds it in the manifest.
        const existing = await loadManifest(o.dir).catch(() => undefined)
        const hosts = o.hosts === true || existing?.hosts !== undefined
        if (o.linkMbit !== undefined && !hosts) throw new CliError('CLI_BAD_ARGUMENT', '--link-mbit shapes the links of a devnet of hosts: add --hosts')
        const ids = Array.from({ length: orgs }, (_, i) => `org${i + 1}`)
        const m = await devnetUp({
          dir: o.dir,
          orgs,
          basePort: o.basePort === undefined ? DEFAULT_BASE_PORT : int(o.basePort, '--base-port', 1024, 65000),
          ...(o.hosts === true ? { hosts: true } : {}),
          ...(o.linkMbit === undefined ? {} : { linkMbit: parseLinkMbit(o.linkMbit, ids) }),
          log: (l) => {
            if (o.json !== true) process.stdout.write(l + '\n')
          },
        })
        const st = await devnetStatus(o.dir)
        const rows = st.map((s) => ({
          org: s.org.id,
          dir: s.org.dir,
          api: s.status?.api ?? null,
          host: s.org.host ?? null,
          netns: s.org.netns ?? null,
          linkMbit: m.hosts?.linkMbit[s.org.id] ?? null,
          height: s.status?.height ?? null,
          pid: s.pid ?? null,
        }))
        const where = (r: (typeof rows)[number]): string =>
          r.host === null ? (r.api ?? '-') : `${r.host} in ${r.netns ?? '?'}${r.linkMbit === null ? '' : `, uplink ${r.linkMbit} Mbit/s`}`
        print(
          o.json === true,
          { chainId: m.chainId, orgs: rows },
          () =>
            `chain ${m.chainId}: blocks are final\n` +
            rows.map((r) => `  ${r.org}  ${r.dir}  ${where(r)}  height ${r.height ?? '-'}`).join('\n') +
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
