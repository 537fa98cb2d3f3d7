// DICOMweb (PS3.18) on a real daemon: tokens, STOW-RS into the spool and on
// to a registered study, QIDO-RS, WADO-RS and metadata, bad input, and a
// kill -9 between a STOW answer and the registration (README "Connecting a
// PACS and a viewer"; docs/ARCHITECTURE.md "DICOMweb").
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import { ChainStore } from '../../src/storage/index.js'
import type { ApiClient, DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { TAG, firstString, generateCtStudy, instanceDigestOfBytes, parseDicom, writeDicom } from '../../src/study/index.js'
import { sleep } from '../../src/util/index.js'
import { runCli } from './helpers/cli.js'
import { splitMultipart } from '../helpers/multipart.js'

const SCRYPT = { N: 1024, r: 8, p: 1 }
const STUDY_DIR = new URL('../vectors/dicom/study-77654033/', import.meta.url)
const STABLE_SECONDS = 2

async function studyFiles(): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (const series of (await readdir(STUDY_DIR)).sort()) {
    for (const f of (await readdir(new URL(series + '/', STUDY_DIR))).sort()) out.push(await readFile(new URL(`${series}/${f}`, STUDY_DIR)))
  }
  return out
}

/** A multipart/related body framed by hand (not by radchain's writer): quoted boundary, no per-part Content-Length. */
function stowBody(parts: { type: string; body: Uint8Array }[]): { body: Buffer; contentType: string } {
  const boundary = `b-${randomBytes(12).toString('hex')}`
  const chunks: Buffer[] = [Buffer.from('preamble to ignore\r\n')]
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${p.type}\r\n\r\n`), Buffer.from(p.body), Buffer.from('\r\n'))
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary="${boundary}"` }
}

const dir = await mkdtemp(join(tmpdir(), 'radchain-dicomweb-'))
const daemon = new DaemonProcess(dir)
t.teardown(async () => {
  await daemon.kill()
  await rm(dir, { recursive: true, force: true })
})
await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: SCRYPT,
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: { dicomweb: { stableSeconds: STABLE_SECONDS } },
})
let client: ApiClient = await daemon.start()
const info = async (): Promise<DaemonInfo> => JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
let base = (await info()).dicomweb as string
const token = async (name: string, scope: string): Promise<string> => {
  const r = await runCli(['dicomweb', 'token', 'create', '--name', name, '--scope', scope, '--node', dir, '--json'])
  return (JSON.parse(r.stdout) as { token: string }).token
}
const rw = await token('pacs1', 'readwrite')
const ro = await token('viewer1', 'read')
const files = await studyFiles()
const uids = files.map((f) => {
  const ds = parseDicom(f).dataset
  return { study: firstString(ds, TAG.StudyInstanceUID)!, series: firstString(ds, TAG.SeriesInstanceUID)!, sop: firstString(ds, TAG.SOPInstanceUID)! }
})
// The folder holds two studies of one patient (CR and CT): the first file's is the one examined below.
const studyUid = uids[0]!.study
const studyUids = [...new Set(uids.map((u) => u.study))]
const mine = uids.filter((u) => u.study === studyUid)
const mineFiles = files.filter((_, i) => uids[i]!.study === studyUid)
const auth = (tok: string): Record<string, string> => ({ authorization: `Bearer ${tok}` })
const stow = (tok: string, parts: { type: string; body: Uint8Array }[], path = '/studies'): Promise<Response> => {
  const b = stowBody(parts)
  return fetch(base + path, { method: 'POST', body: b.body, headers: { ...auth(tok), 'content-type': b.contentType, accept: 'application/dicom+json' } })
}
type Json = Record<string, { vr: string; Value?: unknown[] }>

t.test('the daemon publishes its DICOMweb URL, on loopback', async (t) => {
  t.match(base, /^http:\/\/127\.0\.0\.1:\d+\/dicomweb$/)
})

