import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type * as ChainModule from '../../chain/index.js'
import type { ConsentPolicy, TxType } from '../../chain/index.js'
import type { PatientStudyKeys, StudyOwnerSigner } from '../../crypto/index.js'
import type { ApiClient, StudyView } from '../../api/index.js'
import { RadError, exists, fromHex, isHex, toHex, writeFileAtomic } from '../../util/index.js'
import { action, withNodeOpts, type GlobalOpts } from '../program.js'
import { print } from '../output.js'
import { clientFor } from '../target.js'
import { leaseIdArg, parseDuration, waitFinal } from './lease.js'
import { registerPatientLinkCommands } from './patient-links.js'
import { CliError } from '../errors.js'
import type { LeaseCode, StudyCode } from '../../node/index.js'

type KeyOpts = GlobalOpts & { key: string; passphraseFile?: string }

/** A patient at a node: the API client, the chain id and the keys that find and sign for the patient's studies. */
interface PatientAt {
  readonly client: ApiClient
  readonly chainId: string
  readonly keys: PatientStudyKeys
}

/** One study of the patient, with the signer of its owner key. */
interface OwnStudy {
  readonly studyId: string
  readonly custodian: string
  /** Height of its registration. */
  readonly height: number
  readonly signer: StudyOwnerSigner
}

/** Loads the patient key file (with its passphrase) and reaches the node. */
async function openPatient(o: KeyOpts): Promise<PatientAt> {
  const { PatientStudyKeys, loadKeystore, readPassphrase } = await import('../../crypto/index.js')
  const keys = await loadKeystore(o.key, await readPassphrase(o.passphraseFile))
  const client = await clientFor(o.node)
  const status = await client.status()
  return { client, chainId: status.chainId, keys: new PatientStudyKeys(keys) }
}

/** A registration as the API shows it (a study view, or a `study.register` payload in a block). */
type Registration = Pick<StudyView, 'studyId' | 'custodian' | 'owner' | 'ownerEphemeral'>

/** The signer of a registration if it is the patient's (one X25519 and one point operation), else null. */
function ownStudy(keys: PatientStudyKeys, r: Registration, height: number): OwnStudy | null {
  if (r.owner === null || r.ownerEphemeral === null || !isHex(r.studyId, 16) || !isHex(r.owner, 32) || !isHex(r.ownerEphemeral, 32)) return null
  const signer = keys.signerFor(fromHex(r.studyId), fromHex(r.owner), fromHex(r.ownerEphemeral))
  return signer === null ? null : { studyId: r.studyId, custodian: r.custodian, height, signer }
}

/**
 * Every study of the patient on the ledger: the node lists all registrations
 * and each is tested here (nothing on the ledger names the patient).
 */
async function findOwnStudies(p: PatientAt): Promise<OwnStudy[]> {
  const out: OwnStudy[] = []
  for (const s of await p.client.studies()) {
    const own = ownStudy(p.keys, s, s.height)
    if (own !== null) out.push(own)
  }
  return out
}

/** The patient's signer for one study; PATIENT_NOT_OWNER when it is not theirs. */
async function studySigner(p: PatientAt, studyId: string): Promise<StudyOwnerSigner> {
  const s = await p.client.study(studyId)
  const own = ownStudy(p.keys, s, s.height)
  if (own === null) {
    const { PatientKeyError } = await import('../../crypto/index.js')
    throw new PatientKeyError('PATIENT_NOT_OWNER', `study ${studyId.toLowerCase()} is not one of this patient key's studies`)
  }
  return own.signer
}

/** The patient's signer for the study of a lease. */
async function leaseSigner(p: PatientAt, leaseId: string): Promise<StudyOwnerSigner> {
  const lease = (await p.client.leases()).find((l) => l.leaseId === leaseId)
  if (lease === undefined) throw new RadError<LeaseCode>('LEASE_UNKNOWN', `no lease ${leaseId} on the ledger`)
  return studySigner(p, lease.studyId)
}

/**
 * Signs a transaction with one study's owner key and submits it: each study
 * key is a sender of its own, with its own nonce. Returns the hash; the
 * caller waits until it is final.
 */
