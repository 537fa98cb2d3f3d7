import t, { type Test } from 'tap'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toHex } from '../../../src/util/index.js'
import { ChainStore, StoreError, type BlockCommit } from '../../../src/storage/index.js'
import {
  authoritySet,
  decodeBlock,
  decodeCertificate,
  genesisBlock,
  getParams,
  verifyCertificate,
  type Block,
  type OrgAction,
  type StateWrites,
} from '../../../src/chain/index.js'
import { CHAIN_ID, advance, certBytes, dumpState, makeChain, note, testSigner, vote } from '../chain/fixtures.js'

/** A fresh temporary directory, removed in teardown. */
async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-store-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function commitOf(block: Block, writes: StateWrites, certBytes: Uint8Array = new Uint8Array(0)): BlockCommit {
  return { height: block.header.height, hash: block.hash, blockBytes: block.bytes, certBytes, txIds: block.txs.map((x) => x.id), stateWrites: writes }
}

/**
 * Genesis plus two blocks. Block 1 records two votes for admitting an org (a
 * pending proposal key); block 2 holds the deciding vote, which deletes it.
 */
function sampleChain(): { commits: BlockCommit[]; state: Map<string, Uint8Array>; blocks: Block[]; deletes: number } {
  const c = makeChain({ authorities: 4 })
  const g = genesisBlock(c.genesis)
  const commits: BlockCommit[] = [commitOf(g.block, g.writes)]
  const blocks: Block[] = [g.block]
  const admit: OrgAction = {
    kind: 'admit',
    org: { id: 'stored-org', name: 'S', role: 'member', signKey: testSigner('stored-org').publicKey, encKey: new Uint8Array(32), addrs: [] },
  }
  const voter = (i: number): ReturnType<typeof testSigner> => {
    const a = c.authorities[i]
    if (a === undefined) throw new Error('no authority')
    return a.signer
  }
  // Each block is stored with its own commit certificate (the one the next block carries).
  const writer = testSigner('writer')
  const r1 = advance(c, [vote(c, voter(0), admit), vote(c, voter(1), admit), note(writer, 0, 'one')])
  commits.push(commitOf(r1.block, r1.writes, certBytes(c.lastCommit)))
  blocks.push(r1.block)
  const r2 = advance(c, [vote(c, voter(2), admit), note(writer, 1, 'two')])
  commits.push(commitOf(r2.block, r2.writes, certBytes(c.lastCommit)))
  blocks.push(r2.block)
  if (r1.rejected.length + r2.rejected.length > 0 || r1.block.txs.length !== 3 || r2.block.txs.length !== 2) throw new Error('sample chain is not as planned')
  return { commits, state: c.state, blocks, deletes: [...r2.writes.values()].filter((v) => v === null).length }
}

t.test('an empty store has no head and no state', async (t) => {
  const store = await ChainStore.open(await tempDir(t))
  t.teardown(() => store.close())
  t.equal(await store.headHeight(), null)
  t.equal(await store.hashAt(0), undefined)
  t.equal(await store.certBytes(0), undefined)
  t.equal(await store.blockBytes(new Uint8Array(32)), undefined)
  t.equal(await store.txLocation(new Uint8Array(32)), undefined)
  t.same(dumpState(await store.loadState()), [])
})

t.test('commitBlock then read back everything, including deletions; reopen keeps it', async (t) => {
  const dir = await tempDir(t)
  const { commits, state, blocks, deletes } = sampleChain()
  t.ok(deletes > 0, 'block 2 deletes state keys')
  let store = await ChainStore.open(dir)
  for (const c of commits) await store.commitBlock(c)

  const check = async (label: string): Promise<void> => {
    t.equal(await store.headHeight(), 2, `${label}: head height`)
    for (const [i, c] of commits.entries()) {
      t.equal(toHex((await store.hashAt(i)) ?? new Uint8Array(0)), toHex(c.hash), `${label}: hashAt(${i})`)
      t.equal(toHex((await store.blockBytes(c.hash)) ?? new Uint8Array(0)), toHex(c.blockBytes), `${label}: blockBytes(${i})`)
      t.equal(toHex((await store.certBytes(i)) ?? new Uint8Array(1)), toHex(c.certBytes), `${label}: certBytes(${i})`)
      for (const [j, id] of c.txIds.entries()) t.same(await store.txLocation(id), { height: i, index: j }, `${label}: tx ${i}.${j} by bytes`)
      for (const [j, id] of c.txIds.entries()) t.same(await store.txLocation(toHex(id)), { height: i, index: j }, `${label}: tx ${i}.${j} by hex`)
    }
    t.equal(await store.hashAt(3), undefined, `${label}: nothing above the head`)
    t.same(dumpState(await store.loadState()), dumpState(state), `${label}: state equals the in-memory state (deletes applied)`)
    t.notOk(
      [...(await store.loadState()).keys()].some((k) => k.startsWith('p/')),
      `${label}: the deleted proposal is gone`,
    )
    const last = blocks[2] as Block
    const raw = await store.blockBytes(last.hash)
    const p = getParams(state)
    const decoded = decodeBlock(raw ?? new Uint8Array(0), {
      chainId: CHAIN_ID,
      maxBlockBytes: p.maxBlockBytes,
      maxBlockTxs: p.maxBlockTxs,
      maxTxBytes: p.maxTxBytes,
    })
    t.equal(toHex(decoded.hash), toHex(last.hash), `${label}: stored bytes decode to the block`)
    t.equal(toHex(decoded.lastCommit), toHex((await store.certBytes(1)) ?? new Uint8Array(1)), `${label}: block 2 carries the certificate stored for block 1`)
    const cert2 = decodeCertificate((await store.certBytes(2)) ?? new Uint8Array(0))
    t.doesNotThrow(() => verifyCertificate(cert2, CHAIN_ID, 2, last.hash, authoritySet(state)), `${label}: the stored certificate of block 2 verifies`)
  }
  await check('open')
  await store.close()
  store = await ChainStore.open(dir)
  t.teardown(() => store.close())
  await check('reopened')
})

