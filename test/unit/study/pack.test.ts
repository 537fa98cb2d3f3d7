import t, { type Test } from 'tap'
import { createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { merkleRoot } from '../../../src/crypto/index.js'
import { fromHex, toHex } from '../../../src/util/index.js'
import { ChunkError, contentRoot, decryptChunk, encryptChunks, type EncryptChunksOptions, type EncryptedChunk } from '../../../src/study/index.js'

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i)
const STUDY = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i)
const OPTS: EncryptChunksOptions = { dataKey: KEY, studyId: STUDY, version: 7, chunkSize: 16 }

/** Yields `data` in pieces of the given sizes (cycled), to cross chunk boundaries in many ways. */
async function* pieces(data: Uint8Array, sizes: number[] = [data.length || 1]): AsyncGenerator<Uint8Array> {
  let off = 0
  let i = 0
  while (off < data.length) {
    const n = sizes[i++ % sizes.length] as number
    yield data.subarray(off, off + n)
    off += n
  }
}

async function collect(gen: AsyncIterable<EncryptedChunk>): Promise<EncryptedChunk[]> {
  const out: EncryptedChunk[] = []
  for await (const c of gen) out.push(c)
  return out
}

function decryptAll(chunks: EncryptedChunk[], opts: EncryptChunksOptions = OPTS): Uint8Array {
  const parts = chunks.map((c, i) => decryptChunk(c.ciphertext, { ...opts, index: i, isLast: i === chunks.length - 1, id: c.id }))
  return Buffer.concat(parts)
}

function chunkErrorCode(t: Test, fn: () => unknown, code: string, msg: string): void {
  t.throws(fn, { name: 'ChunkError', code }, msg)
}

t.test('round trip across chunk boundaries', async (t) => {
  const size = 1000
  const lengths = [0, 1, size - 1, size, size + 1, 3.5 * size]
  for (const len of lengths) {
    const data = randomBytes(len)
    for (const split of [[len || 1], [1], [7, 333, 1000, 1501]]) {
      const chunks = await collect(encryptChunks(pieces(data, split), { ...OPTS, chunkSize: size }))
      t.equal(chunks.length, Math.max(1, Math.ceil(len / size)), `${len} bytes in pieces ${split.join(',')}: chunk count`)
      chunks.forEach((c, i) => {
        t.equal(c.index, i)
        t.equal(c.ciphertext.length, Math.min(size, len - i * size) + 16, `chunk ${i} of ${len}: ciphertext length`)
        t.equal(toHex(c.id), createHash('sha256').update(c.ciphertext).digest('hex'), 'id is sha256 of the ciphertext')
      })
      t.same(Buffer.from(decryptAll(chunks, { ...OPTS, chunkSize: size })), data, `${len} bytes in pieces ${split.join(',')}: round trip`)
    }
  }
})

t.test('empty input gives one empty last chunk; empty pieces are ignored', async (t) => {
  async function* empties(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(0)
    yield new Uint8Array(0)
  }
  const chunks = await collect(encryptChunks(empties(), OPTS))
  t.equal(chunks.length, 1)
  t.equal(chunks[0]?.ciphertext.length, 16)
  t.equal(decryptChunk(chunks[0]?.ciphertext as Uint8Array, { ...OPTS, index: 0, isLast: true }).length, 0)
})

