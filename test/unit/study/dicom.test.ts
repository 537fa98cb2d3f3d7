import t from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { data } from 'dcmjs'
import {
  StudyDeidentifier,
  StudyError,
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  firstString,
  locateTrailingPixelData,
  parseDicom,
  pixelDigest,
  readDicom,
  readStudyInstanceUid,
  toJsonDataset,
  writeDicom,
  checkPart10,
  MAX_INFLATED_BYTES,
} from '../../../src/study/index.js'
import { CT_STUDY, SAMPLES, bareDataset, deflatedFile, reencoded, sample, sampleFiles, trailingPadding } from './helpers.js'

const tmp = mkdtempSync(join(tmpdir(), 'radchain-dicom-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

const PINNED: Record<string, string> = Object.fromEntries(
  readFileSync(join(SAMPLES, 'README.md'), 'utf8')
    .split('\n')
    .map((l) => /^([0-9a-f]{64}) {2}(\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[2] as string, m[1] as string]),
)

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'OK'
  } catch (err) {
    if (err instanceof StudyError) return err.code
    throw err
  }
}

t.test('reads every sample file, with its UIDs and pixel data', async (t) => {
  const files = sampleFiles()
  t.equal(files.length, 10, 'ten sample files')
  t.same(Object.keys(PINNED).sort(), files, 'README pins every sample')
  for (const f of files) {
    const bytes = readFileSync(sample(f))
    t.equal(createHash('sha256').update(bytes).digest('hex'), PINNED[f], `${f}: bytes as pinned`)
    const inst = await readDicom(sample(f))
    t.equal(inst.path, sample(f))
    for (const tag of [TAG.StudyInstanceUID, TAG.SeriesInstanceUID, TAG.SOPInstanceUID]) {
      t.match(inst.dataset[tag]?.Value?.[0], /^[0-9.]+$/, `${f}: ${tag}`)
    }
    t.ok(inst.dataset[TAG.PixelData], `${f}: Pixel Data`)
    t.equal(inst.meta[TAG.MediaStorageSOPInstanceUID]?.Value?.[0], inst.dataset[TAG.SOPInstanceUID]?.Value?.[0])
  }
  const ct = await readDicom(sample('CT_small.dcm'))
  t.same(ct.dataset[TAG.PatientName]?.Value, [{ Alphabetic: 'CompressedSamples^CT1' }])
  t.equal(ct.dataset['00101002']?.Value?.length, 2, 'nested Other Patient IDs Sequence read')
  const implicit = await readDicom(sample('MR_small_implicit.dcm'))
  t.equal(implicit.meta[TAG.TransferSyntaxUID]?.Value?.[0], TRANSFER_SYNTAX.ImplicitVRLittleEndian)
})

t.test('writeDicom gives Part 10 bytes that read back to the same dataset', async (t) => {
  for (const f of sampleFiles()) {
    const inst = await readDicom(sample(f))
    const bytes = writeDicom(inst)
    t.ok(bytes instanceof Uint8Array)
    t.equal(Buffer.from(bytes.subarray(128, 132)).toString('latin1'), 'DICM', `${f}: DICM marker`)
    t.equal(checkPart10(bytes), inst.meta[TAG.TransferSyntaxUID]?.Value?.[0], `${f}: same transfer syntax`)
    const back = parseDicom(bytes)
    t.same(toJsonDataset(back.dataset), toJsonDataset(inst.dataset), `${f}: dataset unchanged`)
  }
})

