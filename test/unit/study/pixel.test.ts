import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import {
  STUDY_DIGEST_PREFIX,
  StudyDeidentifier,
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  firstString,
  instanceDigestOfBytes,
  nativePixelLayout,
  parseDicom,
  pixelDigest,
  readDicom,
  studyDigest,
  writeDicom,
  type DicomInstance,
} from '../../../src/study/index.js'
import { reencoded, sample, sampleFiles } from './helpers.js'

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const Vectors = z.object({
  pixel: z.array(z.object({ file: z.string(), transferSyntax: z.string(), frames: z.number(), digest: hex64 })).min(5),
  study: z
    .array(
      z.object({
        name: z.string(),
        instances: z.array(z.object({ sopInstanceUid: z.string(), digest: hex64 })),
        digest: hex64,
      }),
    )
    .min(2),
})
const vectors = Vectors.parse(JSON.parse(readFileSync(new URL('../../vectors/dicom-digests.json', import.meta.url), 'utf8')))

function pixelBytes(inst: DicomInstance): Uint8Array {
  return new Uint8Array(inst.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer)
}

t.test('pixel digests match the pinned (dcmtk-computed) vectors', async (t) => {
  for (const v of vectors.pixel) {
    const d = pixelDigest(await readDicom(sample(v.file)))
    t.same(
      { digest: d.digest, transferSyntax: d.transferSyntax, frames: d.frames },
      { digest: v.digest, transferSyntax: v.transferSyntax, frames: v.frames },
      v.file,
    )
    t.equal(d.element, TAG.PixelData)
  }
})

t.test('MR_small.dcm and MR_small_implicit.dcm give one digest', async (t) => {
  const a = await readDicom(sample('MR_small.dcm'))
  const b = await readDicom(sample('MR_small_implicit.dcm'))
  t.not(a.meta[TAG.TransferSyntaxUID]?.Value?.[0], b.meta[TAG.TransferSyntaxUID]?.Value?.[0])
  t.equal(pixelDigest(a).digest, pixelDigest(b).digest)
  t.not(
    createHash('sha256')
      .update(readFileSync(sample('MR_small.dcm')))
      .digest('hex'),
    createHash('sha256')
      .update(readFileSync(sample('MR_small_implicit.dcm')))
      .digest('hex'),
    'the files differ',
  )
})

t.test('a big-endian re-encoding of MR_small gives the same digest', async (t) => {
  const le = await readDicom(sample('MR_small.dcm'))
  // dcmjs writes Explicit VR Big Endian but keeps OW values as held, so the
  // 16-bit pixel words are swapped here, as a big-endian file holds them.
  const be = cloneInstance(le)
  const px = pixelBytes(le)
  const swapped = new Uint8Array(px.length)
  for (let i = 0; i < px.length; i += 2) {
    swapped[i] = px[i + 1] as number
    swapped[i + 1] = px[i] as number
  }
  be.dataset[TAG.PixelData] = { vr: 'OW', Value: [swapped.buffer] }
  be.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [TRANSFER_SYNTAX.ExplicitVRBigEndian] }
  const bytes = Buffer.from(writeDicom(be))
  const back = parseDicom(bytes)
  t.equal(back.meta[TAG.TransferSyntaxUID]?.Value?.[0], TRANSFER_SYNTAX.ExplicitVRBigEndian)
  t.same(back.dataset[TAG.Rows]?.Value, [64], 'numbers read back from big endian')
  t.ok(bytes.indexOf(Buffer.from(swapped.subarray(0, 32))) > 0, 'the file holds the big-endian words')
  t.equal(bytes.indexOf(Buffer.from(px.subarray(0, 32))), -1, 'and not the little-endian ones')
  t.not(createHash('sha256').update(pixelBytes(back)).digest('hex'), pixelDigest(le).digest, 'a digest of the raw element would differ')
  const d = pixelDigest(back)
  t.equal(d.digest, pixelDigest(le).digest)
  t.equal(d.digest, vectors.pixel.find((v) => v.file === 'MR_small.dcm')?.digest)
  t.equal(d.transferSyntax, TRANSFER_SYNTAX.ExplicitVRBigEndian)
})

