// DICOMweb with clients that share no code with radchain: curl sends and
// fetches every resource (README "Connecting a PACS and a viewer"), the
// multipart answers are split by hand, and dcmtk's dcmdump reads every
// instance WADO-RS returns, before and after the study is registered.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DATADIR_FILES, initDataDir } from '../../src/node/index.js'
import type { DaemonInfo } from '../../src/api/index.js'
import { DaemonProcess } from '../../src/devnet/index.js'
import { TAG, firstNumber, firstString, parseDicom } from '../../src/study/index.js'
import { sleep } from '../../src/util/index.js'
import { dcmdumpErrors } from '../helpers/dcmtk.js'
import { splitMultipart } from '../helpers/multipart.js'
import { runCli } from './helpers/cli.js'

const run = promisify(execFile)
const STUDY_DIR = new URL('../vectors/dicom/study-77654033/CT2/', import.meta.url)

const work = await mkdtemp(join(tmpdir(), 'radchain-dicomweb-curl-'))
const dir = join(work, 'node')
const daemon = new DaemonProcess(dir)
t.teardown(async () => {
  await daemon.kill()
  await rm(work, { recursive: true, force: true })
})

/** What curl got: status, headers (lower-cased names), body. */
interface Got {
  status: number
  headers: Map<string, string>
  body: Buffer
}

let n = 0
/** Runs curl with `args` against `path` under the DICOMweb root; the body and headers go to files, read back. */
async function curl(base: string, path: string, args: string[]): Promise<Got> {
  const id = n++
  const bodyFile = join(work, `body-${id}`)
  const headFile = join(work, `head-${id}`)
  await run('curl', ['-sS', '--max-time', '60', '-o', bodyFile, '-D', headFile, ...args, base + path], { maxBuffer: 16 * 1024 * 1024 })
  const head = await readFile(headFile, 'utf8')
  // The last response's headers (curl writes a 100 Continue's too).
  const blocks = head.split(/\r\n\r\n/).filter((b) => b.startsWith('HTTP/'))
  const lines = (blocks[blocks.length - 1] ?? '').split('\r\n')
  const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(lines[0] ?? '')?.[1] ?? 0)
  const headers = new Map<string, string>()
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim())
  }
  return { status, headers, body: await readFile(bodyFile) }
}

/** The parts of a multipart/related answer curl got. */
function parts(got: Got): Buffer[] {
  return splitMultipart(got.body, got.headers.get('content-type') ?? '')
}

/** Writes each part to a file and has dcmdump read it: no error line. */
async function dcmdumpAll(t: Test, bodies: Buffer[], what: string): Promise<void> {
  for (const [i, b] of bodies.entries()) {
    const f = join(work, `${what}-${i}.dcm`)
    await writeFile(f, b)
    t.same(await dcmdumpErrors(f), [], `dcmdump reads ${what} instance ${i + 1}`)
  }
}

await initDataDir({
  dir,
  dev: true,
  apiPort: 0,
  scrypt: { N: 1024, r: 8, p: 1 },
  params: { blockIntervalMs: 300, chunkSize: 64 * 1024 },
  config: { dicomweb: { stableSeconds: 1 } },
})
const client = await daemon.start()
const base = (JSON.parse(await readFile(join(dir, DATADIR_FILES.daemon), 'utf8')) as DaemonInfo).dicomweb as string
const token = async (name: string, scope: string): Promise<string> =>
  (JSON.parse((await runCli(['dicomweb', 'token', 'create', '--name', name, '--scope', scope, '--node', dir, '--json'])).stdout) as { token: string }).token