t.test('bad files give the right DICOM_* code and name the file', async (t) => {
  const ct = readFileSync(sample('CT_small.dcm'))
  const cases: { name: string; bytes: Uint8Array; code: string }[] = [
    { name: 'truncated.dcm', bytes: ct.subarray(0, Math.floor(ct.length / 2)), code: 'DICOM_TRUNCATED' },
    { name: 'random.bin', bytes: new Uint8Array(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251)), code: 'DICOM_NOT_PART10' },
    { name: 'notes.txt', bytes: Buffer.from('Patient notes\n'.repeat(40)), code: 'DICOM_NOT_PART10' },
    { name: 'empty.dcm', bytes: new Uint8Array(0), code: 'DICOM_NOT_PART10' },
    { name: 'meta-only.dcm', bytes: ct.subarray(0, 132), code: 'DICOM_TRUNCATED' },
    {
      name: 'garbage-after-dicm.dcm',
      bytes: Buffer.concat([ct.subarray(0, 132), Buffer.from('\x02\x00\x10\x00??\x10\x00' + 'x'.repeat(64), 'latin1')]),
      code: 'DICOM_UNREADABLE',
    },
  ]
  // Cut exactly before the Pixel Data element: no element is cut, the image is.
  const pixelAt = ct.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57]))
  t.ok(pixelAt > 0)
  cases.push({ name: 'cut-before-pixels.dcm', bytes: ct.subarray(0, pixelAt), code: 'DICOM_TRUNCATED' })
  for (const c of cases) {
    const p = join(tmp, c.name)
    writeFileSync(p, c.bytes)
    const err = await readDicom(p).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.type(err, StudyError, c.name)
    if (!(err instanceof StudyError)) continue
    t.equal(err.name, 'StudyError')
    t.equal(err.code, c.code, `${c.name}: ${err.message}`)
    t.equal(err.path, p)
    t.ok(err.message.startsWith(p), `${c.name}: message names the file`)
  }
  t.equal(await codeOf(readDicom(join(tmp, 'does-not-exist.dcm'))), 'DICOM_UNREADABLE')
  t.equal(await codeOf(readDicom(tmp)), 'DICOM_UNREADABLE', 'a folder is not a file')
  t.equal(await codeOf(readDicom(sample('CT_small.dcm'), { maxBytes: 1000 })), 'DICOM_TOO_LARGE')

  const inst = await readDicom(sample('MR_small.dcm'))
  const noSop = cloneInstance(inst)
  delete noSop.dataset[TAG.SOPInstanceUID]
  const p = join(tmp, 'no-sop.dcm')
  writeFileSync(p, writeDicom(noSop))
  const err = await readDicom(p).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof StudyError && err.code === 'DICOM_MISSING_UID' && err.message.includes('(0008,0018)'), 'missing SOP Instance UID named')
  t.equal((await readDicom(p, { requireUids: false })).dataset[TAG.SOPInstanceUID], undefined, 'readable when UIDs are not required')
})

t.test('a cut at any offset before the end of the pixel data is refused', async (t) => {
  const ct = readFileSync(sample('CT_small.dcm'))
  const pixelEnd = ct.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57])) + 12 + 128 * 128 * 2
  const seen = new Map<string, number>()
  for (let n = 0; n < ct.length; n += 7) {
    const code = await codeOf(Promise.resolve().then(() => parseDicom(ct.subarray(0, n), `cut-${n}`)))
    seen.set(code, (seen.get(code) ?? 0) + 1)
    if (code === 'OK' && n < pixelEnd) t.fail(`cut at ${n} parsed`)
  }
  t.ok((seen.get('DICOM_TRUNCATED') ?? 0) > 5000, 'most cuts are DICOM_TRUNCATED')
  t.same([...seen.keys()].sort(), ['DICOM_NOT_PART10', 'DICOM_TRUNCATED'], 'no other outcome')
  // Only the 126-byte Data Set Trailing Padding follows the pixels; cutting it
  // at an element boundary loses nothing.
  t.equal(await codeOf(Promise.resolve().then(() => parseDicom(ct.subarray(0, pixelEnd)))), 'OK')
})

t.test('corrupted bytes give a StudyError or a dataset, never another exception', async (t) => {
  const mr = new Uint8Array(readFileSync(sample('MR_small.dcm')))
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(mr.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
      const b = mr.slice()
      for (const [i, v] of edits) b[i] = v
      try {
        parseDicom(b)
      } catch (err) {
        if (!(err instanceof StudyError)) throw err
      }
    }),
    { numRuns: 300, seed: 42 },
  )
  t.pass('300 corrupted copies handled')
})

t.test('Explicit VR Big Endian: dcmjs writes it, keeps binary values as held', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const be = cloneInstance(mr)
  be.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [TRANSFER_SYNTAX.ExplicitVRBigEndian] }
  const bytes = writeDicom(be)
  const dict = data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer)
  t.same(dict.dict[TAG.Rows]?.Value, [64], 'dcmjs reads its big-endian output')
  const back = parseDicom(bytes)
  t.same(back.dataset[TAG.Rows]?.Value, mr.dataset[TAG.Rows]?.Value)
  t.same(new Uint8Array(back.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer), new Uint8Array(mr.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer))
})