t.test('de-identification keeps the pixel digest', async (t) => {
  const orig = await readDicom(sample('CT_small.dcm'))
  const out = new StudyDeidentifier().deidentify(orig)
  t.equal(out.pixelDigest, pixelDigest(orig).digest)
  t.equal(out.pixel.digest, out.pixelDigest)
  t.equal(pixelDigest(parseDicom(writeDicom(out.instance))).digest, out.pixelDigest)
})

t.test('native frames: padding ignored, short data refused, 8-bit big endian not swapped', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const padded = cloneInstance(mr)
  padded.dataset[TAG.PixelData] = { vr: 'OW', Value: [Buffer.concat([pixelBytes(mr), Buffer.alloc(2)]).buffer] }
  t.equal(pixelDigest(padded).digest, pixelDigest(mr).digest, 'bytes past the last frame are not hashed')
  const short = cloneInstance(mr)
  short.dataset[TAG.PixelData] = { vr: 'OW', Value: [pixelBytes(mr).slice(0, 100).buffer] }
  t.throws(() => pixelDigest(short), { name: 'StudyError', code: 'DICOM_TRUNCATED' })
  const noRows = cloneInstance(mr)
  delete noRows.dataset[TAG.Rows]
  t.throws(() => pixelDigest(noRows), { code: 'DICOM_UNSUPPORTED' })

  const rgb = (ts: string): DicomInstance => ({
    meta: { [TAG.TransferSyntaxUID]: { vr: 'UI', Value: [ts] } },
    dataset: {
      [TAG.SamplesPerPixel]: { vr: 'US', Value: [3] },
      [TAG.Rows]: { vr: 'US', Value: [2] },
      [TAG.Columns]: { vr: 'US', Value: [2] },
      [TAG.BitsAllocated]: { vr: 'US', Value: [8] },
      [TAG.NumberOfFrames]: { vr: 'IS', Value: ['2'] },
      [TAG.PixelData]: { vr: 'OB', Value: [new Uint8Array(24).map((_, i) => i).buffer] },
    },
  })
  const expected = createHash('sha256')
    .update(new Uint8Array(24).map((_, i) => i))
    .digest('hex')
  t.equal(pixelDigest(rgb(TRANSFER_SYNTAX.ExplicitVRLittleEndian)).digest, expected)
  t.equal(pixelDigest(rgb(TRANSFER_SYNTAX.ExplicitVRBigEndian)).digest, expected)
  t.equal(pixelDigest(rgb(TRANSFER_SYNTAX.ExplicitVRBigEndian)).frames, 2)
  t.same(
    pixelDigest({ meta: {}, dataset: {} }),
    {
      digest: createHash('sha256').digest('hex'),
      transferSyntax: TRANSFER_SYNTAX.ExplicitVRLittleEndian,
      frames: 0,
      element: null,
    },
    'no pixel data',
  )
})

t.test('encapsulated pixel data: digest of the frame bitstreams, through a Part 10 round trip', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const jpeg = cloneInstance(mr)
  const f1 = new Uint8Array([0xff, 0xd8, 1, 2, 3, 4, 0xff, 0xd9])
  const f2 = new Uint8Array([0xff, 0xd8, 5, 6, 7, 8, 0xff, 0xd9])
  jpeg.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: ['1.2.840.10008.1.2.4.50'] }
  jpeg.dataset[TAG.NumberOfFrames] = { vr: 'IS', Value: ['2'] }
  jpeg.dataset[TAG.PixelData] = { vr: 'OB', Value: [f1.slice().buffer, f2.slice().buffer] }
  const expected = createHash('sha256').update(f1).update(f2).digest('hex')
  const d = pixelDigest(jpeg)
  t.same(d, { digest: expected, transferSyntax: '1.2.840.10008.1.2.4.50', frames: 2, element: TAG.PixelData })
  const back = parseDicom(writeDicom(jpeg))
  t.equal(pixelDigest(back).digest, expected, 'same digest after writing and reading the fragments')
})

