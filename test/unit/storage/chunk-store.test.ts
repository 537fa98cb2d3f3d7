import t, { type Test } from 'tap'
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { toHex } from '../../../src/util/index.js'
import { ChainStore, ChunkStore } from '../../../src/storage/index.js'

interface Fixture {
  dir: string
  chunkDir: string
  chain: ChainStore
  open(quotaBytes?: number): Promise<ChunkStore>
}

/** A temporary dir with a ChainStore for the index; everything is closed and removed in teardown. */
async function fixture(t: Test): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-chunks-'))
  const chunkDir = join(dir, 'chunks')
  const f: Fixture = {
    dir,
    chunkDir,
    chain: await ChainStore.open(join(dir, 'db')),
    open: (quotaBytes = 1 << 20) => ChunkStore.open({ dir: chunkDir, quotaBytes, index: f.chain.keyspace('k') }),
  }
  t.teardown(async () => {
    await f.chain.close()
    await rm(dir, { recursive: true, force: true })
  })
  return f
}

function chunk(n: number): { id: Uint8Array; bytes: Uint8Array } {
  const bytes = new Uint8Array(randomBytes(n))
  return { id: new Uint8Array(createHash('sha256').update(bytes).digest()), bytes }
}

function pathOf(f: Fixture, id: Uint8Array): string {
  const hex = toHex(id)
  return join(f.chunkDir, hex.slice(0, 2), hex.slice(2, 4), hex)
}

/** Every file under `dir`, relative. */
async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

t.test('put/get round trip, idempotent, at the content address', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(1000)
  t.equal(await s.has(a.id), false)
  t.equal(await s.get(a.id), undefined)
  await s.put(a.id, a.bytes)
  t.equal(await s.has(a.id), true)
  t.same(Buffer.from((await s.get(a.id)) as Uint8Array), Buffer.from(a.bytes))
  t.same(await readFile(pathOf(f, a.id)), Buffer.from(a.bytes), 'stored at dir/<hex[0:2]>/<hex[2:4]>/<hex>')
  await s.put(a.id, a.bytes)
  await Promise.all([s.put(a.id, a.bytes), s.put(a.id, a.bytes)])
  t.equal(s.usedBytes, 1000, 'a repeated put is counted once')
  const empty = chunk(0)
  await s.put(empty.id, empty.bytes)
  t.equal((await s.get(empty.id))?.length, 0)
  await s.close()
  await t.rejects(s.get(a.id), { name: 'ChunkStoreError', code: 'CHUNK_STORE_CLOSED' })
})

t.test('a wrong id is refused', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(100)
  const b = chunk(100)
  await t.rejects(s.put(b.id, a.bytes), { name: 'ChunkStoreError', code: 'CHUNK_BAD_ID', penalize: true })
  t.equal(await s.has(b.id), false)
  t.equal(s.usedBytes, 0)
  t.same(await files(f.chunkDir), [], 'nothing written')
  await t.rejects(s.put(new Uint8Array(31), a.bytes), TypeError)
})

t.test('quota is enforced with nothing written', async (t) => {
  const f = await fixture(t)
  const s = await f.open(1500)
  const a = chunk(1000)
  const b = chunk(600)
  await s.put(a.id, a.bytes)
  const err = await s.put(b.id, b.bytes).catch((e: unknown) => e)
  t.match(err, { name: 'ChunkStoreError', code: 'CHUNK_QUOTA_EXCEEDED' })
  t.match((err as Error).message, /1000 bytes used.*quota of 1500 bytes/, 'message gives used and quota')
  t.equal(await s.has(b.id), false)
  t.equal(s.usedBytes, 1000)
  t.same(await files(f.chunkDir), [pathOf(f, a.id)], 'only the first chunk is on disk')
  // Concurrent puts cannot together pass the quota.
  const c = chunk(300)
  const d = chunk(300)
  const results = await Promise.allSettled([s.put(c.id, c.bytes), s.put(d.id, d.bytes)])
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one of two concurrent 300-byte puts fits')
  t.equal(s.usedBytes, 1300)
})

