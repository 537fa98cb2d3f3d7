import type { Command } from 'commander'
import { fromHex, toHex } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { clientFor } from '../target.js'

/** One notification of `radchain watch`. */
interface Note {
  kind: 'study-added' | 'lease-requested' | 'lease-granted' | 'lease-denied' | 'lease-revoked' | 'access' | 'violation' | 'erased'
  height: number
  studyId: string
  leaseId: string | null
  by: string
  /** Why it concerns the watcher: 'organization' (custodian or requester) or 'patient' (owner). */
  for: string[]
  text: string
}

/** watch: live notifications for this organization and, with a patient key, that patient's studies. */
export function registerWatchCommand(program: Command): void {
  withNodeOpts(
    program
      .command('watch')
      .description(
        "live notifications for this node's organization and, with --key, for a patient's studies: study added, access requested, granted, used, revoked, violation, erasure",
      ),
  )
    .option('--key <file>', "a patient key file: its secret finds the patient's studies (each has its own owner key on the ledger)")
    .option('--passphrase-file <file>', 'file holding its passphrase (else RADCHAIN_PASSPHRASE)')
    .action(
      action(async (o: GlobalOpts & { key?: string; passphraseFile?: string }) => {
        const client = await clientFor(o.node)
        const me = (await client.status()).orgId
        const { PatientStudyKeys, loadKeystore, readPassphrase } = await import('../../crypto/index.js')
        const patient = o.key === undefined ? null : new PatientStudyKeys(await loadKeystore(o.key, await readPassphrase(o.passphraseFile)))
        const patientId = patient === null ? null : toHex(patient.publicKey)
        const ac = new AbortController()
        const stop = (): void => ac.abort()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
        const studies = new Map<string, { custodian: string; mine: boolean }>()
        const studyOf = async (id: string): Promise<{ custodian: string; mine: boolean } | undefined> => {
          const known = studies.get(id)
          if (known !== undefined) return known
          const s = await client.study(id).catch(() => undefined)
          if (s === undefined) return undefined
          // The patient's study: its owner key derives from the patient's key (one X25519 and one point operation).
          const mine =
            patient !== null && s.owner !== null && s.ownerEphemeral !== null && patient.owns(fromHex(s.studyId), fromHex(s.owner), fromHex(s.ownerEphemeral))
          const v = { custodian: s.custodian, mine }
          studies.set(id, v)
          return v
        }
        const emit = (n: Note): void => {
          if (o.json === true) process.stdout.write(JSON.stringify(n) + '\n')
          else process.stdout.write(`height ${n.height}  ${n.text}\n`)
        }
        try {
          // Said on stderr once the node streams to us (with --json too: stdout stays JSON lines only).
          const opened = (): void => {
            process.stderr.write(
              `watching for ${[me === null ? null : `organization ${me}`, patientId === null ? null : `patient ${patientId.slice(0, 16)}…`].filter((x) => x !== null).join(' and ')} (Ctrl-C stops)\n`,
            )
          }
          for await (const ev of client.events(ac.signal, ['block'], opened)) {
            if (ev.type !== 'block') continue
            const height = Number(ev.data.height)
            const txCount = Number(ev.data.txCount ?? 0)
            if (txCount === 0) continue
            const block = await client.block(String(height))
            const leases = new Map((await client.leases()).map((l) => [l.leaseId, l]))
            for (const tx of block.txs as { type: string; sender: string; payload: Record<string, unknown>; hash: string }[]) {
              const leaseId = typeof tx.payload.leaseId === 'string' ? tx.payload.leaseId : tx.type === 'lease.request' ? tx.hash : null
              const lease = leaseId === null ? undefined : leases.get(leaseId)
              const studyId = typeof tx.payload.studyId === 'string' ? tx.payload.studyId : lease === undefined ? null : lease.studyId
              if (studyId === null) continue
              const st = tx.type === 'study.erase' ? studies.get(studyId) : await studyOf(studyId)
              if (st === undefined) continue
              const why: string[] = []
              if (me !== null && (st.custodian === me || lease?.requester === me)) why.push('organization')
              if (st.mine) why.push('patient')
              if (why.length === 0) continue
              const requester = lease === undefined ? '?' : lease.requester
              const who = String(tx.payload.requester ?? requester)
              const map: Record<string, [Note['kind'], string] | undefined> = {
                'study.register': ['study-added', `study ${studyId} added by ${st.custodian}`],
                'lease.request': [
                  'lease-requested',
                  `${requester} asks for access to study ${studyId} (${String(tx.payload.scope)}, "${String(tx.payload.purpose ?? '')}")`,
                ],
                'lease.grant': ['lease-granted', `access to study ${studyId} granted to ${requester}`],
                'lease.deny': ['lease-denied', `access to study ${studyId} denied to ${requester}`],
                'lease.revoke': ['lease-revoked', `access of ${requester} to study ${studyId} revoked`],
                'access.record': ['access', `${requester} ${tx.payload.what === 'unwrap' ? 'opened the key of' : 'retrieved'} study ${studyId}`],
                'violation.report': ['violation', `VIOLATION: ${who} asked for study ${studyId} under an ended lease`],
                'study.erase': ['erased', `erasure of study ${studyId} signed`],
              }
              const m = map[tx.type]
              if (m === undefined) continue
              emit({ kind: m[0], height, studyId, leaseId, by: tx.sender, for: why, text: m[1] })
            }
          }
        } catch (err) {
          if (!ac.signal.aborted) throw err
        }
      }),
    )
}
