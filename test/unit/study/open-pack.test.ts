import t from 'tap'
import { generateX25519, mlkemFromX25519Private, unwrapKey } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import { deriveStudyKeys, openPack, packageStudy, studyKeyContext, unpackStudy, type PackagedStudy } from '../../../src/study/index.js'
import { CT_STUDY } from './helpers.js'

async function packaged(chunkSize: number): Promise<{ res: PackagedStudy; studyKey: Uint8Array; chunks: Uint8Array[] }> {
  const stored = new Map<string, Uint8Array>()
  const x = generateX25519()
  const kem = mlkemFromX25519Private(x.privateKey)
  const res = await packageStudy(CT_STUDY, {
    chunkSize,
    custodianId: 'org',
    custodian: { x25519: x.publicKey, mlkem: kem.publicKey },
    store: { put: async (id: Uint8Array, b: Uint8Array) => void stored.set(toHex(id), b) },
  })
  const studyKey = unwrapKey(res.envelopes.custodian, { x25519Priv: x.privateKey, mlkemSecret: kem.secretKey }, studyKeyContext(res.payload.studyId))
  return { res, studyKey, chunks: res.chunkIds.map((id) => stored.get(toHex(id)) as Uint8Array) }
}

t.test('openPack reads each instance on its own, from only the chunks it lies in, byte for byte what unpackStudy yields', async (t) => {
  // Small chunks, so that instances span several and share some.
  const { res, studyKey, chunks } = await packaged(4096)
  const whole: Uint8Array[] = []
  for await (const b of unpackStudy(async (i) => chunks[i] as Uint8Array, res.payload, studyKey)) whole.push(b)
  const read: number[] = []
  const pack = await openPack(
    async (i) => {
      read.push(i)
      return chunks[i] as Uint8Array
    },
    res.chunkIds,
    res.payload,
    studyKey,
  )
  t.equal(pack.manifest.instances.length, whole.length, 'the manifest, found from the end')
  const last = pack.manifest.instances[pack.manifest.instances.length - 1]!
  read.length = 0
  const got = await pack.instance(last)
  t.same(toHex(got), toHex(whole[whole.length - 1]!), 'the last instance')
  t.ok(read.length <= Math.ceil(last.length / 4096) + 1, `only its chunks were read (${read.length} of ${chunks.length})`)
  // In reverse order, and with the data key alone (an images-scope lease).
  const byData = await openPack(async (i) => chunks[i] as Uint8Array, res.chunkIds, res.payload, {
    dataKey: deriveStudyKeys(studyKey, res.payload.studyId).dataKey,
  })
  for (let k = pack.manifest.instances.length - 1; k >= 0; k--)
    t.same(toHex(await byData.instance(pack.manifest.instances[k]!)), toHex(whole[k]!), `instance ${k + 1} with the data key`)
  pack.close()
})

t.test('openPack refuses a chunk list off the content root, an altered chunk, and an entry that does not match its instance', async (t) => {
  const { res, studyKey, chunks } = await packaged(4096)
  const ids = [...res.chunkIds]
  ids.reverse()
  await t.rejects(
    openPack(async (i) => chunks[i] as Uint8Array, ids, res.payload, studyKey),
    { code: 'DICOM_UNREADABLE' },
    'chunk list in another order',
  )
  const pack = await openPack(
    async (i) => {
      const c = chunks[i] as Uint8Array
      if (i !== 0) return c
      const bad = c.slice()
      bad[0] = (bad[0] as number) ^ 1
      return bad
    },
    res.chunkIds,
    res.payload,
    studyKey,
  )
  // Chunk 0 holds the start of the first instance, not the manifest at the end.
  await t.rejects(pack.instance(pack.manifest.instances[0]!), { code: 'CHUNK_BAD_ID' }, 'an altered chunk is caught by its id')
  const good = await openPack(async (i) => chunks[i] as Uint8Array, res.chunkIds, res.payload, studyKey)
  const e = good.manifest.instances[1]!
  await t.rejects(good.instance({ ...e, pixelDigest: '00'.repeat(32) }), { code: 'DICOM_UNREADABLE' }, 'a pixel digest off the entry')
  await t.rejects(good.instance({ ...e, offset: e.offset + 1 }), { code: 'DICOM_UNREADABLE' }, 'an offset off the frame')
})