t.test('no token, an unknown one, a revoked one: 401 and nothing else; a read token cannot store', async (t) => {
  for (const h of [{}, auth('rcdw_nope'), { authorization: 'Basic abc' }] as Record<string, string>[]) {
    const res = await fetch(base + '/studies', { headers: h })
    t.equal(res.status, 401, `QIDO with ${JSON.stringify(Object.keys(h))}`)
  }
  const temp = await token('temp', 'read')
  t.equal((await fetch(base + '/studies', { headers: auth(temp) })).status, 200, 'a fresh token works at once')
  await runCli(['dicomweb', 'token', 'revoke', 'temp', '--node', dir])
  t.equal((await fetch(base + '/studies', { headers: auth(temp) })).status, 401, 'revoked: refused from the next request on')
  const res = await stow(ro, [{ type: 'application/dicom', body: files[0]! }])
  t.equal(res.status, 403, 'a read token cannot STOW')
  const ls = JSON.parse((await runCli(['dicomweb', 'token', 'ls', '--node', dir, '--json'])).stdout) as { name: string }[]
  t.same(ls.map((x) => x.name).sort(), ['pacs1', 'viewer1'], 'token ls: names only')
  t.notOk((await readFile(join(dir, DATADIR_FILES.dicomwebTokens), 'utf8')).includes(rw), 'the token file holds no token')
})

t.test('STOW-RS: every instance stored, acknowledged with its Retrieve URL; again: acknowledged, not stored twice', async (t) => {
  const res = await stow(
    rw,
    files.map((body) => ({ type: 'application/dicom', body })),
  )
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^application\/dicom\+json/)
  const body = (await res.json()) as Json
  const refs = (body['00081199']?.Value ?? []) as Json[]
  t.equal(refs.length, files.length, 'one Referenced SOP Sequence item per instance')
  t.same(refs.map((r) => r['00081155']?.Value?.[0]).sort(), uids.map((u) => u.sop).sort(), 'the instances sent')
  t.ok(
    refs.every((r) => {
      const sop = r['00081155']?.Value?.[0]
      const u = uids.find((x) => x.sop === sop)
      return u !== undefined && r['00081190']?.Value?.[0] === `${base}/studies/${u.study}/series/${u.series}/instances/${u.sop}`
    }),
    'each with its Retrieve URL',
  )
  t.equal(body['00081198'], undefined, 'no Failed SOP Sequence')
  const again = await stow(rw, [{ type: 'application/dicom', body: files[0]! }], `/studies/${studyUid}`)
  t.equal(again.status, 200, 'a duplicate is acknowledged')
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  const spooled = (await readdir(spool, { recursive: true })).filter((f) => String(f).endsWith('.dcm'))
  t.equal(spooled.length, files.length, 'and not stored twice')
})

t.test('STOW-RS refusals: other study, not DICOM, malformed body, wrong media type', async (t) => {
  const other = await stow(rw, [{ type: 'application/dicom', body: files[0]! }], '/studies/1.2.3.4')
  t.equal(other.status, 409, 'the only instance is of another study than the URL: 409')
  const failed = (((await other.json()) as Json)['00081198']?.Value ?? []) as Json[]
  t.equal(failed[0]?.['00081197']?.Value?.[0], 0xa900, 'Failure Reason A900')
  const junk = await stow(rw, [
    { type: 'application/dicom', body: Buffer.from('not dicom at all') },
    { type: 'application/dicom', body: files[1]! },
  ])
  t.equal(junk.status, 202, 'one refused, one stored: 202')
  const jb = (await junk.json()) as Json
  t.equal((jb['00081198']?.Value as Json[])[0]?.['00081197']?.Value?.[0], 0xc000, 'Failure Reason C000 for the unreadable part')
  t.equal((jb['00081199']?.Value as Json[]).length, 1)
  const b = stowBody([{ type: 'application/dicom', body: files[0]! }])
  const truncated = await fetch(base + '/studies', {
    method: 'POST',
    body: b.body.subarray(0, b.body.length - 20),
    headers: { ...auth(rw), 'content-type': b.contentType },
  })
  t.equal(truncated.status, 400, 'no close delimiter: 400')
  t.equal(((await truncated.json()) as { error: { code: string } }).error.code, 'DICOMWEB_MULTIPART_MALFORMED')
  const wrong = await fetch(base + '/studies', { method: 'POST', body: files[0]!, headers: { ...auth(rw), 'content-type': 'application/dicom' } })
  t.equal(wrong.status, 415, 'a bare instance, not multipart: 415')
})

