// Patient links on a real daemon (README "Connecting a PACS and a viewer",
// "Patient links"): the CLI links a Patient ID to a patient key; a study of
// that ID received over STOW-RS, or added with `study add` without
// --patient, is owned by that patient, as the patient's own tool finds; a
// study of another ID, of the same ID under another issuer, or whose
// instances disagree, has no owner; the links survive a restart; and the
// daemon's log never names the Patient IDs, the issuer or the key.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ApiClient, DaemonInfo, PatientLinkResult, PatientLinkView } from '../../src/api/index.js'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { TAG, parseDicom, writeDicom } from '../../src/study/index.js'
import { sleep } from '../../src/util/index.js'
import { assertOneLineError, jsonOf, runCli } from './helpers/cli.js'

const LINKED = 'PL-LINKED-4711'
const ISSUER = 'ST-PL^HOSPITAL'
const UNLINKED = 'PL-UNLINKED-0815'
const OTHER = 'PL-OTHER-9001'
const OTHER_ISSUER = 'OTHER-PL^CLINIC'
const CT_SMALL = new URL('../vectors/dicom/CT_small.dcm', import.meta.url)
const ENV = { RADCHAIN_PASSPHRASE: 'patient passphrase' }

const dir = await mkdtemp(join(tmpdir(), 'radchain-patient-links-'))
const node = join(dir, 'node')
const daemon = new DaemonProcess(node)
t.teardown(async () => {
  await daemon.kill()
  await rm(dir, { recursive: true, force: true })
})
await initDataDir({
  dir: node,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  // Debug: every request line is in the log too, and must not name a patient either.
  config: { logLevel: 'debug', dicomweb: { stableSeconds: 1 } },
})
let client: ApiClient = await daemon.start()
const base = (JSON.parse(await readFile(join(node, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo).dicomweb as string
const cli = (args: string[]): ReturnType<typeof runCli> => runCli([...args, '--node', node], { env: ENV, timeoutMs: 60_000 })
const token = jsonOf<{ token: string }>(t, await cli(['dicomweb', 'token', 'create', '--name', 'pacs1', '--scope', 'readwrite', '--json'])).token

const keygen = async (name: string): Promise<{ file: string; text: string }> => {
  const file = join(dir, name)
  const r = await runCli(['patient', 'keygen', '--out', file], { env: ENV })
  if (r.code !== 0) throw new Error(r.stderr)
  return { file, text: (await readFile(`${file}.pub`, 'utf8')).trim() }
}
const patient = await keygen('patient.key')
const stranger = await keygen('stranger.key')

/** CT_small as an instance of study `study` with a fresh SOP Instance UID, carrying `patientId` and `issuer` (none when undefined). */
async function instance(study: string, patientId: string, issuer?: string): Promise<Buffer> {
  const inst = parseDicom(await readFile(CT_SMALL))
  const ds = inst.dataset
  const sop = `${study}.1.${BigInt('0x' + randomBytes(6).toString('hex'))}`
  ds[TAG.StudyInstanceUID] = { vr: 'UI', Value: [study] }
  ds[TAG.SeriesInstanceUID] = { vr: 'UI', Value: [`${study}.1`] }
  ds[TAG.SOPInstanceUID] = { vr: 'UI', Value: [sop] }
  inst.meta[TAG.MediaStorageSOPInstanceUID] = { vr: 'UI', Value: [sop] }
  ds[TAG.PatientID] = { vr: 'LO', Value: [patientId] }
  if (issuer === undefined) delete ds[TAG.IssuerOfPatientID]
  else ds[TAG.IssuerOfPatientID] = { vr: 'LO', Value: [issuer] }
  return Buffer.from(writeDicom(inst))
}

/** STOW-RS of `parts` in one request; resolves with the HTTP status. */
async function stow(parts: Buffer[]): Promise<number> {
  const boundary = `b-${randomBytes(8).toString('hex')}`
  const chunks: Buffer[] = []
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), p, Buffer.from('\r\n'))
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  const res = await fetch(`${base}/studies`, {
    method: 'POST',
    body: Buffer.concat(chunks),
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      accept: 'application/dicom+json',
    },
  })
  await res.arrayBuffer()
  return res.status
}