t.test('a bare implicit VR little endian dataset (no preamble, no file meta) is read, de-identifies and round-trips', async (t) => {
  let fastPath = 0
  for (const file of [sample('MR_small.dcm'), sample('CT_small.dcm'), ...CT_STUDY]) {
    const orig = await readDicom(file)
    const bare = bareDataset(orig)
    t.not(Buffer.from(bare.subarray(128, 132)).toString('latin1'), 'DICM', `${file}: no Part 10 prefix`)
    t.same([...bare.subarray(0, 2)], [0x08, 0x00], 'the first element is in group 0008')
    const p = join(tmp, `bare-${createHash('sha256').update(file).digest('hex').slice(0, 8)}`)
    writeFileSync(p, bare)
    if (locateTrailingPixelData(bare.subarray(0, 64 * 1024), bare.length) !== undefined) fastPath++

    t.equal(checkPart10(bare), TRANSFER_SYNTAX.ImplicitVRLittleEndian)
    const inst = await readDicom(p)
    t.equal(inst.path, p)
    t.equal(firstString(inst.meta, TAG.TransferSyntaxUID), TRANSFER_SYNTAX.ImplicitVRLittleEndian, 'implicit VR little endian')
    t.equal(firstString(inst.meta, TAG.MediaStorageSOPClassUID), firstString(orig.dataset, TAG.SOPClassUID), 'Media Storage SOP Class UID from (0008,0016)')
    t.equal(
      firstString(inst.meta, TAG.MediaStorageSOPInstanceUID),
      firstString(orig.dataset, TAG.SOPInstanceUID),
      'Media Storage SOP Instance UID from (0008,0018)',
    )
    // The dataset a Part 10 implicit VR file of it gives (implicit VR reads some VRs differently from the explicit original).
    const implicit = parseDicom(writeDicom(reencoded(orig, TRANSFER_SYNTAX.ImplicitVRLittleEndian)))
    t.same(toJsonDataset(inst.dataset), toJsonDataset(implicit.dataset), 'the same dataset as its Part 10 file')
    t.same(toJsonDataset(parseDicom(bare, p).dataset), toJsonDataset(inst.dataset), 'parseDicom gives it too')
    t.equal(pixelDigest(inst).digest, pixelDigest(orig).digest, 'the same pixel digest')
    t.equal(await readStudyInstanceUid(p), firstString(orig.dataset, TAG.StudyInstanceUID))

    const deid = new StudyDeidentifier({ secret: new Uint8Array(32).fill(3) }).deidentify(inst)
    t.equal(deid.pixelDigest, pixelDigest(orig).digest, 'de-identifies with its pixels')
    t.not(firstString(deid.instance.dataset, TAG.SOPInstanceUID), firstString(orig.dataset, TAG.SOPInstanceUID), 'new UIDs')
    t.equal(firstString(deid.instance.meta, TAG.MediaStorageSOPInstanceUID), firstString(deid.instance.dataset, TAG.SOPInstanceUID))

    const written = writeDicom(inst)
    t.equal(Buffer.from(written.subarray(128, 132)).toString('latin1'), 'DICM', 'written as a Part 10 file')
    const back = parseDicom(written)
    t.same(toJsonDataset(back.dataset), toJsonDataset(inst.dataset), 'reads back to the same dataset')
    for (const tag of [TAG.TransferSyntaxUID, TAG.MediaStorageSOPClassUID, TAG.MediaStorageSOPInstanceUID]) {
      t.equal(firstString(back.meta, tag), firstString(inst.meta, tag), `with the file meta it was given: ${tag}`)
    }
  }
  t.ok(fastPath > 0, 'the pixels of a bare dataset can be read on their own as well')
})

t.test('bytes that are neither Part 10 nor a bare implicit VR dataset are refused as before', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const part10 = Buffer.from(writeDicom(mr))
  const explicitBare = part10.subarray(132 + 12 + part10.readUInt32LE(140))
  t.equal(explicitBare.subarray(4, 6).toString('latin1'), 'CS', 'the explicit VR dataset alone starts with a VR')
  const bare = Buffer.from(bareDataset(mr))
  const header = (group: number, elem: number, length: number): Buffer => {
    const b = Buffer.alloc(8)
    b.writeUInt16LE(group, 0)
    b.writeUInt16LE(elem, 2)
    b.writeUInt32LE(length, 4)
    return b
  }
  const filler = Buffer.alloc(64, 0x31)
  const cases: [string, Uint8Array, string][] = [
    ['explicit VR dataset without meta', explicitBare, 'DICOM_NOT_PART10'],
    ['first element outside group 0008', Buffer.concat([header(0x0010, 0x0010, 8), filler]), 'DICOM_NOT_PART10'],
    ['first element after SOP Instance UID', Buffer.concat([header(0x0008, 0x0020, 8), filler]), 'DICOM_NOT_PART10'],
    ['first length past the end', Buffer.concat([header(0x0008, 0x0005, 1000), filler]), 'DICOM_NOT_PART10'],
    ['odd first length', Buffer.concat([header(0x0008, 0x0005, 9), filler]), 'DICOM_NOT_PART10'],
    ['undefined first length', Buffer.concat([header(0x0008, 0x0005, 0xffffffff), filler]), 'DICOM_NOT_PART10'],
    ['one empty element of group 0008: read, but without UIDs', header(0x0008, 0x0005, 0), 'DICOM_MISSING_UID'],
    ['a bare dataset cut short', bare.subarray(0, Math.floor(bare.length / 2)), 'DICOM_TRUNCATED'],
    [
      'a bare dataset with garbage after its first element',
      Buffer.concat([bare.subarray(0, 8 + bare.readUInt32LE(4)), Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0])]),
      'DICOM_UNREADABLE',
    ],
  ]
  for (const [name, bytes, code] of cases) {
    t.equal(await codeOf(Promise.resolve().then(() => parseDicom(bytes, name))), code, name)
  }
  // Random bytes, and random bytes behind a plausible first element: a StudyError (mostly DICOM_NOT_PART10) or a dataset, nothing else.
  const seen = new Set<string>()
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 600 }), (plausible, rest) => {
      const bytes = plausible ? Buffer.concat([header(0x0008, 0x0005, 10), rest]) : rest
      try {
        parseDicom(bytes)
        seen.add('OK')
      } catch (err) {
        if (!(err instanceof StudyError)) throw err
        seen.add(err.code)
      }
    }),
    { numRuns: 500, seed: 7 },
  )
  t.ok(seen.has('DICOM_NOT_PART10'), `random bytes refused (${[...seen].join(', ')})`)
  const mutated = new Uint8Array(bare)
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(mutated.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
      const b = mutated.slice()
      for (const [i, v] of edits) b[i] = v
      try {
        parseDicom(b)
      } catch (err) {
        if (!(err instanceof StudyError)) throw err
      }
    }),
    { numRuns: 300, seed: 43 },
  )
})

