import type { Command } from 'commander'
import type { OrgVote } from '../../api/index.js'
import { RadError } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'
import { CliError } from '../errors.js'
import type { TxCode } from '../../chain/index.js'

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

/** org ls|admit|remove|rekey: the organization registry, changed by votes of the authorities. */
export function registerOrgCommands(program: Command): void {
  const org = program.command('org').description('the organization registry: admitted organizations; authorities vote to admit, remove or re-key them')

  withNodeOpts(org.command('ls').description('admitted organizations and the changes being voted on')).action(
    action(async (o: GlobalOpts) => {
      const v = await (await clientFor(o.node)).orgs()
      print(o.json === true, v, () =>
        [
          ...v.orgs.map((x) => `${String(x.id).padEnd(16)} ${String(x.role).padEnd(10)} ${String(x.signKey).slice(0, 16)}...  ${String(x.name)}`),
          ...(v.proposals.length === 0
            ? []
            : ['', 'being voted on:', ...v.proposals.map((p) => `  ${JSON.stringify(p.action)}  votes: ${p.voters.join(', ')}`)]),
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
}
