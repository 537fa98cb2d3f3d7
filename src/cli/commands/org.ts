import type { Command } from 'commander'
import type { OrgVote } from '../../api/index.js'
import { RadError } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'
import { CliError } from '../errors.js'
import type { TxCode } from '../../chain/index.js'

const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 }

/** A byte count: a plain integer, or an integer with a binary unit (KiB, MiB, GiB, TiB; B), as `40GiB` or `40 GiB`. */
export function parseByteSize(text: string, option: string): number {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text)
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase() || 'b']
  const n = m === null || unit === undefined ? NaN : Number(m[1]) * unit
  if (!Number.isSafeInteger(n))
    throw new CliError('CLI_BAD_ARGUMENT', `${option} must be a whole number of bytes, optionally with a unit (KiB, MiB, GiB, TiB), as 40GiB; got ${text}`)
  return n
}

/** A non-negative whole number. */
export function parseCount(text: string, option: string): number {
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(Number(text))) throw new CliError('CLI_BAD_ARGUMENT', `${option} must be a whole number; got ${text}`)
  return Number(text)
}

/** The chain parameter options (`org params`, `genesis new`), with the parameter each sets and how it is read. */
export const PARAM_OPTIONS = [
  { flag: '--max-study-bytes <size>', key: 'maxStudyBytes', help: 'largest study a registration may declare, as 40GiB or in bytes (only raised)', size: true },
  { flag: '--max-study-chunks <n>', key: 'maxStudyChunks', help: 'most chunks a study may have (only raised; at most 4194304)', size: false },
  { flag: '--replication-factor <n>', key: 'replicationFactor', help: 'organizations that keep each study', size: false },
  { flag: '--block-interval-ms <ms>', key: 'blockIntervalMs', help: 'heartbeat: an empty block after this long without transactions', size: false },
  { flag: '--max-block-txs <n>', key: 'maxBlockTxs', help: 'most transactions in one block', size: false },
  { flag: '--max-clock-drift-ms <ms>', key: 'maxClockDriftMs', help: "how far a block's time may run ahead of a voter's clock", size: false },
] as const

function optionName(flag: string): string {
  return flag.split(' ')[0] as string
}

/** The chain parameters given as PARAM_OPTIONS among a command's options. */
export function readParamOptions(o: Record<string, unknown>): Record<string, number> {
  const values: Record<string, number> = {}
  for (const p of PARAM_OPTIONS) {
    const text = o[p.key]
    if (typeof text !== 'string') continue
    values[p.key] = p.size ? parseByteSize(text, optionName(p.flag)) : parseCount(text, optionName(p.flag))
  }
  return values
}

async function submitVote(o: GlobalOpts & { wait: boolean }, vote: OrgVote): Promise<void> {
  const client = await clientFor(o.node)
  const hash = await client.voteOrg(vote)
  if (!o.wait) {
    print(o.json === true, { hash, status: 'pending' }, `${hash} pending`)
    return
  }
  const s = await client.tx(hash, 30_000)
  if (s.status === 'rejected') throw new RadError(s.error?.code ?? ('TX_REJECTED' satisfies TxCode), `vote ${hash} was rejected: ${s.error?.message ?? ''}`)
  if (s.status !== 'final') throw new CliError('CLI_TIMEOUT', `vote ${hash} is still ${s.status}`)
  print(o.json === true, s, `vote ${hash} final at height ${s.height ?? '?'}: the change is made once more than 2/3 of the authorities voted for it`)
}

/** org ls|admit|remove|rekey|params: the organization registry and the chain parameters, changed by votes of the authorities. */
export function registerOrgCommands(program: Command): void {
  const org = program
    .command('org')
    .description('the organization registry and the chain parameters: authorities vote to admit, remove or re-key organizations and to change parameters')

  withNodeOpts(org.command('ls').description('admitted organizations, the changes being voted on and the chain parameters in force')).action(
    action(async (o: GlobalOpts) => {
      const v = await (await clientFor(o.node)).orgs()
      print(o.json === true, v, () =>
        [
          ...v.orgs.map((x) => `${String(x.id).padEnd(16)} ${String(x.role).padEnd(10)} ${String(x.signKey).slice(0, 16)}...  ${String(x.name)}`),
          ...(v.proposals.length === 0
            ? []
            : ['', 'being voted on:', ...v.proposals.map((p) => `  ${JSON.stringify(p.action)}  votes: ${p.voters.join(', ')}`)]),
          '',
          'chain parameters in force:',
          ...Object.entries(v.params).map(([k, n]) => `  ${k.padEnd(18)} ${n}`),
        ].join('\n'),
      )
    }),
  )

  withNodeOpts(org.command('admit <id>').description('vote to admit an organization (as a member, or with --role authority as a voting authority)'))
    .requiredOption('--sign-key <hex>', 'its Ed25519 public key (`radchain keys show` on its node)')
    .requiredOption('--enc-key <hex>', 'its X25519 public key')
    .option('--name <name>', 'display name')
    .option('--role <role>', 'member or authority', 'member')
    .option('--addr <multiaddr...>', 'where its node listens, e.g. /ip4/10.0.0.5/tcp/7461')
    .option('--no-wait', 'do not wait until the vote is final')
    .action(
      action(async (id: string, o: GlobalOpts & { wait: boolean; signKey: string; encKey: string; name?: string; role: string; addr?: string[] }) => {
        if (o.role !== 'member' && o.role !== 'authority') throw new CliError('CLI_BAD_ARGUMENT', '--role must be member or authority')
        await submitVote(o, { action: 'admit', id, name: o.name ?? id, role: o.role, signKey: o.signKey, encKey: o.encKey, addrs: o.addr ?? [] })
      }),
    )

  withNodeOpts(org.command('remove <id>').description('vote to remove an organization'))
    .option('--no-wait', 'do not wait until the vote is final')
    .action(
      action(async (id: string, o: GlobalOpts & { wait: boolean }) => {
        await submitVote(o, { action: 'remove', id })
      }),
    )

  withNodeOpts(org.command('rekey <id>').description("vote to replace an organization's keys"))
    .requiredOption('--sign-key <hex>', 'new Ed25519 public key')
    .requiredOption('--enc-key <hex>', 'new X25519 public key')
    .option('--no-wait', 'do not wait until the vote is final')
    .action(
      action(async (id: string, o: GlobalOpts & { wait: boolean; signKey: string; encKey: string }) => {
        await submitVote(o, { action: 'rekey', id, signKey: o.signKey, encKey: o.encKey })
      }),
    )

  const params = withNodeOpts(
    org
      .command('params')
      .description(
        'vote to change chain parameters (from the next block once more than 2/3 of the authorities voted for the same values); the others are fixed by the genesis',
      ),
  )
  for (const p of PARAM_OPTIONS) params.option(p.flag, p.help)
  params.option('--no-wait', 'do not wait until the vote is final').action(
    action(async (o: GlobalOpts & { wait: boolean } & Record<string, unknown>) => {
      const values = readParamOptions(o)
      if (Object.keys(values).length === 0)
        throw new CliError('CLI_BAD_ARGUMENT', `name at least one parameter: ${PARAM_OPTIONS.map((p) => optionName(p.flag)).join(', ')}`)
      await submitVote(o, { action: 'params', params: values })
    }),
  )
}
