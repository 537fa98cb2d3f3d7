// The daemon as a DICOM Query/Retrieve SCP (README "DICOM networking
// (DIMSE)"): dcmtk's findscu at study, series and image level (a wildcard
// Patient Name, a Study Date range, UIDs, a bad key, a C-CANCEL), and
// movescu with storescp as the move destination (every instance arrives,
// pixels identical, counts reported; an unknown destination refused with
// 0xA801), over two studies (three DICOM studies) the daemon keeps.
import t from 'tap'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { ApiClient, DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { TAG, firstString, generateCtStudy, instanceDigestOfBytes, parseDicom, type DicomDataset } from '../../src/study/index.js'
import { sleep } from '../../src/util/index.js'
import { runCli } from './helpers/cli.js'
import { COMMAND_FIELD, DimseClient, QR_SOP_CLASS, decodeIdentifier, encodeIdentifier, splitPart10 } from '../../src/dimse/index.js'

const exec = promisify(execFile)
const SAMPLE_DIR = new URL('../vectors/dicom/study-77654033/', import.meta.url).pathname

const work = await mkdtemp(join(tmpdir(), 'radchain-dimse-qr-'))
const dir = join(work, 'node')
const daemon = new DaemonProcess(dir)
let storescp: ChildProcess | undefined
t.teardown(async () => {
  storescp?.kill('SIGKILL')
  await daemon.kill()
  await rm(work, { recursive: true, force: true })
})

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

const storePort = await freePort()
// A DICOM peer that accepts the connection and then never answers.
const silent = createServer((sock) => sock.on('data', () => undefined))
await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
const silentPort = (silent.address() as { port: number }).port
t.teardown(() => silent.close())
await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: {
    dimse: {
      enabled: true,
      listen: '127.0.0.1:0',
      aeTitle: 'RADCHAIN',
      peers: [
        { aeTitle: 'FINDSCU', host: '127.0.0.1', port: 104 },
        { aeTitle: 'MOVESCU', host: '127.0.0.1', port: 104 },
        { aeTitle: 'STORESCP', host: '127.0.0.1', port: storePort },
        { aeTitle: 'SILENT', host: '127.0.0.1', port: silentPort },
      ],
      // A peer that stops answering is given up on after this long.
      timeoutSeconds: 3,
    },
  },
})
const client: ApiClient = await daemon.start()
const info = JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo
const port = Number(/:(\d+)$/.exec(info.dimse ?? '')?.[1])

// Two studies of Doe^Archibald (CR and CT, 2001-01-01) and a synthetic CT of today.
const ct = await generateCtStudy({ slices: 6, rows: 64, cols: 64, out: join(work, 'ct'), seed: 7 })
const samplePaths = (await readdir(SAMPLE_DIR, { recursive: true }))
  .map(String)
  .filter((f) => /\/\d+$/.test(f))
  .map((f) => join(SAMPLE_DIR, f))
const originals = await Promise.all([...samplePaths, ...ct.files].map(async (p) => ({ path: p, bytes: await readFile(p) })))
const uidsOf = (b: Uint8Array): { study: string; series: string; sop: string } => {
  const ds = parseDicom(b).dataset
  return { study: firstString(ds, TAG.StudyInstanceUID)!, series: firstString(ds, TAG.SeriesInstanceUID)!, sop: firstString(ds, TAG.SOPInstanceUID)! }
}
const doeStudies = [...new Set(samplePaths.map((_, i) => uidsOf(originals[i]!.bytes).study))].sort()
const ctStudy = uidsOf(originals[originals.length - 1]!.bytes).study
const cr = uidsOf(originals.find((o) => o.path.includes('/CR'))!.bytes)
const ctSample = uidsOf(originals.find((o) => o.path.includes('/CT'))!.bytes)

let ctStudyId = ''
{
  const job = await client.addStudies([SAMPLE_DIR, ct.out])
  const deadline = Date.now() + 60_000
  for (;;) {
    const j = await client.job(job, 2000)
    if (j.kind === 'add' && j.state === 'done') {
      ctStudyId = j.studies.find((s) => s.instances === ct.files.length)?.studyId ?? ''
      break
    }
    if (j.state === 'failed' || Date.now() > deadline) throw new Error(`study add: ${JSON.stringify(j)}`)
  }
}

