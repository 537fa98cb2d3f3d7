import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MIN_LEASE_MS,
  claimWindowMs,
  getNonce,
  getParams,
  listOrgs,
  orgBySignKey,
  placementOrder,
  registerStudyTx,
  signTx,
  type LeaseRecord,
  type RegisterStudyPayload,
  type ServedClaim,
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
import { equalBytes, nullLogger } from '../../../src/util/index.js'
import { CHAIN_ID, advance, makeChain, type TestChain, type TestOrg } from '../chain/fixtures.js'

const CHUNK = 4096

/** How another peer answers a request (the test's in-memory peers). */
type Answer = (peer: Uint8Array, req: Uint8Array) => Uint8Array

/** The p2p surface SwarmService uses: handlers are kept to be called directly; peers and their answers are set by the test. */
class FakeP2P {
  /** The serving node's key (a lessee's claim must name it). */
  publicKey: Uint8Array = new Uint8Array(32)
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
  served: { leaseId: string; index: number; bytes: number; claim: ServedClaim; now: number }[] = []
  servedObjects: { orgId: string; hash: string; now: number }[] = []
  reportViolation(v: ViolationPayload): void {
    this.violations.push(v)
  }
  servedChunk(lease: LeaseRecord, index: number, bytes: number, claim: ServedClaim, now: number): void {
    this.served.push({ leaseId: Buffer.from(lease.leaseId).toString('hex'), index, bytes, claim, now })
  }
  servedObject(orgId: string, _study: StudyRecord, hash: Uint8Array, now: number): void {
    this.servedObjects.push({ orgId, hash: Buffer.from(hash).toString('hex'), now })
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
  p2p.publicKey = custodian.signer.publicKey
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

/** A claim under `leaseId` stamped with the head of the test chain (or the block at `height`), for the fixture's serving node. */
function claimAt(
  f: Fixture,
  leaseId: Uint8Array,
  over: { time?: number; height?: number; holder?: Uint8Array } = {},
): Parameters<typeof encodeLeaseChunkRequest>[2] {
  const h = f.chain.head.header
  return { leaseId, time: over.time ?? h.time, height: over.height ?? h.height, holder: over.holder ?? f.p2p.publicKey }
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
    f.p2p.call(
      CHUNK_PROTOCOLS.get,
      outsider.signer.publicKey,
      encodeLeaseChunkRequest(f.study.studyId, 0, claimAt(f, new Uint8Array(32)), sign(holder.signer)),
    ),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'a claim signed by another key',
  )
  await t.rejects(
    f.p2p.call(
      CHUNK_PROTOCOLS.get,
      outsider.signer.publicKey,
      encodeLeaseChunkRequest(f.study.studyId, 0, claimAt(f, new Uint8Array(32)), sign(outsider.signer)),
    ),
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

t.test('a corrupt chunk on disk is served as it is: the reader checks every chunk against its id, the scrub finds rot at rest', async (t) => {
  const f = await fixture(t)
  const holder = f.order[1] as TestOrg
  const id = sha256(f.chunks[3] as Uint8Array)
  const hex = Buffer.from(id).toString('hex')
  const path = join(f.chunkDir, hex.slice(0, 2), hex.slice(2, 4), hex)
  t.ok((await readdir(join(f.chunkDir, hex.slice(0, 2), hex.slice(2, 4)))).includes(hex))
  const rotten = new Uint8Array(randomBytes(CHUNK + 16))
  await writeFile(path, rotten)
  const served = await f.p2p.call(CHUNK_PROTOCOLS.get, holder.signer.publicKey, encodeChunkRequest(f.study.studyId, 3))
  t.same(Buffer.from(served), Buffer.from(rotten), 'the holder does not hash what it serves (a fifth of its CPU)')
  t.notOk(equalBytes(sha256(served), id), 'what the reader refuses (test/devnet/swarm.test.ts: a lying peer; the scrub repairs a corrupt replica)')
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

  // Chunks under the lease: served while it is active (and counted for the holder's summary), then refused.
  const sign = (m: Uint8Array): Uint8Array => lessee.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m))
  const get = (index: number, c: Parameters<typeof encodeLeaseChunkRequest>[2]): Promise<Uint8Array> =>
    f.p2p.call(CHUNK_PROTOCOLS.get, lessee.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, index, c, sign))
  const granted = f.chain.head.header
  t.same(await get(1, claimAt(f, request.id)), f.chunks[1])
  t.same(
    f.leases.served.map((x) => [x.leaseId, x.index, x.bytes, x.claim.time, x.claim.height, x.now]),
    [[Buffer.from(request.id).toString('hex'), 1, CHUNK + 16, granted.time, granted.height, granted.time]],
    'the chunk, its bytes and the signed claim are counted for the summary',
  )
  t.same(f.leases.servedObjects, [{ orgId: lessee.id, hash: Buffer.from(sha256(envelope)).toString('hex'), now: granted.time }], 'and the envelope')
  advance(f.chain, [], { dt: MIN_LEASE_MS + 1000 })
  const late = f.chain.head.header
  await t.rejects(get(1, claimAt(f, request.id, { time: granted.time, height: granted.height })), { code: 'SWARM_LEASE_ENDED' })
  t.same(f.leases.violations, [], 'an old claim made while the lease was open (a replay) names an earlier block: no violation')
  await t.rejects(get(2, claimAt(f, request.id)), { code: 'SWARM_LEASE_ENDED' })
  t.equal(f.leases.violations.length, 1, 'a claim naming a block after the end is reported')
  t.same(
    [f.leases.violations[0]?.requester, f.leases.violations[0]?.index, f.leases.violations[0]?.time, f.leases.violations[0]?.height],
    [lessee.id, 2, late.time, late.height],
  )
  t.same(f.leases.violations[0]?.leaseId, request.id)
  t.same(f.leases.violations[0]?.holder, f.p2p.publicKey)
  // After the end, a claim backdated into the lease but naming the lessee's current head: reported all the same.
  f.leases.violations = []
  await t.rejects(get(3, claimAt(f, request.id, { time: granted.time + 1 })), { code: 'SWARM_LEASE_ENDED' })
  t.same(
    f.leases.violations.map((v) => [v.index, v.time, v.height]),
    [[3, granted.time + 1, late.height]],
    'a backdated claim after the end is reported, judged on the block it names',
  )
  t.equal(f.leases.served.length, 1, 'nothing counted as served after the end')
})