t.test('study digest: pinned vectors, order-independent, strict inputs', async (t) => {
  t.equal(STUDY_DIGEST_PREFIX, 'radchain/study-digest/v1\0')
  for (const v of vectors.study) {
    t.equal(studyDigest(v.instances), v.digest, v.name)
    t.equal(studyDigest([...v.instances].reverse()), v.digest, `${v.name}, reversed`)
  }
  const two = vectors.study[1]?.instances ?? []
  t.not(studyDigest(two.map((i) => ({ ...i, sopInstanceUid: `${i.sopInstanceUid}1` }))), vectors.study[1]?.digest, 'UIDs are hashed')
  t.throws(() => studyDigest([{ sopInstanceUid: '1.2', digest: 'AB'.repeat(32) }]), TypeError)
  t.throws(() => studyDigest([{ sopInstanceUid: '1.2', digest: 'ab' }]), TypeError)
  t.throws(() => studyDigest([two[0], two[0]].filter((x) => x !== undefined)), TypeError)
  t.throws(() => studyDigest([{ sopInstanceUid: '1.2\0', digest: 'ab'.repeat(32) }]), TypeError)

  const deid = new StudyDeidentifier()
  const outs = await Promise.all(['17106', '17136'].map(async (f) => deid.deidentify(await readDicom(sample(`study-77654033/CT2/${f}`)))))
  const entries = outs.map((o) => ({ sopInstanceUid: o.record.sopInstanceUid, digest: o.pixelDigest }))
  t.match(studyDigest(entries), /^[0-9a-f]{64}$/)
})

t.test('instanceDigestOfBytes: the UID and digest a parse gives, every sample in every native encoding, in place where it can', async (t) => {
  const slow = (bytes: Uint8Array): { sopInstanceUid: string; digest: string } => {
    const inst = parseDicom(bytes)
    return { sopInstanceUid: String(inst.dataset[TAG.SOPInstanceUID]?.Value?.[0] ?? ''), digest: pixelDigest(inst).digest }
  }
  let inPlace = 0
  let checked = 0
  for (const f of sampleFiles()) {
    let inst: DicomInstance
    try {
      inst = await readDicom(sample(f))
    } catch {
      continue // the samples that are meant not to read (truncated, not DICOM)
    }
    const encodings: [string, Uint8Array][] = [['as is', readFileSync(sample(f))]]
    for (const ts of [TRANSFER_SYNTAX.ExplicitVRLittleEndian, TRANSFER_SYNTAX.ImplicitVRLittleEndian, TRANSFER_SYNTAX.ExplicitVRBigEndian]) {
      const native = firstString(inst.meta, TAG.TransferSyntaxUID)
      if (native !== undefined && !Object.values(TRANSFER_SYNTAX).includes(native as never)) continue // encapsulated: not re-encoded
      encodings.push([ts, writeDicom(reencoded(inst, ts))])
    }
    for (const [how, bytes] of encodings) {
      let want: { sopInstanceUid: string; digest: string }
      try {
        want = slow(bytes)
      } catch (err) {
        t.throws(() => instanceDigestOfBytes(bytes), { code: (err as { code?: string }).code }, `${f} (${how}): the same error`)
        continue
      }
      t.same(instanceDigestOfBytes(bytes), want, `${f} (${how})`)
      checked++
      if (nativePixelLayout(bytes) !== undefined) inPlace++
    }
  }
  t.ok(checked >= 40, `${checked} encodings checked`)
  t.ok(inPlace >= checked / 2, `${inPlace} of them read in place`)
})

