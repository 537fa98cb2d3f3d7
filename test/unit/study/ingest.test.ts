import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519, mlkemFromX25519Private, sha256 } from '../../../src/crypto/index.js'
import { sleep, toHex } from '../../../src/util/index.js'
import {
  READ_AHEAD_MAX_BYTES,
  READ_HEAD_BYTES,
  STORE_PUTS_IN_FLIGHT,
  STUDY_UID_HEAD_BYTES,
  TAG,
  TRANSFER_SYNTAX,
  cloneInstance,
  firstString,
  generateCtStudy,
  locateTrailingPixelData,
  packageStudy,
  parseDicom,
  readDicom,
  readStudyInstanceUid,
  writeDicom,
  type DicomInstance,
} from '../../../src/study/index.js'
import { sample, sampleFiles } from './helpers.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-ingest-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function writeInstance(dir: string, name: string, inst: DicomInstance): Promise<string> {
  const p = join(dir, name)
  await writeFile(p, writeDicom(inst))
  return p
}

t.test('readStudyInstanceUid agrees with readDicom on every sample and encoding', async (t) => {
  const dir = await tempDir()
  const paths: string[] = sampleFiles().map(sample)
  const mr = await readDicom(sample('MR_small.dcm'))
  for (const ts of [TRANSFER_SYNTAX.ImplicitVRLittleEndian, TRANSFER_SYNTAX.ExplicitVRBigEndian]) {
    const x = cloneInstance(mr)
    x.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [ts] }
    paths.push(await writeInstance(dir, `mr-${ts}.dcm`, x))
  }
  for (const p of paths) {
    const expected = firstString((await readDicom(p)).dataset, TAG.StudyInstanceUID)
    t.equal(await readStudyInstanceUid(p), expected, p)
  }
})

t.test('readStudyInstanceUid reads the whole file when the UID lies past the head, and refuses what readDicom refuses', async (t) => {
  const dir = await tempDir()
  const mr = await readDicom(sample('MR_small.dcm'))
  const big = cloneInstance(mr)
  // A private element before group 0020 pushes the Study Instance UID past the head.
  big.dataset['00091010'] = { vr: 'OB', Value: [new Uint8Array(STUDY_UID_HEAD_BYTES + 1000).fill(0x41).buffer] }
  big.dataset['00090010'] = { vr: 'LO', Value: ['RADCHAIN TEST'] }
  const bigPath = await writeInstance(dir, 'big.dcm', big)
  t.equal(await readStudyInstanceUid(bigPath), firstString(mr.dataset, TAG.StudyInstanceUID), 'found by the whole read')

  const notDicom = join(dir, 'notes.txt')
  await writeFile(notDicom, 'not DICOM at all')
  await t.rejects(readStudyInstanceUid(notDicom), { name: 'StudyError', code: 'DICOM_NOT_PART10' })
  const noUid = cloneInstance(mr)
  delete noUid.dataset[TAG.StudyInstanceUID]
  await t.rejects(readStudyInstanceUid(await writeInstance(dir, 'no-uid.dcm', noUid)), { name: 'StudyError', code: 'DICOM_MISSING_UID' })
  await t.rejects(readStudyInstanceUid(join(dir, 'missing.dcm')), { name: 'StudyError', code: 'DICOM_UNREADABLE' })
  await t.rejects(readStudyInstanceUid(dir), { name: 'StudyError', code: 'DICOM_UNREADABLE' }, 'a folder')
})

function recipient(): { x25519: Uint8Array; mlkem: Uint8Array } {
  const x = generateX25519()
  return { x25519: x.publicKey, mlkem: mlkemFromX25519Private(x.privateKey).publicKey }
}

/** A store whose puts take a while, recording how many run at once and failing the `failAt`-th put. */
class SlowStore {
  readonly chunks = new Map<string, Uint8Array>()
  readonly order: string[] = []
  running = 0
  maxRunning = 0
  settled = 0
  /** Puts started when the failing one failed. */
  startedAtFailure = -1
  constructor(private readonly failAt = -1) {}

  async put(id: Uint8Array, bytes: Uint8Array): Promise<void> {
    const n = this.order.length
    this.order.push(toHex(id))
    this.running++
    this.maxRunning = Math.max(this.maxRunning, this.running)
    try {
      await sleep(n % 3 === 0 ? 15 : 2)
      if (n === this.failAt) {
        this.startedAtFailure = this.order.length
        throw new Error('disk full')
      }
      if (toHex(sha256(bytes)) !== toHex(id)) throw new Error('wrong id')
      this.chunks.set(toHex(id), bytes)
    } finally {
      this.running--
      this.settled++
    }
  }
}

t.test('packageStudy stores chunks while it makes the next, at most STORE_PUTS_IN_FLIGHT at once, in order', async (t) => {
  const dir = await tempDir()
  const study = await generateCtStudy({ slices: 6, rows: 32, cols: 32, out: join(dir, 'ct'), seed: 3 })
  const store = new SlowStore()
  const res = await packageStudy(study.files, { chunkSize: 2048, custodianId: 'org', custodian: recipient(), store })
  t.ok(res.chunkIds.length > 10, `${res.chunkIds.length} chunks`)
  t.ok(store.maxRunning > 1, `puts overlapped (${store.maxRunning} at once)`)
  t.ok(store.maxRunning <= STORE_PUTS_IN_FLIGHT, `never more than ${STORE_PUTS_IN_FLIGHT} at once`)
  t.equal(store.running, 0, 'every put settled before packageStudy returned')
  t.same(res.chunkIds.map(toHex), store.order, 'chunk ids in pack order')
  t.equal(store.chunks.size, res.chunkIds.length)
  t.equal(await readStudyInstanceUid(study.files[0] as string), study.studyInstanceUid)
})