async function submitAs<P>(p: PatientAt, signer: StudyOwnerSigner, type: TxType<P>, payload: P): Promise<string> {
  const { signTx } = await chainModule()
  const nonce = await p.client.nonce(toHex(signer.publicKey))
  const tx = signTx(signer, { chainId: p.chainId, type: type.name, nonce, payload })
  return p.client.submitTx(tx.bytes)
}

/** Submits and waits until final. */
async function patientTx<P>(p: PatientAt, signer: StudyOwnerSigner, type: TxType<P>, payload: P): Promise<{ hash: string; height?: number }> {
  const hash = await submitAs(p, signer, type, payload)
  const st = await waitFinal(p.client, hash)
  return { hash, ...(st.height === undefined ? {} : { height: st.height }) }
}

/** The chain's transaction types, loaded when a patient command runs. */
function chainModule(): Promise<typeof ChainModule> {
  return import('../../chain/index.js')
}

/** A consent policy without its study: what `consent` (for all studies) keeps beside the key for studies added later. */
export type StandingPolicy = Omit<ConsentPolicy, 'studyId'>

/**
 * The standing consent file beside the patient key, `<key>.consent.json`
 * (mode 0600): the policy for all the patient's studies, and the height up
 * to which it was set on every study found. It stays off the ledger (a
 * policy for all studies there would link them).
 */
interface StandingFile {
  readonly version: 1
  readonly policy: StandingPolicy
  /** Every study of the patient registered at or below this height has the policy set. */
  readonly appliedThrough: number
}

function standingPath(key: string): string {
  return `${resolve(key)}.consent.json`
}

async function readStanding(key: string): Promise<StandingFile | null> {
  const path = standingPath(key)
  if (!(await exists(path))) return null
  const { PatientKeyError } = await import('../../crypto/index.js')
  const bad = (why: string, cause?: unknown): never => {
    throw new PatientKeyError('PATIENT_BAD_POLICY', `${path}: ${why}; run \`radchain patient consent\` again to rewrite it`, { cause })
  }
  let v: unknown
  try {
    v = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    return bad('not readable JSON', err)
  }
  const f = v as Partial<StandingFile> | null
  const pol = f?.policy as Partial<StandingPolicy> | undefined
  if (f === null || typeof f !== 'object' || f.version !== 1 || typeof f.appliedThrough !== 'number' || !Number.isSafeInteger(f.appliedThrough)) {
    return bad('not a standing consent file (version 1)')
  }
  if (
    pol === undefined ||
    typeof pol.anyOrg !== 'boolean' ||
    typeof pol.researchPool !== 'boolean' ||
    typeof pol.maxDurationMs !== 'number' ||
    !Array.isArray(pol.orgs) ||
    !pol.orgs.every((x) => typeof x === 'string') ||
    !Array.isArray(pol.purposes) ||
    !pol.purposes.every((x) => typeof x === 'string') ||
    !Array.isArray(pol.scopes) ||
    !pol.scopes.every((x) => x === 'images' || x === 'full')
  ) {
    return bad('its policy is malformed')
  }
  return f as StandingFile
}

async function writeStanding(key: string, f: StandingFile): Promise<void> {
  await writeFileAtomic(standingPath(key), JSON.stringify(f, null, 2) + '\n', 0o600)
}

/**
 * Sets `policy` on each study in `studies`, each signed by its own key;
 * all are submitted, then waited for. Returns the heights.
 */
async function consentEach(
  p: PatientAt,
  studies: readonly OwnStudy[],
  policy: StandingPolicy,
): Promise<{ studyId: string; tx: string; height: number | null }[]> {
  const { consentTx } = await chainModule()
  const sent: { studyId: string; tx: string }[] = []
  for (const s of studies) sent.push({ studyId: s.studyId, tx: await submitAs(p, s.signer, consentTx, { ...policy, studyId: fromHex(s.studyId) }) })
  const out: { studyId: string; tx: string; height: number | null }[] = []
  for (const s of sent) out.push({ ...s, height: (await waitFinal(p.client, s.tx)).height ?? null })
  return out
}

/**
 * Sets the standing policy (if the patient keeps one) on those of `studies`
 * registered above its `appliedThrough`, then moves that mark to `through`.
 * Returns the studies it was set on, or null without a standing policy.
 */
