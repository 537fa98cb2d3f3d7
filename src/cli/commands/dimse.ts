import type { Command } from 'commander'
import { join } from 'node:path'
import { action, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { dataDirOf } from '../target.js'
import { CliError } from '../errors.js'
import type { NodeConfigJSON } from '../../node/index.js'

type DirOpts = GlobalOpts & { node?: string }

function withDirOpts(cmd: Command): Command {
  return cmd.option('--node <datadir>', "the node's data dir (default $RADCHAIN_HOME or the platform data dir)").option('--json', 'machine-readable output')
}

/** The data dir `--node` names (a URL is refused: the peers are in the node's config.json, on its own machine). */
function dirOf(o: DirOpts): string {
  if (o.node !== undefined && /^https?:\/\//.test(o.node))
    throw new CliError('CLI_BAD_ARGUMENT', "DIMSE peers are kept in the node's config.json: give --node <datadir>, on the node's machine")
  return dataDirOf(o.node)
}

/** config.json as written (not with defaults filled in), checked to be a node's config. */
async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const { DATADIR_FILES, loadConfig, readJsonFile } = await import('../../node/index.js')
  await loadConfig(dir) // a data dir with a valid config, or CONFIG_NOT_FOUND / CONFIG_INVALID
  return (await readJsonFile(join(dir, DATADIR_FILES.config))) as Record<string, unknown>
}

function aeArgument(ae: string, problem: (ae: string) => string | undefined): string {
  const p = problem(ae)
  if (p !== undefined) throw new CliError('CLI_BAD_ARGUMENT', `AE title ${JSON.stringify(ae)}: ${p}`)
  return ae
}

/** `radchain dimse peer add|rm|ls`: the DICOM nodes allowed to associate (README "DICOM networking (DIMSE)"). */
export function registerDimseCommands(program: Command): void {
  const dimse = program.command('dimse').description('the DICOM networking (DIMSE) listener for PACS and modalities (C-ECHO, C-STORE)')
  const peer = dimse
    .command('peer')
    .description('the DICOM nodes (AE title, host, port) allowed to associate; kept in config.json, a running daemon reads them at the next association')
  withDirOpts(peer.command('add').description('allow a DICOM node: its calling AE title, the host it connects from, its port'))
    .argument('<aeTitle>', 'its AE title (1-16 characters)')
    .argument('<host>', 'its host name or IP address (associations must come from it)')
    .argument('<port>', 'its DICOM port (for sending to it)')
    .action(
      action(async (ae: string, host: string, portText: string, o: DirOpts) => {
        const { aeTitleProblem, saveConfig } = await import('../../node/index.js')
        aeArgument(ae, aeTitleProblem)
        const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
        if (!(port >= 1 && port <= 65535)) throw new CliError('CLI_BAD_ARGUMENT', `port: a number from 1 to 65535, got ${JSON.stringify(portText)}`)
        const dir = dirOf(o)
        const json = await readConfigJson(dir)
        const d = (json.dimse ?? {}) as Record<string, unknown>
        const peers = Array.isArray(d.peers) ? (d.peers as { aeTitle?: unknown }[]) : []
        if (peers.some((p) => p.aeTitle === ae))
          throw new CliError('CLI_BAD_ARGUMENT', `AE title ${ae} is a peer already: \`radchain dimse peer rm ${ae}\` first`)
        const added = { aeTitle: ae, host, port }
        await saveConfig(dir, { ...json, dimse: { ...d, peers: [...peers, added] } } as NodeConfigJSON)
        print(o.json === true, added, `peer ${ae} at ${host}:${port} added`)
      }),
    )
  withDirOpts(peer.command('rm').description('remove a DICOM node: its associations are refused from then on'))
    .argument('<aeTitle>', 'its AE title')
    .action(
      action(async (ae: string, o: DirOpts) => {
        const { saveConfig } = await import('../../node/index.js')
        const dir = dirOf(o)
        const json = await readConfigJson(dir)
        const d = (json.dimse ?? {}) as Record<string, unknown>
        const peers = Array.isArray(d.peers) ? (d.peers as { aeTitle?: unknown }[]) : []
        const left = peers.filter((p) => p.aeTitle !== ae)
        if (left.length === peers.length) throw new CliError('CLI_BAD_ARGUMENT', `no DIMSE peer with AE title ${ae}`)
        await saveConfig(dir, { ...json, dimse: { ...d, peers: left } } as NodeConfigJSON)
        print(o.json === true, { aeTitle: ae, removed: true }, `peer ${ae} removed`)
      }),
    )
  withDirOpts(peer.command('ls').description('list the DICOM nodes allowed to associate')).action(
    action(async (o: DirOpts) => {
      const { loadConfig } = await import('../../node/index.js')
      const c = await loadConfig(dirOf(o))
      const peers = c.dimse.peers
      print(o.json === true, peers, () =>
        peers.length === 0
          ? `no DIMSE peer${c.dimse.acceptUnknown ? ' (dimse.acceptUnknown is on: any AE title is accepted)' : ''}`
          : peers.map((p) => `${p.aeTitle.padEnd(16)}  ${p.host}:${p.port}`).join('\n'),
      )
    }),
  )
}