t.test('instanceDigestOfBytes: padding, frames, and what it leaves to the parse', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const padded = cloneInstance(mr)
  padded.dataset[TAG.PixelData] = { vr: 'OW', Value: [Buffer.concat([pixelBytes(mr), Buffer.alloc(2)]).buffer] }
  const bytes = writeDicom(padded)
  t.ok(nativePixelLayout(bytes), 'read in place')
  t.equal(instanceDigestOfBytes(bytes).digest, pixelDigest(mr).digest, 'bytes past the last frame are not hashed')
  const short = cloneInstance(mr)
  short.dataset[TAG.PixelData] = { vr: 'OW', Value: [pixelBytes(mr).slice(0, 100).buffer] }
  t.throws(() => instanceDigestOfBytes(writeDicom(short)), { code: 'DICOM_TRUNCATED' }, 'short pixel data: the parse says why')
  const frames = cloneInstance(mr)
  const px = pixelBytes(mr)
  frames.dataset[TAG.NumberOfFrames] = { vr: 'IS', Value: ['2'] }
  frames.dataset[TAG.PixelData] = { vr: 'OW', Value: [Buffer.concat([px, px.map((b) => 255 - b)]).buffer] }
  const two = writeDicom(frames)
  t.equal(nativePixelLayout(two)?.frames, 2)
  t.equal(instanceDigestOfBytes(two).digest, pixelDigest(parseDicom(two)).digest, 'both frames hashed')
  t.not(instanceDigestOfBytes(two).digest, pixelDigest(mr).digest)
  const odd = cloneInstance(frames)
  odd.dataset[TAG.NumberOfFrames] = { vr: 'IS', Value: ['2.5'] }
  t.equal(nativePixelLayout(writeDicom(odd)), undefined, 'a Number of Frames that is not a plain integer is left to the parse')
  t.equal(instanceDigestOfBytes(writeDicom(odd)).digest, pixelDigest(parseDicom(writeDicom(odd))).digest)
  t.equal(nativePixelLayout(writeDicom(reencoded(mr, TRANSFER_SYNTAX.ExplicitVRBigEndian))), undefined, 'big endian is left to the parse')
})

// Hand-made Part 10 bytes for the cases where readers part ways (element by element, Explicit or Implicit VR Little Endian).
type El = { tag: [number, number]; vr: string; v: Buffer | string }
const LONG = new Set(['OB', 'OW', 'UN', 'SQ', 'UT'])
function encode(els: El[], explicit: boolean): Buffer {
  return Buffer.concat(
    els.flatMap(({ tag: [g, e], vr, v }) => {
      const value = typeof v === 'string' ? Buffer.from(v.length % 2 === 1 ? `${v}\0` : v, 'latin1') : v
      const h = Buffer.alloc(!explicit || !LONG.has(vr) ? 8 : 12)
      h.writeUInt16LE(g, 0)
      h.writeUInt16LE(e, 2)
      if (!explicit) h.writeUInt32LE(value.length, 4)
      else {
        h.write(vr, 4, 'latin1')
        if (LONG.has(vr)) h.writeUInt32LE(value.length, 8)
        else h.writeUInt16LE(value.length, 6)
      }
      return [h, value]
    }),
  )
}
function part10(els: El[], explicit: boolean, opts: { groupLength?: boolean } = {}): Buffer {
  const meta = encode([{ tag: [2, 0x10], vr: 'UI', v: explicit ? TRANSFER_SYNTAX.ExplicitVRLittleEndian : TRANSFER_SYNTAX.ImplicitVRLittleEndian }], true)
  const gl = Buffer.alloc(4)
  gl.writeUInt32LE(meta.length)
  const pre = Buffer.alloc(132)
  pre.write('DICM', 128, 'latin1')
  return Buffer.concat([pre, opts.groupLength === false ? Buffer.alloc(0) : encode([{ tag: [2, 0], vr: 'UL', v: gl }], true), meta, encode(els, explicit)])
}
const u16 = (n: number): Buffer => Buffer.from([n & 255, n >> 8])
function image(px = Buffer.from(new Uint8Array(16).map((_, i) => i * 7))): El[] {
  return [
    { tag: [8, 0x16], vr: 'UI', v: '1.2.840.10008.5.1.4.1.1.7' },
    { tag: [8, 0x18], vr: 'UI', v: '1.2.3.4' },
    { tag: [0x20, 0x0d], vr: 'UI', v: '1.2.3' },
    { tag: [0x20, 0x0e], vr: 'UI', v: '1.2.3.5' },
    { tag: [0x28, 2], vr: 'US', v: u16(1) },
    { tag: [0x28, 0x10], vr: 'US', v: u16(2) },
    { tag: [0x28, 0x11], vr: 'US', v: u16(2) },
    { tag: [0x28, 0x100], vr: 'US', v: u16(16) },
    { tag: [0x7fe0, 0x10], vr: 'OW', v: px },
  ]
}

