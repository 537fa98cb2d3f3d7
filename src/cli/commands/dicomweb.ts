import type { Command } from 'commander'
import { join } from 'node:path'
import { action, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { dataDirOf } from '../target.js'
import { CliError } from '../errors.js'

type DirOpts = GlobalOpts & { node?: string }

/** The token file of the data dir `--node` names (a URL is refused: tokens live on the node's own machine). */
async function tokensFile(o: DirOpts): Promise<string> {
  if (o.node !== undefined && /^https?:\/\//.test(o.node))
    throw new CliError('CLI_BAD_ARGUMENT', "DICOMweb tokens are kept in the node's data dir: give --node <datadir>, on the node's machine")
  const { DATADIR_FILES, loadConfig } = await import('../../node/index.js')
  const dir = dataDirOf(o.node)
  await loadConfig(dir) // a data dir, not just any folder
  return join(dir, DATADIR_FILES.dicomwebTokens)
}

function withDirOpts(cmd: Command): Command {
  return cmd.option('--node <datadir>', "the node's data dir (default $RADCHAIN_HOME or the platform data dir)").option('--json', 'machine-readable output')
}

/** `radchain dicomweb token create|ls|revoke`: the bearer tokens of PACS and viewers (README "Connecting a PACS and a viewer"). */
export function registerDicomwebCommands(program: Command): void {
  const dw = program.command('dicomweb').description('the DICOMweb listener for PACS and viewers (STOW-RS, QIDO-RS, WADO-RS)')
  const token = dw.command('token').description("clients' bearer tokens (stored hashed in the data dir; a running daemon sees changes at once)")
  withDirOpts(token.command('create').description('create a token for one client; it is shown once'))
    .requiredOption('--name <name>', 'client name, e.g. pacs1 (letters, digits, . _ -)')
    .option('--scope <scope>', 'read (QIDO, WADO), write (STOW) or readwrite', 'readwrite')
    .action(
      action(async (o: DirOpts & { name: string; scope: string }) => {
        const { DICOMWEB_SCOPES, createDicomwebToken } = await import('../../node/index.js')
        const scope = DICOMWEB_SCOPES.find((s) => s === o.scope)
        if (scope === undefined) throw new CliError('CLI_BAD_ARGUMENT', `--scope must be one of ${DICOMWEB_SCOPES.join(', ')}, got ${JSON.stringify(o.scope)}`)
        const t = await createDicomwebToken(await tokensFile(o), o.name, scope)
        print(
          o.json === true,
          { name: o.name, scope, token: t },
          `${t}\n(token for ${o.name}, scope ${scope}: shown this once; send it as "Authorization: Bearer <token>")`,
        )
      }),
    )
  withDirOpts(token.command('ls').description('the clients that have a token (names and scopes; the tokens themselves are not kept)')).action(
    action(async (o: DirOpts) => {
      const { listDicomwebTokens } = await import('../../node/index.js')
      const list = await listDicomwebTokens(await tokensFile(o))
      print(
        o.json === true,
        list.map((t) => ({ name: t.name, scope: t.scope, createdAt: t.createdAt })),
        () => (list.length === 0 ? 'no DICOMweb token' : list.map((t) => `${t.name.padEnd(20)} ${t.scope.padEnd(9)} created ${t.createdAt}`).join('\n')),
      )
    }),
  )
  withDirOpts(token.command('revoke').description("revoke a client's token (refused from its next request on)"))
    .argument('<name>', 'client name')
    .action(
      action(async (name: string, o: DirOpts) => {
        const { revokeDicomwebToken } = await import('../../node/index.js')
        if (!(await revokeDicomwebToken(await tokensFile(o), name))) throw new CliError('CLI_BAD_ARGUMENT', `no DICOMweb token named ${name}`)
        print(o.json === true, { name, revoked: true }, `token of ${name} revoked`)
      }),
    )
}
