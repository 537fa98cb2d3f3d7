import t, { type Test } from 'tap'
import fc from 'fast-check'
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConsensusWal, type WalEntry } from '../../../src/consensus/index.js'
import { encodeTrusted, u64 } from '../../../src/chain/index.js'
import { toHex } from '../../../src/util/index.js'

/** A fresh temporary directory, removed in teardown. */
async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-wal-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a WAL that is closed in teardown (closing twice is harmless here: close errors are ignored). */
async function openWal(t: Test, path: string): Promise<ConsensusWal> {
  const wal = await ConsensusWal.open(path)
  t.teardown(() => wal.close().catch(() => {}))
  return wal
}

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill)

/** Comparable view of an entry (bytes as hex). */
function view(e: WalEntry): unknown {
  return e.kind === 'message'
    ? { height: e.height, kind: e.kind, bytes: toHex(e.bytes) }
    : { height: e.height, kind: e.kind, round: e.round, block: toHex(e.blockBytes) }
}

const SAMPLE: WalEntry[] = [
  { height: 1, kind: 'message', bytes: bytes(10, 1) },
  { height: 1, kind: 'lock', round: 0, blockBytes: bytes(300, 2) },
  { height: 1, kind: 'message', bytes: bytes(70_000, 3) },
  { height: 2 ** 40, kind: 'message', bytes: new Uint8Array(0) },
  { height: Number.MAX_SAFE_INTEGER, kind: 'lock', round: 0xffffffff, blockBytes: bytes(1, 4) },
]

/** Appends `entries` one by one and returns the file size after each (the frame ends). */
async function appendAll(wal: ConsensusWal, path: string, entries: readonly WalEntry[]): Promise<number[]> {
  const ends: number[] = []
  for (const e of entries) {
    await wal.append(e)
    ends.push((await stat(path)).size)
  }
  return ends
}

/** One whole frame as the WAL writes it: length, 4 checksum bytes, body. */
function frame(body: Uint8Array, checksum?: Uint8Array): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(body.length, 0)
  Buffer.from(checksum ?? createHash('sha256').update(body).digest().subarray(0, 4)).copy(head, 4)
  return Buffer.concat([head, body])
}

t.test('append, close and reopen gives the same entries in order', async (t) => {
  const path = join(await tempDir(t), 'wal')
  const wal = await openWal(t, path)
  t.same(wal.entries(), [], 'a new log is empty')
  await appendAll(wal, path, SAMPLE)
  await wal.close()
  const again = await openWal(t, path)
  t.same(again.entries().map(view), SAMPLE.map(view), 'every entry back, in append order, with its height, kind, round and bytes')

  // Appending after a reopen continues the log.
  const more: WalEntry = { height: 3, kind: 'message', bytes: bytes(5, 9) }
  await again.append(more)
  await again.close()
  const third = await openWal(t, path)
  t.same(third.entries().map(view), [...SAMPLE, more].map(view), 'entries appended after a reopen follow the earlier ones')
})

t.test('random entry lists round-trip in order', async (t) => {
  const dir = await tempDir(t)
  const entryArb: fc.Arbitrary<WalEntry> = fc.oneof(
    fc.record({ height: fc.nat({ max: Number.MAX_SAFE_INTEGER }), kind: fc.constant('message' as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
    fc.record({
      height: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      kind: fc.constant('lock' as const),
      round: fc.nat({ max: 0xffffffff }),
      blockBytes: fc.uint8Array({ maxLength: 200 }),
    }),
  )
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(entryArb, { maxLength: 12 }), async (entries) => {
      const path = join(dir, `wal-${run++}`)
      const wal = await ConsensusWal.open(path)
      for (const e of entries) await wal.append(e)
      await wal.close()
      const back = await ConsensusWal.open(path)
      await back.close()
      return JSON.stringify(back.entries().map(view)) === JSON.stringify(entries.map(view))
    }),
    { numRuns: 60 },
  )
  t.pass('60 random lists')
})

t.test('a log cut anywhere inside its last frame keeps the whole frames before it', async (t) => {
  const dir = await tempDir(t)
  const entries = SAMPLE.slice(0, 3)
  const base = join(dir, 'base')
  const w = await ConsensusWal.open(base)
  const ends = await appendAll(w, base, entries)
  await w.close()
  const whole = await readFile(base)
  const lastStart = ends[1] as number
  const lastEnd = ends[2] as number
  // Cuts inside the 8-byte frame head and inside the body.
  const cuts = [lastStart + 1, lastStart + 4, lastStart + 7, lastStart + 8, lastStart + 9, Math.floor((lastStart + lastEnd) / 2), lastEnd - 1]
  for (const cut of cuts) {
    const path = join(dir, `cut-${cut}`)
    await writeFile(path, whole.subarray(0, cut))
    const wal = await ConsensusWal.open(path)
    t.same(wal.entries().map(view), entries.slice(0, 2).map(view), `cut at ${cut}: the torn frame is dropped`)
    t.equal((await stat(path)).size, lastStart, `cut at ${cut}: the file is truncated to the last whole frame`)
    const next: WalEntry = { height: 7, kind: 'message', bytes: bytes(3, 7) }
    await wal.append(next)
    await wal.close()
    const again = await ConsensusWal.open(path)
    await again.close()
    t.same(again.entries().map(view), [...entries.slice(0, 2), next].map(view), `cut at ${cut}: a later append follows the last whole frame and reads back`)
  }
})

t.test('a property: any cut of a log gives exactly the frames that end before it', async (t) => {
  const dir = await tempDir(t)
  const entries = SAMPLE.slice(0, 4)
  const base = join(dir, 'base')
  const w = await ConsensusWal.open(base)
  const ends = await appendAll(w, base, entries)
  await w.close()
  const whole = await readFile(base)
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: whole.length }), async (cut) => {
      const path = join(dir, `p-${run++}`)
      await writeFile(path, whole.subarray(0, cut))
      const wal = await ConsensusWal.open(path)
      await wal.close()
      const kept = ends.filter((e) => e <= cut).length
      const size = (await stat(path)).size
      return JSON.stringify(wal.entries().map(view)) === JSON.stringify(entries.slice(0, kept).map(view)) && size === (kept === 0 ? 0 : ends[kept - 1])
    }),
    { numRuns: 80 },
  )
  t.pass('80 random cut points')
})

