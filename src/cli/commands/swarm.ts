import type { Command } from 'commander'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { mb, print } from '../output.js'
import { clientFor } from '../target.js'

/** swarm status. */
export function registerSwarmCommands(program: Command): void {
  const swarm = program.command('swarm').description('replication of study chunks across organizations')
  withNodeOpts(swarm.command('status').description('transfers in progress, studies waiting for replication or repair, organizations considered down')).action(
    action(async (o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const st = await client.swarmStatus()
      print(o.json === true, st, () =>
        [
          st.transfers.length === 0
            ? 'no transfer in progress'
            : st.transfers.map((x) => `${x.kind.padEnd(9)} ${x.studyId}  ${x.done}/${x.total} chunks, ${mb(x.bytes)} MB from ${x.peers} peer(s)`).join('\n'),
          `waiting for replication or repair: ${st.queue.length === 0 ? 'none' : st.queue.join(', ')}`,
          `organizations considered down: ${st.down.length === 0 ? 'none' : st.down.join(', ')}`,
        ].join('\n'),
      )
    }),
  )
}
