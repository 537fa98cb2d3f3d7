import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MIN_LEASE_MS,
  getNonce,
  getParams,
  listOrgs,
  orgBySignKey,
  placementOrder,
  registerStudyTx,
  signTx,
  type RegisterStudyPayload,
  type StudyRecord,
  type ViolationPayload,
} from '../../../src/chain/index.js'
import { DOMAIN, generateX25519, sha256, signingBytes, type OrgKeys } from '../../../src/crypto/index.js'
import {
  Bitfield,
  CHUNK_PROTOCOLS,
  P2PError,
  PENALTY,
  decodeChunkRequest,
  decodeHave,
  encodeChunkRequest,
  encodeHave,
  encodeLeaseChunkRequest,
  encodeList,
  encodeObjectRequest,
  encodeStudyRequest,
  type HandleOpts,
  type P2PNode,
  type RequestOpts,
} from '../../../src/p2p/index.js'
import { ChainStore, ChunkStore, StudyIndex } from '../../../src/storage/index.js'
import { contentRoot } from '../../../src/study/index.js'
import { SwarmService, type SwarmLeasePolicy } from '../../../src/node/swarm.js'
import type { ChainService } from '../../../src/node/chain-service.js'
import { nullLogger } from '../../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, type TestChain, type TestOrg } from '../chain/fixtures.js'

const CHUNK = 4096

/** How another peer answers a request (the test's in-memory peers). */
type Answer = (peer: Uint8Array, req: Uint8Array) => Uint8Array

/** The p2p surface SwarmService uses: handlers are kept to be called directly; peers and their answers are set by the test. */
class FakeP2P {
  readonly handlers = new Map<string, HandleOpts>()
  connected: Uint8Array[] = []
  penalties: string[] = []
  /** Other peers' answers, by protocol. */
  readonly answers = new Map<string, Answer>()
  /** The requests sent, with their bounds. */
  readonly requests: { name: string; maxResponseBytes?: number; penalizeOversize?: boolean }[] = []
  async request(name: string, peer: Uint8Array, req: Uint8Array, opts: RequestOpts = {}): Promise<Uint8Array> {
    this.requests.push({ name, maxResponseBytes: opts.maxResponseBytes, penalizeOversize: opts.penalizeOversize })
    const res = this.#answer(name, peer, req)
    // As P2PNode.request: an answer above the bound fails, and costs the peer when the bound is the protocol's.
    if (opts.maxResponseBytes !== undefined && res.length > opts.maxResponseBytes) {
      if (opts.penalizeOversize === true) this.penalize(peer, PENALTY.FRAME_TOO_LARGE, `oversized ${name} response`)
      throw new P2PError('P2P_TOO_LARGE', `response exceeds ${opts.maxResponseBytes} bytes`, { penalize: opts.penalizeOversize === true })
    }
    return res
  }
  async pipeRequestParts(name: string, peer: Uint8Array, req: Uint8Array): Promise<Uint8Array[]> {
    return [this.#answer(name, peer, req)]
  }
  #answer(name: string, peer: Uint8Array, req: Uint8Array): Uint8Array {
    const answer = this.answers.get(name)
    if (answer === undefined) throw new P2PError('P2P_REMOTE_ERROR', 'not served', { remoteCode: 'SWARM_NOT_HELD' })
    return answer(peer, req)
  }
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
  penalize(_k: Uint8Array, _p: number, reason: string): void {
    this.penalties.push(reason)
  }
  call(name: string, from: Uint8Array, req: Uint8Array): Promise<Uint8Array> {
    const h = this.handlers.get(name)
    if (h === undefined) throw new Error(`no handler ${name}`)
    return h.handler(from, req, new AbortController().signal)
  }
}

/** A lease policy that allows the objects the test lists and records what it was asked and told. */
class FakeLeasePolicy implements SwarmLeasePolicy {
  allowed: Uint8Array[] = []
  asked: { orgId: string; hash: string }[] = []
  violations: ViolationPayload[] = []
  reportViolation(v: ViolationPayload): void {
    this.violations.push(v)
  }
  objectAllowed(orgId: string, _study: StudyRecord, hash: Uint8Array): boolean {
    this.asked.push({ orgId, hash: Buffer.from(hash).toString('hex') })
    return this.allowed.some((h) => Buffer.from(h).equals(hash))
  }
}

