import type { Command } from 'commander'
import { toHex } from '../../util/index.js'
import { action, asLogLevel, logLevelOption, type GlobalOpts } from '../program.js'
import { print, table } from '../output.js'
import { dataDirOf } from '../target.js'
import { CliError } from '../errors.js'

interface InitCmdOpts extends GlobalOpts {
  dir?: string
  genesis?: string
  dev?: boolean
  orgId?: string
  name?: string
  apiPort?: string
  listen?: string[]
  announce?: string[]
}

function parsePort(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError('CLI_BAD_ARGUMENT', `--api-port must be a port number, got ${JSON.stringify(v)}`)
  return n
}

/** init, daemon, keys show. */
export function registerNodeCommands(program: Command): void {
  program
    .command('init')
    .description('create a node data dir: organization keys (encrypted keystore), passphrase file, config, genesis')
    .option('--dir <dir>', 'data dir to create (default $RADCHAIN_HOME or the platform data dir)')
    .option('--genesis <file>', 'genesis file of the network to join')
    .option('--dev', 'make a one-organization development chain with this node as its authority')
    .option('--org-id <id>', "this organization's id, for its card (`keys show --json`) and a --dev genesis (default org1 with --dev)")
    .option('--name <name>', "this organization's name, for its card and a --dev genesis")
    .option('--listen <multiaddr...>', 'p2p listen addresses, e.g. /ip4/0.0.0.0/tcp/7461 (default /ip4/127.0.0.1/tcp/7461: this machine only)')
    .option('--announce <multiaddr...>', 'addresses other organizations dial, e.g. /dns4/radchain.hospital.example/tcp/7461 (default: the listen addresses)')
    .option('--api-port <port>', 'local API port (0: any free port)')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nThe keystore passphrase is taken from RADCHAIN_PASSPHRASE if set; otherwise a random one is written to <dir>/passphrase (mode 0600).',
    )
    .action(
      action(async (o: InitCmdOpts) => {
        const dir = dataDirOf(o.dir)
        const { initDataDir } = await import('../../node/index.js')
        const r = await initDataDir({
          dir,
          ...(o.genesis === undefined ? {} : { genesisPath: o.genesis }),
          dev: o.dev === true,
          ...(o.orgId === undefined ? {} : { orgId: o.orgId }),
          ...(o.name === undefined ? {} : { orgName: o.name }),
          ...(o.apiPort === undefined ? {} : { apiPort: parsePort(o.apiPort) }),
          ...(o.listen === undefined ? {} : { p2pListen: o.listen }),
          ...(o.announce === undefined ? {} : { p2pAnnounce: o.announce }),
        })
        print(
          o.json === true,
          r,
          () =>
            table([
              ['data dir', r.dir],
              ['signing key', r.signKey],
              ['encryption key', r.encKey],
              [
                'chain',
                r.chainId ??
                  `(no genesis yet: publish \`radchain keys show --json --dir ${r.dir}\`, then \`radchain genesis install <genesis.json> --dir ${r.dir}\`)`,
              ],
              ['passphrase', r.passphraseFile ?? 'from RADCHAIN_PASSPHRASE'],
            ]) + `\n\nstart the node with: radchain daemon --dir ${r.dir}`,
        )
      }),
    )

  program
    .command('daemon')
    .description('run the node in the foreground (stop with Ctrl-C or SIGTERM)')
    .option('--dir <dir>', 'data dir (default $RADCHAIN_HOME or the platform data dir)')
    .addOption(logLevelOption())
    .action(
      action(async (o: { dir?: string; logLevel?: string }) => {
        const level = asLogLevel(o.logLevel)
        const { runDaemon } = await import('../../node/index.js')
        await runDaemon({ dataDir: dataDirOf(o.dir), ...(level === undefined ? {} : { logLevel: level }) })
      }),
    )

  const keys = program.command('keys').description('organization keys')
  keys
    .command('show')
    .description("print this node's public keys (no passphrase needed)")
    .option('--dir <dir>', 'data dir')
    .option('--node <datadir>', 'same as --dir')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { dir?: string; node?: string; json?: boolean }) => {
        const dir = dataDirOf(o.dir ?? o.node)
        const [{ loadConfig, resolveIn }, { readKeystorePublicKeys }] = await Promise.all([import('../../node/index.js'), import('../../crypto/index.js')])
        const config = await loadConfig(dir)
        const k = await readKeystorePublicKeys(resolveIn(dir, config.keystore))
        // The organization's card: what `radchain genesis new --org <card>` takes.
        const addrs = config.p2p.announce.length > 0 ? config.p2p.announce : config.p2p.listen
        const out = { id: config.org.id ?? null, name: config.org.name ?? null, role: 'authority', signKey: toHex(k.sign), encKey: toHex(k.enc), addrs }
        print(o.json === true, out, () =>
          table([
            [
              'organization',
              out.id === null ? '(no id: set one with `radchain init --org-id`, or org.id in config.json)' : `${out.id} (${out.name ?? out.id})`,
            ],
            ['signing key (Ed25519)', out.signKey],
            ['encryption key (X25519)', out.encKey],
            ['addresses', addrs.join(' ')],
          ]),
        )
      }),
    )
}