t.test("a lessee's claim is judged against the holder's head: time within the drift window, a block it has or nearly has", async (t) => {
  const f = await fixture(t)
  const custodian = f.order[0] as TestOrg
  const lessee = f.order[3] as TestOrg
  const tx = (o: TestOrg, type: string, payload: unknown): ReturnType<typeof signTx> =>
    signTx(o.signer, { chainId: CHAIN_ID, type, nonce: getNonce(f.chain.state, o.signer.publicKey), payload })
  t.same(advance(f.chain, [tx(lessee, 'org.kem', { kemKey: new Uint8Array(randomBytes(1184)) })]).rejected, [])
  const request = tx(lessee, 'lease.request', { studyId: f.study.studyId, scope: 'images', durationMs: 3_600_000, purpose: 'second opinion' })
  t.same(advance(f.chain, [request]).rejected, [])
  t.same(advance(f.chain, [tx(custodian, 'lease.grant', { leaseId: request.id, envelope: new Uint8Array(32) })]).rejected, [])
  const params = getParams(f.chain.state)
  const w = claimWindowMs(params)
  t.equal(w, params.maxClockDriftMs + params.blockIntervalMs)
  const sign = (m: Uint8Array): Uint8Array => lessee.signer.sign(signingBytes(DOMAIN.LEASE_CHUNK_REQUEST, m))
  const get = (c: Parameters<typeof encodeLeaseChunkRequest>[2]): Promise<Uint8Array> =>
    f.p2p.call(CHUNK_PROTOCOLS.get, lessee.signer.publicKey, encodeLeaseChunkRequest(f.study.studyId, 0, c, sign))

  // The lessee's head lags the holder's by a block: its claim names that block, at that block's time.
  const behind = f.chain.head.header
  advance(f.chain, [], { dt: 1500 })
  t.same(await get(claimAt(f, request.id, { time: behind.time, height: behind.height })), f.chunks[0], 'a lessee one block behind is served')
  // The holder lags: the claim names a block one beyond its head, with a later time.
  const head = f.chain.head.header
  t.same(await get(claimAt(f, request.id, { time: head.time + 1000, height: head.height + 1 })), f.chunks[0], 'a holder one block behind serves')
  t.same(await get(claimAt(f, request.id, { time: head.time + w, height: head.height + 2 })), f.chunks[0], 'up to the edge of the window')
  await t.rejects(
    get(claimAt(f, request.id, { time: head.time + w + 1, height: head.height + 2 })),
    { name: 'SwarmError', code: 'SWARM_CLAIM_STALE', penalize: false },
    'a time past the window ahead',
  )
  await t.rejects(get(claimAt(f, request.id, { time: head.time + 1000, height: head.height + 3 })), { code: 'SWARM_CLAIM_STALE' }, 'a block too far ahead')
  await t.rejects(
    get(claimAt(f, request.id, { time: head.time, height: head.height + 1 })),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'a later block cannot have the same time',
  )
  // A head that lags far behind: refused until it catches up.
  for (let i = 0; i < 3; i++) advance(f.chain, [], { dt: 1000 })
  await t.rejects(
    get(claimAt(f, request.id, { time: behind.time, height: behind.height })),
    { name: 'SwarmError', code: 'SWARM_CLAIM_STALE', penalize: false },
    'a claim more than the window behind the head',
  )
  const now = f.chain.head.header
  await t.rejects(
    get(claimAt(f, request.id, { time: now.time - 1, height: now.height })),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'a time that is not the time of the block the claim names',
  )
  await t.rejects(
    get(claimAt(f, request.id, { holder: (f.order[1] as TestOrg).signer.publicKey })),
    { code: 'SWARM_BAD_REQUEST', penalize: true },
    'a claim for another holder',
  )
  t.same(await get(claimAt(f, request.id)), f.chunks[0], 'a claim stamped with the head itself')
  t.same(f.leases.violations, [], 'no violation while the lease is active')
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
