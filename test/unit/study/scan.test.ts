import t from 'tap'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MEDIA_STORAGE_DIRECTORY_SOP_CLASS,
  StudyError,
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  pixelDigest,
  readDicom,
  scanInputs,
  writeDicom,
  type ScanProgress,
  type ScanResult,
} from '../../../src/study/index.js'
import { CT_STUDY, SAMPLES, bareDataset, reencoded, sample } from './helpers.js'

const tmp = mkdtempSync(join(tmpdir(), 'radchain-scan-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

const CR_STUDY = '1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1'
const CT_STUDY_UID = '1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.1'

t.test('study-77654033 groups into exactly two studies of 3 and 4 instances', async (t) => {
  const progress: ScanProgress[] = []
  const r = await scanInputs([sample('study-77654033')], { onProgress: (p) => progress.push(p) })
  t.same(r.bad, [])
  t.same(r.skipped, [])
  t.equal(r.studies.size, 2)
  t.same([...r.studies.values()].map((v) => v.length).sort(), [3, 4])
  t.same(
    r.studies.get(CR_STUDY),
    ['CR1/6154', 'CR2/6247', 'CR3/6278'].map((f) => sample(`study-77654033/${f}`)),
  )
  t.same(
    r.studies.get(CT_STUDY_UID),
    ['17106', '17136', '17166', '17196'].map((f) => sample(`study-77654033/CT2/${f}`)),
  )
  t.equal(progress.length, 7)
  t.same(
    progress.map((p) => p.scanned),
    [1, 2, 3, 4, 5, 6, 7],
  )
  t.ok(progress.every((p) => p.total === 7))
})

t.test('files and folders mixed; non-DICOM files reported, not thrown', async (t) => {
  const r = await scanInputs([SAMPLES, sample('CT_small.dcm')])
  t.equal(r.studies.size, 4, 'CT_small, MR_small, and the two of study-77654033')
  t.same(r.studies.get('1.3.6.1.4.1.5962.1.2.4.20040826185059.5457'), [sample('MR_small.dcm')], 'one image of MR_small in two encodings: kept once')
  t.equal([...r.studies.values()].flat().length, 9, 'CT_small named twice is scanned once')
  t.same(
    r.bad.map((b) => [b.path, b.error.code]),
    [
      [sample('MR_small_implicit.dcm'), 'DICOM_DUPLICATE_INSTANCE'],
      [join(SAMPLES, 'README.md'), 'DICOM_NOT_PART10'],
    ],
  )
})

t.test('the same SOP Instance UID twice in a study: the later file is left out, and says which file it repeats', async (t) => {
  const root = join(tmp, 'duplicates')
  const first = CT_STUDY[0] as string
  const orig = await readDicom(first)
  const otherPixels = cloneInstance(orig)
  const px = new Uint8Array(orig.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer).slice()
  px[0] = (px[0] as number) ^ 0xff
  otherPixels.dataset[TAG.PixelData] = { vr: 'OW', Value: [px.buffer] }
  t.not(pixelDigest(otherPixels).digest, pixelDigest(orig).digest)
  // As a PACS exports it: the study once as stored, and the first image again in other transfer syntaxes.
  const files = {
    original: join(root, 'a', 'IM1'),
    implicit: join(root, 'b', 'IM1'),
    bigEndian: join(root, 'c', 'IM1'),
    bare: join(root, 'd', 'IM1'),
    otherPixels: join(root, 'e', 'IM1'),
  }
  for (const d of ['a', 'b', 'c', 'd', 'e']) mkdirSync(join(root, d), { recursive: true })
  copyFileSync(first, files.original)
  writeFileSync(files.implicit, writeDicom(reencoded(orig, TRANSFER_SYNTAX.ImplicitVRLittleEndian)))
  writeFileSync(files.bigEndian, writeDicom(reencoded(orig, TRANSFER_SYNTAX.ExplicitVRBigEndian)))
  writeFileSync(files.bare, bareDataset(orig))
  writeFileSync(files.otherPixels, writeDicom(otherPixels))
  for (const [i, f] of CT_STUDY.slice(1).entries()) copyFileSync(f, join(root, 'a', `IM${i + 2}`))

  const expect = (r: ScanResult, what: string): void => {
    t.same([...r.studies.values()], [[files.original, ...[2, 3, 4].map((i) => join(root, 'a', `IM${i}`))]], `${what}: the study once, with the first copy`)
    t.same(
      r.bad.map((b) => [b.path, b.error.code]),
      [
        [files.implicit, 'DICOM_DUPLICATE_INSTANCE'],
        [files.bigEndian, 'DICOM_DUPLICATE_INSTANCE'],
        [files.bare, 'DICOM_DUPLICATE_INSTANCE'],
        [files.otherPixels, 'DICOM_DUPLICATE_UID'],
      ],
      `${what}: same pixels, a duplicate instance; other pixels, a duplicate UID`,
    )
    for (const b of r.bad) {
      t.type(b.error, StudyError)
      t.equal(b.error.path, b.path)
      t.ok(b.error.message.startsWith(b.path) && b.error.message.includes(files.original), `${what}: ${b.path}: the message names both files`)
      t.notOk(b.error.message.includes(orig.dataset[TAG.SOPInstanceUID]?.Value?.[0] as string), 'and not the UID')
    }
    t.same(r.skipped, [])
  }
  expect(await scanInputs([root]), 'the folder')
  // Which copy is the later one follows the paths, not the order they are given in.
  expect(await scanInputs([...Object.values(files)].reverse().concat([2, 3, 4].map((i) => join(root, 'a', `IM${i}`)))), 'the files in reverse order')

  // The copy with other pixels first: it is kept, and every other copy differs from it.
  const early = join(root, '0-other', 'IM1')
  mkdirSync(join(root, '0-other'))
  writeFileSync(early, writeDicom(otherPixels))
  const r = await scanInputs([root])
  t.same(r.studies.get(orig.dataset[TAG.StudyInstanceUID]?.Value?.[0] as string)?.[0], early)
  t.same(
    r.bad.map((b) => [b.path, b.error.code]),
    [
      [files.original, 'DICOM_DUPLICATE_UID'],
      [files.implicit, 'DICOM_DUPLICATE_UID'],
      [files.bigEndian, 'DICOM_DUPLICATE_UID'],
      [files.bare, 'DICOM_DUPLICATE_UID'],
      [files.otherPixels, 'DICOM_DUPLICATE_INSTANCE'],
    ],
  )
  t.ok(
    r.bad.every((b) => b.error.message.includes(early)),
    'each names the kept file',
  )
})

t.test('bad, nested and DICOMDIR files', async (t) => {
  const root = join(tmp, 'input')
  mkdirSync(join(root, 'a', 'b'), { recursive: true })
  copyFileSync(sample('MR_small.dcm'), join(root, 'a', 'b', 'IM0001'))
  copyFileSync(sample('study-77654033/CR1/6154'), join(root, 'a', 'IM0002'))
  const ct = readFileSync(sample('CT_small.dcm'))
  writeFileSync(join(root, 'a', 'truncated'), ct.subarray(0, 20000))
  writeFileSync(
    join(root, 'random.bin'),
    new Uint8Array(2048).map((_, i) => (i * 31 + 7) & 0xff),
  )
  writeFileSync(join(root, 'notes.txt'), 'not an image\n')
  symlinkSync(join(root, 'a'), join(root, 'loop'))
  // A DICOMDIR: Media Storage Directory, no study.
  const dir = {
    meta: {
      [TAG.MediaStorageSOPClassUID]: { vr: 'UI', Value: [MEDIA_STORAGE_DIRECTORY_SOP_CLASS] },
      [TAG.MediaStorageSOPInstanceUID]: { vr: 'UI', Value: ['1.2.3.4'] },
    },
    dataset: { '00041130': { vr: 'CS', Value: ['RADCHAIN'] } },
  }
  writeFileSync(join(root, 'DICOMDIR'), writeDicom(dir))

  const r = await scanInputs([root, join(tmp, 'missing-folder')])
  t.equal(r.studies.size, 2)
  t.same([...r.studies.values()].flat().sort(), [join(root, 'a', 'IM0002'), join(root, 'a', 'b', 'IM0001')].sort(), 'symlinked folder not followed twice')
  const codes = Object.fromEntries(r.bad.map((b) => [b.path, b.error.code]))
  t.same(codes, {
    [join(tmp, 'missing-folder')]: 'DICOM_UNREADABLE',
    [join(root, 'a', 'truncated')]: 'DICOM_TRUNCATED',
    [join(root, 'random.bin')]: 'DICOM_NOT_PART10',
    [join(root, 'notes.txt')]: 'DICOM_NOT_PART10',
  })
  for (const b of r.bad) {
    t.type(b.error, StudyError)
    t.ok(b.error.message.includes(b.path), 'error names the file')
  }
  t.same(r.skipped.map((s) => s.path).sort(), [join(root, 'DICOMDIR'), join(root, 'loop')].sort())
})

t.test('a link to a folder elsewhere is followed; a link back into a folder already walked is not', async (t) => {
  const root = join(tmp, 'linked-input')
  const elsewhere = join(tmp, 'elsewhere')
  mkdirSync(join(root, 'series'), { recursive: true })
  mkdirSync(elsewhere, { recursive: true })
  copyFileSync(sample('MR_small.dcm'), join(root, 'series', 'IM0001'))
  copyFileSync(sample('study-77654033/CR1/6154'), join(elsewhere, 'IM0002'))
  symlinkSync(elsewhere, join(root, 'more'))
  symlinkSync(root, join(root, 'series', 'up'))
  const r = await scanInputs([root])
  t.same(
    [...r.studies.values()].flat().sort(),
    [join(root, 'more', 'IM0002'), join(root, 'series', 'IM0001')].sort(),
    'the image behind the link is in, each file once',
  )
  t.same(r.bad, [])
  t.same(
    r.skipped.map((s) => s.path),
    [join(root, 'series', 'up')],
    'the loop is reported, not walked',
  )
})

t.test("each study's Patient ID and issuer, or 'mixed' when its files disagree; spaces around a value do not count", async (t) => {
  const samples = await scanInputs([sample('study-77654033')])
  const pid = (await readDicom(CT_STUDY[0] as string)).dataset[TAG.PatientID]?.Value?.[0] as string
  t.ok(pid.length > 0)
  t.same(samples.patients.get(CT_STUDY_UID), { patientId: pid, issuer: '' }, 'the CT: its Patient ID, no issuer')
  t.same(samples.patients.get(CR_STUDY), { patientId: pid, issuer: '' }, 'the CR: the same patient')
  /** The CT study in `name`, its files' Patient ID and issuer set by `set` (file index → [id, issuer]; absent: unchanged). */
  const study = async (name: string, set: Record<number, [string, string]>): Promise<string> => {
    const root = join(tmp, 'patients', name)
    mkdirSync(root, { recursive: true })
    for (const [i, f] of CT_STUDY.entries()) {
      const inst = await readDicom(f)
      const v = set[i]
      if (v !== undefined) {
        inst.dataset[TAG.PatientID] = { vr: 'LO', Value: [v[0]] }
        inst.dataset[TAG.IssuerOfPatientID] = { vr: 'LO', Value: [v[1]] }
      }
      writeFileSync(join(root, `IM${i}`), writeDicom(inst))
    }
    return root
  }
  const all = (id: string, issuer: string): Record<number, [string, string]> => ({ 0: [id, issuer], 1: [id, issuer], 2: [id, issuer], 3: [id, issuer] })
  const of = async (root: string): Promise<unknown> => (await scanInputs([root])).patients.get(CT_STUDY_UID)
  t.same(await of(await study('agree', { ...all('P-1', 'ISS'), 2: ['P-1 ', ' ISS'] })), { patientId: 'P-1', issuer: 'ISS' }, 'all agree')
  t.equal(await of(await study('other-id', { ...all('P-1', 'ISS'), 3: ['P-2', 'ISS'] })), 'mixed', 'one file names another Patient ID')
  t.equal(await of(await study('other-issuer', { ...all('P-1', 'ISS'), 1: ['P-1', 'ISS-B'] })), 'mixed', 'one file names another issuer')
  t.equal(await of(await study('some-without', { 0: ['P-1', 'ISS'] })), 'mixed', 'one file names one, the others another')
  // A later copy of an instance, left out of the study, does not count.
  const dup = await study('duplicate', all('P-1', ''))
  const copy = await readDicom(join(dup, 'IM0'))
  copy.dataset[TAG.PatientID] = { vr: 'LO', Value: ['P-9'] }
  writeFileSync(join(dup, 'IM9'), writeDicom(copy))
  const r = await scanInputs([dup])
  t.same(
    r.bad.map((b) => b.error.code),
    ['DICOM_DUPLICATE_INSTANCE'],
  )
  t.same(r.patients.get(CT_STUDY_UID), { patientId: 'P-1', issuer: '' }, 'the copy left out names no patient of the study')
})

t.test('an aborted scan rejects', async (t) => {
  const ac = new AbortController()
  ac.abort(new Error('stop'))
  await t.rejects(scanInputs([SAMPLES], { signal: ac.signal }), { message: 'stop' })
})