interface Fixture {
  chain: TestChain
  p2p: FakeP2P
  leases: FakeLeasePolicy
  store: ChunkStore
  swarm: SwarmService
  study: RegisterStudyPayload
  chunks: Uint8Array[]
  objects: Uint8Array[]
  /** Organizations in the study's placement order (custodian first). */
  order: TestOrg[]
  chunkDir: string
  /** The swarm's clock (ms): moves only when a test moves it. */
  clock: { now: number }
}

async function fixture(t: Test, opts: { repairAfterMs?: number } = {}): Promise<Fixture> {
  const chain = makeChain({
    authorities: 4,
    members: 1,
    params: { chunkSize: CHUNK, replicationFactor: 3, maxBlockTxs: 8, maxBlockBytes: 64 * 1024, maxTxBytes: 8 * 1024, blockIntervalMs: 100 },
  })
  const dir = await mkdtemp(join(tmpdir(), 'radchain-swarm-'))
  const db = await ChainStore.open(join(dir, 'db'))
  const chunkDir = join(dir, 'chunks')
  const store = await ChunkStore.open({ dir: chunkDir, quotaBytes: 1 << 30, index: db.keyspace('k') })
  t.teardown(async () => {
    await store.close()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  const index = new StudyIndex(db.keyspace('i'))
  const custodian = chain.orgs[0] as TestOrg
  const chunks = Array.from({ length: 5 }, () => new Uint8Array(randomBytes(CHUNK + 16)))
  const ids = chunks.map((c) => sha256(c))
  const objects = [new Uint8Array(randomBytes(1181)), new Uint8Array(randomBytes(700))]
  for (const [i, c] of chunks.entries()) await store.put(ids[i] as Uint8Array, c)
  for (const o of objects) await store.put(sha256(o), o)
  const study: RegisterStudyPayload = {
    studyId: new Uint8Array(randomBytes(16)),
    custodian: custodian.id,
    owner: null,
    contentRoot: contentRoot(ids),
    size: 5 * (CHUNK + 16),
    chunkCount: 5,
    chunkSize: CHUNK,
    studyDigest: new Uint8Array(32),
    custodianEnvelope: sha256(objects[0] as Uint8Array),
    ownerEnvelope: null,
    ownerEphemeral: null,
    demographics: sha256(objects[1] as Uint8Array),
  }
  await index.putChunkList(study.studyId, ids)
  const tx = signTx(custodian.signer, {
    chainId: CHAIN_ID,
    type: registerStudyTx.name,
    nonce: getNonce(chain.state, custodian.signer.publicKey),
    payload: study,
  })
  t.same(advance(chain, [tx]).rejected, [])
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
  const keys = { signer: custodian.signer, encryption: generateX25519(), identitySeed: new Uint8Array(32) } as OrgKeys
  const leases = new FakeLeasePolicy()
  const clock = { now: 1_000_000 }
  const swarm = new SwarmService(
    { repairAfterMs: opts.repairAfterMs ?? 60_000, scrubIntervalMs: 0 },
    { chain: chainView, chunks: store, index, p2p: p2p as unknown as P2PNode, keys, logger: nullLogger(), leases, clock: () => clock.now },
  )
  const byId = new Map(chain.orgs.map((o) => [o.id, o]))
  const order = placementOrder(
    study.studyId,
    custodian.id,
    chain.orgs.map((o) => o.id),
  ).map((id) => byId.get(id) as TestOrg)
  return { chain, p2p, leases, store, swarm, study, chunks, objects, order, chunkDir, clock }
}

t.test('have and list: any admitted organization; strangers refused', async (t) => {
  const f = await fixture(t)
  const outsider = f.order[4] as TestOrg
  const have = decodeHave(await f.p2p.call(CHUNK_PROTOCOLS.have, outsider.signer.publicKey, encodeStudyRequest(f.study.studyId)), 5)
  t.same([have.chunks.complete, have.list, have.objects], [true, true, true])
  const list = await f.p2p.call(CHUNK_PROTOCOLS.list, outsider.signer.publicKey, encodeStudyRequest(f.study.studyId))
  t.equal(list.length, 5 * 32)
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.have, sha256(new Uint8Array([1])), encodeStudyRequest(f.study.studyId)), { code: 'SWARM_NOT_ALLOWED' })
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.have, outsider.signer.publicKey, encodeStudyRequest(new Uint8Array(16))), { code: 'SWARM_UNKNOWN_STUDY' })
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.have, outsider.signer.publicKey, new Uint8Array(3)), { code: 'SWARM_BAD_REQUEST', penalize: true })
})

