import t from 'tap'
import { Ed25519Signer, PatientStudyKeys, generateX25519, merkleRoot, mlkemFromX25519Private, sha256, unwrapKey } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import {
  CHUNK_TAG_BYTES,
  PACK_MAGIC,
  PACK_VERSION,
  StudyError,
  TAG,
  decryptChunk,
  decryptDemographics,
  deriveStudyKeys,
  packageStudy,
  parseDicom,
  pixelDigest,
  readDicom,
  readPack,
  studyDigest,
  studyKeyContext,
  unpackStudy,
} from '../../../src/study/index.js'
import { CT_STUDY, sample, textValues } from './helpers.js'

const CHUNK_SIZE = 4096

class MemoryStore {
  readonly chunks = new Map<string, Uint8Array>()
  async put(id: Uint8Array, bytes: Uint8Array): Promise<void> {
    if (toHex(sha256(bytes)) !== toHex(id)) throw new Error('wrong id')
    this.chunks.set(toHex(id), bytes)
  }
}

function recipient(): { priv: Uint8Array; pub: { x25519: Uint8Array; mlkem: Uint8Array }; mlkemSecret: Uint8Array } {
  const x = generateX25519()
  const kem = mlkemFromX25519Private(x.privateKey)
  return { priv: x.privateKey, pub: { x25519: x.publicKey, mlkem: kem.publicKey }, mlkemSecret: kem.secretKey }
}

/** Every text value of the identifying attributes of the source files (PatientName components, PatientID). */
async function originalIdentifiers(): Promise<string[]> {
  const out = new Set<string>()
  for (const p of CT_STUDY) {
    const ds = (await readDicom(p)).dataset
    for (const tag of [TAG.PatientName, TAG.PatientID]) {
      const el = ds[tag]
      if (el !== undefined) for (const v of textValues(el)) if (v.length >= 4) out.add(v)
    }
  }
  return [...out]
}

