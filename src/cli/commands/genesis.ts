import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { action } from '../program.js'
import { print, table } from '../output.js'
import { dataDirOf } from '../target.js'
import { CliError } from '../errors.js'
import { PARAM_OPTIONS, readParamOptions } from './org.js'

/** genesis new, genesis install. */
export function registerGenesisCommands(program: Command): void {
  const genesis = program.command('genesis').description('the key ceremony: assemble the network genesis from the founding organizations, and install it')

  const create = genesis
    .command('new')
    .description("assemble a genesis from the founding organizations' cards (each made with `radchain keys show --json`); all are authorities")
    .requiredOption('--chain-id <id>', 'the network name, e.g. radchain-east-2027 (letters, digits, dot, dash, underscore)')
    .requiredOption('--org <card...>', 'one card file per founding organization (repeat, or list several)')
    .option('--out <file>', 'where to write the genesis (default: print it)')
    .option('--member <id...>', 'these organizations join as members (no vote in consensus)')
    .option('--allow-loopback', 'accept cards whose addresses are this machine only (a network on one machine)')
  for (const p of PARAM_OPTIONS) create.option(p.flag, p.help)
  create.addHelpText(
    'after',
    '\nEvery card is checked (a clear error names the file and the field), ids and keys must differ, and every address must be one others can dial.',
  )
  create.action(
    action(async (o: Record<string, unknown> & { chainId: string; org: string[]; out?: string; member?: string[]; allowLoopback?: boolean }) => {
      const [{ assembleGenesis, genesisToJSON, parseOrgCard }, { writeFileAtomic }, { isLocalOnlyAddr }] = await Promise.all([
        import('../../chain/index.js'),
        import('../../util/index.js'),
        import('../../node/index.js'),
      ])
      const cards = []
      for (const file of o.org) {
        let json: unknown
        try {
          json = JSON.parse(await readFile(file, 'utf8'))
        } catch (err) {
          throw new CliError('CLI_BAD_ARGUMENT', `cannot read the organization card ${file}: ${err instanceof Error ? err.message : String(err)}`)
        }
        const org = parseOrgCard(json, file)
        const members = o.member ?? []
        const card = { org: members.includes(org.id) ? { ...org, role: 'member' as const } : org, source: file }
        if (card.org.role === 'authority' && card.org.addrs.length === 0)
          throw new CliError('CLI_BAD_ARGUMENT', `${file}: addrs: an authority needs an address the others can dial (\`radchain init --announce\`)`)
        const local = card.org.addrs.findIndex((a) => isLocalOnlyAddr(a))
        if (local >= 0 && o.allowLoopback !== true)
          throw new CliError(
            'CLI_BAD_ARGUMENT',
            `${file}: addrs.${local}: ${card.org.addrs[local]} is this machine only: other organizations cannot dial it (set the address they dial with \`radchain init --announce\` or p2p.announce in config.json; --allow-loopback for a network on one machine)`,
          )
        cards.push(card)
      }
      for (const id of o.member ?? []) if (!cards.some((c) => c.org.id === id)) throw new CliError('CLI_BAD_ARGUMENT', `--member ${id}: no card has that id`)
      const g = assembleGenesis({ chainId: o.chainId, genesisTime: Date.now(), params: readParamOptions(o), cards })
      const text = JSON.stringify(genesisToJSON(g), null, 2) + '\n'
      if (o.out === undefined) {
        process.stdout.write(text)
        return
      }
      await writeFileAtomic(o.out, text, 0o644)
      process.stderr.write(
        `genesis of ${g.chainId} written to ${o.out}: ${g.orgs.map((x) => `${x.id} (${x.role})`).join(', ')}\n` +
          `each organization installs it with: radchain genesis install ${o.out}\n`,
      )
    }),
  )

  genesis
    .command('install <file>')
    .description("check a network's genesis and install it in this node's data dir (made by `radchain init` without a genesis)")
    .option('--dir <dir>', 'data dir (default $RADCHAIN_HOME or the platform data dir)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (file: string, o: { dir?: string; json?: boolean }) => {
        const dir = dataDirOf(o.dir)
        const [{ genesisToJSON, loadGenesis }, { loadConfig, resolveIn, DATADIR_FILES }, { readKeystorePublicKeys }, { equalBytes, exists, writeFileAtomic }] =
          await Promise.all([import('../../chain/index.js'), import('../../node/index.js'), import('../../crypto/index.js'), import('../../util/index.js')])
        const config = await loadConfig(dir)
        const g = await loadGenesis(file)
        const target = resolveIn(dir, config.genesis)
        // Installing the same genesis again changes nothing; another one is refused.
        const installed = (await exists(target)) ? await loadGenesis(target) : undefined
        if (installed !== undefined && JSON.stringify(genesisToJSON(installed)) !== JSON.stringify(genesisToJSON(g)))
          throw new CliError(
            'CLI_BAD_ARGUMENT',
            `${dir} already has the genesis of ${installed.chainId}; a node joins one network (make a new data dir for another)`,
          )
        if (installed === undefined && (await exists(join(dir, DATADIR_FILES.db))))
          throw new CliError('CLI_BAD_ARGUMENT', `${dir} already holds a ledger; the genesis of a node that ran is not changed`)
        const k = await readKeystorePublicKeys(resolveIn(dir, config.keystore))
        const me = g.orgs.find((x) => equalBytes(x.signKey, k.sign))
        if (me !== undefined && !equalBytes(me.encKey, k.enc))
          throw new CliError('CLI_BAD_ARGUMENT', `${file} lists this node's signing key as ${me.id} with another encryption key: the card was not this node's`)
        if (installed === undefined) await writeFileAtomic(target, JSON.stringify(genesisToJSON(g), null, 2) + '\n', 0o644)
        const out = { chainId: g.chainId, org: me?.id ?? null, role: me?.role ?? null, orgs: g.orgs.length, genesis: target }
        print(
          o.json === true,
          out,
          () =>
            table([
              ['chain', g.chainId],
              [
                'this organization',
                me === undefined ? 'not in the genesis: it joins once the authorities admit it (`radchain org admit`)' : `${me.id} (${me.role})`,
              ],
              ['organizations', g.orgs.map((x) => x.id).join(', ')],
              ['installed', target],
            ]) + `\n\nstart the node with: radchain daemon --dir ${dir}`,
        )
      }),
    )
}