t.test('state keys with awkward characters round-trip and stay inside the state keyspace', async (t) => {
  const store = await ChainStore.open(await tempDir(t))
  t.teardown(() => store.close())
  const writes = new Map<string, Uint8Array | null>([
    ['', new Uint8Array([1])],
    ['a:b', new Uint8Array([2])],
    ['é/ü', new Uint8Array([3])],
    ['~', new Uint8Array(0)],
    ['gone', null],
  ])
  await store.commitBlock({
    height: 0,
    hash: new Uint8Array(32).fill(1),
    blockBytes: new Uint8Array([9]),
    certBytes: new Uint8Array(0),
    txIds: [],
    stateWrites: writes,
  })
  const s = await store.loadState()
  t.same(dumpState(s), [
    ['', '01'],
    ['a:b', '02'],
    ['~', ''],
    ['é/ü', '03'],
  ])
  t.equal(await store.headHeight(), 0)
})

t.test('large heights and tx indexes are stored exactly', async (t) => {
  const store = await ChainStore.open(await tempDir(t))
  t.teardown(() => store.close())
  const h = 2 ** 40 + 3
  const ids = Array.from({ length: 300 }, (_, i) => new Uint8Array(32).fill(i % 256).map((x, j) => (j === 0 ? i >> 8 : x)))
  await store.commitBlock({
    height: h,
    hash: new Uint8Array(32).fill(7),
    blockBytes: new Uint8Array([1]),
    certBytes: new Uint8Array([2]),
    txIds: ids,
    stateWrites: new Map(),
  })
  t.equal(await store.headHeight(), h)
  t.equal(toHex((await store.hashAt(h)) ?? new Uint8Array(0)), '07'.repeat(32))
  t.same(await store.txLocation(ids[299] as Uint8Array), { height: h, index: 299 })
  t.equal(await store.hashAt(h - 1), undefined)
})

t.test('opening the same directory twice -> STORE_LOCKED', async (t) => {
  const dir = await tempDir(t)
  const first = await ChainStore.open(dir)
  t.teardown(() => first.close())
  await t.rejects(ChainStore.open(dir), { name: 'StoreError', code: 'STORE_LOCKED' })
  const again = await ChainStore.open(dir).catch((err: unknown) => err)
  t.ok(again instanceof StoreError, 'a StoreError')
  t.match((again as StoreError).message, /in use/)
})

t.test('after close the directory can be opened again', async (t) => {
  const dir = await tempDir(t)
  const a = await ChainStore.open(dir)
  await a.commitBlock({
    height: 0,
    hash: new Uint8Array(32),
    blockBytes: new Uint8Array([1]),
    certBytes: new Uint8Array(0),
    txIds: [],
    stateWrites: new Map([['k', new Uint8Array([5])]]),
  })
  await a.close()
  const b = await ChainStore.open(dir)
  t.teardown(() => b.close())
  t.equal(await b.headHeight(), 0)
  t.same(dumpState(await b.loadState()), [['k', '05']])
})

t.test('a path that cannot hold a database -> STORE_OPEN_FAILED', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'data')
  await writeFile(file, 'not a database')
  await t.rejects(ChainStore.open(file), { name: 'StoreError', code: 'STORE_OPEN_FAILED' }, 'a regular file')
  await t.rejects(ChainStore.open(join(file, 'db')), { name: 'StoreError', code: 'STORE_OPEN_FAILED' }, 'below a regular file')
})

// Found while writing these tests; see the report. ChainStore.open decides
// "locked" by matching /lock/i against the error text, which includes the
// path, so any open failure under a directory named like "blocks" or
// "blockchain" is reported as STORE_LOCKED (another daemon running).
t.test('a non-lock failure under a path containing "lock" must not be STORE_LOCKED', async (t) => {
  const dir = await tempDir(t)
  await mkdir(join(dir, 'blocks'))
  const file = join(dir, 'blocks', 'db')
  await writeFile(file, 'not a database')
  await t.rejects(ChainStore.open(file), { name: 'StoreError', code: 'STORE_OPEN_FAILED' })
})