async function dcmtk(tool: string, args: string[], cwd?: string): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(tool, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024, ...(cwd === undefined ? {} : { cwd }) })
    return { code: 0, out: r.stdout + r.stderr }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: (e.stdout ?? '') + (e.stderr ?? '') }
  }
}

/** findscu with these keys; the response identifiers it extracted, parsed. */
async function find(keys: string[], extra: string[] = []): Promise<{ code: number; out: string; results: DicomDataset[] }> {
  const od = await mkdtemp(join(work, 'find-'))
  const r = await dcmtk('findscu', [
    '-v',
    '-S',
    '-aet',
    'FINDSCU',
    '-aec',
    'RADCHAIN',
    '-X',
    '-od',
    od,
    ...extra,
    ...keys.flatMap((k) => ['-k', k]),
    '127.0.0.1',
    String(port),
  ])
  const files = (await readdir(od)).filter((f) => f.startsWith('rsp')).sort()
  // Read with radchain's identifier reader: dcmjs would take the empty return keys of an image query for a truncated image.
  const results = await Promise.all(
    files.map(async (f) => {
      const p = splitPart10(await readFile(join(od, f)))
      return decodeIdentifier(p.dataset, p.transferSyntaxUid)
    }),
  )
  return { ...r, results }
}

const text = (ds: DicomDataset, tag: string): string | undefined => {
  const v = ds[tag]?.Value?.[0]
  if (v !== null && typeof v === 'object' && 'Alphabetic' in v) return (v as { Alphabetic?: string }).Alphabetic
  return v === undefined || v === null ? undefined : String(v)
}

t.test('C-FIND, study level: a wildcard Patient Name, return keys filled, unique key given', async (t) => {
  const r = await find([
    'QueryRetrieveLevel=STUDY',
    'PatientName=Doe*',
    'StudyDate',
    'StudyInstanceUID',
    'ModalitiesInStudy',
    'NumberOfStudyRelatedInstances',
    'PatientID',
  ])
  t.equal(r.code, 0, 'findscu exits 0', { out: r.out })
  t.match(r.out, /Received Final Find Response \(Success\)/)
  t.equal(r.results.length, 2, 'the two studies of Doe^Archibald')
  t.same(r.results.map((d) => text(d, '0020000D')).sort(), doeStudies, 'their Study Instance UIDs')
  for (const d of r.results) {
    t.equal(text(d, '00100010'), 'Doe^Archibald')
    t.ok(['20010101', '19950903'].includes(text(d, '00080020') ?? ''), 'Study Date returned')
    t.equal(text(d, '00100020'), '77654033', 'Patient ID returned (the custodian sees its own in full)')
    t.equal(text(d, '00080052'), 'STUDY')
    t.ok(Number(text(d, '00201208')) >= 1, 'Number of Study Related Instances computed')
    t.ok(d['00080061']?.Value !== undefined, 'Modalities in Study computed')
    t.equal(d['00080018'], undefined, 'nothing asked for is not returned (no SOP Instance UID)')
  }
})

t.test('C-FIND: a Study Date range, a UID list, no match', async (t) => {
  const range = await find(['QueryRetrieveLevel=STUDY', 'StudyDate=20000101-20021231', 'StudyInstanceUID'])
  t.same(
    range.results.map((d) => text(d, '0020000D')),
    [cr.study],
    'the study of 2001, neither the one of 1995 nor the one of today',
  )
  const before = await find(['QueryRetrieveLevel=STUDY', 'StudyDate=-19991231', 'StudyInstanceUID'])
  t.same(
    before.results.map((d) => text(d, '0020000D')),
    [ctSample.study],
    'an open range: the study of 1995',
  )
  const all = await find(['QueryRetrieveLevel=STUDY', 'StudyInstanceUID'])
  t.same(all.results.map((d) => text(d, '0020000D')).sort(), [...doeStudies, ctStudy].sort(), 'universal matching: every study')
  const list = await find(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ctStudy}\\${doeStudies[0]}`])
  t.same(list.results.map((d) => text(d, '0020000D')).sort(), [ctStudy, doeStudies[0]].sort(), 'a UID list')
  const none = await find(['QueryRetrieveLevel=STUDY', 'PatientName=Nobody*'])
  t.equal(none.results.length, 0)
  t.match(none.out, /Final Find Response \(Success\)/)
})

t.test('C-FIND, series and image level under a study', async (t) => {
  const study = uidsOf(originals.find((o) => o.path.includes('/CT'))!.bytes)
  const series = await find(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${study.study}`, 'SeriesInstanceUID', 'Modality', 'NumberOfSeriesRelatedInstances'])
  t.ok(series.results.length >= 1)
  t.ok(
    series.results.every((d) => text(d, '0020000D') === study.study && text(d, '0020000E') !== undefined && text(d, '00080052') === 'SERIES'),
    'each series of the study, with its unique keys',
  )
  t.ok(
    series.results.some((d) => text(d, '00080060') === 'CT'),
    'Modality returned',
  )
  const images = await find([
    'QueryRetrieveLevel=IMAGE',
    `StudyInstanceUID=${study.study}`,
    `SeriesInstanceUID=${study.series}`,
    'SOPInstanceUID',
    'InstanceNumber',
    'Rows',
  ])
  const expected = originals.map((o) => uidsOf(o.bytes)).filter((u) => u.series === study.series)
  t.same(images.results.map((d) => text(d, '00080018')).sort(), expected.map((u) => u.sop).sort(), 'every instance of the series')
  t.ok(
    images.results.every((d) => Number(text(d, '00280010')) > 0),
    'an empty US return key (Rows) is returned, not matched as 0',
  )
  const one = await find(['QueryRetrieveLevel=IMAGE', `SOPInstanceUID=${study.sop}`, 'SOPClassUID'])
  t.same(
    one.results.map((d) => text(d, '00080018')),
    [study.sop],
    'one instance by its UID',
  )
  t.equal(text(one.results[0]!, '00080016'), '1.2.840.10008.5.1.4.1.1.2')
})