t.test('packages the 4-instance CT study into chunks that decrypt back to it', async (t) => {
  const store = new MemoryStore()
  const custodian = recipient()
  const owner = recipient()
  const ownerSeed = new Uint8Array(32).fill(9)
  const ownerSign = new Ed25519Signer(ownerSeed).publicKey
  const progress: { files: number; bytes: number }[] = []
  const res = await packageStudy(CT_STUDY, {
    chunkSize: CHUNK_SIZE,
    custodianId: 'hospital-a',
    custodian: custodian.pub,
    owner: { sign: ownerSign, ...owner.pub },
    store,
    onProgress: (p) => progress.push(p),
  })
  const { payload, chunkIds } = res

  t.equal(progress.length, 4, 'one progress report per instance')
  t.equal(progress.at(-1)?.files, 4)
  t.equal(payload.studyId.length, 16)
  t.equal(payload.custodian, 'hospital-a')
  // The ledger's owner key is this study's own, derived from the patient's key; the patient finds it.
  t.not(toHex(payload.owner ?? new Uint8Array()), toHex(ownerSign), "the patient's key itself is not on the ledger")
  t.equal(payload.ownerEphemeral?.length, 32)
  const found = new PatientStudyKeys({ identitySeed: ownerSeed, encryption: { privateKey: owner.priv } })
  t.ok(found.owns(payload.studyId, payload.owner ?? new Uint8Array(), payload.ownerEphemeral ?? new Uint8Array()), 'the patient derives the same owner key')
  t.equal(payload.chunkSize, CHUNK_SIZE)
  t.ok(payload.chunkCount > 2, `several chunks (${payload.chunkCount})`)
  t.equal(chunkIds.length, payload.chunkCount)
  t.equal(store.chunks.size, payload.chunkCount, 'every chunk is in the store')
  const stored = chunkIds.map((id) => store.chunks.get(toHex(id)) as Uint8Array)
  t.equal(
    stored.reduce((n, c) => n + c.length, 0),
    payload.size,
    'size is the ciphertext total',
  )
  for (const c of stored.slice(0, -1)) t.equal(c.length, CHUNK_SIZE + CHUNK_TAG_BYTES, 'full chunks are chunkSize plus tag')
  t.same(payload.contentRoot, merkleRoot(chunkIds), 'contentRoot is the merkle root of the ids')
  t.same(payload.custodianEnvelope, sha256(res.envelopes.custodian))
  t.same(payload.ownerEnvelope, sha256(res.envelopes.owner as Uint8Array))
  t.same(payload.demographics, sha256(res.demographics.ciphertext), 'the ledger holds the hash of the encrypted demographics')

  const context = studyKeyContext(payload.studyId)
  const studyKey = unwrapKey(res.envelopes.custodian, { x25519Priv: custodian.priv, mlkemSecret: custodian.mlkemSecret }, context)
  const ownerKeyBack = unwrapKey(res.envelopes.owner as Uint8Array, { x25519Priv: owner.priv, mlkemSecret: owner.mlkemSecret }, context)
  t.same(ownerKeyBack, studyKey, 'owner and custodian get the same study key')
  t.throws(() => unwrapKey(res.envelopes.custodian, { x25519Priv: owner.priv, mlkemSecret: owner.mlkemSecret }, context), { name: 'EnvelopeError' })

  const { dataKey } = deriveStudyKeys(studyKey, payload.studyId)
  const plain = Buffer.concat(
    stored.map((c, index) =>
      decryptChunk(c, {
        dataKey,
        studyId: payload.studyId,
        version: PACK_VERSION,
        index,
        isLast: index === stored.length - 1,
        id: chunkIds[index],
      }),
    ),
  )
  t.equal(plain.subarray(0, 5).toString('latin1'), PACK_MAGIC)
  t.equal(plain.length, payload.size - CHUNK_TAG_BYTES * payload.chunkCount)

  const { manifest, instances } = readPack(plain)
  t.equal(instances.length, 4)
  t.equal(manifest.instances.length, 4)
  const originals = new Set<string>()
  for (const p of CT_STUDY) originals.add(pixelDigest(await readDicom(p)).digest)
  for (const [i, bytes] of instances.entries()) {
    const inst = parseDicom(bytes)
    const entry = manifest.instances[i]
    t.equal(pixelDigest(inst).digest, entry?.pixelDigest, `instance ${i} pixel digest matches the manifest`)
    t.ok(originals.has(pixelDigest(inst).digest), `instance ${i} pixel digest matches an original`)
    t.equal(inst.dataset[TAG.SOPInstanceUID]?.Value?.[0], entry?.sopInstanceUid)
  }
  t.equal(new Set(manifest.instances.map((e) => e.pixelDigest)).size, 4, 'four distinct images')
  const sd = studyDigest(manifest.instances.map((e) => ({ sopInstanceUid: e.sopInstanceUid, digest: e.pixelDigest })))
  t.equal(sd, manifest.studyDigest)
  t.equal(toHex(payload.studyDigest), sd, 'payload studyDigest is over the instance digests')

  const ids = await originalIdentifiers()
  t.ok(ids.length >= 2, `found original identifiers to look for (${ids.length})`)
  const packText = plain.toString('latin1')
  for (const id of ids) t.notOk(packText.includes(id), 'pack holds no original PatientName/PatientID value')

  const demo = decryptDemographics(res.demographics.ciphertext, studyKey, payload.studyId)
  t.equal(demo.instances.length, 4)
  t.same([...demo.study.instances].sort(), manifest.instances.map((e) => e.sopInstanceUid).sort())
  const demoText = JSON.stringify(demo)
  const origName = (await readDicom(CT_STUDY[0] as string)).dataset[TAG.PatientName]
  const nameValues = origName === undefined ? [] : textValues(origName)
  t.ok(nameValues.length > 0, 'source has a PatientName')
  for (const v of nameValues) t.ok(demoText.includes(v), 'demographics keep the original PatientName')
  t.match(res.demographics.envelopeKeyNote, /radchain\/study-demographics-key\/v1/)
  const otherId = new Uint8Array(16)
  t.throws(() => decryptDemographics(res.demographics.ciphertext, studyKey, otherId), { name: 'StudyError' }, 'AAD binds the study id')

  const streamed: Uint8Array[] = []
  const gen = unpackStudy(async (i) => stored[i] as Uint8Array, payload, studyKey)
  let r = await gen.next()
  for (; r.done !== true; r = await gen.next()) streamed.push(r.value)
  t.same(
    streamed.map((b) => toHex(sha256(b))),
    instances.map((b) => toHex(sha256(b))),
    'unpackStudy yields the same Part 10 bytes',
  )
  t.equal(r.value.studyDigest, manifest.studyDigest)

  const swapped = [...stored]
  ;[swapped[0], swapped[1]] = [swapped[1] as Uint8Array, swapped[0] as Uint8Array]
  await t.rejects(
    async () => {
      for await (const _ of unpackStudy(async (i) => swapped[i] as Uint8Array, payload, studyKey)) void _
    },
    { name: 'ChunkError' },
    'reordered chunks fail authentication',
  )
})

t.test('without an owner: no owner envelope, owner null', async (t) => {
  const store = new MemoryStore()
  const custodian = recipient()
  const res = await packageStudy([CT_STUDY[0] as string], { chunkSize: 1 << 20, custodianId: 'org', custodian: custodian.pub, store })
  t.equal(res.payload.owner, null)
  t.equal(res.payload.ownerEnvelope, null)
  t.equal(res.payload.ownerEphemeral, null)
  t.equal(res.envelopes.owner, null)
  t.equal(res.payload.chunkCount, 1)
})

t.test('files from two studies are refused before anything is stored', async (t) => {
  const store = new MemoryStore()
  const custodian = recipient()
  const err = await packageStudy([CT_STUDY[0] as string, sample('study-77654033/CR1/6154')], {
    chunkSize: CHUNK_SIZE,
    custodianId: 'org',
    custodian: custodian.pub,
    store,
  }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.ok(err instanceof StudyError)
  t.equal((err as StudyError).code, 'DICOM_STUDY_MISMATCH')
  t.equal(store.chunks.size, 0, 'no chunk stored')
})

t.test('readPack refuses damaged packs', async (t) => {
  t.throws(() => readPack(new Uint8Array(20)), { name: 'StudyError' })
})