t.test('delete frees quota', async (t) => {
  const f = await fixture(t)
  const s = await f.open(1000)
  const a = chunk(800)
  const b = chunk(800)
  await s.put(a.id, a.bytes)
  await t.rejects(s.put(b.id, b.bytes), { code: 'CHUNK_QUOTA_EXCEEDED' })
  t.equal(await s.delete(a.id), true)
  t.equal(await s.delete(a.id), false, 'second delete finds nothing')
  t.equal(s.usedBytes, 0)
  t.equal(await s.get(a.id), undefined)
  await s.put(b.id, b.bytes)
  t.equal(s.usedBytes, 800)
  t.same(await files(f.chunkDir), [pathOf(f, b.id)], 'the deleted file is gone')
})

t.test('a corrupted file is detected and not served', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(500)
  const b = chunk(500)
  await s.put(a.id, a.bytes)
  await s.put(b.id, b.bytes)
  const bad = Buffer.from(a.bytes)
  bad[17] = (bad[17] as number) ^ 0x80
  await writeFile(pathOf(f, a.id), bad)
  // Unverified (a chunk served to a peer, who checks it): the same size, so it is handed out as it is.
  t.same(Buffer.from((await s.get(a.id, { verify: false })) as Uint8Array), bad, 'verify: false checks the size only')
  await t.rejects(s.get(a.id), { name: 'ChunkStoreError', code: 'CHUNK_CORRUPT' })
  t.equal(await s.has(a.id), false, 'the entry is dropped')
  t.equal(await s.get(a.id), undefined, 'and never served afterwards')
  t.equal(s.usedBytes, 500, 'its bytes are no longer counted')
  await s.put(a.id, a.bytes)
  t.same(Buffer.from((await s.get(a.id)) as Uint8Array), Buffer.from(a.bytes), 'it can be stored again')
  await unlink(pathOf(f, b.id))
  await t.rejects(s.get(b.id), { code: 'CHUNK_CORRUPT' }, 'a missing file is corrupt too')
  t.equal(await s.has(b.id), false)
})

t.test('reopening keeps the used bytes', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const chunks = [chunk(100), chunk(2000), chunk(3)]
  for (const c of chunks) await s.put(c.id, c.bytes)
  await s.delete((chunks[2] as { id: Uint8Array }).id)
  t.equal(s.usedBytes, 2100)
  await s.close()
  const again = await f.open()
  t.equal(again.usedBytes, 2100)
  t.equal(again.quotaBytes, 1 << 20)
  t.same(Buffer.from((await again.get((chunks[1] as { id: Uint8Array }).id)) as Uint8Array), Buffer.from((chunks[1] as { bytes: Uint8Array }).bytes))
  await again.close()
})

t.test('a wiped or partly lost folder: entries without a file are dropped at open', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const chunks = [chunk(100), chunk(200), chunk(300)]
  for (const c of chunks) await s.put(c.id, c.bytes)
  await s.close()
  await unlink(pathOf(f, (chunks[0] as { id: Uint8Array }).id))
  const partly = await f.open()
  t.equal(partly.droppedAtOpen, 1)
  t.equal(partly.usedBytes, 500)
  t.notOk(await partly.has((chunks[0] as { id: Uint8Array }).id), 'the lost chunk is no longer claimed')
  t.ok(await partly.has((chunks[1] as { id: Uint8Array }).id))
  await partly.close()
  await rm(f.chunkDir, { recursive: true, force: true })
  const wiped = await f.open()
  t.equal(wiped.droppedAtOpen, 2)
  t.equal(wiped.usedBytes, 0)
  for (const c of chunks) t.notOk(await wiped.has(c.id))
  await wiped.put((chunks[1] as { id: Uint8Array }).id, (chunks[1] as { bytes: Uint8Array }).bytes)
  t.equal(wiped.usedBytes, 200, 'stored again')
  await wiped.close()
})

