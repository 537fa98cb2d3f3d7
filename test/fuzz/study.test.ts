// Fuzzing the study readers: DICOM (src/study/dicom.ts, dicom-file.ts) on
// damaged copies of the sample files in test/vectors/dicom/ and on random
// bytes, and the pack, chunk and demographics readers (pack.ts, package.ts).
import t from 'tap'
import fc from 'fast-check'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unwrapKey } from '../../src/crypto/index.js'
import {
  ChunkError,
  StudyError,
  TAG,
  decryptChunk,
  decryptDemographics,
  deriveStudyKeys,
  firstString,
  packageStudy,
  parseDicom,
  readDicom,
  readPack,
  readStudyInstanceUid,
  studyKeyContext,
  unpackStudy,
} from '../../src/study/index.js'
import type { RegisterStudyPayload } from '../../src/chain/index.js'
import { concatBytes, equalBytes, utf8 } from '../../src/util/index.js'
import { sample, sampleFiles } from '../unit/study/helpers.js'
import { SMALL_GROWTH_BYTES, arrayBufferGrowth, mutated, mutatedOneOf, noteSeed, params, typedOrValue, typedOrValueAsync } from './fuzz.js'
import { envelopeKeys } from './seeds.js'

noteSeed(t)
const STUDY = [StudyError]

const files = sampleFiles()
const samples = await Promise.all(files.map(async (f) => new Uint8Array(await readFile(sample(f)))))
// The small files, for properties that parse many times.
const small = samples.filter((b) => b.length < 12_000)

/** Damage typical of DICOM files: a length field (4 bytes, either byte order) made huge, or a file cut short. */
function inflatedLength(b: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat(), fc.constantFrom(0xffffffff, 0xfffffffe, 0x7ffffffe, 0x00fffffe, 0x0000fffe), fc.boolean()).map(([at, len, little]) => {
    const out = Uint8Array.from(b)
    const o = at % Math.max(1, out.length - 4)
    new DataView(out.buffer).setUint32(o, len, little)
    return out
  })
}

const damagedDicom = fc.oneof(
  mutatedOneOf(small, 4),
  fc.constantFrom(...small).chain(inflatedLength),
  fc.constantFrom(...small).chain((b) => fc.nat(b.length).map((n) => b.slice(0, n))),
  fc.uint8Array({ maxLength: 600 }),
  // Random bytes behind a valid Part 10 prefix or the start of a bare dataset, to get past the first check.
  fc.uint8Array({ maxLength: 400 }).map((r) => concatBytes(new Uint8Array(128), utf8('DICM'), r)),
  fc.uint8Array({ maxLength: 400 }).map((r) => concatBytes(Uint8Array.of(0x08, 0x00, 0x05, 0x00), r)),
)

t.test('every sample parses (the starting point of the mutations)', async (t) => {
  for (const [i, b] of samples.entries()) t.ok(firstString(parseDicom(b, files[i]).dataset, TAG.SOPInstanceUID), files[i])
})

t.test('parseDicom of damaged samples and random bytes: an instance, or a StudyError, with little memory', async (t) => {
  fc.assert(
    fc.property(damagedDicom, fc.boolean(), (b, requireUids) => {
      const { growth, error } = arrayBufferGrowth(() => parseDicom(b, 'fuzz.dcm', { requireUids }))
      if (error !== undefined)
        typedOrValue(() => {
          throw error
        }, STUDY)
      // dcmjs copies the file once or twice while parsing; a declared length never makes it allocate more.
      return growth < SMALL_GROWTH_BYTES + 4 * b.length
    }),
    params(1000, 10),
  )
  t.pass('no other error escaped')
})

