import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  CT_IMAGE_STORAGE,
  SYNTHETIC_PRIVATE_CREATOR,
  TAG,
  TRANSFER_SYNTAX,
  deidentifyStudy,
  firstNumber,
  firstString,
  generateCtStudy,
  isPrivateTag,
  pixelDigest,
  readDicom,
  writeDicom,
  type DicomInstance,
  type SyntheticCtStudy,
} from '../../../src/study/index.js'
import { walkElements } from './helpers.js'

const run = promisify(execFile)
const DCMDUMP = process.env.DCMDUMP ?? 'dcmdump'
const UID_RE = /^2\.25\.\d{1,39}$/

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-synthetic-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function pixels16(inst: DicomInstance, signed: boolean): number[] {
  const b = Buffer.from(inst.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer)
  const out: number[] = []
  for (let i = 0; i < b.length; i += 2) out.push(signed ? b.readInt16LE(i) : b.readUInt16LE(i))
  return out
}

/** dcmdump (Debian's dcmtk) reads the file: exit code 0 and no "E:" line. */
async function dcmdump(t: Test, file: string): Promise<void> {
  let res: { stdout: string; stderr: string }
  try {
    res = await run(DCMDUMP, [file], { maxBuffer: 16 * 1024 * 1024 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    t.fail(e.code === 'ENOENT' ? `${DCMDUMP} not found: install dcmtk (apt-get install dcmtk)` : `dcmdump ${file} failed: ${e.stderr ?? e.message}`)
    return
  }
  const errors = `${res.stdout}\n${res.stderr}`.split('\n').filter((l) => /^E:/.test(l))
  t.same(errors, [], `dcmdump reads ${file} without errors`)
}

let small: SyntheticCtStudy
let smallDir: string

t.before(async () => {
  smallDir = join(await tempDir(), 'ct')
  small = await generateCtStudy({ slices: 5, rows: 64, cols: 64, out: smallDir, seed: 1234 })
})

t.test('five 64x64 slices: one study, one series, CT Image Storage, geometry varies per slice', async (t) => {
  t.same((await readdir(smallDir)).sort(), ['CT000001.dcm', 'CT000002.dcm', 'CT000003.dcm', 'CT000004.dcm', 'CT000005.dcm'])
  t.same(
    small.files,
    small.files.map((_f, i) => join(smallDir, `CT00000${i + 1}.dcm`)),
  )
  t.equal(small.out, smallDir)
  let bytes = 0
  const z: number[] = []
  const sops: string[] = []
  for (const [i, f] of small.files.entries()) {
    bytes += (await readFile(f)).length
    const inst = await readDicom(f)
    const ds = inst.dataset
    t.equal(firstString(inst.meta, TAG.TransferSyntaxUID), TRANSFER_SYNTAX.ExplicitVRLittleEndian)
    t.equal(firstString(ds, TAG.SOPClassUID), CT_IMAGE_STORAGE)
    t.equal(firstString(inst.meta, TAG.MediaStorageSOPClassUID), CT_IMAGE_STORAGE)
    t.equal(firstString(ds, TAG.StudyInstanceUID), small.studyInstanceUid)
    t.equal(firstString(ds, TAG.SeriesInstanceUID), small.seriesInstanceUid)
    t.equal(firstString(ds, TAG.FrameOfReferenceUID), small.frameOfReferenceUid)
    const sop = firstString(ds, TAG.SOPInstanceUID) as string
    t.equal(sop, small.sopInstanceUids[i])
    t.equal(firstString(inst.meta, TAG.MediaStorageSOPInstanceUID), sop)
    sops.push(sop)
    t.equal(firstNumber(ds, '00200013'), i + 1, 'InstanceNumber')
    t.same([firstNumber(ds, TAG.Rows), firstNumber(ds, TAG.Columns)], [64, 64])
    t.same(
      ['00280100', '00280101', '00280102', '00280103'].map((tag) => firstNumber(ds, tag)),
      [16, 12, 11, 0],
      'bits 16/12/11, unsigned',
    )
    t.equal(firstNumber(ds, '00281052'), -1024, 'RescaleIntercept')
    t.equal(firstNumber(ds, '00281053'), 1, 'RescaleSlope')
    t.equal(ds['00280030']?.Value?.length, 2, 'PixelSpacing')
    t.ok(firstNumber(ds, '00180050') !== undefined && firstNumber(ds, '00281050') !== undefined && firstNumber(ds, '00281051') !== undefined)
    const pos = (ds['00200032']?.Value ?? []).map(Number)
    t.equal(pos.length, 3, 'ImagePositionPatient')
    t.equal(pos[2], firstNumber(ds, '00201041'), 'SliceLocation is the z of the position')
    z.push(pos[2] as number)
  }
  t.equal(bytes, small.bytes)
  t.equal(new Set(sops).size, 5, 'a SOP Instance UID per file')
  for (const u of [small.studyInstanceUid, small.seriesInstanceUid, small.frameOfReferenceUid, ...sops]) t.match(u, UID_RE)
  t.equal(new Set([small.studyInstanceUid, small.seriesInstanceUid, small.frameOfReferenceUid]).size, 3)
  t.ok(
    z.every((v, i) => i === 0 || v > (z[i - 1] as number)),
    `z increases along the series: ${z.join(', ')}`,
  )
})

t.test('pixels: 12-bit, not constant, different per slice, reproducible from the seed', async (t) => {
  const digests: string[] = []
  for (const f of small.files) {
    const inst = await readDicom(f)
    const d = pixelDigest(inst)
    t.equal(d.frames, 1)
    t.match(d.digest, /^[0-9a-f]{64}$/)
    digests.push(d.digest)
    const px = pixels16(inst, false)
    t.equal(px.length, 64 * 64)
    t.ok(
      px.every((v) => v >= 0 && v <= 4095),
      'every value fits in 12 bits',
    )
    t.ok(new Set(px).size > 50, `many distinct values (${new Set(px).size})`)
  }
  t.equal(new Set(digests).size, 5, 'every slice differs')

  const again = await generateCtStudy({ slices: 5, rows: 64, cols: 64, out: join(await tempDir(), 'again'), seed: 1234 })
  const againDigests = await Promise.all(again.files.map(async (f) => pixelDigest(await readDicom(f)).digest))
  t.same(againDigests, digests, 'same seed, same pixels')
  t.not(again.studyInstanceUid, small.studyInstanceUid, 'fresh UIDs all the same')
  t.not(again.demographics.patientName, small.demographics.patientName)
  const other = await generateCtStudy({ slices: 1, rows: 64, cols: 64, out: join(await tempDir(), 'other'), seed: 4321 })
  t.not(pixelDigest(await readDicom(other.files[0] as string)).digest, digests[0], 'another seed, other pixels')
})

t.test('synthetic identifying values are in the files, and de-identification removes them', async (t) => {
  const d = small.demographics
  t.match(d.patientName, /^Synthetic\^Patient\d{6}$/)
  const first = await readDicom(small.files[0] as string)
  t.same(first.dataset[TAG.PatientName]?.Value, [{ Alphabetic: d.patientName }])
  t.equal(firstString(first.dataset, TAG.PatientID), d.patientId)
  t.equal(firstString(first.dataset, '00100030'), d.patientBirthDate)
  t.equal(firstString(first.dataset, '00090010'), SYNTHETIC_PRIVATE_CREATOR)
  const needles = [
    d.patientName,
    d.patientId,
    d.patientBirthDate,
    d.accessionNumber,
    d.institutionName,
    d.referringPhysicianName,
    d.studyId,
    d.privateValue,
    small.studyInstanceUid,
    small.seriesInstanceUid,
    small.frameOfReferenceUid,
  ]
  const raw = await readFile(small.files[0] as string)
  for (const n of needles) t.ok(raw.includes(Buffer.from(n)), `${n} is in the synthetic file`)

  const gen = deidentifyStudy(small.files, { secret: new Uint8Array(32).fill(3) })
  let n = 0
  for await (const out of gen) {
    const bytes = Buffer.from(writeDicom(out.instance))
    for (const s of needles) t.equal(bytes.indexOf(Buffer.from(s)), -1, `file ${n + 1}: "${s}" removed`)
    t.equal(bytes.indexOf(Buffer.from(small.sopInstanceUids[n] as string)), -1, `file ${n + 1}: SOP Instance UID replaced`)
    const ds = out.instance.dataset
    t.not(firstString(ds, TAG.PatientID), d.patientId)
    t.same(ds['00100030']?.Value ?? [], [], 'birth date emptied or removed')
    t.same(ds[TAG.PatientName]?.Value ?? [], [], 'patient name emptied or removed')
    let privates = 0
    walkElements(ds, (tag) => {
      if (isPrivateTag(tag)) privates++
    })
    t.equal(privates, 0, 'no private attribute left')
    t.equal(out.pixelDigest, pixelDigest(await readDicom(small.files[n] as string)).digest, 'pixels untouched')
    if (n === 0) {
      const f = join(await tempDir(), 'deid.dcm')
      await writeFile(f, bytes)
      await dcmdump(t, f)
    }
    n++
  }
  t.equal(n, 5)
})

t.test('dcmdump reads every file', async (t) => {
  for (const f of small.files) await dcmdump(t, f)
})

t.test('PixelRepresentation 1: signed values, intercept 0, still valid', async (t) => {
  const s = await generateCtStudy({ slices: 2, rows: 48, cols: 40, out: join(await tempDir(), 'signed'), seed: 5, pixelRepresentation: 1 })
  for (const f of s.files) {
    const inst = await readDicom(f)
    t.equal(firstNumber(inst.dataset, '00280103'), 1)
    t.equal(firstNumber(inst.dataset, '00281052'), 0)
    t.same([firstNumber(inst.dataset, TAG.Rows), firstNumber(inst.dataset, TAG.Columns)], [48, 40])
    const px = pixels16(inst, true)
    t.ok(
      px.some((v) => v < -500),
      'air is negative',
    )
    t.ok(
      px.every((v) => v >= -2048 && v <= 2047),
      'every value fits in 12 signed bits',
    )
    t.match(pixelDigest(inst).digest, /^[0-9a-f]{64}$/)
    await dcmdump(t, f)
  }
})

t.test('a 1x1 single slice is fine', async (t) => {
  const s = await generateCtStudy({ slices: 1, rows: 1, cols: 1, out: join(await tempDir(), 'one') })
  t.equal(s.files.length, 1)
  const inst = await readDicom(s.files[0] as string)
  t.equal((inst.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer).byteLength, 2)
  t.ok(Number.isInteger(s.seed))
})

t.test('bad options are refused before anything is written', async (t) => {
  const dir = await tempDir()
  const out = join(dir, 'x')
  for (const o of [
    { slices: 0 },
    { slices: 1.5 },
    { slices: -1 },
    { slices: 1, rows: 0 },
    { slices: 1, cols: 4097 },
    { slices: 1, rows: Number.NaN },
    { slices: 1, seed: -1 },
  ]) {
    await t.rejects(generateCtStudy({ ...o, out }), { name: 'RadError', code: 'SYNTHETIC_BAD_OPTIONS' }, JSON.stringify(o))
  }
  t.same(await readdir(dir), [], 'no output folder made')
  await writeFile(join(dir, 'file'), 'x')
  await t.rejects(generateCtStudy({ slices: 1, rows: 4, cols: 4, out: dir }), { name: 'RadError', code: 'SYNTHETIC_OUT_NOT_EMPTY' }, 'non-empty folder')
  await t.rejects(generateCtStudy({ slices: 1, rows: 4, cols: 4, out: join(dir, 'file') }), { name: 'RadError', code: 'SYNTHETIC_OUT_NOT_EMPTY' }, 'a file')
  t.same(await readdir(dir), ['file'], 'nothing written')
})

t.test('an aborted run stops between files', async (t) => {
  const ac = new AbortController()
  const out = join(await tempDir(), 'abort')
  await t.rejects(
    generateCtStudy({
      slices: 10,
      rows: 8,
      cols: 8,
      out,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.written === 3) ac.abort(new Error('stop'))
      },
    }),
    { message: 'stop' },
  )
  t.equal((await readdir(out)).length, 3)
})