t.test('chunks and objects go to holders only; refusals say why', async (t) => {
  const f = await fixture(t)
  const holder = f.order[1] as TestOrg
  const outsider = f.order[3] as TestOrg
  t.same(await f.p2p.call(CHUNK_PROTOCOLS.get, holder.signer.publicKey, encodeChunkRequest(f.study.studyId, 2)), f.chunks[2], 'a holder gets the chunk')
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.get, outsider.signer.publicKey, encodeChunkRequest(f.study.studyId, 2)),
    { code: 'SWARM_NOT_ALLOWED', message: /no replication duty or lease/ },
    'an organization with no duty is refused',
  )
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.get, holder.signer.publicKey, encodeChunkRequest(f.study.studyId, 5)),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'index out of range',
  )
  t.same(await f.p2p.call(CHUNK_PROTOCOLS.object, holder.signer.publicKey, encodeObjectRequest(f.study.studyId, f.study.custodianEnvelope)), f.objects[0])
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.object, outsider.signer.publicKey, encodeObjectRequest(f.study.studyId, f.study.custodianEnvelope)),
    { code: 'SWARM_NOT_ALLOWED' },
    'no envelope for an organization with no duty',
  )
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.object, holder.signer.publicKey, encodeObjectRequest(f.study.studyId, new Uint8Array(32))),
    { code: 'SWARM_NOT_HELD' },
    'not an object of this study',
  )
  // A claim under a lease: the signature must verify, and the lease must exist.
  const sign =
    (signer: TestOrg['signer']) =>
    (m: Uint8Array): Uint8Array =>
      signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m))
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.get, outsider.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 0, new Uint8Array(32), 1, sign(holder.signer))),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'a claim signed by another key',
  )
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.get, outsider.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 0, new Uint8Array(32), 1, sign(outsider.signer))),
    { code: 'SWARM_NOT_ALLOWED', message: /not a lease of this organization/ },
    'a claim on a lease that does not exist',
  )
})

t.test('a holder down longer than the repair time: its replacement is served', async (t) => {
  const f = await fixture(t, { repairAfterMs: 1000 })
  const [, h1, h2, next, last] = f.order as [TestOrg, TestOrg, TestOrg, TestOrg, TestOrg]
  // h1 is gone; h2, next and last are connected: next takes h1's place once the repair time has passed.
  f.p2p.connected = [h2, next, last].map((o) => o.signer.publicKey)
  f.clock.now += 1000
  t.same(f.swarm.placement(getStudyRecord(f)).assigned, [f.order[0]?.id, h1.id, h2.id], 'not before the repair time has passed')
  f.clock.now += 1
  const p = f.swarm.placement(getStudyRecord(f))
  t.same(p.nominal, [f.order[0]?.id, h1.id, h2.id])
  t.same(p.assigned, [f.order[0]?.id, h2.id, next.id], `${next.id} replaces ${h1.id}`)
  t.same(await f.p2p.call(CHUNK_PROTOCOLS.get, next.signer.publicKey, encodeChunkRequest(f.study.studyId, 1)), f.chunks[1])
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.get, last.signer.publicKey, encodeChunkRequest(f.study.studyId, 1)), { code: 'SWARM_NOT_ALLOWED' })
})