async function applyStanding(
  p: PatientAt,
  key: string,
  studies: readonly OwnStudy[],
  through: number,
): Promise<{ studyId: string; tx: string; height: number | null }[] | null> {
  const f = await readStanding(key)
  if (f === null) return null
  const done = await consentEach(
    p,
    studies.filter((s) => s.height > f.appliedThrough),
    f.policy,
  )
  if (through > f.appliedThrough) await writeStanding(key, { ...f, appliedThrough: through })
  return done
}

/** patient keygen, studies, consent, approve, revoke, erase, watch; and the organization's links (link, unlink, ls). */
export function registerPatientCommands(program: Command): void {
  const patient = program.command('patient').description('patient keys: a patient who owns studies; patient links: who owns the studies of a Patient ID')
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
          { keyFile: out, publicKeyFile: pubPath, keyId: id, publicKey: text },
          `patient key ${id}\n  secret  ${out} (encrypted; keep it safe, it cannot be recovered)\n  public  ${pubPath} (give this to the organization: radchain study add --patient ${pubPath} ...)`,
        )
      }),
    )

  const withKey = (cmd: Command): Command =>
    withNodeOpts(cmd)
      .requiredOption('--key <file>', 'the patient key file (from `radchain patient keygen`)')
      .option('--passphrase-file <file>', 'file holding its passphrase (else RADCHAIN_PASSPHRASE)')

  withKey(
    patient
      .command('consent')
      .description(
        'set which leases on your studies are granted without asking you: on one study (--study), or on all of them and, through `radchain patient watch`, on those added later',
      ),
  )
    .option('--study <studyId>', 'for this study only (default: all your studies, and those added later)')
    .option('--any-org', 'any admitted organization')
    .option('--org <id...>', 'these organizations')
    .option('--scope <scopes>', 'comma-separated: images, full', 'images')
    .option('--max-duration <d>', 'longest lease, e.g. 30d', '30d')
    .option('--purpose <text...>', 'only these purposes (default: any)')
    .option('--research', 'opt in to the research pool')
    .action(
      action(
        async (
          o: KeyOpts & {
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
          const policy: StandingPolicy = {
            anyOrg: o.anyOrg === true,
            orgs: o.org ?? [],
            purposes: o.purpose ?? [],
            scopes: [...new Set(scopes)] as ('images' | 'full')[],
            maxDurationMs: parseDuration(o.maxDuration, '--max-duration'),
            researchPool: o.research === true,
          }
          const p = await openPatient(o)
          if (o.study !== undefined) {
            const signer = await studySigner(p, o.study)
            const r = await patientTx(p, signer, (await chainModule()).consentTx, { ...policy, studyId: fromHex(o.study) })
            print(o.json === true, { tx: r.hash, height: r.height ?? null }, `consent recorded (final at height ${r.height ?? '?'})`)
            return
          }
          // All studies: the height first, so that a study registered during the scan is set again by watch rather than missed.
          const through = (await p.client.status()).height
          const done = await consentEach(p, await findOwnStudies(p), policy)
          await writeStanding(o.key, { version: 1, policy, appliedThrough: through })
          print(
            o.json === true,
            { studies: done, standing: standingPath(o.key) },
            `consent recorded on ${done.length} stud${done.length === 1 ? 'y' : 'ies'}, each under its own key` +
              `\n  kept in ${standingPath(o.key)} for studies added later: \`radchain patient watch\` sets it on them` +
              `\n  (until then, a request on a new study waits for your approval)`,
          )
        },
      ),
    )

  withKey(patient.command('approve <leaseId>').description('approve a lease request your consent does not cover')).action(
    action(async (leaseId: string, o: KeyOpts) => {
      const p = await openPatient(o)
      const r = await patientTx(p, await leaseSigner(p, leaseIdArg(leaseId)), (await chainModule()).leaseApproveTx, { leaseId: fromHex(leaseIdArg(leaseId)) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `lease ${leaseId.toLowerCase()} approved; the custodian's node grants it`)
    }),
  )

  withKey(patient.command('revoke <leaseId>').description('end a lease on one of your studies')).action(
    action(async (leaseId: string, o: KeyOpts) => {
      const p = await openPatient(o)
      const r = await patientTx(p, await leaseSigner(p, leaseIdArg(leaseId)), (await chainModule()).leaseRevokeTx, { leaseId: fromHex(leaseIdArg(leaseId)) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `lease ${leaseId.toLowerCase()} revoked`)
    }),
  )

  withKey(patient.command('erase <studyId>').description('your half of erasing a study (the custodian signs the other half)')).action(
    action(async (studyId: string, o: KeyOpts) => {
      if (!isHex(studyId, 16)) throw new RadError<StudyCode>('STUDY_BAD_ID', 'a study id is 32 hex digits')
      const p = await openPatient(o)
      const r = await patientTx(p, await studySigner(p, studyId), (await chainModule()).eraseStudyTx, { studyId: fromHex(studyId) })
      print(o.json === true, { tx: r.hash, height: r.height ?? null }, `erasure of study ${studyId.toLowerCase()} signed`)
    }),
  )

  withKey(
    patient.command('studies').description('your studies on the ledger: each registration is tested with your key (nothing on the ledger names you)'),
  ).action(
    action(async (o: KeyOpts) => {
      const p = await openPatient(o)
      const all = await p.client.studies()
      const t0 = performance.now()
      const own: OwnStudy[] = []
      for (const s of all) {
        const x = ownStudy(p.keys, s, s.height)
        if (x !== null) own.push(x)
      }
      const ms = performance.now() - t0
      const list = own.map((s) => ({ studyId: s.studyId, custodian: s.custodian, height: s.height, ownerKey: toHex(s.signer.publicKey) }))
      print(
        o.json === true,
        { studies: list, scanned: all.length, scanMs: Math.round(ms) },
        () =>
          `${list.length} of ${all.length} registered studies are yours (tested in ${Math.round(ms)} ms)` +
          list.map((s) => `\n  ${s.studyId}  at ${s.custodian}, height ${s.height}`).join(''),
      )
    }),
  )

  withKey(
    patient
      .command('watch')
      .description(
        'follow the ledger: find your studies as they are registered and set your standing consent (from `radchain patient consent` without --study) on each',
      ),
  ).action(
    action(async (o: KeyOpts) => {
      const p = await openPatient(o)
      const ac = new AbortController()
      const stop = (): void => ac.abort()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      const emit = (n: { height: number; studyId: string; custodian: string; consent: string | null }): void => {
        if (o.json === true) process.stdout.write(JSON.stringify(n) + '\n')
        else
          process.stdout.write(
            `height ${n.height}  study ${n.studyId} at ${n.custodian} is yours: ${n.consent === null ? 'no standing consent (a request waits for your approval)' : `standing consent set (tx ${n.consent})`}\n`,
          )
      }
      const report = (found: readonly OwnStudy[], done: { studyId: string; tx: string }[] | null): void => {
        for (const s of found)
          emit({ height: s.height, studyId: s.studyId, custodian: s.custodian, consent: done?.find((d) => d.studyId === s.studyId)?.tx ?? null })
      }
      // Catch up first: studies registered while no watch ran get the standing policy now.
      let last = (await p.client.status()).height
      const before = await findOwnStudies(p)
      const standing = await readStanding(o.key)
      const missed = standing === null ? [] : before.filter((s) => s.height > standing.appliedThrough)
      report(missed, await applyStanding(p, o.key, missed, last))
      try {
        const opened = (): void => {
          process.stderr.write(`watching for your studies (${before.length} so far; Ctrl-C stops)\n`)
        }
        for await (const ev of p.client.events(ac.signal, ['block'], opened)) {
          if (ev.type !== 'block') continue
          const height = Number(ev.data.height)
          // Every block since the last one seen (the stream may skip none, but a reconnect could).
          for (let h = last + 1; h <= height; h++) {
            const block = h === height && Number(ev.data.txCount ?? 0) === 0 ? null : await p.client.block(String(h))
            const found: OwnStudy[] = []
            for (const tx of (block?.txs ?? []) as { type: string; payload: Record<string, unknown> }[]) {
              if (tx.type !== 'study.register') continue
              const own = ownStudy(p.keys, tx.payload as unknown as Registration, h)
              if (own !== null) found.push(own)
            }
            if (found.length > 0) report(found, await applyStanding(p, o.key, found, h))
          }
          last = Math.max(last, height)
        }
      } catch (err) {
        if (!ac.signal.aborted) throw err
      }
    }),
  )

  registerPatientLinkCommands(patient)
}