t.test('no temporary files are left after puts', async (t) => {
  const f = await fixture(t)
  const s = await f.open(1 << 24)
  const chunks = Array.from({ length: 40 }, (_, i) => chunk(1 + i * 97))
  await Promise.all(chunks.map((c) => s.put(c.id, c.bytes)))
  await s.put(chunks[0]?.id as Uint8Array, chunks[0]?.bytes as Uint8Array)
  const all = await files(f.chunkDir)
  t.equal(all.length, 40)
  t.same(
    all.filter((p) => p.includes('.tmp')),
    [],
    'no .tmp files',
  )
  t.same(all.sort(), chunks.map((c) => pathOf(f, c.id)).sort())
})

t.test('after a crash: temporary files are swept, unindexed chunks verified and counted', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const kept = chunk(500)
  await s.put(kept.id, kept.bytes)
  await s.close()
  // A crash mid-write leaves a temporary file; one between rename and index
  // write leaves a chunk file with no index entry; a bad file has a wrong name.
  const orphan = chunk(700)
  const bad = chunk(300)
  const orphanPath = pathOf(f, orphan.id)
  const badPath = pathOf(f, bad.id)
  for (const p of [orphanPath, badPath]) await mkdir(dirname(p), { recursive: true })
  await writeFile(orphanPath, orphan.bytes)
  await writeFile(orphanPath + '.tmp-abc123', orphan.bytes.subarray(0, 10))
  await writeFile(badPath, new Uint8Array(300))
  const again = await f.open()
  t.equal(again.usedBytes, 1200, 'the orphan is counted')
  t.same(Buffer.from((await again.get(orphan.id)) as Uint8Array), Buffer.from(orphan.bytes), 'and served')
  t.notOk(
    (await files(f.chunkDir)).some((p) => p.includes('.tmp-')),
    'no temporary file left',
  )
  t.notOk(await again.has(bad.id), 'a file whose bytes do not match its name is dropped')
  t.notOk((await files(f.chunkDir)).includes(badPath))
  await again.close()
})

t.test('a flush started while another runs returns only after it: every put deferred before it is durable then', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  for (const c of [chunk(100_000), chunk(200_000), chunk(300_000)]) await s.put(c.id, c.bytes, { defer: true })
  const order: string[] = []
  const first = s.flush().then(() => order.push('first'))
  // The first has taken the pending lists: the second finds nothing left of its own, and must still wait.
  const second = s.flush().then(() => order.push('second'))
  const closed = s.close().then(() => order.push('close'))
  await Promise.all([first, second, closed])
  t.same(order, ['first', 'second', 'close'], 'in the order they were asked')
})

t.test('deferred puts: readable at once, durable after flush, recovered after a crash before it', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const chunks = [chunk(1000), chunk(2000), chunk(3000)]
  for (const c of chunks) await s.put(c.id, c.bytes, { defer: true })
  for (const c of chunks) t.same(Buffer.from((await s.get(c.id)) as Uint8Array), Buffer.from(c.bytes), 'readable before the flush')
  t.equal(s.usedBytes, 6000)
  await s.flush()
  await s.flush()
  t.pass('flush twice is harmless')
  // A crash before a flush: simulate lost index entries (the files stay): the next open indexes them again.
  const more = chunk(500)
  await s.put(more.id, more.bytes, { defer: true })
  await f.chain.keyspace('k').del(`c/${toHex(more.id)}`)
  const again = await f.open()
  t.ok(await again.has(more.id), 'an unindexed file is verified and indexed at open')
  t.equal(again.usedBytes, 6500)
  await again.close()
})