t.test('QIDO-RS: the study, its series and instances, with matching', async (t) => {
  const res = await fetch(`${base}/studies?StudyInstanceUID=${studyUid}`, { headers: auth(ro) })
  t.equal(res.status, 200)
  const studies = (await res.json()) as Json[]
  t.equal(studies.length, 1)
  t.equal(studies[0]?.['0020000D']?.Value?.[0], studyUid)
  t.equal(studies[0]?.['00201208']?.Value?.[0], mine.length, 'Number of Study Related Instances')
  const all = (await (await fetch(`${base}/studies`, { headers: auth(ro) })).json()) as Json[]
  t.same(all.map((s) => s['0020000D']?.Value?.[0]).sort(), [...studyUids].sort(), 'both studies of the folder')
  const series = (await (await fetch(`${base}/studies/${studyUid}/series`, { headers: auth(ro) })).json()) as Json[]
  t.equal(series.length, new Set(mine.map((u) => u.series)).size, 'every series')
  const inst = (await (await fetch(`${base}/studies/${studyUid}/instances`, { headers: auth(ro) })).json()) as Json[]
  t.equal(inst.length, mine.length, 'every instance')
  const none = (await (await fetch(`${base}/studies?StudyInstanceUID=1.2.3`, { headers: auth(ro) })).json()) as Json[]
  t.equal(none.length, 0, 'another UID matches nothing')
  const bad = await fetch(`${base}/studies?NoSuchAttribute=1`, { headers: auth(ro) })
  t.equal(bad.status, 400, 'an unknown attribute: 400')
})

async function wadoStudy(): Promise<Buffer[]> {
  const res = await fetch(`${base}/studies/${studyUid}`, { headers: { ...auth(ro), accept: 'multipart/related; type="application/dicom"' } })
  if (res.status !== 200) throw new Error(`WADO answered ${res.status}`)
  return splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
}

const digests = (parts: Buffer[]): string[] => parts.map((p) => instanceDigestOfBytes(p).digest).sort()
const sops = (parts: Buffer[]): string[] => parts.map((p) => firstString(parseDicom(p).dataset, TAG.SOPInstanceUID) ?? '').sort()

t.test('WADO-RS before registration: the instances as received', async (t) => {
  const parts = await wadoStudy()
  t.equal(parts.length, mine.length)
  t.ok(
    parts
      .map((p) => p.toString('base64'))
      .sort()
      .join() ===
      mineFiles
        .map((f) => f.toString('base64'))
        .sort()
        .join(),
    'byte for byte what was sent',
  )
  const one = uids[2]!
  const res = await fetch(`${base}/studies/${one.study}/series/${one.series}/instances/${one.sop}`, { headers: auth(ro) })
  t.equal(res.status, 200)
  const got = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
  t.same(sops(got), [one.sop], 'one instance')
  const md = (await (await fetch(`${base}/studies/${studyUid}/metadata`, { headers: auth(ro) })).json()) as Record<string, { BulkDataURI?: string }>[]
  t.equal(md.length, mine.length, 'metadata of every instance')
  t.ok(
    md.every((m) => m['7FE00010'] === undefined || String(m['7FE00010'].BulkDataURI).startsWith(`${base}/studies/${studyUid}/`)),
    'pixel data by BulkDataURI, never inline',
  )
  t.equal((await fetch(`${base}/studies/1.2.3`, { headers: auth(ro) })).status, 404, 'an unknown study: 404')
  t.equal((await fetch(`${base}/studies/${studyUid}`, { headers: { ...auth(ro), accept: 'application/zip' } })).status, 406, 'an Accept it cannot answer: 406')
})

