import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { data } from 'dcmjs'
import {
  DicomEncoder,
  StudyDeidentifier,
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  encodeDicom,
  generateCtStudy,
  parseDicom,
  readDicom,
  writeDicom,
  type DicomDataset,
  type DicomInstance,
} from '../../../src/study/index.js'
import { sample, sampleFiles } from './helpers.js'

/** What dcmjs alone writes for `inst`, with the file meta writeDicom chose (read back from its output). */
function dcmjsBytes(inst: DicomInstance, written: Uint8Array): Uint8Array {
  const meta: DicomDataset = {}
  for (const [tag, el] of Object.entries(parseDicom(written, undefined, { requireUids: false }).meta)) if (tag !== '00020000') meta[tag] = el
  const dict = new data.DicomDict(meta)
  dict.dict = inst.dataset
  return new Uint8Array(dict.write({ allowInvalidVRLength: true }))
}

function withSyntax(inst: DicomInstance, ts: string): DicomInstance {
  const out = cloneInstance(inst)
  out.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [ts] }
  return out
}

t.test('writeDicom gives the bytes dcmjs writes: samples, de-identified, every native encoding', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-dicom-write-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const synthetic = await generateCtStudy({ slices: 2, rows: 20, cols: 30, out: dir, seed: 9 })
  const inputs: [string, DicomInstance][] = []
  for (const f of sampleFiles()) inputs.push([f, await readDicom(sample(f))])
  for (const f of synthetic.files) inputs.push([f, await readDicom(f)])
  let appended = 0
  // One encoder for everything (its cache sees every element many times), one that keeps almost nothing.
  const shared = new DicomEncoder()
  const tiny = new DicomEncoder(3)
  for (const [name, inst] of inputs) {
    const deid = new StudyDeidentifier({ secret: new Uint8Array(32).fill(1) }).deidentify(inst).instance
    for (const [what, x] of [
      ['as read', inst],
      ['de-identified', deid],
    ] as const) {
      for (const ts of [TRANSFER_SYNTAX.ExplicitVRLittleEndian, TRANSFER_SYNTAX.ImplicitVRLittleEndian, TRANSFER_SYNTAX.ExplicitVRBigEndian]) {
        const y = withSyntax(x, ts)
        const bytes = writeDicom(y)
        t.same(Buffer.from(bytes), Buffer.from(dcmjsBytes(y, bytes)), `${name} ${what} in ${ts}: same bytes as dcmjs`)
        const parts = encodeDicom(y)
        t.same(Buffer.concat(parts), Buffer.from(bytes), `${name} ${what} in ${ts}: encodeDicom's pieces make writeDicom's bytes`)
        for (let i = 0; i < 2; i++) {
          t.same(Buffer.concat(shared.encode(y)), Buffer.from(bytes), `${name} ${what} in ${ts}: a shared DicomEncoder gives the same bytes (${i + 1})`)
        }
        t.same(Buffer.concat(tiny.encode(y)), Buffer.from(bytes), `${name} ${what} in ${ts}: a DicomEncoder with a tiny cache too`)
        if (!Object.keys(y.dataset).some((k) => k > TAG.PixelData)) {
          appended++
          t.equal(parts.at(-1)?.buffer, y.dataset[TAG.PixelData]?.Value?.[0], 'the last piece is the pixel buffer itself')
        }
      }
    }
  }
  t.ok(appended >= 30, `the appended Pixel Data path ran ${appended} times`)
})

t.test('writeDicom falls back to dcmjs for elements after Pixel Data, odd lengths and several values', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const trailing = cloneInstance(mr)
  trailing.dataset['FFFCFFFC'] = { vr: 'OB', Value: [new Uint8Array([0, 0]).buffer] }
  const odd = cloneInstance(mr)
  odd.dataset[TAG.PixelData] = { vr: 'OB', Value: [new Uint8Array([1, 2, 3]).buffer] }
  const multi = cloneInstance(mr)
  multi.dataset[TAG.PixelData] = { vr: 'OB', Value: [new Uint8Array([1, 2]).buffer, new Uint8Array([3, 4]).buffer] }
  for (const [what, x] of [
    ['trailing padding', trailing],
    ['odd length', odd],
    ['two values', multi],
  ] as const) {
    const bytes = writeDicom(x)
    t.same(Buffer.from(bytes), Buffer.from(dcmjsBytes(x, bytes)), `${what}: dcmjs bytes`)
  }
  t.same(parseDicom(writeDicom(trailing)).dataset['FFFCFFFC']?.vr, 'OB', 'the trailing element is written')
})

t.test('DicomEncoder tells apart values dcmjs writes differently', async (t) => {
  const mr = await readDicom(sample('MR_small.dcm'))
  const enc = new DicomEncoder()
  const variants: [string, DicomDataset[string]][] = [
    ['DS 1', { vr: 'DS', Value: [1] }],
    ['DS "1"', { vr: 'DS', Value: ['1'] }],
    ['DS 1 held as "1.0"', { vr: 'DS', Value: [1], _rawValue: ['1.0'] }],
    ['DS 1 held as "01"', { vr: 'DS', Value: [1], _rawValue: ['01'] }],
    ['FD 0', { vr: 'FD', Value: [0] }],
    ['FD -0', { vr: 'FD', Value: [-0] }],
    ['LO two values', { vr: 'LO', Value: ['a', 'b'] }],
    ['LO one value with a backslash', { vr: 'LO', Value: ['a\\b'] }],
    ['PN', { vr: 'PN', Value: [{ Alphabetic: 'Doe^J' }] }],
    ['PN ideographic', { vr: 'PN', Value: [{ Alphabetic: 'Doe^J', Ideographic: 'X' }] }],
    ['empty', { vr: 'LO', Value: [] }],
  ]
  const outputs = new Set<string>()
  for (let round = 0; round < 2; round++) {
    for (const [what, el] of variants) {
      const x = cloneInstance(mr)
      x.dataset['00189999'] = el as DicomDataset[string]
      const bytes = writeDicom(x)
      t.same(Buffer.from(dcmjsBytes(x, bytes)), Buffer.from(bytes), `${what}: writeDicom gives dcmjs's bytes`)
      t.same(Buffer.concat(enc.encode(x)), Buffer.from(bytes), `${what} (round ${round + 1}): the shared encoder gives them too`)
      outputs.add(Buffer.from(bytes).toString('hex'))
    }
  }
  t.ok(outputs.size >= 9, `the variants encode differently (${outputs.size} distinct)`)
})