t.test('deferred puts write in place: a torn file is dropped at open, a torn unindexed one removed', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(4000)
  const b = chunk(4000)
  await s.put(a.id, a.bytes, { defer: true })
  await s.put(b.id, b.bytes, { defer: true })
  t.notOk(
    (await files(f.chunkDir)).some((p) => p.includes('.tmp-')),
    'no temporary name',
  )
  // A crash before the flush: a's file torn (short) with its entry kept; b's torn with no entry.
  await writeFile(pathOf(f, a.id), a.bytes.subarray(0, 1000))
  await writeFile(pathOf(f, b.id), b.bytes.subarray(0, 1000))
  await f.chain.keyspace('k').del(`c/${toHex(b.id)}`)
  const again = await f.open()
  t.notOk(await again.has(a.id), 'an entry whose file has the wrong size is dropped')
  t.notOk(await again.has(b.id), 'an unindexed torn file is not indexed')
  t.notOk((await files(f.chunkDir)).includes(pathOf(f, b.id)), 'and is removed')
  t.equal(again.droppedAtOpen, 1)
  t.equal(again.usedBytes, 0)
  await again.put(a.id, a.bytes, { defer: true })
  t.same(Buffer.from((await again.get(a.id)) as Uint8Array), Buffer.from(a.bytes), 'stored again whole')
  await again.close()
})

t.test('put with verified: the caller vouches for the id; a read still verifies', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(1000)
  const wrong = chunk(1000).id
  await t.rejects(s.put(wrong, a.bytes), { code: 'CHUNK_BAD_ID' }, 'without it, a wrong id is refused')
  await s.put(wrong, a.bytes, { verified: true })
  t.ok(await s.has(wrong), 'with it, the store does not hash again')
  await t.rejects(s.get(wrong), { code: 'CHUNK_CORRUPT' }, 'but the read finds the mismatch and drops the entry')
  t.notOk(await s.has(wrong))
  await s.close()
})

t.test('a fan-out folder removed behind the store is created again at the next put', async (t) => {
  const f = await fixture(t)
  const s = await f.open()
  const a = chunk(100)
  const b = chunk(100)
  const idB = new Uint8Array(a.id)
  idB[31] = (idB[31] as number) ^ 1 // the same folder as a, another name
  await s.put(a.id, a.bytes, { defer: true })
  await rm(dirname(pathOf(f, a.id)), { recursive: true, force: true })
  await s.put(idB, b.bytes, { defer: true, verified: true })
  t.ok(await s.has(idB))
  t.ok((await files(f.chunkDir)).includes(pathOf(f, idB)), 'its file is there')
  const c = chunk(100)
  await rm(f.chunkDir, { recursive: true, force: true })
  await s.put(c.id, c.bytes)
  t.same(Buffer.from((await s.get(c.id)) as Uint8Array), Buffer.from(c.bytes), 'a synced put too')
  await s.close()
})

t.test('a chunk given as parts is stored whole (synced and deferred), checked like one array', async (t) => {
  const f = await fixture(t)
  const s = await f.open(1 << 22)
  const a = chunk(300_000)
  // Uneven parts, an empty one among them, as a pipe hands over the views of what it received.
  const parts = [a.bytes.subarray(0, 1), a.bytes.subarray(1, 65_537), new Uint8Array(0), a.bytes.subarray(65_537, 200_000), a.bytes.subarray(200_000)]
  await s.put(a.id, parts)
  t.same(await readFile(pathOf(f, a.id)), Buffer.from(a.bytes), 'the file holds the parts in order')
  t.equal(s.usedBytes, 300_000)
  const b = chunk(70_000)
  const many = Array.from({ length: 1400 }, (_, i) => b.bytes.subarray(i * 50, i * 50 + 50)) // more parts than one writev takes
  await s.put(b.id, many, { defer: true, verified: true })
  await s.flush()
  t.same(Buffer.from((await s.get(b.id)) as Uint8Array), Buffer.from(b.bytes))
  const c = chunk(1000)
  await t.rejects(s.put(c.id, [c.bytes.subarray(0, 500), chunk(500).bytes]), { code: 'CHUNK_BAD_ID' }, 'parts that do not hash to the id are refused')
  t.equal(await s.has(c.id), false)
})