t.test('readDicom and readStudyInstanceUid of damaged files: an instance or a UID, or a StudyError', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-fuzz-dicom-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'file.dcm')
  await fc.assert(
    fc.asyncProperty(damagedDicom, async (b) => {
      await writeFile(path, b)
      const inst = await typedOrValueAsync(() => readDicom(path), STUDY)
      const uid = await typedOrValueAsync(() => readStudyInstanceUid(path), STUDY)
      // The cheap read of the UID agrees with the whole parse whenever the file parses.
      return inst === undefined || uid === undefined || uid === (firstString(inst.dataset, TAG.StudyInstanceUID) ?? '').replace(/[\0 ]+$/, '')
    }),
    params(300, 20),
  )
  t.pass('no other error escaped')
})

t.test('regression: a Study Instance UID with bytes that are not UID characters reads the same from the head as from the whole file', async (t) => {
  // Found by the property above (seed 718124977): four bytes of the UID's value set to 0xff. The
  // cheap read kept them; dcmjs drops every character but digits and dots from a UI value.
  const dir = await mkdtemp(join(tmpdir(), 'radchain-fuzz-uid-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'file.dcm')
  const b = Uint8Array.from(samples[files.indexOf('study-77654033/CR2/6247')] as Uint8Array)
  const uid = firstString(parseDicom(b).dataset, TAG.StudyInstanceUID) as string
  const at = Buffer.from(b).indexOf(Buffer.from(uid, 'latin1'))
  t.ok(at > 0, 'the UID is in the file')
  b.fill(0xff, at, at + 4)
  await writeFile(path, b)
  const parsed = firstString((await readDicom(path)).dataset, TAG.StudyInstanceUID)
  t.equal(await readStudyInstanceUid(path), parsed)
})

// A packed study: its chunks, its payload and the keys to open them (the custodian's).
const custodian = envelopeKeys('auth-0')
const chunks = new Map<string, Uint8Array>()
const packed = await packageStudy(files.filter((f) => f.startsWith('study-77654033/CT2/')).map(sample), {
  chunkSize: 4096,
  custodianId: 'auth-0',
  custodian,
  store: { put: async (id, bytes) => void chunks.set(Buffer.from(id).toString('hex'), bytes) },
})
const payload = packed.payload
const studyKey = unwrapKey(
  packed.envelopes.custodian,
  { x25519Priv: custodian.x25519Priv, mlkemSecret: custodian.mlkemSecret },
  studyKeyContext(payload.studyId),
)
const { dataKey } = deriveStudyKeys(studyKey, payload.studyId)
const ciphertexts = packed.chunkIds.map((id) => chunks.get(Buffer.from(id).toString('hex')) as Uint8Array)
const chunkOpts = (index: number): Parameters<typeof decryptChunk>[1] => ({
  dataKey,
  studyId: payload.studyId,
  version: 1,
  index,
  isLast: index === ciphertexts.length - 1,
  maxChunkSize: payload.chunkSize,
})
const pack = concatBytes(...ciphertexts.map((c, i) => decryptChunk(c, chunkOpts(i))))

t.test('readPack of damaged packs: the instances, or a StudyError', async (t) => {
  t.equal(readPack(pack).instances.length, 4, 'the undamaged pack reads')
  const manifestStart = pack.length - 4 - Buffer.from(pack).readUInt32BE(pack.length - 4)
  const withManifest = (json: string): Uint8Array => {
    const m = utf8(json)
    const len = Buffer.alloc(4)
    len.writeUInt32BE(m.length)
    return concatBytes(pack.subarray(0, manifestStart - 4), len, m, len)
  }
  const manifest = JSON.parse(Buffer.from(pack.subarray(manifestStart, pack.length - 4)).toString('utf8')) as { instances: unknown[] }
  fc.assert(
    fc.property(
      fc.oneof(
        mutated(pack, 4),
        fc.uint8Array({ maxLength: 200 }),
        // Manifests of another shape, in a pack whose frames are intact.
        fc.jsonValue({ maxDepth: 3 }).map((j) => withManifest(JSON.stringify({ ...manifest, instances: [j, ...manifest.instances.slice(1)] }))),
        fc.jsonValue({ maxDepth: 3 }).map((j) => withManifest(JSON.stringify(j))),
      ),
      (b) => {
        typedOrValue(() => readPack(b), STUDY)
      },
    ),
    params(1000, 5),
  )
  t.pass('no other error escaped')
})

t.test('regression: a pack manifest listing null or a number as an instance is refused with a StudyError', async (t) => {
  const manifestStart = pack.length - 4 - Buffer.from(pack).readUInt32BE(pack.length - 4)
  const manifest = JSON.parse(Buffer.from(pack.subarray(manifestStart, pack.length - 4)).toString('utf8')) as { instances: unknown[] }
  for (const bad of [null, 7, 'x', []]) {
    const m = utf8(JSON.stringify({ ...manifest, instances: [bad, ...manifest.instances.slice(1)] }))
    const len = Buffer.alloc(4)
    len.writeUInt32BE(m.length)
    t.throws(
      () => readPack(concatBytes(pack.subarray(0, manifestStart - 4), len, m, len)),
      { name: 'StudyError', code: 'DICOM_UNREADABLE' },
      JSON.stringify(bad),
    )
  }
})

t.test('decryptChunk of damaged and random chunks: the plaintext of the untouched one only, or a ChunkError', async (t) => {
  fc.assert(
    fc.property(fc.nat(ciphertexts.length - 1), fc.oneof(mutatedOneOf(ciphertexts), fc.uint8Array({ maxLength: 100 })), fc.boolean(), (i, b, withId) => {
      const opts = { ...chunkOpts(i), ...(withId ? { id: packed.chunkIds[i] } : {}) }
      const plain = typedOrValue(() => decryptChunk(b, opts), [ChunkError])
      return plain === undefined || equalBytes(b, ciphertexts[i] as Uint8Array)
    }),
    params(1000),
  )
  t.pass('no other error escaped')
})

t.test('unpackStudy of a study with damaged chunks or payload: every instance, or a StudyError or ChunkError', async (t) => {
  const reshapedPayload = fc.record({
    size: fc.oneof(fc.constant(payload.size), fc.nat(payload.size * 2), fc.constant(Number.MAX_SAFE_INTEGER)),
    chunkCount: fc.oneof(fc.constant(payload.chunkCount), fc.nat(payload.chunkCount + 2), fc.constant(0xffffffff)),
    chunkSize: fc.oneof(fc.constant(payload.chunkSize), fc.nat(payload.chunkSize * 2)),
  })
  await fc.assert(
    fc.asyncProperty(fc.nat(ciphertexts.length - 1), mutatedOneOf(ciphertexts, 2), reshapedPayload, fc.boolean(), async (i, bad, over, damageChunk) => {
      const p: RegisterStudyPayload = { ...payload, ...(damageChunk ? {} : over) }
      let n = 0
      const out = await typedOrValueAsync(async () => {
        for await (const part10 of unpackStudy(async (k) => (damageChunk && k === i ? bad : (ciphertexts[k] ?? new Uint8Array(0))), p, studyKey)) {
          if (part10.length > 0) n++
        }
        return n
      }, [StudyError, ChunkError])
      // Nothing damaged gets through whole: a study that unpacks is the untouched one (or an equivalent chunk).
      return out === undefined || out === 4
    }),
    params(200, 20),
  )
  t.pass('no other error escaped')
})

t.test('decryptDemographics of damaged ciphertexts: the record of the untouched one only, or a StudyError', async (t) => {
  const ct = packed.demographics.ciphertext
  fc.assert(
    fc.property(fc.oneof(mutated(ct), fc.uint8Array({ maxLength: 60 })), (b) => {
      const rec = typedOrValue(() => decryptDemographics(b, studyKey, payload.studyId), STUDY)
      return rec === undefined || equalBytes(b, ct)
    }),
    params(500),
  )
  t.pass('no other error escaped')
})
