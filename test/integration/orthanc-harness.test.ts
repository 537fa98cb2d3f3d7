import t from 'tap'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { processAlive, startOrthanc, type Orthanc } from '../helpers/orthanc.js'

/**
 * The Orthanc harness alone, no radchain code: two private Orthancs, A and
 * B, with B as A's DICOMweb server "peer". A sends a study to B with STOW-RS,
 * queries B with QIDO-RS and retrieves it back with WADO-RS, all through
 * Orthanc's own DICOMweb client, all on 127.0.0.1.
 */

const run = promisify(execFile)
const CT = fileURLToPath(new URL('../vectors/dicom/study-77654033/CT2/', import.meta.url))
/** Three of the four images of one CT series (one study). */
const FILES = ['17106', '17136', '17166']

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function ok(o: Orthanc, method: string, path: string, body?: object): Promise<Buffer> {
  const r = await o.request(method, path, body)
  if (r.status !== 200) throw new Error(`Orthanc "${o.name}" ${method} ${path}: ${r.status} ${r.text().slice(0, 500)}`)
  return r.body
}

async function getJson<T>(o: Orthanc, path: string): Promise<T> {
  return JSON.parse((await ok(o, 'GET', path)).toString('utf8')) as T
}

/** Orthanc instance id -> SHA-256 of the stored file and of its PixelData element's value, for every instance of a study. */
async function studyFiles(o: Orthanc, study: string): Promise<Map<string, { file: string; pixels: string }>> {
  const out = new Map<string, { file: string; pixels: string }>()
  for (const inst of await getJson<{ ID: string }[]>(o, `/studies/${study}/instances`)) {
    const file = await ok(o, 'GET', `/instances/${inst.ID}/file`)
    const pixels = await ok(o, 'GET', `/instances/${inst.ID}/content/7fe0-0010`)
    if (pixels.length === 0) throw new Error(`instance ${inst.ID} has no pixel data`)
    out.set(inst.ID, { file: sha256(file), pixels: sha256(pixels) })
  }
  return out
}