t.test('a failed put fails packageStudy once every put in flight has settled', async (t) => {
  const dir = await tempDir()
  const study = await generateCtStudy({ slices: 4, rows: 32, cols: 32, out: join(dir, 'ct'), seed: 4 })
  const store = new SlowStore(3)
  await t.rejects(packageStudy(study.files, { chunkSize: 1024, custodianId: 'org', custodian: recipient(), store }), { message: 'disk full' })
  t.equal(store.running, 0, 'nothing still running')
  t.equal(store.settled, store.order.length, 'every started put settled')
  t.ok(store.startedAtFailure > 3, 'the put failed')
  t.equal(store.order.length, store.startedAtFailure, 'no put started after the failure')
})

t.test('read-ahead: a file past READ_AHEAD_MAX_BYTES is read at its turn; a bad file ahead fails at its turn only', async (t) => {
  const dir = await tempDir()
  // Two slices of 4096 x 2100 x 2 bytes: each file just above 16 MiB.
  const big = await generateCtStudy({ slices: 2, rows: 2100, cols: 4096, out: join(dir, 'big'), seed: 6 })
  t.ok(big.bytes / 2 > READ_AHEAD_MAX_BYTES, 'files bigger than the read-ahead bound')
  const res = await packageStudy(big.files, { chunkSize: 1024 * 1024, custodianId: 'org', custodian: recipient(), store: new SlowStore() })
  t.equal(res.payload.size > big.bytes, true, 'both files packed')

  const small = await generateCtStudy({ slices: 3, rows: 16, cols: 16, out: join(dir, 'small'), seed: 7 })
  const cut = join(dir, 'cut.dcm')
  const whole = await readFile(small.files[2] as string)
  await writeFile(cut, whole.subarray(0, whole.length - 100))
  const files = [small.files[0] as string, small.files[1] as string, cut]
  await t.rejects(
    packageStudy(files, { chunkSize: 256, custodianId: 'org', custodian: recipient(), store: new SlowStore() }),
    { name: 'StudyError', code: 'DICOM_TRUNCATED' },
    'the truncated file fails the package',
  )
  // The store fails on its first put while the truncated file is being read ahead: the put's error is reported, and the
  // read-ahead's failure is not left unhandled (tap fails the test on an unhandled rejection).
  await t.rejects(packageStudy(files, { chunkSize: 256, custodianId: 'org', custodian: recipient(), store: new SlowStore(0) }), { message: 'disk full' })
  await sleep(50)
})

t.test('readDicom reads trailing native Pixel Data into its own buffer: the same instance as parsing the whole file', async (t) => {
  const dir = await tempDir()
  const paths: string[] = sampleFiles().map(sample)
  const mr = await readDicom(sample('MR_small.dcm'))
  for (const ts of [TRANSFER_SYNTAX.ImplicitVRLittleEndian, TRANSFER_SYNTAX.ExplicitVRBigEndian]) {
    const x = cloneInstance(mr)
    x.meta[TAG.TransferSyntaxUID] = { vr: 'UI', Value: [ts] }
    paths.push(await writeInstance(dir, `mr-${ts}.dcm`, x))
  }
  const big = cloneInstance(mr)
  big.dataset['00090010'] = { vr: 'LO', Value: ['RADCHAIN TEST'] }
  big.dataset['00091010'] = { vr: 'OB', Value: [new Uint8Array(READ_HEAD_BYTES).fill(0x41).buffer] }
  paths.push(await writeInstance(dir, 'header-past-head.dcm', big))
  const synthetic = await generateCtStudy({ slices: 1, rows: 200, cols: 256, out: join(dir, 'ct'), seed: 8 })
  const tiny = await generateCtStudy({ slices: 1, rows: 8, cols: 8, out: join(dir, 'tiny'), seed: 8 })
  paths.push(synthetic.files[0] as string, tiny.files[0] as string)
  const padded = join(dir, 'padded.dcm')
  // Data Set Trailing Padding (FFFC,FFFC) OB of 2 bytes after the Pixel Data (PS3.10 7.2).
  const trailing = Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0, 2, 0, 0, 0, 0, 0])
  await writeFile(padded, Buffer.concat([await readFile(synthetic.files[0] as string), trailing]))
  paths.push(padded)

  let split = 0
  for (const p of paths) {
    const whole = await readFile(p)
    const at = locateTrailingPixelData(whole.subarray(0, Math.min(whole.length, READ_HEAD_BYTES)), whole.length)
    if (at !== undefined) split++
    const fast = await readDicom(p)
    const slow = parseDicom(whole, p)
    t.same(fast, slow, `${p}: same instance${at === undefined ? ' (whole file)' : ' (pixels read apart)'}`)
    t.same(
      Buffer.from(fast.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer),
      Buffer.from(slow.dataset[TAG.PixelData]?.Value?.[0] as ArrayBuffer),
      `${p}: same pixels`,
    )
  }
  t.ok(split >= 8, `pixels read apart for ${split} of ${paths.length} files`)
  for (const p of [sample('CT_small.dcm'), join(dir, 'header-past-head.dcm'), padded]) {
    const whole = await readFile(p)
    t.equal(locateTrailingPixelData(whole.subarray(0, Math.min(whole.length, READ_HEAD_BYTES)), whole.length), undefined, `${p}: read whole`)
  }

  const cut = join(dir, 'cut.dcm')
  const bytes = await readFile(synthetic.files[0] as string)
  for (const n of [bytes.length - 1, bytes.length - 2, bytes.length - 1000, READ_HEAD_BYTES + 10, 70_000]) {
    await writeFile(cut, bytes.subarray(0, n))
    await t.rejects(readDicom(cut), { name: 'StudyError', code: 'DICOM_TRUNCATED' }, `cut at ${n}`)
  }
})
