// A study registered with an enormous chunk count must cost nobody memory:
// the ledger refuses it (maxStudyChunks, maxStudyBytes), a holder asked about
// a study it holds nothing of builds nothing per chunk, and a requester
// refuses (and penalizes) an answer larger than the study's own chunk count allows.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  StateOverlay,
  applyWrites,
  authoritySet,
  getNonce,
  getParams,
  getStudy,
  listOrgs,
  orgBySignKey,
  placementOrder,
  registerStudyTx,
  signTx,
  type RegisterStudyPayload,
  type StudyRecord,
} from '../../src/chain/index.js'
import { generateX25519, sha256, type OrgKeys } from '../../src/crypto/index.js'
import {
  Bitfield,
  CHUNK_PROTOCOLS,
  P2PError,
  PENALTY,
  encodeHave,
  encodeList,
  encodeStudyRequest,
  haveResponseBytes,
  listResponseBytes,
  type HandleOpts,
  type P2PNode,
  type RequestOpts,
} from '../../src/p2p/index.js'
import { ChainStore, ChunkStore, StudyIndex } from '../../src/storage/index.js'
import { contentRoot } from '../../src/study/index.js'
import { SwarmService } from '../../src/node/swarm.js'
import type { ChainService } from '../../src/node/chain-service.js'
import { nullLogger } from '../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, studyPayload, type TestChain, type TestOrg } from '../unit/chain/fixtures.js'

const CHUNK = 4096
const HUGE = 0xffffffff
/** Heap and buffer growth allowed while answering about a study not held (a 2^32-chunk bitfield alone is 512 MiB). */
const MAX_GROWTH_BYTES = 50 * 1024 * 1024

function studyOf(custodian: string, chunkCount: number, size?: number): RegisterStudyPayload {
  return studyPayload(custodian, chunkCount, CHUNK, size)
}

function registerTx(c: TestChain, org: TestOrg, p: RegisterStudyPayload): ReturnType<typeof signTx> {
  return signTx(org.signer, { chainId: CHAIN_ID, type: registerStudyTx.name, nonce: getNonce(c.state, org.signer.publicKey), payload: p })
}

const newChain = (): TestChain =>
  makeChain({
    authorities: 4,
    params: { chunkSize: CHUNK, replicationFactor: 3, maxBlockTxs: 8, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 },
  })

t.test('(a) the state machine refuses a study of 2^32-1 chunks, and one just above each bound', async (t) => {
  const c = newChain()
  const org = c.orgs[0] as TestOrg
  const params = getParams(c.state)
  const cases: [string, RegisterStudyPayload, RegExp][] = [
    ['2^32-1 chunks with a matching size', studyOf(org.id, HUGE), /maxStudyChunks/],
    ['one chunk above maxStudyChunks', studyOf(org.id, params.maxStudyChunks + 1), /maxStudyChunks/],
    ['one byte above maxStudyBytes', studyOf(org.id, Math.ceil((params.maxStudyBytes + 1) / (CHUNK + 16)), params.maxStudyBytes + 1), /maxStudyBytes \(\d+\)/],
  ]
  for (const [what, p, message] of cases) {
    const r = advance(c, [registerTx(c, org, p)])
    t.same(
      r.rejected.map((x) => x.error.code),
      ['TX_INVALID'],
      what,
    )
    t.match(r.rejected[0]?.error.message ?? '', message, `${what}: the bound is named`)
    t.equal(getStudy(c.state, p.studyId), undefined, `${what}: not on the ledger`)
  }
})

/** The p2p surface the swarm uses: handlers kept to be called directly; other peers' answers set by the test. */
class FakeP2P {
  readonly handlers = new Map<string, HandleOpts>()
  readonly answers = new Map<string, (peer: Uint8Array) => Uint8Array>()
  connected: Uint8Array[] = []
  penalties: { points: number; reason: string }[] = []
  handle(name: string, opts: HandleOpts): void {
    this.handlers.set(name, opts)
  }
  handlePipe(name: string, opts: HandleOpts): void {
    this.handlers.set(name, opts)
  }
  on(): void {}
  peers(): { publicKey: Uint8Array; peerId: string; addr: string }[] {
    return this.connected.map((publicKey) => ({ publicKey, peerId: '', addr: '' }))
  }
  penalize(_k: Uint8Array, points: number, reason: string): void {
    this.penalties.push({ points, reason })
  }
  // As P2PNode.request: an answer above the bound fails, and costs the peer when the bound is the protocol's.
  async request(name: string, peer: Uint8Array, _req: Uint8Array, opts: RequestOpts = {}): Promise<Uint8Array> {
    const answer = this.answers.get(name)
    if (answer === undefined) throw new P2PError('P2P_REMOTE_ERROR', 'peer answered with error SWARM_NOT_HELD', { remoteCode: 'SWARM_NOT_HELD' })
    const res = answer(peer)
    if (opts.maxResponseBytes !== undefined && res.length > opts.maxResponseBytes) {
      if (opts.penalizeOversize === true) this.penalize(peer, PENALTY.FRAME_TOO_LARGE, `oversized ${name} response`)
      throw new P2PError('P2P_TOO_LARGE', `response exceeds ${opts.maxResponseBytes} bytes`, { penalize: opts.penalizeOversize === true })
    }
    return res
  }
  /** Calls this node's handler as a peer would, checking the answer against the bound the handler registered. */
  async call(name: string, from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const h = this.handlers.get(name)
    if (h === undefined) throw new Error(`no handler ${name}`)
    const res = await h.handler(from, req, new AbortController().signal)
    if (res.length > h.maxResponseBytes) throw new Error(`${name} answered ${res.length} bytes, above its bound ${h.maxResponseBytes}`)
    return res
  }
}