t.test('C-FIND refusals and a C-CANCEL', async (t) => {
  const bad = await find(['QueryRetrieveLevel=STUDY', 'StudyDate=2001XX01'])
  t.match(bad.out, /Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/, 'a malformed date: 0xA900', { out: bad.out })
  const noLevel = await find(['PatientName=Doe*'])
  t.match(noLevel.out, /Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/, 'no Query/Retrieve Level: 0xA900', { out: noLevel.out })
  // A C-CANCEL sent right behind the request (findscu --cancel races the answers on loopback): the SCP ends with Cancel.
  const scu = await DimseClient.associate({
    host: '127.0.0.1',
    port,
    callingAe: 'FINDSCU',
    calledAe: 'RADCHAIN',
    contexts: [{ abstractSyntax: QR_SOP_CLASS.studyRootFind, transferSyntaxes: ['1.2.840.10008.1.2'] }],
    implementationClassUid: '2.25.1',
    implementationVersionName: 'TEST',
  })
  const q = encodeIdentifier({ '00080052': { vr: 'CS', Value: ['IMAGE'] }, '00080018': { vr: 'UI' } }, '1.2.840.10008.1.2')
  const statuses: number[] = []
  for await (const r of scu.request(QR_SOP_CLASS.studyRootFind, COMMAND_FIELD.cFindRq, q, { cancelAfter: 0 })) statuses.push(r.status)
  t.equal(statuses.at(-1), 0xfe00, 'the final status is Cancel')
  t.ok(statuses.length < originals.length, 'not every match was sent')
  const rest: number[] = []
  for await (const r of scu.request(QR_SOP_CLASS.studyRootFind, COMMAND_FIELD.cFindRq, q)) rest.push(r.status)
  t.equal(rest.length, originals.length + 1, 'the next query on the same association is answered in full')
  t.equal(rest.at(-1), 0)
  await scu.release()
})

