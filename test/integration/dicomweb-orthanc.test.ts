// Orthanc (a real PACS, its DICOMweb plugin as the client) against radchain's
// DICOMweb listener: Orthanc sends a study with STOW-RS and must count every
// instance stored, queries it with QIDO-RS, and retrieves it back with
// WADO-RS, before and after radchain registered it; the pixels come back
// identical (README "Connecting a PACS and a viewer").
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { sleep } from '../../src/util/index.js'
import { startOrthanc, type Orthanc } from '../helpers/orthanc.js'
import { runCli } from './helpers/cli.js'

const STUDY_DIR = new URL('../vectors/dicom/study-77654033/', import.meta.url)
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function ok(o: Orthanc, method: string, path: string, body?: object): Promise<Buffer> {
  const r = await o.request(method, path, body)
  if (r.status !== 200) throw new Error(`Orthanc ${method} ${path}: ${r.status} ${r.text().slice(0, 500)}`)
  return r.body
}
const getJson = async <T>(o: Orthanc, path: string): Promise<T> => JSON.parse((await ok(o, 'GET', path)).toString('utf8')) as T

/** SHA-256 of the pixel data of every instance of Orthanc's study, sorted. */
async function pixelDigests(o: Orthanc, study: string): Promise<string[]> {
  const out: string[] = []
  for (const inst of await getJson<{ ID: string }[]>(o, `/studies/${study}/instances`))
    out.push(sha256(await ok(o, 'GET', `/instances/${inst.ID}/content/7fe0-0010`)))
  return out.sort()
}

const dir = await mkdtemp(join(tmpdir(), 'radchain-orthanc-'))
const daemon = new DaemonProcess(dir)
t.teardown(async () => {
  await daemon.kill()
  // The daemon's log goes with its data dir; a failed run shows its last lines (no patient data is logged).
  if (!t.passing()) console.error((await readFile(join(dir, 'daemon.log'), 'utf8').catch(() => '')).split('\n').slice(-40).join('\n'))
  await rm(dir, { recursive: true, force: true })
})
await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: { dicomweb: { stableSeconds: 2 } },
})
const client = await daemon.start()
const base = (JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo).dicomweb as string
const token = (JSON.parse((await runCli(['dicomweb', 'token', 'create', '--name', 'orthanc', '--node', dir, '--json'])).stdout) as { token: string }).token
const pacs = await startOrthanc(t, { name: 'pacs', dicomWebServers: { radchain: { url: `${base}/`, headers: { Authorization: `Bearer ${token}` } } } })

// The folder holds two studies of one patient: the CT one (its four slices) is sent.
const files: Buffer[] = []
for (const f of (await readdir(new URL('CT2/', STUDY_DIR))).sort()) files.push(await readFile(new URL(`CT2/${f}`, STUDY_DIR)))
let orthancStudy = ''
for (const f of files) orthancStudy = (await pacs.upload(f)).ParentStudy
const studyUid = (await getJson<{ MainDicomTags: { StudyInstanceUID: string } }>(pacs, `/studies/${orthancStudy}`)).MainDicomTags.StudyInstanceUID
const original = await pixelDigests(pacs, orthancStudy)

t.test('Orthanc sends the study to radchain with STOW-RS and counts every instance stored', async (t) => {
  t.equal(original.length, files.length, 'the study is in Orthanc')
  // Orthanc refuses an answer that lists fewer instances than it sent: a 200 here means radchain listed them all.
  const r = await pacs.request('POST', '/dicom-web/servers/radchain/stow', { Resources: [orthancStudy] })
  t.equal(r.status, 200, `Orthanc's STOW job succeeded: ${r.text().slice(0, 300)}`)
})

t.test('Orthanc finds it with QIDO-RS', async (t) => {
  const raw = await pacs.request('POST', '/dicom-web/servers/radchain/get', { Uri: '/studies', Arguments: { StudyInstanceUID: studyUid } })
  t.equal(raw.status, 200)
  const studies = raw.json<Record<string, { Value?: unknown[] }>[]>()
  t.equal(studies.length, 1, 'one study')
  t.equal(studies[0]?.['00201208']?.Value?.[0], files.length, 'with every instance')
  const q = await pacs.request('POST', '/dicom-web/servers/radchain/qido', { Uri: '/studies' })
  t.equal(q.status, 200, "Orthanc's own QIDO client accepts the answer")
})

async function retrieveBack(t: Test, when: string): Promise<void> {
  await ok(pacs, 'DELETE', `/studies/${orthancStudy}`)
  t.same(await getJson<string[]>(pacs, '/studies'), [], `${when}: Orthanc no longer has it`)
  const r = await pacs.request('POST', '/dicom-web/servers/radchain/retrieve', { Resources: [{ Study: studyUid }] })
  t.equal(r.status, 200, `${when}: Orthanc's WADO-RS retrieve succeeded: ${r.text().slice(0, 300)}`)
  t.same(await pixelDigests(pacs, orthancStudy), original, `${when}: every instance back, pixels identical`)
}

t.test('Orthanc retrieves it back with WADO-RS while radchain still holds it in the spool', async (t) => {
  await retrieveBack(t, 'before registration')
})

t.test('and again once radchain registered it (decrypted from its chunks, identity restored)', async (t) => {
  const deadline = Date.now() + 60_000
  while ((await client.studies()).length === 0 && Date.now() < deadline) await sleep(250)
  t.equal((await client.studies()).length, 1, 'registered on the ledger')
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  while (Date.now() < deadline && (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))) await sleep(100)
  await retrieveBack(t, 'after registration')
})
