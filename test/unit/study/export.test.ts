import t from 'tap'
import * as fsp from 'node:fs/promises'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateX25519, mlkemFromX25519Private, sha256, unwrapKey } from '../../../src/crypto/index.js'
import { toHex } from '../../../src/util/index.js'
import { exportStudy, packageStudy, studyKeyContext, unpackStudy, type PackagedStudy } from '../../../src/study/index.js'
import type * as ExportModuleNs from '../../../src/study/export.js'
import { CT_STUDY } from './helpers.js'

type ExportModule = typeof ExportModuleNs

async function packaged(): Promise<{ res: PackagedStudy; studyKey: Uint8Array; chunks: Uint8Array[] }> {
  const stored = new Map<string, Uint8Array>()
  const x = generateX25519()
  const kem = mlkemFromX25519Private(x.privateKey)
  const res = await packageStudy(CT_STUDY, {
    chunkSize: 64 * 1024,
    custodianId: 'org',
    custodian: { x25519: x.publicKey, mlkem: kem.publicKey },
    store: { put: async (id: Uint8Array, b: Uint8Array) => void stored.set(toHex(id), b) },
  })
  const studyKey = unwrapKey(res.envelopes.custodian, { x25519Priv: x.privateKey, mlkemSecret: kem.secretKey }, studyKeyContext(res.payload.studyId))
  return { res, studyKey, chunks: res.chunkIds.map((id) => stored.get(toHex(id)) as Uint8Array) }
}

t.test('writes every instance as the pack holds it, chunks given with their checked ids or not', async (t) => {
  const { res, studyKey, chunks } = await packaged()
  const want: Uint8Array[] = []
  for await (const b of unpackStudy(async (i) => chunks[i] as Uint8Array, res.payload, studyKey)) want.push(b)
  t.equal(want.length, CT_STUDY.length)
  const dir = await mkdtemp(join(tmpdir(), 'radchain-export-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const verified of [false, true]) {
    const out = join(dir, verified ? 'verified' : 'plain')
    const r = await exportStudy({
      payload: res.payload,
      key: { studyKey },
      scope: 'images',
      out,
      chunk: async (i) => (verified ? { bytes: chunks[i] as Uint8Array, id: res.chunkIds[i] as Uint8Array } : (chunks[i] as Uint8Array)),
    })
    t.equal(r.files, want.length)
    const names = (await readdir(out)).sort()
    t.same(names, ['IM000001.dcm', 'IM000002.dcm', 'IM000003.dcm', 'IM000004.dcm'], 'in order, nothing else left')
    for (const [i, n] of names.entries()) t.same(sha256(await readFile(join(out, n))), sha256(want[i] as Uint8Array), `${n} as packed`)
  }
  // A chunk passed off with the wrong id: the content root check catches it.
  const wrong = join(dir, 'wrong-id')
  await t.rejects(
    exportStudy({
      payload: res.payload,
      key: { studyKey },
      scope: 'images',
      out: wrong,
      chunk: async (i) => ({ bytes: chunks[i] as Uint8Array, id: new Uint8Array(32) }),
    }),
    { code: 'DICOM_UNREADABLE' },
  )
  await t.rejects(stat(wrong), { code: 'ENOENT' }, 'and nothing is left')
})

t.test('a file that cannot be written ends the export with its error, with the writes in flight settled and nothing left', async (t) => {
  const { res, studyKey, chunks } = await packaged()
  let calls = 0
  const eio = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
  const { exportStudy: exportWithFailingDisk } = await t.mockImport<ExportModule>('../../../src/study/export.js', {
    'node:fs/promises': {
      ...fsp,
      writeFile: async (...args: Parameters<typeof fsp.writeFile>) => {
        calls++
        if (calls === 2) {
          await new Promise((r) => setTimeout(r, 50)) // fails while the next ones are under way
          throw eio
        }
        return fsp.writeFile(...args)
      },
    },
  })
  const dir = await mkdtemp(join(tmpdir(), 'radchain-export-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'out')
  await t.rejects(exportWithFailingDisk({ payload: res.payload, key: { studyKey }, scope: 'images', out, chunk: async (i) => chunks[i] as Uint8Array }), eio)
  t.ok(calls >= 2)
  await t.rejects(stat(out), { code: 'ENOENT' }, 'the folder it created is gone')
})