t.test('instanceDigestOfBytes: where readers part ways, the parse decides', async (t) => {
  const slow = (bytes: Uint8Array): { sopInstanceUid: string; digest: string } | { code: string } => {
    try {
      const inst = parseDicom(bytes)
      return { sopInstanceUid: String(inst.dataset[TAG.SOPInstanceUID]?.Value?.[0] ?? ''), digest: pixelDigest(inst).digest }
    } catch (err) {
      return { code: String((err as { code?: string }).code) }
    }
  }
  const fast = (bytes: Uint8Array): { sopInstanceUid: string; digest: string } | { code: string } => {
    try {
      return instanceDigestOfBytes(bytes)
    } catch (err) {
      return { code: String((err as { code?: string }).code) }
    }
  }
  const insert = (els: El[], at: number, el: El): El[] => [...els.slice(0, at), el, ...els.slice(at)]
  for (const explicit of [true, false]) {
    const x = explicit ? 'explicit VR' : 'implicit VR'
    t.ok(nativePixelLayout(part10(image(), explicit)), `${x}: a plain image is read in place`)
    const cases: [string, Buffer][] = [
      // A reader that takes the first copy and one that takes the last give another UID or digest: tags must ascend.
      ['SOP Instance UID twice', part10(insert(image(), 2, { tag: [8, 0x18], vr: 'UI', v: '1.2.3.9' }), explicit)],
      ['Pixel Data twice', part10([...image(), { tag: [0x7fe0, 0x10], vr: 'OW', v: Buffer.alloc(16, 9) }], explicit)],
      ['Number of Frames after Rows', part10(insert(image(), 6, { tag: [0x28, 8], vr: 'IS', v: '2 ' }), explicit)],
      ['Rows again after the pixels', part10([...image(), { tag: [0x28, 0x10], vr: 'US', v: u16(4) }], explicit)],
      ['no file meta group length', part10(image(), explicit, { groupLength: false })],
      [
        'no Study Instance UID',
        part10(
          image().filter((e) => e.tag[1] !== 0x0d),
          explicit,
        ),
      ],
      ['two character sets', part10(insert(image(), 0, { tag: [8, 5], vr: 'CS', v: 'ISO 2022 IR 6\\ISO 2022 IR 87' }), explicit)],
      [
        'Rows of 3 bytes',
        part10(
          image().map((e) => (e.tag[1] === 0x10 && e.tag[0] === 0x28 ? { ...e, v: Buffer.from([2, 0, 0]) } : e)),
          explicit,
        ),
      ],
    ]
    if (explicit) cases.push(['a VR PS3.5 does not know', part10(insert(image(), 4, { tag: [0x9, 0x10], vr: 'ZZ', v: 'ab' }), true)])
    for (const [what, bytes] of cases) {
      t.equal(nativePixelLayout(bytes), undefined, `${x}, ${what}: left to the parse`)
      t.same(fast(bytes), slow(bytes), `${x}, ${what}: the parse's answer`)
    }
  }
})