t.test(
  'Deflated Explicit VR Little Endian: read like the same dataset uncompressed; one that inflates past MAX_INFLATED_BYTES is refused before it is inflated whole',
  async (t) => {
    const mr = await readDicom(sample('MR_small.dcm'))
    const p = join(tmp, 'deflated.dcm')
    const bytes = await deflatedFile(mr)
    writeFileSync(p, bytes)
    t.equal(checkPart10(bytes), TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian)
    const back = await readDicom(p)
    t.equal(back.meta[TAG.TransferSyntaxUID]?.Value?.[0], TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian)
    t.same(toJsonDataset(back.dataset), toJsonDataset(mr.dataset), 'the same dataset as the uncompressed file')
    t.equal(pixelDigest(back).digest, pixelDigest(mr).digest, 'the same pixels')

    // A deflate bomb: under 1 MB of deflate that claims a padding element of 576 MiB.
    const claimed = 2 * MAX_INFLATED_BYTES + 64 * 1024 * 1024
    const bomb = await deflatedFile(mr, trailingPadding(claimed))
    t.ok(bomb.length < 1024 * 1024, `the bomb is ${bomb.length} bytes`)
    const bombPath = join(tmp, 'bomb.dcm')
    writeFileSync(bombPath, bomb)
    const rss = process.memoryUsage().rss
    const err = await readDicom(bombPath).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof StudyError && err.code === 'DICOM_TOO_LARGE', `refused: ${String(err)}`)
    t.match(String(err), `more than the bound of ${MAX_INFLATED_BYTES} bytes`)
    t.match(String(err), bombPath, 'names the file')
    t.ok(
      process.memoryUsage().rss - rss < claimed,
      `the whole claim was never held (rss grew by ${((process.memoryUsage().rss - rss) / 2 ** 20).toFixed(0)} MiB)`,
    )

    // Inside the bound, the padding is read (a legitimate file with a large dataset).
    const padded = await deflatedFile(mr, trailingPadding(8 * 1024 * 1024))
    t.same(toJsonDataset(parseDicom(padded).dataset)[TAG.SOPInstanceUID], toJsonDataset(mr.dataset)[TAG.SOPInstanceUID])

    // Deflate that does not inflate, and a dataset cut inside the deflate stream.
    const metaEnd = 132 + 12 + Buffer.from(bytes).readUInt32LE(140)
    const broken = Buffer.from(bytes)
    broken.fill(0xff, metaEnd, metaEnd + 64)
    t.equal(
      codeOfSync(() => parseDicom(broken)),
      'DICOM_UNREADABLE',
      'corrupt deflate',
    )
    const cut = await deflatedFile(mr)
    const inflatedCut = await deflatedFile(mr, [Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0, 0xff, 0, 0, 0])])
    t.equal(
      codeOfSync(() => parseDicom(inflatedCut)),
      'DICOM_TRUNCATED',
      'an element that runs past the inflated end',
    )
    t.equal(
      codeOfSync(() => parseDicom(cut.subarray(0, cut.length - 16))),
      'DICOM_UNREADABLE',
      'a deflate stream cut short',
    )
  },
)

function codeOfSync(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return err instanceof StudyError ? err.code : `not a StudyError: ${String(err)}`
  }
}
