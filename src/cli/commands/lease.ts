import type { Command } from 'commander'
import { RadError, isHex } from '../../util/index.js'
import type { ApiClient, AuditEventView, LeaseView } from '../../api/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'
import { CliError } from '../errors.js'
import type { LeaseCode } from '../../node/index.js'
import type { TxCode } from '../../chain/index.js'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration like `7d`, `12h`, `30m`, `90s` or `1500ms`, in milliseconds. */
export function parseDuration(v: string, what = 'duration'): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v.trim())
  if (m === null) throw new CliError('CLI_BAD_ARGUMENT', `${what} must look like 7d, 12h, 30m or 90s`)
  return Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1)
}

/** A lease id argument: 64 hex digits, lower-cased. */
export function leaseIdArg(v: string): string {
  if (!isHex(v, 32)) throw new RadError<LeaseCode>('LEASE_BAD_ID', 'a lease id is 64 hex digits')
  return v.toLowerCase()
}

/** Waits until a transaction is final (30 s); a rejection becomes an error with the ledger's code. */
export async function waitFinal(client: ApiClient, hash: string): Promise<{ status: string; height?: number; error?: { code: string; message: string } }> {
  const st = await client.tx(hash, 30_000)
  if (st.status === 'rejected') throw new RadError(st.error?.code ?? ('TX_REJECTED' satisfies TxCode), st.error?.message ?? 'refused by the ledger')
  return st
}

function describe(l: LeaseView): string {
  const until = l.expiry === null ? '' : ` until ${new Date(l.expiry).toISOString()}`
  return `${l.leaseId}  ${l.status.padEnd(9)} ${l.scope.padEnd(6)} study ${l.studyId} of ${l.custodian ?? '?'} for ${l.requester}${until}${l.purpose === '' ? '' : `  "${l.purpose}"`}${l.reason === null ? '' : ` (${l.reason})`}`
}

/** A holder's served summary in words: counts, objects and the window in chain time. */
function servedText(d: Record<string, unknown>): string {
  const objects = [d.envelope === true ? 'key envelope' : '', d.demographics === true ? 'demographics' : ''].filter((x) => x !== '')
  const at = (v: unknown): string => new Date(Number(v)).toISOString().slice(11, 19)
  return `served ${Number(d.chunks)} chunks (${Number(d.bytes)} bytes)${objects.length === 0 ? '' : ` + ${objects.join(', ')}`}, ${at(d.first)}-${at(d.last)}`
}

function auditLine(e: AuditEventView): string {
  const d = e.detail
  const what: Record<string, string> = {
    'study.register': 'registered',
    'study.erase': 'erasure signed',
    'consent.set': 'consent set by the patient',
    'lease.request': `lease requested (${String(d.scope)}, ${Math.round(Number(d.durationMs) / 3_600_000)} h${d.purpose === '' || d.purpose === undefined ? '' : `, "${String(d.purpose)}"`})`,
    'lease.approve': 'lease approved by the patient',
    'lease.grant': 'lease granted',
    'lease.deny': `lease denied${d.reason === '' || d.reason === undefined ? '' : ` ("${String(d.reason)}")`}`,
    'lease.revoke': 'lease revoked',
    'access.record': d.what === 'unwrap' ? 'key unwrapped under the lease' : 'study retrieved under the lease',
    'violation.report': 'VIOLATION: asked for a chunk under the ended lease',
  }
  const by = e.by.startsWith('patient:') ? 'the patient' : e.by
  const earlier = e.type === 'study.register' && typeof d.extends === 'object' && d.extends !== null ? (d.extends as { studyId?: unknown }).studyId : undefined
  const text =
    e.extendedBy !== undefined
      ? `extended by a new version, ${e.extendedBy}`
      : typeof earlier === 'string'
        ? `registered, a new version of ${earlier}`
        : e.type === 'access.served'
          ? servedText(d)
          : (what[e.type] ?? e.type)
  return `${String(e.height).padStart(6)}  ${new Date(e.time).toISOString()}  ${text.padEnd(40)} by ${by}${e.leaseId === null ? '' : `  lease ${e.leaseId.slice(0, 12)}…`}`
}