t.test('a corrupt chunk on disk is not served and marks the study for repair', async (t) => {
  const f = await fixture(t)
  const holder = f.order[1] as TestOrg
  const record = getStudyRecord(f)
  t.equal(await f.swarm.isComplete(record), true)
  const hex = Buffer.from(sha256(f.chunks[3] as Uint8Array)).toString('hex')
  const path = join(f.chunkDir, hex.slice(0, 2), hex.slice(2, 4), hex)
  t.ok((await readdir(join(f.chunkDir, hex.slice(0, 2), hex.slice(2, 4)))).includes(hex))
  await writeFile(path, new Uint8Array(randomBytes(CHUNK + 16)))
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.get, holder.signer.publicKey, encodeChunkRequest(f.study.studyId, 3)), { code: 'SWARM_NOT_HELD' })
  t.equal(await f.swarm.isComplete(record), false, 'no longer complete: the reconcile loop fetches it again')
  const have = decodeHave(await f.p2p.call(CHUNK_PROTOCOLS.have, holder.signer.publicKey, encodeStudyRequest(f.study.studyId)), 5)
  t.equal(have.chunks.has(3), false, 'and peers are told')
})

t.test('a lessee: the objects the lease policy allows; a request under an ended lease is reported to it', async (t) => {
  const f = await fixture(t)
  const custodian = f.order[0] as TestOrg
  const lessee = f.order[3] as TestOrg
  const tx = (o: TestOrg, type: string, payload: unknown): ReturnType<typeof signTx> =>
    signTx(o.signer, { chainId: CHAIN_ID, type, nonce: getNonce(f.chain.state, o.signer.publicKey), payload })
  t.same(advance(f.chain, [tx(lessee, 'org.kem', { kemKey: new Uint8Array(randomBytes(1184)) })]).rejected, [])
  const request = tx(lessee, 'lease.request', { studyId: f.study.studyId, scope: 'images', durationMs: MIN_LEASE_MS, purpose: 'second opinion' })
  t.same(advance(f.chain, [request]).rejected, [])
  const envelope = new Uint8Array(randomBytes(300))
  await f.store.put(sha256(envelope), envelope)
  t.same(advance(f.chain, [tx(custodian, 'lease.grant', { leaseId: request.id, envelope: sha256(envelope) })]).rejected, [])

  // Objects: what the policy allows, and nothing else.
  f.leases.allowed = [sha256(envelope)]
  t.same(await f.p2p.call(CHUNK_PROTOCOLS.object, lessee.signer.publicKey, encodeObjectRequest(f.study.studyId, sha256(envelope))), envelope, 'its envelope')
  await t.rejects(
    f.p2p.call(CHUNK_PROTOCOLS.object, lessee.signer.publicKey, encodeObjectRequest(f.study.studyId, f.study.demographics)),
    { code: 'SWARM_NOT_ALLOWED' },
    'not the demographics',
  )
  t.same(f.leases.asked, [
    { orgId: lessee.id, hash: Buffer.from(sha256(envelope)).toString('hex') },
    { orgId: lessee.id, hash: Buffer.from(f.study.demographics).toString('hex') },
  ])
  t.same(
    await f.p2p.call(CHUNK_PROTOCOLS.object, f.order[1]?.signer.publicKey as Uint8Array, encodeObjectRequest(f.study.studyId, f.study.demographics)),
    f.objects[1],
    'a holder is not asked about',
  )
  t.equal(f.leases.asked.length, 2)

  // Chunks under the lease: served while it is active, then refused; a claim stamped after its end is reported.
  const sign = (m: Uint8Array): Uint8Array => lessee.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m))
  const grantedAt = f.chain.head.header.time
  t.same(await f.p2p.call(CHUNK_PROTOCOLS.get, lessee.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 1, request.id, grantedAt, sign)), f.chunks[1])
  advance(f.chain, [], { dt: MIN_LEASE_MS + 1000 })
  const late = f.chain.head.header.time
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.get, lessee.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 1, request.id, grantedAt, sign)), {
    code: 'SWARM_LEASE_ENDED',
  })
  t.same(f.leases.violations, [], 'a claim made while the lease was open is no violation')
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.get, lessee.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 2, request.id, late, sign)), {
    code: 'SWARM_LEASE_ENDED',
  })
  t.equal(f.leases.violations.length, 1, 'a claim stamped after the end is reported')
  t.same([f.leases.violations[0]?.requester, f.leases.violations[0]?.index, f.leases.violations[0]?.time], [lessee.id, 2, late])
  t.same(f.leases.violations[0]?.leaseId, request.id)
})