t.test('garbage, a bad checksum or an undecodable body after the last whole frame is dropped', async (t) => {
  const dir = await tempDir(t)
  const good: WalEntry[] = [SAMPLE[0] as WalEntry, SAMPLE[1] as WalEntry]
  const okBody = encodeTrusted([u64(9), 'message', bytes(4, 4)])
  const tails: [string, Uint8Array][] = [
    ['random garbage', Buffer.from('this is not a frame at all, just bytes')],
    ['a frame head claiming more bytes than the file holds', frame(bytes(100, 1)).subarray(0, 20)],
    ['a whole frame with a wrong checksum', frame(okBody, Buffer.from([0, 0, 0, 0]))],
    ['a whole frame with a valid checksum over a non-canonical body', frame(new Uint8Array([0xc1, 0xc1, 0xc1]))],
    ['a whole frame of an unknown entry kind', frame(encodeTrusted([u64(9), 'vote', bytes(4, 4)]))],
    ['a frame head alone (fewer than 8 bytes)', Buffer.from([0, 0, 0])],
    ['a length above the 64 MiB bound', Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5])],
  ]
  for (const [what, tail] of tails) {
    const path = join(dir, what.replace(/[^a-z0-9]+/gi, '-'))
    const w = await ConsensusWal.open(path)
    const ends = await appendAll(w, path, good)
    await w.close()
    await appendFile(path, tail)
    const wal = await ConsensusWal.open(path)
    t.same(wal.entries().map(view), good.map(view), `${what}: only the whole frames are read`)
    t.equal((await stat(path)).size, ends[1], `${what}: the tail is cut off the file`)
    const next: WalEntry = { height: 5, kind: 'lock', round: 2, blockBytes: bytes(8, 8) }
    await wal.append(next)
    await wal.close()
    const again = await ConsensusWal.open(path)
    await again.close()
    t.same(again.entries().map(view), [...good, next].map(view), `${what}: the next append is read back after the whole frames`)
  }

  // The reader stops at the first bad frame: a valid frame after it is not replayed
  // (replay stops where a crash could have torn the log).
  const path = join(dir, 'bad-middle')
  const w = await ConsensusWal.open(path)
  const ends = await appendAll(w, path, good)
  await w.close()
  await appendFile(path, frame(okBody, Buffer.from([9, 9, 9, 9])))
  await appendFile(path, frame(okBody))
  const wal = await openWal(t, path)
  t.same(wal.entries().map(view), good.map(view), 'a good frame after a bad one is not read')
  t.equal((await stat(path)).size, ends[1], 'and the log is cut at the bad frame')
})

t.test('a flipped byte in the body of the last frame fails the checksum and drops that frame only', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'wal')
  const w = await ConsensusWal.open(path)
  const ends = await appendAll(w, path, SAMPLE.slice(0, 3))
  await w.close()
  const data = await readFile(path)
  const at = (ends[1] as number) + 8 + 5
  data[at] = (data[at] as number) ^ 0x01
  await writeFile(path, data)
  const wal = await openWal(t, path)
  t.same(wal.entries().map(view), SAMPLE.slice(0, 2).map(view), 'the corrupted last frame is dropped, the first two kept')
})

t.test('reset empties the log; appends after it start a new log', async (t) => {
  const path = join(await tempDir(t), 'wal')
  const wal = await openWal(t, path)
  await appendAll(wal, path, SAMPLE)
  await wal.reset()
  t.equal((await stat(path)).size, 0, 'the file is empty after reset')
  const after: WalEntry[] = [
    { height: 4, kind: 'message', bytes: bytes(2, 1) },
    { height: 4, kind: 'lock', round: 1, blockBytes: bytes(2, 2) },
  ]
  for (const e of after) await wal.append(e)
  await wal.close()
  const again = await openWal(t, path)
  t.same(again.entries().map(view), after.map(view), 'only the entries appended after the reset are read back, in order')
  await again.reset()
  await again.close()
  const empty = await openWal(t, path)
  t.same(empty.entries(), [], 'a reset log reopens empty')
})

t.test('a log file shorter than a frame head, or a missing file, opens empty', async (t) => {
  const dir = await tempDir(t)
  const missing = await openWal(t, join(dir, 'new'))
  t.same(missing.entries(), [], 'a missing file is created empty')
  const short = join(dir, 'short')
  await writeFile(short, Buffer.from([0, 0, 0, 1]))
  const wal = await openWal(t, short)
  t.same(wal.entries(), [], 'four bytes: nothing read')
  t.equal((await stat(short)).size, 0, 'and truncated to nothing')
})