async function swarmOn(t: Test, chain: TestChain, self: TestOrg): Promise<{ p2p: FakeP2P; swarm: SwarmService; store: ChunkStore; index: StudyIndex }> {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-bounds-'))
  const db = await ChainStore.open(join(dir, 'db'))
  const store = await ChunkStore.open({ dir: join(dir, 'chunks'), quotaBytes: 1 << 30, index: db.keyspace('k') })
  t.teardown(async () => {
    await store.close()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  const index = new StudyIndex(db.keyspace('i'))
  const p2p = new FakeP2P()
  const chainView = {
    get state() {
      return chain.state
    },
    params: () => getParams(chain.state),
    orgs: () => listOrgs(chain.state),
    orgByKey: (k: Uint8Array) => orgBySignKey(chain.state, k),
    head: () => chain.head,
    on: () => undefined,
    off: () => undefined,
  } as unknown as ChainService
  const keys = { signer: self.signer, encryption: generateX25519(), identitySeed: new Uint8Array(32) } as OrgKeys
  const swarm = new SwarmService(
    { repairAfterMs: 60_000, scrubIntervalMs: 0 },
    {
      chain: chainView,
      chunks: store,
      index,
      p2p: p2p as unknown as P2PNode,
      keys,
      logger: nullLogger(),
      leases: { reportViolation: () => undefined, objectAllowed: () => false, servedChunk: () => undefined, servedObject: () => undefined },
      clock: () => 1_000_000,
    },
  )
  return { p2p, swarm, store, index }
}

/**
 * Puts a study of 2^32-1 chunks on the ledger as rules without the bound
 * would have (registerStudyTx.apply with maxStudyChunks at 2^32-1): the
 * serving side must stay safe even then.
 */
function registerUnbounded(c: TestChain, org: TestOrg): StudyRecord {
  const p = studyOf(org.id, HUGE)
  const s = new StateOverlay(c.state)
  const params = { ...getParams(c.state), maxStudyChunks: HUGE, maxStudyBytes: Number.MAX_SAFE_INTEGER }
  const ctx = {
    chainId: CHAIN_ID,
    state: s,
    height: c.head.header.height + 1,
    time: c.head.header.time + 1000,
    params,
    authorities: authoritySet(c.state),
    sender: org.signer.publicKey,
    txId: new Uint8Array(32),
  }
  registerStudyTx.apply(ctx, p)
  applyWrites(c.state, s.writes())
  const rec = getStudy(c.state, p.studyId)
  if (rec === undefined) throw new Error('study not registered')
  return rec
}

function growth(before: NodeJS.MemoryUsage): number {
  const now = process.memoryUsage()
  return Math.max(now.heapUsed - before.heapUsed, 0) + Math.max(now.arrayBuffers - before.arrayBuffers, 0)
}

t.test('(b) have and list about a study this node holds nothing of: refused without building anything per chunk', async (t) => {
  const c = newChain()
  const custodian = c.orgs[0] as TestOrg
  const asker = c.orgs[1] as TestOrg
  const { p2p } = await swarmOn(t, c, c.orgs[2] as TestOrg)

  // A study within the bounds, registered normally, and one of 2^32-1 chunks.
  const normal = studyOf(custodian.id, 5)
  t.same(advance(c, [registerTx(c, custodian, normal)]).rejected, [])
  const huge = registerUnbounded(c, custodian)
  t.equal(huge.chunkCount, HUGE)

  const gc = (globalThis as { gc?: () => void }).gc
  for (const [what, study] of [
    ['a study within the bounds', normal],
    ['a study of 2^32-1 chunks', huge],
  ] as const) {
    for (const name of [CHUNK_PROTOCOLS.have, CHUNK_PROTOCOLS.list]) {
      gc?.()
      const before = process.memoryUsage()
      for (let i = 0; i < 4; i++) await t.rejects(p2p.call(name, asker.signer.publicKey, encodeStudyRequest(study.studyId)), { code: 'SWARM_NOT_HELD' })
      const grew = growth(before)
      t.ok(grew < MAX_GROWTH_BYTES, `${name} for ${what}: SWARM_NOT_HELD, ${Math.round(grew / 1024)} KiB grown (bound ${MAX_GROWTH_BYTES >> 20} MiB)`)
    }
  }

  // The answers' bounds come from the chain's study bound, not from 2^32.
  const params = getParams(c.state)
  const have = p2p.handlers.get(CHUNK_PROTOCOLS.have)
  const list = p2p.handlers.get(CHUNK_PROTOCOLS.list)
  t.equal(have?.maxResponseBytes, haveResponseBytes(params.maxStudyChunks), `have answers: at most ${haveResponseBytes(params.maxStudyChunks)} bytes`)
  t.equal(list?.maxResponseBytes, listResponseBytes(params.maxStudyChunks), `list answers: at most ${listResponseBytes(params.maxStudyChunks)} bytes`)
  t.ok((have?.maxResponseBytes ?? Infinity) <= 5 + 4096 && (list?.maxResponseBytes ?? Infinity) <= 1024 * 1024, 'by default 4 KiB and 1 MiB')
})

t.test('(c) a requester refuses and penalizes a have or list answer larger than the study allows, or for another chunk count', async (t) => {
  const c = newChain()
  const custodian = c.orgs[0] as TestOrg
  const chunks = Array.from({ length: 5 }, () => new Uint8Array(randomBytes(CHUNK + 16)))
  const ids = chunks.map((x) => sha256(x))
  const study: RegisterStudyPayload = { ...studyOf(custodian.id, 5, 5 * (CHUNK + 16)), contentRoot: contentRoot(ids) }
  t.same(advance(c, [registerTx(c, custodian, study)]).rejected, [])
  const record = getStudy(c.state, study.studyId) as StudyRecord
  const order = placementOrder(
    study.studyId,
    custodian.id,
    c.orgs.map((o) => o.id),
  )
  const self = c.orgs.find((o) => o.id === order[3]) as TestOrg
  const peer = c.orgs.find((o) => o.id === order[1]) as TestOrg
  const { p2p, swarm } = await swarmOn(t, c, self)
  p2p.connected = [peer.signer.publicKey]

  const lies: [string, Uint8Array, number][] = [
    ['a bitfield of 2^20 chunks', encodeHave({ chunks: new Bitfield(1 << 20), list: true, objects: true }), PENALTY.FRAME_TOO_LARGE],
    ['a bitfield for 8 chunks in the bytes 5 chunks take', encodeHave({ chunks: new Bitfield(8), list: true, objects: true }), PENALTY.MALFORMED],
  ]
  for (const [what, answer, points] of lies) {
    p2p.penalties = []
    p2p.answers.set(CHUNK_PROTOCOLS.have, () => answer)
    const r = await swarm.replication(record)
    t.same(r.holders, [], `${what}: not a holder`)
    t.same(r.unreachable.includes(peer.id), true, `${what}: its answer refused`)
    t.same(
      p2p.penalties.map((p) => p.points),
      [points],
      `${what}: penalized`,
    )
  }

  // A peer answering that it holds nothing: reachable, not a holder, not penalized.
  p2p.penalties = []
  p2p.answers.delete(CHUNK_PROTOCOLS.have)
  const none = await swarm.replication(record)
  t.same([none.holders, none.unreachable.includes(peer.id), p2p.penalties], [[], false, []], 'SWARM_NOT_HELD: reachable, holds nothing')

  // Chunk lists: longer than the study's, or shorter.
  for (const [what, answer, points] of [
    ['a list of 2^16 ids', encodeList(Array.from({ length: 1 << 16 }, (_, i) => ids[i % 5] as Uint8Array)), PENALTY.FRAME_TOO_LARGE],
    ['a list of 4 ids', encodeList(ids.slice(0, 4)), PENALTY.MALFORMED],
  ] as const) {
    p2p.penalties = []
    p2p.answers.set(CHUNK_PROTOCOLS.list, () => answer)
    await t.rejects(swarm.fetchChunks(record, { kind: 'fetch' }), { code: 'SWARM_UNAVAILABLE' }, `${what}: refused`)
    t.same(
      p2p.penalties.map((p) => p.points),
      [points],
      `${what}: penalized`,
    )
  }
})