/** lease request|ls|grant|deny|revoke, and audit. */
export function registerLeaseCommands(program: Command): void {
  withNodeOpts(
    program
      .command('audit <studyId>')
      .description(
        'every event of a study on the ledger, in order: registration, consent, requests, grants, denials, retrievals, what holders served, revocations, violations, erasure',
      ),
  ).action(
    action(async (studyId: string, o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const events = await client.audit(studyId)
      print(o.json === true, events, () => `${' height'}  ${'chain time'.padEnd(24)}  event\n${events.map(auditLine).join('\n')}`)
    }),
  )

  const lease = program.command('lease').description('time-limited, scoped access to a study kept by another organization')

  withNodeOpts(lease.command('request <studyId>').description("ask the study's custodian for a lease (granted at once when the patient's consent covers it)"))
    .option('--scope <scope>', 'images (de-identified) or full (with demographics)', 'images')
    .option('--duration <d>', 'how long, e.g. 7d, 12h, 30m', '7d')
    .option('--purpose <text>', 'why (recorded on the ledger; no patient data)', '')
    .option('--deliver-to <AE>', 'once granted, the daemon fetches the study and sends it to this DICOM peer (dimse.peers) with C-STORE')
    .action(
      action(async (studyId: string, o: GlobalOpts & { scope: string; duration: string; purpose: string; deliverTo?: string }) => {
        if (o.scope !== 'images' && o.scope !== 'full') throw new RadError<LeaseCode>('LEASE_BAD_SCOPE', '--scope must be images or full')
        const durationMs = parseDuration(o.duration, '--duration')
        const client = await clientFor(o.node)
        const leaseId = await client.requestLease(studyId, {
          scope: o.scope,
          durationMs,
          purpose: o.purpose,
          ...(o.deliverTo === undefined ? {} : { deliverTo: o.deliverTo }),
        })
        const st = await waitFinal(client, leaseId)
        print(
          o.json === true,
          { leaseId, height: st.height ?? null, deliverTo: o.deliverTo ?? null },
          `lease ${leaseId} requested (final at height ${st.height ?? '?'}); see it with: radchain lease ls --outgoing` +
            (o.deliverTo === undefined
              ? ''
              : `\nonce granted, the study is sent to ${o.deliverTo} (the daemon's log says when; radchain watch shows the retrieval)`),
        )
      }),
    )

  withNodeOpts(lease.command('ls').description("leases: on this organization's studies (--incoming), its own (--outgoing), or all"))
    .option('--incoming', 'requests for studies this organization keeps')
    .option('--outgoing', 'leases this organization asked for')
    .action(
      action(async (o: GlobalOpts & { incoming?: boolean; outgoing?: boolean }) => {
        if (o.incoming === true && o.outgoing === true) throw new CliError('CLI_BAD_ARGUMENT', 'give --incoming or --outgoing, not both')
        const client = await clientFor(o.node)
        const list = await client.leases(o.incoming === true ? 'incoming' : o.outgoing === true ? 'outgoing' : undefined)
        print(o.json === true, list, () => (list.length === 0 ? 'no lease' : list.map(describe).join('\n')))
      }),
    )

  for (const [name, what] of [
    ['grant', 'grant a requested lease (custodian): the key is wrapped to the requester'],
    ['revoke', 'end a granted lease before its expiry (custodian)'],
  ] as const) {
    withNodeOpts(lease.command(`${name} <leaseId>`).description(what)).action(
      action(async (leaseId: string, o: GlobalOpts) => {
        const client = await clientFor(o.node)
        const hash = await client.decideLease(leaseIdArg(leaseId), name)
        const st = await waitFinal(client, hash)
        print(
          o.json === true,
          { leaseId: leaseId.toLowerCase(), tx: hash, height: st.height ?? null },
          `lease ${leaseId.toLowerCase()}: ${name === 'grant' ? 'granted' : 'revoked'} (final at height ${st.height ?? '?'})`,
        )
      }),
    )
  }
  withNodeOpts(lease.command('deny <leaseId>').description('refuse a requested lease (custodian)'))
    .option('--reason <text>', 'why (recorded on the ledger)', '')
    .action(
      action(async (leaseId: string, o: GlobalOpts & { reason: string }) => {
        const client = await clientFor(o.node)
        const hash = await client.decideLease(leaseIdArg(leaseId), 'deny', o.reason)
        const st = await waitFinal(client, hash)
        print(
          o.json === true,
          { leaseId: leaseId.toLowerCase(), tx: hash, height: st.height ?? null },
          `lease ${leaseId.toLowerCase()}: denied (final at height ${st.height ?? '?'})`,
        )
      }),
    )
}
