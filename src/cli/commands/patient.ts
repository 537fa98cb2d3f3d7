import type { Command } from 'commander'
import { resolve } from 'node:path'
import type * as ChainModule from '../../chain/index.js'
import type { ConsentPolicy, TxType } from '../../chain/index.js'
import { RadError, exists, fromHex, isHex, toHex, writeFileAtomic } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'
import { leaseIdArg, parseDuration, waitFinal } from './lease.js'
import { CliError } from '../errors.js'
import type { StudyCode } from '../../node/index.js'

/** Signs a transaction with a patient's key file and submits it through the node; waits until it is final. */
async function patientTx<P>(o: GlobalOpts & { key: string; passphraseFile?: string }, type: TxType<P>, payload: P): Promise<{ hash: string; height?: number }> {
  const [{ signTx }, { loadKeystore, readPassphrase }] = await Promise.all([import('../../chain/index.js'), import('../../crypto/index.js')])
  const keys = await loadKeystore(o.key, await readPassphrase(o.passphraseFile))
  const client = await clientFor(o.node)
  const status = await client.status()
  const nonce = await client.nonce(toHex(keys.signer.publicKey))
  const tx = signTx(keys.signer, { chainId: status.chainId, type: type.name, nonce, payload })
  const hash = await client.submitTx(tx.bytes)
  const st = await waitFinal(client, hash)
  return { hash, ...(st.height === undefined ? {} : { height: st.height }) }
}

/** The chain's transaction types, loaded when a patient command runs. */
function chainModule(): Promise<typeof ChainModule> {
  return import('../../chain/index.js')
}

/** patient keygen, consent, approve, revoke, erase. */
export function registerPatientCommands(program: Command): void {
  const patient = program.command('patient').description('patient keys: a patient who owns studies')
  patient
    .command('keygen')
    .description('create a patient key pair: <out> (encrypted secret, mode 0600) and <out>.pub (public key, to give to `study add --patient`)')
    .requiredOption('--out <file>', 'key file to create')
    .option('--passphrase-file <file>', 'file holding the passphrase (else RADCHAIN_PASSPHRASE)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (o: { out: string; passphraseFile?: string; json?: boolean }) => {
        const out = resolve(o.out)
        const pubPath = `${out}.pub`
        const { KeystoreError, SCRYPT_PARAMS, encodePatientPublicKey, generatePatientKeys, patientKeyId, readPassphrase, saveKeystore } =
          await import('../../crypto/index.js')
        for (const p of [out, pubPath]) if (await exists(p)) throw new KeystoreError('KEYSTORE_EXISTS', `${p} already exists: nothing was overwritten`)
        const passphrase = await readPassphrase(o.passphraseFile)
        const { secret, publicKey } = generatePatientKeys()
        const text = encodePatientPublicKey(publicKey)
        try {
          await saveKeystore(out, secret, passphrase, SCRYPT_PARAMS)
        } finally {
          secret.fill(0)
        }
        await writeFileAtomic(pubPath, text + '\n', 0o644)
        const id = patientKeyId(publicKey)
        print(
          o.json === true,
          { keyFile: out, publicKeyFile: pubPath, owner: id, publicKey: text },
          `patient key ${id}\n  secret  ${out} (encrypted; keep it safe, it cannot be recovered)\n  public  ${pubPath} (give this to the organization: radchain study add --patient ${pubPath} ...)`,
        )
      }),
    )

  const withKey = (cmd: Command): Command =>
    withNodeOpts(cmd)
      .requiredOption('--key <file>', 'the patient key file (from `radchain patient keygen`)')
      .option('--passphrase-file <file>', 'file holding its passphrase (else RADCHAIN_PASSPHRASE)')

  withKey(patient.command('consent').description('set which leases on your studies are granted without asking you'))
    .option('--study <studyId>', 'for this study only (default: all your studies)')
    .option('--any-org', 'any admitted organization')
    .option('--org <id...>', 'these organizations')
    .option('--scope <scopes>', 'comma-separated: images, full', 'images')
    .option('--max-duration <d>', 'longest lease, e.g. 30d', '30d')
    .option('--purpose <text...>', 'only these purposes (default: any)')
    .option('--research', 'opt in to the research pool')
    .action(
      action(
        async (
          o: GlobalOpts & {
            key: string
            passphraseFile?: string
            study?: string
            anyOrg?: boolean
            org?: string[]
            scope: string
            maxDuration: string
            purpose?: string[]
            research?: boolean
          },
        ) => {
          if (o.study !== undefined && !isHex(o.study, 16)) throw new RadError<StudyCode>('STUDY_BAD_ID', 'a study id is 32 hex digits')
          if (o.anyOrg !== true && (o.org ?? []).length === 0) throw new CliError('CLI_BAD_ARGUMENT', 'give --any-org or --org <id...>')
          const scopes = o.scope.split(',').map((x) => x.trim())
          if (scopes.length === 0 || scopes.some((x) => x !== 'images' && x !== 'full'))
            throw new CliError('CLI_BAD_ARGUMENT', '--scope takes images, full or images,full')
          const policy: ConsentPolicy = {
            studyId: o.study === undefined ? null : fromHex(o.study),
            anyOrg: o.anyOrg === true,
            orgs: o.org ?? [],
            purposes: o.purpose ?? [],
            scopes: [...new Set(scopes)] as ('images' | 'full')[],
            maxDurationMs: parseDuration(o.maxDuration, '--max-duration'),
            researchPool: o.research === true,
          }
          const r = await patientTx(o, (await chainModule()).consentTx, policy)
          print(o.json === true, { tx: r.hash, height: r.height ?? null }, `consent recorded (final at height ${r.height ?? '?'})`)
        },
      ),
    )

  withKey(patient.command('approve <leaseId>').description('approve a lease request your consent does not cover')).action(
    action(async (leaseId: string, o: GlobalOpts & { key: string; passphraseFile?: string }) => {
      const r = await patientTx(o, (await chainModule()).leaseApproveTx, { leaseId: fromHex(leaseIdArg(leaseId)) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `lease ${leaseId.toLowerCase()} approved; the custodian's node grants it`)
    }),
  )

  withKey(patient.command('revoke <leaseId>').description('end a lease on one of your studies')).action(
    action(async (leaseId: string, o: GlobalOpts & { key: string; passphraseFile?: string }) => {
      const r = await patientTx(o, (await chainModule()).leaseRevokeTx, { leaseId: fromHex(leaseIdArg(leaseId)) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `lease ${leaseId.toLowerCase()} revoked`)
    }),
  )

  withKey(patient.command('erase <studyId>').description('your half of erasing a study (the custodian signs the other half)')).action(
    action(async (studyId: string, o: GlobalOpts & { key: string; passphraseFile?: string }) => {
      if (!isHex(studyId, 16)) throw new RadError<StudyCode>('STUDY_BAD_ID', 'a study id is 32 hex digits')
      const r = await patientTx(o, (await chainModule()).eraseStudyTx, { studyId: fromHex(studyId) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `erasure of study ${studyId.toLowerCase()} signed`)
    }),
  )
}