const rw = `Authorization: Bearer ${await token('curl-rw', 'readwrite')}`
const wo = `Authorization: Bearer ${await token('curl-w', 'write')}`
const files = await Promise.all((await readdir(STUDY_DIR)).sort().map((f) => readFile(new URL(f, STUDY_DIR))))
const first = parseDicom(files[0] as Buffer).dataset
const study = firstString(first, TAG.StudyInstanceUID) as string
const series = firstString(first, TAG.SeriesInstanceUID) as string
const sop = firstString(first, TAG.SOPInstanceUID) as string
const pixelBytes = (firstNumber(first, '00280010') ?? 0) * (firstNumber(first, '00280011') ?? 0) * ((firstNumber(first, '00280100') ?? 16) / 8)

t.test('STOW-RS with curl: a body file, unquoted boundary, chunked transfer', async (t) => {
  const boundary = 'curlBoundary0123456789'
  const body = Buffer.concat([
    ...files.flatMap((f) => [Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n')]),
    Buffer.from(`--${boundary}--\r\n`),
  ])
  await writeFile(join(work, 'stow.bin'), body)
  const got = await curl(base, '/studies', [
    '-X',
    'POST',
    '-H',
    rw,
    '-H',
    `Content-Type: multipart/related; type="application/dicom"; boundary=${boundary}`,
    '-H',
    'Accept: application/dicom+json',
    '-H',
    'Transfer-Encoding: chunked',
    '--data-binary',
    `@${join(work, 'stow.bin')}`,
  ])
  t.equal(got.status, 200, got.body.toString().slice(0, 300))
  t.match(got.headers.get('content-type') ?? '', /^application\/dicom\+json/)
  const answer = JSON.parse(got.body.toString()) as Record<string, { Value?: Record<string, { Value?: string[] }>[] }>
  const refs = answer['00081199']?.Value ?? []
  t.equal(refs.length, files.length, 'one Referenced SOP Sequence item per instance')
  t.ok(
    refs.every((r) => (r['00081190']?.Value?.[0] ?? '').startsWith(`${base}/studies/${study}/series/`)),
    'each with its Retrieve URL',
  )
})

t.test('QIDO-RS and WADO-RS with curl while the study waits in the spool; dcmdump reads every instance', async (t) => {
  const q = await curl(base, `/studies?StudyInstanceUID=${study}&includefield=all`, ['-H', rw, '-H', 'Accept: application/dicom+json'])
  t.equal(q.status, 200)
  t.equal((JSON.parse(q.body.toString()) as unknown[]).length, 1, 'the study found')
  const s = await curl(base, `/studies/${study}/series`, ['-H', rw])
  t.equal(s.status, 200)
  const i = await curl(base, `/studies/${study}/series/${series}/instances`, ['-H', rw])
  t.equal(i.status, 200)
  t.ok((JSON.parse(i.body.toString()) as unknown[]).length >= 1)
  const w = await curl(base, `/studies/${study}`, ['-H', rw, '-H', 'Accept: multipart/related; type="application/dicom"'])
  t.equal(w.status, 200)
  const got = parts(w)
  t.equal(got.length, files.length)
  await dcmdumpAll(t, got, 'spooled')
})

t.test('after registration: WADO-RS study, series, instance, metadata, frames, bulk data with curl; dcmdump reads them', async (t) => {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline && (await client.studies()).length === 0) await sleep(250)
  const spool = join(dir, DATADIR_FILES.dicomwebSpool)
  while (Date.now() < deadline && (await readdir(spool, { recursive: true })).some((f) => String(f).endsWith('.dcm'))) await sleep(100)
  t.equal((await client.studies()).length, 1, 'registered')
  const acceptDicom = 'Accept: multipart/related; type="application/dicom"'
  const whole = await curl(base, `/studies/${study}`, ['-H', rw, '-H', acceptDicom])
  t.equal(whole.status, 200)
  await dcmdumpAll(t, parts(whole), 'registered')
  const ser = await curl(base, `/studies/${study}/series/${series}`, ['-H', rw, '-H', acceptDicom])
  t.equal(ser.status, 200)
  t.ok(parts(ser).length >= 1)
  const one = await curl(base, `/studies/${study}/series/${series}/instances/${sop}`, ['-H', rw, '-H', acceptDicom])
  t.equal(one.status, 200)
  const [inst] = parts(one)
  t.equal(firstString(parseDicom(inst as Buffer).dataset, TAG.SOPInstanceUID), sop, 'the instance asked for')
  const meta = await curl(base, `/studies/${study}/series/${series}/instances/${sop}/metadata`, ['-H', rw, '-H', 'Accept: application/dicom+json'])
  t.equal(meta.status, 200)
  const md = JSON.parse(meta.body.toString()) as Record<string, { BulkDataURI?: string }>[]
  t.match(md[0]?.['7FE00010']?.BulkDataURI ?? '', /\/bulkdata\/7FE00010$/, 'pixel data as a BulkDataURI')
  const frame = await curl(base, `/studies/${study}/series/${series}/instances/${sop}/frames/1`, [
    '-H',
    rw,
    '-H',
    'Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*',
  ])
  t.equal(frame.status, 200)
  t.equal(parts(frame)[0]?.length, pixelBytes, 'frame 1 is rows x columns x bytes per sample')
  const bulk = await curl(base, `/studies/${study}/series/${series}/instances/${sop}/bulkdata/7FE00010`, [
    '-H',
    rw,
    '-H',
    'Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*',
  ])
  t.equal(bulk.status, 200)
  t.equal(parts(bulk)[0]?.length, pixelBytes)
})

t.test('error paths with curl: each status, a JSON body with the code, and nothing else said to a stranger', async (t) => {
  const none = await curl(base, '/studies', [])
  t.equal(none.status, 401, 'no token')
  t.match(none.headers.get('www-authenticate') ?? '', /^Bearer/, 'with its challenge')
  t.notOk(none.body.toString().includes(study), 'and no data')
  const wrong = await curl(base, '/studies', ['-H', 'Authorization: Bearer not-a-token'])
  t.equal(wrong.status, 401, 'a wrong token')
  const writeOnly = await curl(base, '/studies', ['-H', wo])
  t.equal(writeOnly.status, 403, 'a write token cannot query')
  const code = (g: Got): string => (JSON.parse(g.body.toString()) as { error: { code: string } }).error.code
  t.equal(code(writeOnly), 'DICOMWEB_FORBIDDEN')
  const badType = await curl(base, '/studies', ['-X', 'POST', '-H', rw, '-H', 'Content-Type: application/octet-stream', '--data-binary', 'abc'])
  t.equal(badType.status, 415, 'a body that is not multipart/related')
  await writeFile(join(work, 'bad.bin'), '--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom at all')
  const malformed = await curl(base, '/studies', [
    '-X',
    'POST',
    '-H',
    rw,
    '-H',
    'Content-Type: multipart/related; type="application/dicom"; boundary=b',
    '--data-binary',
    `@${join(work, 'bad.bin')}`,
  ])
  t.equal(malformed.status, 400, 'an unterminated multipart body')
  const unknown = await curl(base, '/studies/1.2.3.4.5', ['-H', rw, '-H', 'Accept: multipart/related; type="application/dicom"'])
  t.equal(unknown.status, 404, 'a study this node does not show')
  t.equal(code(unknown), 'DICOMWEB_NOT_FOUND')
  const badAccept = await curl(base, `/studies/${study}/metadata`, ['-H', rw, '-H', 'Accept: image/png'])
  t.equal(badAccept.status, 406, 'metadata as a PNG')
  const badQuery = await curl(base, '/studies?StudyDate=yesterday', ['-H', rw])
  t.equal(badQuery.status, 400, 'a malformed date')
  const method = await curl(base, `/studies/${study}/metadata`, ['-X', 'DELETE', '-H', rw])
  t.equal(method.status, 405, 'DELETE is not allowed')
  t.ok((method.headers.get('allow') ?? '').includes('GET'), 'the allow header lists GET')
})