/** The studies registered after `before` (their ids), once there are `n` of them (60 s at most). */
async function registered(before: ReadonlySet<string>, n: number): Promise<string[]> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const added = (await client.studies()).map((s) => s.studyId).filter((id) => !before.has(id))
    if (added.length >= n || Date.now() > deadline) return added
    await sleep(250)
  }
}
const known = async (): Promise<Set<string>> => new Set((await client.studies()).map((s) => s.studyId))

/** The studies the patient's own tool finds with the key (a registration names no patient: each is tested with the key). */
async function patientStudies(key: string): Promise<string[]> {
  const r = await cli(['patient', 'studies', '--key', key, '--json'])
  return jsonOf<{ studies: { studyId: string }[] }>(t, r)
    .studies.map((s) => s.studyId)
    .sort()
}

const ownedByPatient: string[] = []

t.test('link, refusals, replace and unlink through the CLI', async (t) => {
  const bad = await cli(['patient', 'link', 'A\\B', patient.text])
  assertOneLineError(t, bad, /Patient ID holds a backslash/, 'a Patient ID with a backslash', 'PATIENT_LINK_BAD_ID')
  const badIssuer = await cli(['patient', 'link', LINKED, patient.text, '--issuer', 'x'.repeat(65)])
  assertOneLineError(t, badIssuer, /Issuer of Patient ID is longer than 64/, 'a long issuer', 'PATIENT_LINK_BAD_ISSUER')
  assertOneLineError(t, await cli(['patient', 'link', LINKED, 'rcpatient1:AAAA']), /patient public key/, 'not a key', 'PATIENT_BAD_KEY')

  const first = await cli(['patient', 'link', LINKED, `${patient.file}.pub`, '--issuer', ISSUER, '--json'])
  t.equal(first.code, 0, first.stderr)
  const made = jsonOf<PatientLinkResult>(t, first)
  t.match(made, { link: { patientId: LINKED, issuer: ISSUER, patientKey: patient.text }, replaced: false }, 'linked, the key read from its .pub file')
  const other = await cli(['patient', 'link', LINKED, stranger.text, '--issuer', ISSUER])
  assertOneLineError(t, other, /linked to another patient key already: give --replace/, 'another key', 'PATIENT_LINK_EXISTS')
  const replaced = await cli(['patient', 'link', LINKED, stranger.text, '--issuer', ISSUER, '--replace', '--json'])
  t.equal(jsonOf<PatientLinkResult>(t, replaced).replaced, true, '--replace links it to the other key')
  const back = await cli(['patient', 'link', LINKED, patient.text, '--issuer', ISSUER, '--replace'])
  t.equal(back.code, 0, back.stderr)
  t.match(back.stdout, /now linked to patient [0-9a-f]{16}…/)

  const tmp = await cli(['patient', 'link', UNLINKED, stranger.text])
  t.equal(tmp.code, 0, tmp.stderr)
  t.equal((await cli(['patient', 'unlink', UNLINKED])).code, 0)
  assertOneLineError(t, await cli(['patient', 'unlink', UNLINKED]), /no patient link/, 'unlink twice', 'PATIENT_LINK_UNKNOWN')
  assertOneLineError(t, await cli(['patient', 'unlink', LINKED]), /no patient link/, 'unlink without its issuer', 'PATIENT_LINK_UNKNOWN')

  const ls = jsonOf<PatientLinkView[]>(t, await cli(['patient', 'ls', '--json']))
  t.same(
    ls.map((l) => [l.patientId, l.issuer, l.patientKey]),
    [[LINKED, ISSUER, patient.text]],
    'ls: the one link, with the whole key',
  )
  const text = await cli(['patient', 'ls'])
  t.match(text.stdout, new RegExp(`^${LINKED}\\s+${ISSUER.replace('^', '\\^')}\\s+[0-9a-f]{16}…`, 'm'), 'ls for people: one line per link')
})

t.test('a study of the linked Patient ID received over STOW-RS is owned by the linked patient', async (t) => {
  const before = await known()
  t.equal(await stow([await instance('2.25.470001', LINKED, ISSUER), await instance('2.25.470001', ` ${LINKED}`, ISSUER)]), 200)
  const added = await registered(before, 1)
  t.equal(added.length, 1, 'registered once stable')
  const study = await client.study(added[0] as string)
  t.not(study.owner, null, 'it has an owner')
  ownedByPatient.push(study.studyId)
  t.same(await patientStudies(patient.file), ownedByPatient, "the patient's tool finds it with the patient's key")
  t.same(await patientStudies(stranger.file), [], 'nobody else does')
})