t.test('C-MOVE to storescp: every instance arrives with identical pixels, counts reported', async (t) => {
  const out = join(work, 'storescp')
  await mkdir(out)
  storescp = spawn('storescp', ['-aet', 'STORESCP', '-od', out, String(storePort)], { stdio: 'ignore' })
  // storescp listens once it can be echoed.
  for (let i = 0; i < 50 && (await dcmtk('echoscu', ['-aec', 'STORESCP', '127.0.0.1', String(storePort)])).code !== 0; i++) await sleep(100)
  const want = originals.filter((o) => uidsOf(o.bytes).study === ctStudy || doeStudies.includes(uidsOf(o.bytes).study))
  const r = await dcmtk('movescu', [
    '-d',
    '-S',
    '-aet',
    'MOVESCU',
    '-aec',
    'RADCHAIN',
    '-aem',
    'STORESCP',
    '-k',
    'QueryRetrieveLevel=STUDY',
    '-k',
    `StudyInstanceUID=${[ctStudy, ...doeStudies].join('\\')}`,
    '127.0.0.1',
    String(port),
  ])
  t.equal(r.code, 0, 'movescu exits 0', { out: r.out })
  t.match(r.out, /Received Final Move Response[^]*DIMSE Status\s*:\s*0x0000: Success/, 'final status Success')
  t.match(r.out, new RegExp(`Completed Suboperations\\s*:\\s*${want.length}\\b`), 'completed count')
  t.match(r.out, /Failed Suboperations\s*:\s*0\b/, 'none failed')
  t.match(r.out, /Remaining Suboperations\s*:\s*\d+/, 'pending responses with the remaining count')
  const got = await Promise.all((await readdir(out)).map((f) => readFile(join(out, f))))
  t.equal(got.length, want.length, 'every instance arrived')
  const digests = (xs: Uint8Array[]): string[] => xs.map((x) => instanceDigestOfBytes(x).digest).sort()
  t.same(digests(got), digests(want.map((w) => w.bytes)), 'pixels identical (pixel digests)')
  t.same(got.map((g) => uidsOf(g).sop).sort(), want.map((w) => uidsOf(w.bytes).sop).sort(), 'original SOP Instance UIDs (the custodian sees its own)')
})

t.test('C-MOVE to an unknown destination: 0xA801', async (t) => {
  const r = await dcmtk('movescu', [
    '-v',
    '-S',
    '-aet',
    'MOVESCU',
    '-aec',
    'RADCHAIN',
    '-aem',
    'NOWHERE',
    '-k',
    'QueryRetrieveLevel=STUDY',
    '-k',
    `StudyInstanceUID=${ctStudy}`,
    '127.0.0.1',
    String(port),
  ])
  t.match(r.out, /0xa801|MoveDestinationUnknown/i, 'refused: Move Destination unknown', { out: r.out })
})

t.test('radchain study send: every instance to storescp, one result each; an unknown AE and a silent peer fail clearly', async (t) => {
  const out = join(work, 'storescp')
  for (const f of await readdir(out)) await rm(join(out, f))
  const r = await runCli(['study', 'send', ctStudyId, '--to', 'STORESCP', '--node', dir, '--json'])
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
  const job = JSON.parse(r.stdout) as {
    state: string
    total: number
    sent: number
    failed: number
    results: { file: string; sopInstanceUid: string; status: string; ok: boolean }[]
  }
  t.equal(job.state, 'done')
  t.equal(job.total, ct.files.length)
  t.equal(job.sent, ct.files.length)
  t.equal(job.failed, 0)
  t.equal(job.results.length, ct.files.length, 'one result per instance')
  t.ok(
    job.results.every((x) => x.ok && x.status === '0x0000' && /^IM\d{6}\.dcm$/.test(x.file)),
    'each with its file and status',
  )
  const got = await Promise.all((await readdir(out)).map((f) => readFile(join(out, f))))
  t.equal(got.length, ct.files.length, 'every instance arrived')
  const digests = (xs: Uint8Array[]): string[] => xs.map((x) => instanceDigestOfBytes(x).digest).sort()
  t.same(digests(got), digests(originals.slice(-ct.files.length).map((o) => o.bytes)), 'pixels identical')
  t.same(got.map((g) => uidsOf(g).sop).sort(), job.results.map((x) => x.sopInstanceUid).sort(), 'the UIDs reported are those received')
  t.notOk(
    got.some((g) => ct.files.some((_, i) => uidsOf(originals[originals.length - ct.files.length + i]!.bytes).sop === uidsOf(g).sop)),
    'the images scope sends de-identified instances (new UIDs)',
  )
  t.same(await readdir(join(dir, 'dimse-send')), [], 'nothing left in the data dir')

  const unknown = await runCli(['study', 'send', ctStudyId, '--to', 'NOWHERE', '--node', dir])
  t.not(unknown.code, 0)
  t.match(unknown.stderr, /DIMSE_UNKNOWN_PEER/, 'an unknown AE: a clear error')
  t.match(unknown.stderr, /dimse peer add/)

  const t0 = Date.now()
  const hung = await runCli(['study', 'send', ctStudyId, '--to', 'SILENT', '--node', dir, '--json'], { timeoutMs: 30_000 })
  t.not(hung.code, 0, 'a peer that never answers: the send fails')
  t.match(hung.stderr, /DIMSE_TIMEOUT/, 'with a timeout')
  t.ok(Date.now() - t0 < 20_000, 'and does not hang')
})
