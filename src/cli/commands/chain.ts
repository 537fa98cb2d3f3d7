import type { Command } from 'commander'
import { RadError } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print, table } from '../output.js'
import { clientFor } from '../target.js'
import { CliError } from '../errors.js'
import type { TxCode } from '../../chain/index.js'

function parseTimeout(v: string): number {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0 || n > 3600)
    throw new CliError('CLI_BAD_ARGUMENT', `--timeout must be seconds between 0 and 3600, got ${JSON.stringify(v)}`)
  return n
}

/** status, block, tx note, tx show. */
export function registerChainCommands(program: Command): void {
  withNodeOpts(program.command('status').description('node status: height, head, state root, peers, API')).action(
    action(async (o: GlobalOpts) => {
      const s = await (await clientFor(o.node)).status()
      print(o.json === true, s, () =>
        table([
          ['chain', s.chainId],
          ['organization', s.orgId === null ? '(not an admitted organization)' : `${s.orgId} (${s.role ?? ''})`],
          ['height', s.height],
          ['head', s.headHash],
          ['head time', new Date(s.headTime).toISOString()],
          ['state root', s.stateRoot],
          ['authorities', s.authorities],
          ['peers', s.peers],
          ['mempool', `${s.mempool.size} transactions, ${s.mempool.bytes} bytes`],
          ['api', s.api],
          ...(s.dicomweb === undefined ? [] : [['dicomweb', s.dicomweb] as [string, string]]),
          ...(s.dimse === undefined ? [] : [['dimse', s.dimse] as [string, string]]),
          ['version', s.version],
        ]),
      )
    }),
  )

  withNodeOpts(program.command('block <ref>').description('show a final block by height, hash, or "head"')).action(
    action(async (ref: string, o: GlobalOpts) => {
      const b = await (await clientFor(o.node)).block(ref)
      print(o.json === true, b, () => {
        const txs = (b.txs as { hash: string; type: string }[] | undefined) ?? []
        const cert = b.certificate as { signers?: string[]; round?: number } | null
        return (
          table([
            ['height', b.height],
            ['hash', b.hash],
            ['time', b.timeIso],
            ['parent', b.parentHash],
            ['proposer', b.proposer],
            ['state root', b.stateRoot],
            ['tx root', b.txRoot],
            ['transactions', b.txCount],
            ['certificate', cert === null ? '(genesis)' : `${cert.signers?.length ?? 0} signature(s), round ${cert.round ?? 0}`],
          ]) +
          (txs.length > 0
            ? '\n' +
              txs
                .slice(0, 20)
                .map((t) => `  ${t.hash}  ${t.type}`)
                .join('\n') +
              (txs.length > 20 ? `\n  ... ${txs.length - 20} more` : '')
            : '')
        )
      })
    }),
  )

  const tx = program.command('tx').description('transactions')
  withNodeOpts(tx.command('note <text>').description("record a note signed by this node's organization; waits until final"))
    .option('--no-wait', 'return once the node accepted it, without waiting for finality')
    .option('--timeout <seconds>', 'how long to wait for finality', '30')
    .action(
      action(async (text: string, o: GlobalOpts & { wait: boolean; timeout: string }) => {
        const timeoutMs = parseTimeout(o.timeout) * 1000
        const client = await clientFor(o.node)
        const hash = await client.submitNote(text)
        if (!o.wait) {
          print(o.json === true, { hash, status: 'pending' }, `${hash} pending`)
          return
        }
        const s = await client.tx(hash, timeoutMs)
        if (s.status === 'final') {
          print(o.json === true, s, `${hash} final at height ${s.height ?? '?'}`)
          return
        }
        if (s.status === 'rejected')
          throw new RadError(s.error?.code ?? ('TX_REJECTED' satisfies TxCode), `transaction ${hash} was rejected: ${s.error?.message ?? ''}`)
        throw new CliError('CLI_TIMEOUT', `transaction ${hash} is still ${s.status} after ${timeoutMs / 1000} s`)
      }),
    )

  withNodeOpts(tx.command('show <hash>').description('show a transaction and where it stands (pending, final, rejected, unknown)')).action(
    action(async (hash: string, o: GlobalOpts) => {
      const s = await (await clientFor(o.node)).tx(hash)
      print(o.json === true, s, () =>
        table([
          ['hash', s.hash],
          ['status', s.status],
          ...(s.height === undefined ? [] : [['height', s.height] as [string, unknown]]),
          ...(s.tx === undefined
            ? []
            : ([
                ['type', s.tx.type],
                ['sender', s.tx.sender],
                ['nonce', s.tx.nonce],
                ['payload', JSON.stringify(s.tx.payload)],
              ] as [string, unknown][])),
          ...(s.error === undefined ? [] : [['error', `${s.error.code}: ${s.error.message}`] as [string, unknown]]),
        ]),
      )
      if (s.status === 'unknown') process.exitCode = 1
    }),
  )
}