t.test('two Orthancs: STOW-RS, QIDO-RS and WADO-RS through the DICOMweb plugin, on loopback only', async (t) => {
  const b = await startOrthanc(t, { name: 'harness-b', dicom: true })
  const a = await startOrthanc(t, { name: 'harness-a', dicomWebServers: { peer: { url: `${b.url}/dicom-web/` } } })
  t.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'A is addressed on 127.0.0.1')
  t.not(a.httpPort, b.httpPort, 'each Orthanc has its own HTTP port')
  t.ok(b.dicomPort > 0, 'B has a DICOM port')
  t.equal(a.dicomPort, 0, "A's DICOM server is off")

  for (const o of [a, b]) {
    const socks = await o.listening()
    t.ok(
      socks.every((s) => s.loopback),
      `every listening socket of ${o.name} is on loopback: ${socks.map((s) => `${s.proto} ${s.address}:${s.port}`).join(', ')}`,
    )
    t.same(
      socks
        .filter((s) => s.proto === 'tcp')
        .map((s) => `${s.address}:${s.port}`)
        .sort(),
      [o.httpPort, o.dicomPort]
        .filter((p) => p > 0)
        .map((p) => `127.0.0.1:${p}`)
        .sort(),
      `${o.name} listens on 127.0.0.1 on its HTTP${o.dicomPort > 0 ? ' and DICOM ports' : ' port'} and nothing else`,
    )
    t.equal(socks.filter((s) => s.proto !== 'tcp').length, 0, `${o.name} has no other socket (IPv6, UDP)`)
  }
  const system = await getJson<{ Name: string; DicomAet: string; PluginsEnabled: boolean }>(b, '/system')
  t.equal(system.DicomAet, b.aet, "B's AET")
  // "explorer.js" is Orthanc's entry for the plugins' Orthanc Explorer extensions, not a plugin.
  t.same(
    (await getJson<string[]>(a, '/plugins')).filter((p) => p !== 'explorer.js'),
    ['dicom-web'],
    'A runs the DICOMweb plugin and no other',
  )
  t.same(await getJson<string[]>(a, '/dicom-web/servers'), ['peer'], 'A knows B as "peer"')
  // B's DICOM server answers a C-ECHO (dcmtk's echoscu) on 127.0.0.1.
  await t.resolves(run('echoscu', ['-aet', 'HARNESS', '-aec', b.aet, '127.0.0.1', String(b.dicomPort)], { timeout: 20_000 }), 'C-ECHO to B on 127.0.0.1')

  // A: three instances of one study, stored byte for byte.
  const originals = await Promise.all(FILES.map((f) => readFile(CT + f)))
  const uploaded = []
  for (const file of originals) uploaded.push(await a.upload(file))
  const study = uploaded[0].ParentStudy
  t.ok(
    uploaded.every((u) => u.Status === 'Success' && u.ParentStudy === study),
    'three new instances in one study',
  )
  const studyUid = (await getJson<{ MainDicomTags: { StudyInstanceUID: string } }>(a, `/studies/${study}`)).MainDicomTags.StudyInstanceUID
  const before = await studyFiles(a, study)
  t.equal(before.size, 3, 'A has the 3 instances')
  t.same([...before.values()].map((v) => v.file).sort(), originals.map(sha256).sort(), "A's files are the uploaded ones")

  // STOW-RS: A -> B.
  t.same(await getJson<string[]>(b, '/studies'), [], 'B starts empty')
  const stow = JSON.parse((await ok(a, 'POST', '/dicom-web/servers/peer/stow', { Resources: [study] })).toString('utf8')) as Record<string, string>
  t.equal(stow.InstancesCount, '3', 'A sent 3 instances')
  t.same(await getJson<string[]>(b, '/studies'), [study], 'B has the study (same Orthanc id: same UIDs)')
  const onB = await studyFiles(b, study)
  t.same(onB, before, 'B has the same 3 instances, with the same files and pixel data')
  t.equal((await getJson<{ CountInstances: number }>(b, '/statistics')).CountInstances, 3, 'B has 3 instances in all')

  // QIDO-RS: A asks B.
  const qido = JSON.parse((await ok(a, 'POST', '/dicom-web/servers/peer/qido', { Uri: '/studies' })).toString('utf8')) as Record<string, { Value?: unknown }>[]
  t.equal(qido.length, 1, "B's QIDO lists one study")
  t.equal(qido[0]?.['0020000D']?.Value, studyUid, 'the study, by StudyInstanceUID')
  // The qido call keeps only string and PN values in its simplified answer; /get passes B's DICOM JSON through.
  const raw = JSON.parse((await ok(a, 'POST', '/dicom-web/servers/peer/get', { Uri: '/studies' })).toString('utf8')) as Record<string, { Value?: unknown }>[]
  t.same(
    raw.map((s) => [s['0020000D']?.Value, s['00201208']?.Value]),
    [[[studyUid], [3]]],
    "B's DICOM JSON, through A: the study, with 3 instances (NumberOfStudyRelatedInstances)",
  )

  // WADO-RS: A deletes its copy and retrieves it from B.
  await ok(a, 'DELETE', `/studies/${study}`)
  t.same(await getJson<string[]>(a, '/studies'), [], 'A has deleted the study')
  const retrieve = JSON.parse((await ok(a, 'POST', '/dicom-web/servers/peer/retrieve', { Resources: [{ Study: studyUid }] })).toString('utf8')) as Record<
    string,
    string
  >
  t.equal(retrieve.ReceivedInstancesCount, '3', 'A received 3 instances')
  t.same(await getJson<string[]>(a, '/studies'), [study], 'A has the study again')
  t.same(await studyFiles(a, study), before, "A's retrieved instances equal the originals: same files, same pixel data")

  // Stopping: no process, no temp dir left.
  for (const o of [a, b]) {
    await o.stop()
    t.notOk(processAlive(o.pid), `${o.name}'s process (pid ${o.pid}) is gone`)
    t.notOk(existsSync(o.dir), `${o.name}'s dir is removed`)
  }
  await a.stop() // idempotent
})