t.test('another Patient ID, the linked one under another issuer, and instances that disagree: no owner', async (t) => {
  const before = await known()
  const parts = [
    await instance('2.25.470002', UNLINKED, ISSUER),
    await instance('2.25.470003', LINKED, OTHER_ISSUER),
    await instance('2.25.470004', LINKED),
    await instance('2.25.470005', LINKED, ISSUER),
    await instance('2.25.470005', OTHER, ISSUER),
  ]
  t.equal(await stow(parts), 200)
  const added = await registered(before, 4)
  t.equal(added.length, 4, 'four studies registered')
  for (const id of added) t.equal((await client.study(id)).owner, null, `study ${id}: no owner`)
  t.same(await patientStudies(patient.file), ownedByPatient, "the patient's tool finds none of them")
  const log = await readFile(join(node, 'daemon.log'), 'utf8')
  t.equal(log.split('\n').filter((l) => l.includes('name different Patient IDs or issuers')).length, 1, 'one warning, for the study whose instances disagree')
})

t.test('study add without --patient uses the link; with --patient, the key given wins', async (t) => {
  const file = join(dir, 'linked.dcm')
  await writeFile(file, await instance('2.25.470006', LINKED, ISSUER))
  const r = await cli(['study', 'add', file, '--json'])
  t.equal(r.code, 0, r.stderr)
  const [added] = jsonOf<{ studyId: string; owner: string | null }[]>(t, r)
  t.not(added?.owner, null, 'owned')
  ownedByPatient.push(added?.studyId as string)
  ownedByPatient.sort()
  const given = join(dir, 'given.dcm')
  await writeFile(given, await instance('2.25.470007', LINKED, ISSUER))
  const g = await cli(['study', 'add', given, '--patient', stranger.text, '--json'])
  t.equal(g.code, 0, g.stderr)
  const [byStranger] = jsonOf<{ studyId: string }[]>(t, g)
  t.same(await patientStudies(patient.file), ownedByPatient, 'the linked patient owns the one added without --patient')
  t.same(await patientStudies(stranger.file), [byStranger?.studyId], 'the patient given owns the other')
})

t.test('the links survive a restart; once unlinked, a new study of the ID has no owner', async (t) => {
  t.equal(await daemon.stop(), 0)
  client = await daemon.start()
  const ls = jsonOf<PatientLinkView[]>(t, await cli(['patient', 'ls', '--json']))
  t.same(
    ls.map((l) => [l.patientId, l.issuer, l.patientKey]),
    [[LINKED, ISSUER, patient.text]],
    'read back at start',
  )
  t.equal((await cli(['patient', 'unlink', LINKED, '--issuer', ISSUER])).code, 0)
  t.same(jsonOf<PatientLinkView[]>(t, await cli(['patient', 'ls', '--json'])), [])
  const file = join(dir, 'after.dcm')
  await writeFile(file, await instance('2.25.470008', LINKED, ISSUER))
  const r = await cli(['study', 'add', file, '--json'])
  t.equal(r.code, 0, r.stderr)
  t.equal(jsonOf<{ owner: string | null }[]>(t, r)[0]?.owner, null, 'no owner')
  t.same(await patientStudies(patient.file), ownedByPatient, 'the studies registered before keep theirs')
})

t.test("the daemon's log names no Patient ID, issuer or patient key", async (t) => {
  const log = await readFile(join(node, 'daemon.log'), 'utf8')
  t.ok(
    log.split('\n').some((l) => l.includes('"api request"') && l.includes('/v1/patient-links')),
    'the link requests are in it (debug)',
  )
  t.ok(
    log.split('\n').some((l) => l.includes('"study registered"') && l.includes('"owner":"linked"')),
    'and the registrations, saying an owner came from a link',
  )
  for (const [what, v] of [
    ['the linked Patient ID', LINKED],
    ['the unlinked Patient ID', UNLINKED],
    ['the other Patient ID', OTHER],
    ['the issuer', ISSUER],
    ['the other issuer', OTHER_ISSUER],
    ["the patient's key", patient.text.slice(11, 51)],
    ["the other patient's key", stranger.text.slice(11, 51)],
  ] as const)
    t.notOk(log.includes(v), `not ${what}`)
})
