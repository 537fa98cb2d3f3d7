import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { ChainStore, StudyIndex } from '../../../src/storage/index.js'

t.test('chunk lists: whole, one id at a time, forgotten, and read back after a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-index-'))
  let db = await ChainStore.open(join(dir, 'db'))
  t.teardown(async () => {
    await db.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  const index = new StudyIndex(db.keyspace('i'))
  const study = new Uint8Array(randomBytes(16))
  const ids = Array.from({ length: 5 }, () => new Uint8Array(randomBytes(32)))
  t.equal(await index.chunkIdAt(study, 0), undefined, 'no list yet')
  await index.putChunkList(study, ids)
  t.same(await index.chunkList(study), ids)
  for (const [i, id] of ids.entries()) t.same(await index.chunkIdAt(study, i), id)
  t.equal(await index.chunkIdAt(study, 5), undefined, 'past the end')
  t.equal(await index.chunkIdAt(study, -1), undefined)
  t.equal(await index.chunkIdAt(study, 1.5), undefined)
  const got = (await index.chunkIdAt(study, 2)) as Uint8Array
  got.fill(0)
  t.same(await index.chunkIdAt(study, 2), ids[2], 'a caller changing its copy changes nothing kept')
  ;((await index.chunkList(study)) as Uint8Array[])[3]?.fill(0)
  t.same(await index.chunkList(study), ids)

  await index.delete(study)
  t.equal(await index.chunkList(study), undefined, 'a forgotten list is not served from memory')
  t.equal(await index.chunkIdAt(study, 0), undefined)
  const other = ids.slice(0, 2).reverse()
  await index.putChunkList(study, other)
  t.same(await index.chunkIdAt(study, 0), other[0], 'a list put again replaces the one in memory')

  await db.close()
  db = await ChainStore.open(join(dir, 'db'))
  const reopened = new StudyIndex(db.keyspace('i'))
  t.same(await reopened.chunkList(study), other, 'durable')
  t.same(await reopened.chunkIdAt(study, 1), other[1])
})