t.test('chunks are bound to position, study, version and key', async (t) => {
  const chunks = await collect(encryptChunks(pieces(randomBytes(64)), OPTS))
  t.equal(chunks.length, 4)
  const [c0, c1] = chunks as [EncryptedChunk, EncryptedChunk]
  chunkErrorCode(t, () => decryptChunk(c1.ciphertext, { ...OPTS, index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'chunk 1 at position 0')
  chunkErrorCode(t, () => decryptChunk(c0.ciphertext, { ...OPTS, index: 1, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'chunk 0 at position 1')
  const otherStudy = Uint8Array.from(STUDY)
  otherStudy[15] ^= 1
  chunkErrorCode(t, () => decryptChunk(c0.ciphertext, { ...OPTS, studyId: otherStudy, index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'another study')
  chunkErrorCode(t, () => decryptChunk(c0.ciphertext, { ...OPTS, version: 8, index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'another version')
  chunkErrorCode(t, () => decryptChunk(c0.ciphertext, { ...OPTS, dataKey: randomBytes(32), index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'another key')
  // The same plaintext under another version's key gives unrelated chunks (a fresh data key per study version).
  t.notSame(
    toHex(c0.ciphertext),
    toHex((await collect(encryptChunks(pieces(randomBytes(64)), { ...OPTS, dataKey: randomBytes(32) })))[0]?.ciphertext as Uint8Array),
  )
})

t.test('tampering is detected', async (t) => {
  const [c0] = await collect(encryptChunks(pieces(randomBytes(40)), OPTS))
  const ct = (c0 as EncryptedChunk).ciphertext
  for (const pos of [0, 15, 16, 31]) {
    const bad = Uint8Array.from(ct)
    bad[pos] ^= 0x01
    chunkErrorCode(t, () => decryptChunk(bad, { ...OPTS, index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', `flipped byte ${pos}`)
    chunkErrorCode(
      t,
      () => decryptChunk(bad, { ...OPTS, index: 0, isLast: false, id: (c0 as EncryptedChunk).id }),
      'CHUNK_BAD_ID',
      `flipped byte ${pos} against its id`,
    )
  }
  chunkErrorCode(t, () => decryptChunk(ct.subarray(0, 10), { ...OPTS, index: 0, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'shorter than the tag')
  chunkErrorCode(t, () => decryptChunk(ct, { ...OPTS, index: 0, isLast: false, maxChunkSize: 8 }), 'CHUNK_TOO_LARGE', 'above the size bound')
  const err = t.throws(() => decryptChunk(ct.subarray(0, 20), { ...OPTS, index: 0, isLast: false, id: (c0 as EncryptedChunk).id }))
  t.ok(err instanceof ChunkError && err.penalize, 'a bad id penalizes the sender')
})

t.test('dropping the last chunk is detected', async (t) => {
  const chunks = await collect(encryptChunks(pieces(randomBytes(48)), OPTS))
  t.equal(chunks.length, 3)
  const truncated = chunks.slice(0, 2)
  // The receiver treats its last chunk as the last: it was sealed with isLast = 0.
  chunkErrorCode(t, () => decryptAll(truncated), 'CHUNK_DECRYPT_FAILED', 'truncated study')
  // And the real last chunk cannot be passed off as a middle one.
  chunkErrorCode(t, () => decryptChunk(chunks[2]?.ciphertext as Uint8Array, { ...OPTS, index: 2, isLast: false }), 'CHUNK_DECRYPT_FAILED', 'last as middle')
})

t.test('bad parameters are refused', async (t) => {
  await t.rejects(collect(encryptChunks(pieces(new Uint8Array(1)), { ...OPTS, chunkSize: 0 })), { code: 'CHUNK_BAD_PARAMS' })
  await t.rejects(collect(encryptChunks(pieces(new Uint8Array(1)), { ...OPTS, dataKey: new Uint8Array(16) })), { code: 'CHUNK_BAD_PARAMS' })
  await t.rejects(collect(encryptChunks(pieces(new Uint8Array(1)), { ...OPTS, studyId: new Uint8Array(32) })), { code: 'CHUNK_BAD_PARAMS' })
  await t.rejects(collect(encryptChunks(pieces(new Uint8Array(1)), { ...OPTS, version: 2 ** 32 })), { code: 'CHUNK_BAD_PARAMS' })
  chunkErrorCode(t, () => decryptChunk(new Uint8Array(16), { ...OPTS, index: -1, isLast: true }), 'CHUNK_BAD_PARAMS', 'negative index')
})

t.test('pinned vector', async (t) => {
  // Key 00..1f, study a0..af, version 7, chunk size 16, plaintext "radchain pinned chunk vector" (28 bytes).
  // Checked against a hand-built AES-256-GCM call with the AAD spelled out below.
  const chunks = await collect(encryptChunks(pieces(new TextEncoder().encode('radchain pinned chunk vector')), OPTS))
  const want = [
    {
      ct: '7cddd1bddd4dead328d8c05b7649f5b94293618b70a3a07a15a8a0b7d2561ebb',
      id: 'bbc1492b4d45eee7c2fee6dbeaa77589194c9793ad3ebd53c9c3398372d7dd93',
      // 'radchain/chunk/v1' || study || u32 version || u64 index || u8 isLast
      aad: '726164636861696e2f6368756e6b2f7631' + 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf' + '00000007' + '0000000000000000' + '00',
      nonce: '00000000' + '0000000000000000',
    },
    {
      ct: '76beca922fd4467b6d5a3e4bb43dff36e0648be3fe836d7ab0f2faf8',
      id: '2258995ff337d2ded7cc6cc3a94df85fac16594fec347356aa9c7845b3a01edf',
      aad: '726164636861696e2f6368756e6b2f7631' + 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf' + '00000007' + '0000000000000001' + '01',
      nonce: '00000000' + '0000000000000001',
    },
  ]
  t.equal(chunks.length, 2)
  const plain: Buffer[] = []
  want.forEach((w, i) => {
    const c = chunks[i] as EncryptedChunk
    t.equal(toHex(c.ciphertext), w.ct, `chunk ${i} ciphertext`)
    t.equal(toHex(c.id), w.id, `chunk ${i} id`)
    // Independent of src/: the layout of nonce and AAD is what the spec says.
    const ct = Buffer.from(w.ct, 'hex')
    const d = createDecipheriv('aes-256-gcm', KEY, Buffer.from(w.nonce, 'hex'))
    d.setAAD(Buffer.from(w.aad, 'hex'))
    d.setAuthTag(ct.subarray(ct.length - 16))
    plain.push(Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]))
  })
  t.equal(Buffer.concat(plain).toString('utf8'), 'radchain pinned chunk vector')
  t.equal(toHex(contentRoot(chunks.map((c) => c.id))), toHex(merkleRoot(want.map((w) => fromHex(w.id)))), 'content root is the merkle root of the ids')
})

t.test('contentRoot checks its inputs', async (t) => {
  t.throws(() => contentRoot([new Uint8Array(31)]), TypeError)
  t.equal(contentRoot([]).length, 32)
})

t.test('streaming keeps memory bounded', async (t) => {
  const chunkSize = 256 * 1024
  const total = 64 * 1024 * 1024
  const piece = randomBytes(64 * 1024)
  let pulled = 0
  async function* generate(): AsyncGenerator<Uint8Array> {
    for (let off = 0; off < total; off += piece.length) {
      pulled += piece.length
      yield piece
    }
  }
  // A collector we can call, so the bound measures what is kept alive rather than when V8 collects.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  const rssBefore = process.memoryUsage().rss
  let peakRss = rssBefore
  let count = 0
  let bytes = 0
  let maxAhead = 0
  for await (const c of encryptChunks(generate(), { ...OPTS, chunkSize })) {
    count++
    bytes += c.ciphertext.length - 16
    // Never more than the emitted chunks, one held-back chunk and one source piece have been read.
    maxAhead = Math.max(maxAhead, pulled - bytes)
    if (count % 16 === 0) {
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
      gc()
    }
  }
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
  t.equal(count, total / chunkSize)
  t.equal(bytes, total)
  t.ok(maxAhead <= chunkSize + piece.length, `read ahead ${maxAhead} bytes`)
  const growth = peakRss - rssBefore
  t.ok(growth < 24 * 1024 * 1024, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB while encrypting 64 MiB`)
})