t.test('WADO-RS frames and bulk data: the stored pixel data, no transcoding', async (t) => {
  const one = uids[0]!
  const path = `${base}/studies/${one.study}/series/${one.series}/instances/${one.sop}`
  const res = await fetch(`${path}/frames/1`, { headers: { ...auth(ro), accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^multipart\/related; type="?application\/octet-stream"?/)
  const frames = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
  t.equal(frames.length, 1, 'one frame')
  t.equal(createHash('sha256').update(frames[0]!).digest('hex'), instanceDigestOfBytes(files[0]!).digest, 'the pixel data the pixel digest covers')
  t.equal((await fetch(`${path}/frames/2`, { headers: auth(ro) })).status, 404, 'a frame past the last: 404')
  t.equal((await fetch(`${path}/frames/x`, { headers: auth(ro) })).status, 400, 'a malformed frame list: 400')
  t.equal(
    (await fetch(`${path}/frames/1`, { headers: { ...auth(ro), accept: 'multipart/related; type="image/jpeg"' } })).status,
    406,
    'a transcoding asked for: 406',
  )
  const bulk = await fetch(`${path}/bulkdata/7FE00010`, { headers: auth(ro) })
  t.equal(bulk.status, 200)
  const parts = splitMultipart(Buffer.from(await bulk.arrayBuffer()), bulk.headers.get('content-type') ?? '')
  t.same(
    parts.map((p) => p.toString('hex')),
    frames.map((p) => p.toString('hex')),
    'bulk data: the same bytes',
  )
})

t.test('once stable, the study is registered; WADO-RS then decrypts it, identity restored, pixels identical', async (t) => {
  const deadline = Date.now() + 60_000
  let studies = await client.studies()
  while (studies.length === 0 && Date.now() < deadline) {
    await sleep(250)
    studies = await client.studies()
  }
  while (studies.length < studyUids.length && Date.now() < deadline) {
    await sleep(250)
    studies = await client.studies()
  }
  t.equal(studies.length, studyUids.length, 'each study of the folder registered')
  // The spool empties once the index points at the registered study.
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  while (Date.now() < deadline && (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))) await sleep(100)
  t.same(
    (await readdir(spool, { recursive: true })).filter((f) => String(f).endsWith('.dcm')),
    [],
    'the spool is empty',
  )
  const parts = await wadoStudy()
  t.same(sops(parts), mine.map((u) => u.sop).sort(), 'the original SOP Instance UIDs')
  t.same(digests(parts), digests(mineFiles), 'identical pixels')
})

t.test('kill -9 after the STOW answer: nothing lost, registered at the next start', async (t) => {
  // A second study: the first file with new UIDs would need a writer; a file of the first study under another study URL is refused, so
  // the MR sample (another study) is sent instead.
  const mr = await readFile(new URL('../vectors/dicom/MR_small.dcm', import.meta.url))
  const res = await stow(rw, [{ type: 'application/dicom', body: mr }])
  t.equal(res.status, 200)
  await daemon.kill()
  client = await daemon.start()
  base = (await info()).dicomweb as string
  const deadline = Date.now() + 60_000
  let n = (await client.studies()).length
  while (n < studyUids.length + 1 && Date.now() < deadline) {
    await sleep(250)
    n = (await client.studies()).length
  }
  t.equal(n, studyUids.length + 1, 'the study received before the kill is registered after the restart')
  const mrStudy = firstString(parseDicom(mr).dataset, TAG.StudyInstanceUID)
  const q = (await (await fetch(`${base}/studies?StudyInstanceUID=${mrStudy}`, { headers: auth(ro) })).json()) as Json[]
  t.equal(q.length, 1, 'and QIDO still finds it')
})

t.test('an instance whose spooled file a crash cut short is forgotten at the next start, and stored again when sent again', async (t) => {
  // What a crash between an instance's index entry reaching the disk (carried by another request's synced write) and
  // its file's fsync leaves: the entry, and a file cut short. That request was never answered success.
  const work = await mkdtemp(join(tmpdir(), 'radchain-dicomweb-cut-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const gen = await generateCtStudy({ slices: 1, rows: 32, cols: 32, out: join(work, 'ct'), seed: 11 })
  const bytes = await readFile(gen.files[0] as string)
  const uid = firstString(parseDicom(bytes).dataset, TAG.StudyInstanceUID) as string
  t.equal((await stow(rw, [{ type: 'application/dicom', body: bytes }])).status, 200)
  await daemon.kill()
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  let spooled: string | undefined
  for (const folder of await readdir(spool))
    for (const f of await readdir(join(spool, folder)))
      if (f.endsWith('.dcm') && (await readFile(join(spool, folder, f))).equals(bytes)) spooled = join(spool, folder, f)
  if (spooled === undefined) throw new Error('the instance is not in the spool')
  await truncate(spooled, 100)
  client = await daemon.start()
  base = (await info()).dicomweb as string
  const find = async (): Promise<Json[]> => (await (await fetch(`${base}/studies?StudyInstanceUID=${uid}`, { headers: auth(ro) })).json()) as Json[]
  t.same(await find(), [], 'forgotten: QIDO does not list it')
  t.match(await readFile(join(dir, 'daemon.log'), 'utf8'), /instances received but not made durable before a crash are forgotten/)
  t.equal((await stow(rw, [{ type: 'application/dicom', body: bytes }])).status, 200, 'sent again')
  t.equal((await find()).length, 1, 'stored again, not acknowledged as a duplicate of the lost one')
  const res = await fetch(`${base}/studies/${uid}`, { headers: auth(ro) })
  t.same(digests(splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')), digests([bytes]), 'WADO-RS: its pixels')
})

t.test('a study added with `study add` is found and retrieved too; an erased study leaves the index', async (t) => {
  const ct = fileURLToPath(new URL('../vectors/dicom/CT_small.dcm', import.meta.url))
  const ctBytes = await readFile(ct)
  const ctUids = parseDicom(ctBytes).dataset
  const ctStudy = firstString(ctUids, TAG.StudyInstanceUID) as string
  const add = await runCli(['study', 'add', ct, '--node', dir, '--json'])
  t.equal(add.code, 0, `study add: ${add.stderr.slice(0, 300)}`)
  const studyId = (JSON.parse(add.stdout) as { studyId: string }[])[0]?.studyId as string
  const q = (await (await fetch(`${base}/studies?StudyInstanceUID=${ctStudy}`, { headers: auth(ro) })).json()) as Json[]
  t.equal(q.length, 1, 'QIDO finds the added study at once')
  t.equal(q[0]?.['00100020']?.Value?.[0], firstString(ctUids, '00100020'), 'with its original Patient ID: this organization is its custodian')
  const res = await fetch(`${base}/studies/${ctStudy}`, { headers: auth(ro) })
  t.equal(res.status, 200)
  const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
  t.same(digests(parts), digests([ctBytes]), 'WADO-RS: its pixels')
  t.same(sops(parts), [firstString(ctUids, TAG.SOPInstanceUID)], 'its original SOP Instance UID')
  const erase = await runCli(['study', 'erase', studyId, '--node', dir])
  t.equal(erase.code, 0, `study erase: ${erase.stderr.slice(0, 300)}`)
  const deadline = Date.now() + 30_000
  let left = 1
  while (left > 0 && Date.now() < deadline) {
    left = ((await (await fetch(`${base}/studies?StudyInstanceUID=${ctStudy}`, { headers: auth(ro) })).json()) as Json[]).length
    if (left > 0) await sleep(200)
  }
  t.equal(left, 0, 'erased: QIDO no longer lists it')
  t.equal((await fetch(`${base}/studies/${ctStudy}`, { headers: auth(ro) })).status, 404, 'and WADO-RS answers 404')
})

t.test('studies registered before the index existed are indexed at start, decrypted from their chunks', async (t) => {
  t.equal(await daemon.stop(), 0)
  // The index as an earlier version left it: none.
  const db = await ChainStore.open(join(dir, DATADIR_FILES.db))
  const kv = db.keyspace('w')
  const keys: string[] = []
  for await (const [k] of kv.entries()) keys.push(k)
  for (const k of keys) await kv.del(k)
  await db.close()
  t.ok(keys.length > 0, `the index held ${keys.length} records before`)
  client = await daemon.start()
  base = (await info()).dicomweb as string
  const deadline = Date.now() + 60_000
  let found: Json[] = []
  while (found.length < studyUids.length + 1 && Date.now() < deadline) {
    found = (await (await fetch(`${base}/studies`, { headers: auth(ro) })).json()) as Json[]
    if (found.length < studyUids.length + 1) await sleep(250)
  }
  t.equal(found.length, studyUids.length + 1, 'every registered study is found again')
  const parts = await wadoStudy()
  t.same(digests(parts), digests(mineFiles), 'and retrieved, pixels identical')
})

/** CT_small under a new study and SOP Instance UID (or `sop`), its first pixel byte XOR `flip`, an Icon Image Sequence with 8x8 OB pixels when `icon`. */
async function variant(opts: { sop: string; flip?: number; icon?: boolean }): Promise<Buffer> {
  const inst = parseDicom(await readFile(new URL('../vectors/dicom/CT_small.dcm', import.meta.url)))
  const ds = inst.dataset
  ds[TAG.StudyInstanceUID] = { vr: 'UI', Value: ['2.25.1234567'] }
  ds[TAG.SeriesInstanceUID] = { vr: 'UI', Value: ['2.25.1234567.1'] }
  ds[TAG.SOPInstanceUID] = { vr: 'UI', Value: [opts.sop] }
  inst.meta['00020003'] = { vr: 'UI', Value: [opts.sop] }
  const px = ds['7FE00010']?.Value?.[0] as ArrayBuffer
  new Uint8Array(px)[0] ^= opts.flip ?? 0
  if (opts.icon === true)
    ds['00880200'] = {
      vr: 'SQ',
      Value: [
        { '00280010': { vr: 'US', Value: [8] }, '00280011': { vr: 'US', Value: [8] }, '7FE00010': { vr: 'OB', Value: [new Uint8Array(64).fill(7).buffer] } },
      ],
    }
  return Buffer.from(writeDicom(inst))
}

t.test('two STOWs of one SOP Instance UID with other pixels at once: one stored, the other refused (0111), never both acknowledged', async (t) => {
  const [a, b] = await Promise.all([variant({ sop: '2.25.1234567.1.1' }), variant({ sop: '2.25.1234567.1.1', flip: 0x55 })])
  const answers = await Promise.all([stow(rw, [{ type: 'application/dicom', body: a }]), stow(rw, [{ type: 'application/dicom', body: b }])])
  const statuses = answers.map((r) => r.status).sort()
  t.same(statuses, [200, 409], 'one 200, one 409')
  const refused = (await answers.find((r) => r.status === 409)!.json()) as Json
  t.equal((refused['00081198']?.Value as Json[])[0]?.['00081197']?.Value?.[0], 0x0111, 'Failure Reason 0111')
  const won = answers[0]!.status === 200 ? a : b
  const res = await fetch(`${base}/studies/2.25.1234567/series/2.25.1234567.1/instances/2.25.1234567.1.1`, { headers: auth(ro) })
  const got = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
  t.same(digests(got), digests([won]), 'WADO-RS gives the pixels that were acknowledged')
})

t.test('metadata with a small binary inside a sequence (an icon): 200, inline in base64', async (t) => {
  const body = await variant({ sop: '2.25.1234567.1.2', icon: true })
  t.equal((await stow(rw, [{ type: 'application/dicom', body }])).status, 200)
  const res = await fetch(`${base}/studies/2.25.1234567/series/2.25.1234567.1/instances/2.25.1234567.1.2/metadata`, { headers: auth(ro) })
  t.equal(res.status, 200)
  const md = (await res.json()) as Record<string, { Value?: Record<string, { InlineBinary?: string }>[] }>[]
  t.equal(md[0]?.['00880200']?.Value?.[0]?.['7FE00010']?.InlineBinary, Buffer.alloc(64, 7).toString('base64'), 'the icon pixels inline')
})

t.test('odd requests: a malformed escape, no instance at all, 401 with its challenge; and the log names no UID and no patient', async (t) => {
  t.equal((await fetch(`${base}/studies/%E0%A4%A/series`, { headers: auth(ro) })).status, 404, 'a malformed percent-escape: 404, not 500')
  const none = await fetch(base + '/studies', {
    method: 'POST',
    body: '--b--\r\n',
    headers: { ...auth(rw), 'content-type': 'multipart/related; type="application/dicom"; boundary=b' },
  })
  t.equal(none.status, 400, 'a body with no instance: 400')
  const anon = await fetch(base + '/studies')
  t.equal(anon.status, 401)
  t.match(anon.headers.get('www-authenticate'), /^Bearer /, 'with WWW-Authenticate: Bearer')
  const log = await readFile(join(dir, 'daemon.log'), 'utf8')
  const lines = log.split('\n').filter((l) => l.includes('"dicomweb request"'))
  t.ok(lines.length > 20, `${lines.length} request lines`)
  t.ok(
    lines.every((l) => typeof (JSON.parse(l) as { level: unknown }).level === 'number'),
    'each keeps its numeric log level',
  )
  const secrets = [...new Set([...uids.flatMap((u) => [u.study, u.series, u.sop]), firstString(parseDicom(files[0]!).dataset, '00100020') ?? 'x'])]
  const found = secrets.filter((x) => log.includes(x))
  t.same(found, [], 'no UID and no Patient ID of the received studies anywhere in the daemon log')
})

t.test(
  'a flood of refused STOW-RS requests (unauthenticated, unterminated, wrong type): each answered, the daemon within 64 MiB, the listener still serving',
  async (t) => {
    const pid = ((await info()) as DaemonInfo).pid
    const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
    const before = await rss()
    let peak = before
    const body = Buffer.alloc(4 * 1024 * 1024, 0x41)
    const statuses: number[] = []
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => {
          const kind = (round * 10 + i) % 3
          const headers =
            kind === 0
              ? { 'content-type': 'multipart/related; type="application/dicom"; boundary=b' }
              : kind === 1
                ? { ...auth(rw), 'content-type': 'multipart/related; type="application/dicom"; boundary=b' }
                : { ...auth(rw), 'content-type': 'application/octet-stream' }
          const payload = kind === 1 ? Buffer.concat([Buffer.from('--b\r\nContent-Type: application/dicom\r\n\r\n'), body]) : body
          return fetch(base + '/studies', { method: 'POST', body: payload, headers }).then(
            (r) => r.status,
            () => 0,
          )
        }),
      )
      statuses.push(...answers)
      peak = Math.max(peak, await rss())
    }
    t.same(
      [...new Set(statuses)].sort(),
      [400, 401, 415].filter((s) => statuses.includes(s)),
      `only refusals (${[...new Set(statuses)].join(', ')})`,
    )
    t.ok(statuses.filter((s) => s === 400).length >= 30, 'the unterminated bodies got 400')
    t.ok(peak - before < 64 * 1024 * 1024, `the daemon grew by ${Math.round((peak - before) / 1048576)} MiB for 100 refused 4 MiB bodies`)
    t.equal((await fetch(`${base}/studies?limit=1`, { headers: auth(ro) })).status, 200, 'QIDO still answers')
  },
)

t.test('a study sent in pieces within the stable time is one registration; a piece after it registers a new version naming it', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'radchain-dicomweb-pieces-'))
  t.teardown(() => rm(out, { recursive: true, force: true }))
  const gen = await generateCtStudy({ slices: 7, rows: 64, cols: 64, out: join(out, 'ct'), seed: 7 })
  const all = await Promise.all(gen.files.map((f) => readFile(f)))
  const bodies = all.slice(0, 6)
  const before = new Set((await client.studies()).map((s) => s.studyId))
  // Three requests of two instances, half a second apart: the registration packing the first keeps taking the others.
  for (let i = 0; i < bodies.length; i += 2) {
    const r = await stow(
      rw,
      bodies.slice(i, i + 2).map((body) => ({ type: 'application/dicom', body })),
    )
    t.equal(r.status, 200, `piece ${i / 2 + 1} stored`)
    await sleep(500)
  }
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  const deadline = Date.now() + 60_000
  const added = async (): Promise<string[]> => (await client.studies()).map((s) => s.studyId).filter((id) => !before.has(id))
  while (Date.now() < deadline && ((await added()).length === 0 || (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))))
    await sleep(200)
  // A little longer: a second registration of a late piece would show up now.
  await sleep(STABLE_SECONDS * 1000 + 500)
  t.equal((await added()).length, 1, 'one study registered')
  const res = await fetch(`${base}/studies/${gen.studyInstanceUid}`, { headers: { ...auth(ro), accept: 'multipart/related; type="application/dicom"' } })
  t.equal(res.status, 200)
  const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '')
  t.same(parts.map((p) => firstString(parseDicom(p).dataset, TAG.SOPInstanceUID)).sort(), gen.sopInstanceUids.slice(0, 6).sort(), 'every piece in it')
  t.same(parts.map((p) => instanceDigestOfBytes(p).digest).sort(), bodies.map((b) => instanceDigestOfBytes(b).digest).sort(), 'identical pixels')

  // A late instance of the same study: a new version, naming the first on the ledger.
  const [first] = await added()
  const late = await stow(rw, [{ type: 'application/dicom', body: all[6] as Buffer }])
  t.equal(late.status, 200, 'the late instance stored')
  const deadline2 = Date.now() + 60_000
  while (Date.now() < deadline2 && (await added()).length < 2) await sleep(200)
  const second = (await added()).find((id) => id !== first) as string
  t.ok(second !== undefined, 'a second registration')
  const view = await client.study(second)
  t.equal(view.extends, first, 'it extends the first')
  t.same(
    (view.versions ?? []).map((v) => v.studyId),
    [first, second],
    'the chain of versions, oldest first',
  )
  while (Date.now() < deadline2 && (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))) await sleep(200)
  const q = (await (await fetch(`${base}/studies?StudyInstanceUID=${gen.studyInstanceUid}`, { headers: auth(ro) })).json()) as Json[]
  t.equal(q.length, 1, 'QIDO shows one study')
  t.equal(q[0]?.['00201208']?.Value?.[0], 7, 'with the instances of both versions')
  const res2 = await fetch(`${base}/studies/${gen.studyInstanceUid}`, { headers: { ...auth(ro), accept: 'multipart/related; type="application/dicom"' } })
  const parts2 = splitMultipart(Buffer.from(await res2.arrayBuffer()), res2.headers.get('content-type') ?? '')
  t.same(parts2.map((p) => firstString(parseDicom(p).dataset, TAG.SOPInstanceUID)).sort(), [...gen.sopInstanceUids].sort(), 'WADO-RS gives all seven')
})