t.test("have and list answers are bounded by the study's chunk count: a peer answering more is refused and penalized", async (t) => {
  const f = await fixture(t)
  const record = getStudyRecord(f)
  const [, liar, honest] = f.order as [TestOrg, TestOrg, TestOrg]
  f.p2p.connected = [liar, honest].map((o) => o.signer.publicKey)
  const isLiar = (peer: Uint8Array): boolean => Buffer.from(peer).equals(liar.signer.publicKey)
  const all = new Bitfield(5)
  for (let i = 0; i < 5; i++) all.set(i)
  const ids = f.chunks.map((c) => sha256(c))
  // The liar answers for a study of 4000 chunks: a longer bitfield, a longer list.
  const big = new Bitfield(4000)
  f.p2p.answers.set(CHUNK_PROTOCOLS.have, (peer) => encodeHave({ chunks: isLiar(peer) ? big : all, list: true, objects: true }))
  f.p2p.answers.set(CHUNK_PROTOCOLS.list, (peer) => encodeList(isLiar(peer) ? Array.from({ length: 4000 }, (_, i) => ids[i % 5] as Uint8Array) : ids))
  f.p2p.answers.set(CHUNK_PROTOCOLS.get, (_peer, req) => f.chunks[decodeChunkRequest(req).index] as Uint8Array)

  const r = await f.swarm.replication(record)
  t.same(r.holders, [f.order[0]?.id, honest.id], 'the honest peer is a holder')
  t.same(r.unreachable, [liar.id], "the liar's answer is refused")
  const haves = f.p2p.requests.filter((x) => x.name === CHUNK_PROTOCOLS.have)
  t.ok(haves.length >= 2)
  t.ok(
    haves.every((x) => x.maxResponseBytes === 5 + 1 && x.penalizeOversize === true),
    'have: count, flags and a 1-byte bitfield, no more',
  )
  t.same(f.p2p.penalties, ['oversized chunks.have response'])

  // Fetching the study again: the liar is asked for the list first (placement order), then the honest peer.
  await f.swarm.dropStudy(record)
  f.p2p.penalties = []
  f.p2p.requests.length = 0
  t.same(await f.swarm.fetchChunks(record, { kind: 'fetch' }), ids, 'the list from the honest peer, the chunks after it')
  const lists = f.p2p.requests.filter((x) => x.name === CHUNK_PROTOCOLS.list)
  t.same(
    lists,
    [
      { name: CHUNK_PROTOCOLS.list, maxResponseBytes: 5 * 32, penalizeOversize: true },
      { name: CHUNK_PROTOCOLS.list, maxResponseBytes: 5 * 32, penalizeOversize: true },
    ],
    'list: five ids, no more',
  )
  t.same(
    f.p2p.penalties.filter((p) => p.includes('list')),
    ['oversized chunks.list response'],
  )
})

function getStudyRecord(f: Fixture): RegisterStudyPayload & { height: number } {
  return { ...f.study, height: f.chain.head.header.height }
}

t.test('the removal hook deletes every chunk, object and the chunk list', async (t) => {
  const f = await fixture(t)
  const holder = f.order[1] as TestOrg
  t.equal(await f.swarm.dropStudy(getStudyRecord(f)), 7, 'five chunks and two objects deleted')
  const files = (await readdir(f.chunkDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile())
  t.same(files, [], 'nothing of the study left on disk')
  await t.rejects(f.p2p.call(CHUNK_PROTOCOLS.list, holder.signer.publicKey, encodeStudyRequest(f.study.studyId)), { code: 'SWARM_NOT_HELD' })
  t.equal(await f.swarm.isComplete(getStudyRecord(f)), false)
})
