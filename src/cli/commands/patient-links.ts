import type { Command } from 'commander'
import type { PatientLinkView } from '../../api/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'

type LinkOpts = GlobalOpts & { issuer?: string }

/** How a link is named to the operator: its Patient ID, and its issuer when it has one. */
function named(l: { patientId: string; issuer: string }): string {
  return `Patient ID ${JSON.stringify(l.patientId)}${l.issuer === '' ? '' : ` (issuer ${JSON.stringify(l.issuer)})`}`
}

function row(l: PatientLinkView): string {
  return `${l.patientId.padEnd(24)} ${(l.issuer === '' ? '-' : l.issuer).padEnd(16)} ${l.keyId.slice(0, 16)}…  linked ${l.linkedAt}`
}

/**
 * `radchain patient link|unlink|ls`: the organization's side, on its own
 * node: which patient owns the studies registered here for a Patient ID
 * (README "Connecting a PACS and a viewer", "Patient links").
 */
export function registerPatientLinkCommands(patient: Command): void {
  withNodeOpts(
    patient
      .command('link')
      .description(
        'link a Patient ID of this organization to a patient key: that patient owns the studies of it registered from now on (study add without --patient, DICOMweb); kept encrypted on this node only',
      )
      .argument('<patientId>', 'Patient ID (0010,0020) as the instances carry it')
      .argument('<patientKey>', 'the patient public key (rcpatient1:...), or the .pub file `radchain patient keygen` wrote'),
  )
    .option('--issuer <issuer>', 'Issuer of Patient ID (0010,0021) the instances carry (default: none; a link matches only instances with the same issuer)')
    .option('--replace', 'the Patient ID is linked to another key already: link it to this one instead')
    .action(
      action(async (patientId: string, patientKey: string, o: LinkOpts & { replace?: boolean }) => {
        const { encodePatientPublicKey, readPatientPublicKey } = await import('../../crypto/index.js')
        const key = encodePatientPublicKey(await readPatientPublicKey(patientKey))
        const client = await clientFor(o.node)
        const r = await client.linkPatient({ patientId, issuer: o.issuer ?? '', patientKey: key, replace: o.replace === true })
        print(
          o.json === true,
          r,
          `${named(r.link)} ${r.replaced ? 'now' : 'is'} linked to patient ${r.link.keyId.slice(0, 16)}…${r.replaced ? ' (instead of the key before)' : ''}` +
            '\n  studies registered from now on with this Patient ID are owned by that patient; those registered before keep their owner',
        )
      }),
    )

  withNodeOpts(
    patient
      .command('unlink')
      .description('remove the patient link of a Patient ID (and issuer); registered studies keep their owner')
      .argument('<patientId>', 'Patient ID of the link'),
  )
    .option('--issuer <issuer>', 'Issuer of Patient ID of the link (default: none)')
    .action(
      action(async (patientId: string, o: LinkOpts) => {
        const client = await clientFor(o.node)
        await client.unlinkPatient(patientId, o.issuer ?? '')
        print(o.json === true, { patientId, issuer: o.issuer ?? '', unlinked: true }, `${named({ patientId, issuer: o.issuer ?? '' })} is no longer linked`)
      }),
    )

  withNodeOpts(patient.command('ls').description("this node's patient links: Patient ID, issuer, patient key (`--json`: the whole key), when linked")).action(
    action(async (o: GlobalOpts) => {
      const client = await clientFor(o.node)
      const links = await client.patientLinks()
      print(o.json === true, links, () =>
        links.length === 0
          ? 'no patient link'
          : [`${'PATIENT ID'.padEnd(24)} ${'ISSUER'.padEnd(16)} ${'PATIENT KEY'.padEnd(17)}  LINKED`, ...links.map(row)].join('\n'),
      )
    }),
  )
}
