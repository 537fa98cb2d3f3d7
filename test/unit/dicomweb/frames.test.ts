import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { instanceDigestOfBytes, parseDicom, type DicomInstance } from '../../../src/study/index.js'
import { instanceFrames, parseFrameList } from '../../../src/dicomweb/frames.js'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const ab = (bytes: number[]): ArrayBuffer => new Uint8Array(bytes).buffer

/** A small image instance: `frames` frames of rows x cols 16-bit pixels, or the given encapsulated fragments. */
function image(opts: { ts: string; frames: number; rows: number; cols: number; bits?: number; values: ArrayBuffer[] }): DicomInstance {
  return {
    meta: { '00020010': { vr: 'UI', Value: [opts.ts] } },
    dataset: {
      '00280008': { vr: 'IS', Value: [opts.frames] },
      '00280010': { vr: 'US', Value: [opts.rows] },
      '00280011': { vr: 'US', Value: [opts.cols] },
      '00280002': { vr: 'US', Value: [1] },
      '00280100': { vr: 'US', Value: [opts.bits ?? 16] },
      '7FE00010': { vr: 'OW', Value: opts.values },
    },
  }
}

t.test('a native single-frame CT: one frame, the Pixel Data value exactly (the pixel digest hashes the same bytes)', async (t) => {
  const bytes = await readFile(new URL('../../vectors/dicom/CT_small.dcm', import.meta.url))
  const f = instanceFrames(parseDicom(bytes))
  t.equal(f?.frames.length, 1)
  t.equal(f?.transferSyntax, '1.2.840.10008.1.2.1')
  t.equal(sha(f!.frames[0]!), instanceDigestOfBytes(bytes).digest, 'the same bytes the pixel digest covers')
})

t.test('native multi-frame: cut by Rows x Columns x Samples x Bits Allocated / 8', async (t) => {
  const f = instanceFrames(image({ ts: '1.2.840.10008.1.2.1', frames: 3, rows: 1, cols: 2, values: [ab([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])] }))
  t.same(
    f?.frames.map((x) => [...x]),
    [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10, 11, 12],
    ],
  )
  t.throws(
    () => instanceFrames(image({ ts: '1.2.840.10008.1.2.1', frames: 3, rows: 1, cols: 2, values: [ab([1, 2, 3, 4, 5, 6, 7, 8])] })),
    { code: 'DICOMWEB_NOT_ACCEPTABLE' },
    'pixel data shorter than its frames',
  )
  t.throws(
    () => instanceFrames(image({ ts: '1.2.840.10008.1.2.1', frames: 2, rows: 3, cols: 3, bits: 1, values: [ab([1, 2, 3])] })),
    { code: 'DICOMWEB_NOT_ACCEPTABLE' },
    '1-bit frames that do not start on a byte',
  )
})

t.test('encapsulated: one fragment per frame, or every fragment of a single frame joined; otherwise refused', async (t) => {
  const jpeg = '1.2.840.10008.1.2.4.50'
  t.same(
    instanceFrames(image({ ts: jpeg, frames: 2, rows: 8, cols: 8, values: [ab([1, 2]), ab([3])] }))?.frames.map((x) => [...x]),
    [[1, 2], [3]],
  )
  t.same(
    instanceFrames(image({ ts: jpeg, frames: 1, rows: 8, cols: 8, values: [ab([1, 2]), ab([3])] }))?.frames.map((x) => [...x]),
    [[1, 2, 3]],
  )
  t.throws(() => instanceFrames(image({ ts: jpeg, frames: 2, rows: 8, cols: 8, values: [ab([1]), ab([2]), ab([3])] })), { code: 'DICOMWEB_NOT_ACCEPTABLE' })
  t.equal(instanceFrames({ meta: {}, dataset: {} }), undefined, 'no pixel data: undefined')
})

t.test('frame lists', async (t) => {
  t.same(parseFrameList('1'), [1])
  t.same(parseFrameList('3,1,2'), [3, 1, 2], 'in the order asked')
  for (const bad of ['0', '', '1,,2', 'a', '-1', '1.5', '1e3', '9999999999'])
    t.throws(() => parseFrameList(bad), { code: 'DICOMWEB_BAD_QUERY' }, JSON.stringify(bad))
})
