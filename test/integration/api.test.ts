import t from 'tap'
import { createHash } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import { request } from 'node:http'
import { connect } from 'node:net'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ApiClient,
  ApiServer,
  HEADERS_TIMEOUT_MS,
  MAX_BATCH_TXS,
  isJobOfKind,
  type ApiBackend,
  type ApiServerOpts,
  type AuditEventView,
  type BlockView,
  type LeaseView,
  type NodeEvent,
  type NodeStatus,
  type OrgVote,
  type OrgsView,
  type PatientLinkResult,
  type PatientLinkView,
  type PeerView,
  type StudyJobView,
  type StudyView,
  type SwarmStatusView,
  type TxStatus,
} from '../../src/api/index.js'
import { TxError } from '../../src/chain/index.js'
import { RadError, exists, sleep } from '../../src/util/index.js'
import { captureLogger, type LogLine } from './helpers/logger.js'

const TOKEN = 'tok-' + 'k'.repeat(40)
const NOTE_SECRET = 'note-body-that-must-not-be-logged'
const HASH_B = 'bb'.repeat(32)
/** A fresh 8 s limit for each wait (one made at load would have run out for the tests at the end of the file). */
const waitLimit = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(8_000) })

function studyViewOf(studyId: string): StudyView {
  return {
    studyId,
    custodian: 'org-a',
    owner: null,
    contentRoot: 'c1'.repeat(32),
    size: 1000,
    chunkCount: 1,
    chunkSize: 1 << 20,
    studyDigest: 'd1'.repeat(32),
    custodianEnvelope: 'e1'.repeat(32),
    ownerEnvelope: null,
    ownerEphemeral: null,
    demographics: 'e2'.repeat(32),
    extends: null,
    extendedBy: null,
    height: 3,
    local: { chunkList: true, chunksHeld: 1, chunkCount: 1, custodianEnvelope: true, ownerEnvelope: null, demographics: true, complete: true },
  }
}

function leaseViewOf(leaseId: string): LeaseView {
  return {
    leaseId,
    studyId: '11'.repeat(16),
    requester: 'org-b',
    custodian: 'org-a',
    scope: 'images',
    durationMs: 3_600_000,
    purpose: 'second opinion',
    status: 'requested',
    requestedAt: 1_700_000_000_000,
    requestHeight: 4,
    approved: false,
    grantedAt: null,
    expiry: null,
    envelope: null,
    endedAt: null,
    reason: null,
  }
}

function hashOf(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * In-memory node: first byte 0xff = bad signature, 0xfe = mempool full,
 * 0xfd = a plain Error (a bug). Emits 'wait', 'subscribe' and 'unsubscribe'
 * on `ee` so tests can wait for the server to reach it instead of sleeping.
 */
class FakeBackend implements ApiBackend {
  readonly ee = new EventEmitter()
  readonly txs = new Map<string, TxStatus>()
  readonly listeners = new Set<(ev: NodeEvent) => void>()
  private readonly waiters = new Map<string, Set<() => void>>()
  private readonly blocks: BlockView[] = [
    { height: 0, hash: 'aa'.repeat(32), txs: [] },
    { height: 1, hash: HASH_B, txs: [], big: 2n ** 40n },
  ]

  status(): NodeStatus {
    return {
      chainId: 'test-chain',
      orgId: 'org-a',
      role: 'authority',
      height: 1,
      headHash: HASH_B,
      headTime: 1_700_000_000_000,
      stateRoot: 'cc'.repeat(32),
      peers: 0,
      api: 'http://127.0.0.1:0',
      mempool: { size: this.txs.size, bytes: 0 },
      authorities: 1,
      version: '0.1.0',
      consensus: { height: 2, round: 0, step: 'propose' },
    }
  }

  submitTx(bytes: Uint8Array): string {
    if (bytes[0] === 0xff) throw new TxError('TX_BAD_SIGNATURE', 'signature does not verify')
    if (bytes[0] === 0xfe) throw new TxError('TX_MEMPOOL_FULL', 'mempool is full')
    if (bytes[0] === 0xfd) throw new Error('boom: internal detail')
    const hash = hashOf(bytes)
    this.txs.set(hash, { hash, status: 'pending' })
    return hash
  }

  blocked: string[] = []
  votes: OrgVote[] = []
  jobs = new Map<string, StudyJobView>()
  readonly added: { paths: string[]; skipBad: boolean; patient: string | null; extends: string | null }[] = []
  readonly leaseQueries: (string | undefined)[] = []

  addStudies(paths: string[], opts: { skipBad: boolean; patient?: string; extends?: string }): string {
    const id = 'ab'.repeat(8)
    this.added.push({ paths, skipBad: opts.skipBad, patient: opts.patient ?? null, extends: opts.extends ?? null })
    this.jobs.set(id, {
      id,
      kind: 'add',
      state: 'done',
      files: paths.length,
      filesDone: paths.length,
      bytes: 0,
      bad: [],
      ignored: [],
      studies: [],
      error: null,
    })
    return id
  }

  async checkDimsePeer(aeTitle: string): Promise<void> {
    if (aeTitle !== 'PACS') throw new RadError('DIMSE_UNKNOWN_PEER', 'no such peer')
  }

  async deliverLease(): Promise<void> {}

  async sendStudy(studyId: string, opts: { to: string; scope: string }): Promise<string> {
    if (opts.to !== 'PACS') throw new RadError('DIMSE_UNKNOWN_PEER', 'no such peer')
    return this.getStudy(studyId, { out: null, scope: opts.scope })
  }

  async getStudy(studyId: string, opts: { out: string | null; scope: string }): Promise<string> {
    if (studyId !== '11'.repeat(16)) throw new RadError('STUDY_UNKNOWN', 'no such study')
    if (opts.scope !== 'images' && opts.scope !== 'full') throw new RadError('STUDY_BAD_SCOPE', 'bad scope')
    const id = 'ef'.repeat(8)
    this.jobs.set(id, {
      id,
      kind: 'get',
      state: 'done',
      studyId,
      scope: opts.scope,
      out: opts.out,
      fetch: { done: 1, bytes: 0, peers: 0 },
      chunks: 1,
      chunkCount: 1,
      files: 1,
      bytes: 0,
      error: null,
    })
    return id
  }

  readonly decisions: string[] = []
  async audit(studyId: string): Promise<AuditEventView[]> {
    if (studyId !== '11'.repeat(16)) throw new RadError('STUDY_UNKNOWN', 'no such study')
    return [{ type: 'study.register', height: 3, time: 1_700_000_000_000, index: 0, tx: 'a1'.repeat(32), by: 'org-a', leaseId: null, detail: { studyId } }]
  }

  eraseStudy(studyId: string): string {
    if (studyId === 'ee'.repeat(16)) throw new RadError('STUDY_ERASED', 'already erased')
    this.decisions.push(`erase ${studyId}`)
    return 'ef'.repeat(32)
  }

  requestLease(studyId: string, opts: { scope: string; durationMs: number; purpose: string }): string {
    if (studyId !== '11'.repeat(16)) throw new RadError('STUDY_UNKNOWN', 'no such study')
    if (opts.scope !== 'images' && opts.scope !== 'full') throw new RadError('LEASE_BAD_SCOPE', 'bad scope')
    return 'aa'.repeat(32)
  }

  leases(direction?: 'incoming' | 'outgoing'): LeaseView[] {
    this.leaseQueries.push(direction)
    return [leaseViewOf('aa'.repeat(32))]
  }

  async grantLease(leaseId: string): Promise<string> {
    if (leaseId !== 'aa'.repeat(32)) throw new RadError('LEASE_UNKNOWN', 'no such lease')
    this.decisions.push(`grant ${leaseId}`)
    return 'cc'.repeat(32)
  }

  denyLease(leaseId: string, reason: string): string {
    this.decisions.push(`deny ${leaseId} ${reason}`)
    return 'cd'.repeat(32)
  }

  revokeLease(leaseId: string): string {
    throw new RadError('LEASE_NOT_CUSTODIAN', `not the custodian of ${leaseId.slice(0, 4)}`)
  }

  nonce(key: string): number {
    if (key.length !== 64) throw new TxError('TX_MALFORMED', 'a key is 64 hex digits')
    return 7
  }

  swarmStatus(): SwarmStatusView {
    return { transfers: [], queue: ['11'.repeat(16)], down: [] }
  }

  async studies(): Promise<StudyView[]> {
    return [studyViewOf('11'.repeat(16))]
  }

  async study(studyId: string): Promise<StudyView> {
    if (studyId === 'nope') throw new RadError('STUDY_BAD_ID', 'a study id is 32 hex digits')
    if (studyId !== '11'.repeat(16)) throw new RadError('STUDY_UNKNOWN', 'no such study')
    return studyViewOf(studyId)
  }

  studyJob(id: string): StudyJobView | undefined {
    return this.jobs.get(id)
  }

  readonly links = new Map<string, PatientLinkView>()
  async linkPatient(link: { patientId: string; issuer: string; patientKey: string; replace: boolean }): Promise<PatientLinkResult> {
    const k = JSON.stringify([link.patientId, link.issuer])
    const known = this.links.get(k)
    if (known !== undefined && known.patientKey !== link.patientKey && !link.replace) throw new RadError('PATIENT_LINK_EXISTS', 'linked to another key')
    const v = { patientId: link.patientId, issuer: link.issuer, patientKey: link.patientKey, keyId: 'ab'.repeat(32), linkedAt: '2025-01-01T00:00:00.000Z' }
    this.links.set(k, v)
    return { link: v, replaced: known !== undefined && known.patientKey !== link.patientKey }
  }

  async unlinkPatient(patientId: string, issuer: string): Promise<void> {
    if (!this.links.delete(JSON.stringify([patientId, issuer]))) throw new RadError('PATIENT_LINK_UNKNOWN', 'no such link')
  }

  patientLinks(): PatientLinkView[] {
    return [...this.links.values()]
  }

  orgs(): OrgsView {
    return { orgs: [{ id: 'org-a', role: 'authority' }], proposals: [], params: { maxStudyBytes: 32 * 1024 ** 3, maxStudyChunks: 32768 } }
  }

  voteOrg(vote: OrgVote): string {
    this.votes.push(vote)
    return hashOf(JSON.stringify(vote))
  }

  peers(): PeerView[] {
    return [{ org: 'org-b', publicKey: 'bb'.repeat(32), peerId: '12D3KooWtest', addr: '/ip4/127.0.0.1/tcp/1', encryption: 'tls' }]
  }

  setBlockedPeers?: (keys: string[]) => void = (keys) => {
    this.blocked = keys
  }

  submitNote(text: string): string {
    if (text === 'no-org') throw new TxError('TX_UNAUTHORIZED', 'this node has no organization')
    if (text === 'unlisted') throw new RadError('ORG_NOT_FOUND', 'a code the registry does not list')
    const hash = hashOf(text)
    this.txs.set(hash, { hash, status: 'pending' })
    return hash
  }

  async txStatus(hash: string): Promise<TxStatus> {
    return this.txs.get(hash) ?? { hash, status: 'unknown' }
  }

  waitTx(hash: string, timeoutMs: number, signal?: AbortSignal): Promise<TxStatus> {
    const cur = this.txs.get(hash)
    if (cur !== undefined && (cur.status === 'final' || cur.status === 'rejected')) return Promise.resolve(cur)
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(hash) ?? new Set()
      this.waiters.set(hash, set)
      const done = (): void => {
        clearTimeout(timer)
        set.delete(done)
        signal?.removeEventListener('abort', onAbort)
        resolve(this.txs.get(hash) ?? { hash, status: 'unknown' })
      }
      const onAbort = (): void => {
        clearTimeout(timer)
        set.delete(done)
        reject(signal?.reason)
      }
      const timer = setTimeout(done, timeoutMs)
      set.add(done)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.ee.emit('wait', hash, signal)
    })
  }

  finalize(hash: string, height: number): void {
    this.txs.set(hash, { hash, status: 'final', height, index: 0, blockHash: 'dd'.repeat(32) })
    for (const w of [...(this.waiters.get(hash) ?? [])]) w()
    this.emit({ type: 'tx', data: { hash, status: 'final', height } })
  }

  async block(ref: string): Promise<BlockView | undefined> {
    if (ref === 'head') return this.blocks[this.blocks.length - 1]
    if (/^[0-9]+$/.test(ref)) return this.blocks[Number(ref)]
    return this.blocks.find((b) => b.hash === ref)
  }

  subscribe(listener: (ev: NodeEvent) => void): () => void {
    this.listeners.add(listener)
    this.ee.emit('subscribe')
    return () => {
      this.listeners.delete(listener)
      this.ee.emit('unsubscribe')
    }
  }

  emit(ev: NodeEvent): void {
    for (const l of [...this.listeners]) l(ev)
  }
}

interface Harness {
  server: ApiServer
  backend: FakeBackend
  client: ApiClient
  url: string
  logs: LogLine[]
}

async function harness(opts: Partial<ApiServerOpts> = {}, backend: FakeBackend = new FakeBackend()): Promise<Harness> {
  const logs: LogLine[] = []
  const server = new ApiServer({ host: '127.0.0.1', port: 0, token: TOKEN, logger: captureLogger(logs), ...opts }, { backend })
  await server.start()
  t.teardown(() => server.stop())
  return { server, backend, logs, url: server.url, client: new ApiClient({ url: server.url, token: TOKEN, timeoutMs: 5_000 }) }
}

/** One request through fetch; the token is sent unless `token` is null. */
async function raw(
  url: string,
  path: string,
  init: { method?: string; token?: string | null; body?: string; auth?: string } = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const headers: Record<string, string> = {}
  if (init.auth !== undefined) headers.authorization = init.auth
  else if (init.token !== null) headers.authorization = `Bearer ${init.token ?? TOKEN}`
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url + path, { method: init.method ?? 'GET', headers, body: init.body, signal: AbortSignal.timeout(5_000) })
  return { status: res.status, headers: res.headers, body: await res.json() }
}

/** Sends raw bytes on a fresh socket and collects everything until the server closes it. */
async function rawSocket(url: string, data: string | Buffer): Promise<string> {
  const { port } = new URL(url)
  const sock = connect(Number(port), '127.0.0.1')
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.on('error', () => {})
  sock.write(data)
  await once(sock, 'close', waitLimit())
  return Buffer.concat(chunks).toString('latin1')
}

const h = await harness()

t.test('the server only listens on loopback', async (t) => {
  for (const host of ['0.0.0.0', '192.168.1.10', '::', 'example.org']) {
    t.throws(() => new ApiServer({ host, port: 0, token: TOKEN, logger: captureLogger([]) }, { backend: new FakeBackend() }), { code: 'API_BAD_CONFIG' }, host)
  }
})

t.test('every request needs the bearer token', async (t) => {
  for (const [what, init] of [
    ['no header', { token: null }],
    ['wrong token', { token: 'tok-' + 'x'.repeat(40) }],
    ['wrong length', { token: 'short' }],
    ['other scheme', { auth: `Basic ${TOKEN}` }],
  ] as const) {
    const r = await raw(h.url, '/v1/status', init)
    t.equal(r.status, 401, what)
    t.match(r.body, { error: { code: 'API_UNAUTHORIZED', message: String } }, what)
  }
  const unknownRoute = await raw(h.url, '/v1/nowhere', { token: null })
  t.equal(unknownRoute.status, 401, 'auth before routing')
  const bad = new ApiClient({ url: h.url, token: 'nope' })
  await t.rejects(bad.status(), { name: 'ApiError', code: 'API_UNAUTHORIZED', status: 401 })
})

t.test('status via the client', async (t) => {
  const s = await h.client.status()
  t.match(s, { chainId: 'test-chain', height: 1, headHash: HASH_B, mempool: { size: Number } })
})

t.test('submit one transaction, a batch, and a note', async (t) => {
  const ok = new Uint8Array([1, 2, 3])
  const hash = await h.client.submitTx(ok)
  t.equal(hash, hashOf(ok))
  t.equal(h.backend.txs.get(hash)?.status, 'pending')

  const single = await raw(h.url, '/v1/txs', { method: 'POST', body: JSON.stringify({ tx: '0a0b' }) })
  t.equal(single.status, 202)
  t.same(single.body, { hash: hashOf(new Uint8Array([10, 11])), status: 'pending' })

  await t.rejects(h.client.submitTx(new Uint8Array([0xff, 1])), { name: 'ApiError', code: 'TX_BAD_SIGNATURE', status: 400 })
  await t.rejects(h.client.submitTx(new Uint8Array([0xfe, 1])), { code: 'TX_MEMPOOL_FULL', status: 503 })

  const a = new Uint8Array([4])
  const c = new Uint8Array([5, 6])
  const results = await h.client.submitTxs([a, new Uint8Array([0xff]), c])
  t.equal(results.length, 3)
  t.same(results[0], { hash: hashOf(a) })
  t.match(results[1], { error: { code: 'TX_BAD_SIGNATURE', message: String } })
  t.same(results[2], { hash: hashOf(c) }, 'a refused item does not stop the batch')
  t.equal(h.backend.txs.get(hashOf(c))?.status, 'pending')

  t.same(await h.client.submitTxs([]), [])

  const note = await h.client.submitNote(NOTE_SECRET)
  t.equal(note, hashOf(NOTE_SECRET))
  await t.rejects(h.client.submitNote('no-org'), { code: 'TX_UNAUTHORIZED', status: 403 }, 'a node error gets the status the registry gives its code')
})

t.test('an error code the registry does not list is a 500 that keeps its code, and is logged', async (t) => {
  await t.rejects(h.client.submitNote('unlisted'), { name: 'ApiError', code: 'ORG_NOT_FOUND', status: 500, message: 'a code the registry does not list' })
  t.ok(
    h.logs.some((l) => l.level === 'error' && l.msg === 'api error code not in the registry' && l.ctx?.code === 'ORG_NOT_FOUND'),
    'logged at error level',
  )
})

t.test('a backend bug is a 500 without details, and is logged', async (t) => {
  const r = await raw(h.url, '/v1/txs', { method: 'POST', body: JSON.stringify({ tx: 'fd00' }) })
  t.equal(r.status, 500)
  t.match(r.body, { error: { code: 'API_INTERNAL' } })
  t.notMatch(JSON.stringify(r.body), /boom|\.ts:\d|at /, 'no message or stack of the internal error')
  t.ok(
    h.logs.some((l) => l.level === 'error' && /boom/.test(String(l.ctx?.error))),
    'logged at error level',
  )

  const batch = await h.client.submitTxs([new Uint8Array([0xfd]), new Uint8Array([7])])
  t.match(batch[0], { error: { code: 'API_INTERNAL' } })
  t.same(batch[1], { hash: hashOf(new Uint8Array([7])) })
})

t.test('bad request bodies are 400 API_BAD_REQUEST', async (t) => {
  const cases: [string, string, string][] = [
    ['/v1/txs', '{"tx":', 'malformed JSON'],
    ['/v1/txs', '', 'empty body'],
    ['/v1/txs', '[]', 'array'],
    ['/v1/txs', '{"tx":5}', 'tx not a string'],
    ['/v1/txs', '{"tx":"zz"}', 'not hex'],
    ['/v1/txs', '{"tx":"abc"}', 'odd-length hex'],
    ['/v1/txs', '{"tx":""}', 'empty tx'],
    ['/v1/txs', '{"tx":"00","txs":["00"]}', 'both tx and txs'],
    ['/v1/txs', '{}', 'neither tx nor txs'],
    ['/v1/txs', '{"txs":["00","xyz"]}', 'bad hex in batch'],
    ['/v1/txs', JSON.stringify({ txs: new Array<string>(MAX_BATCH_TXS + 1).fill('00') }), 'batch too long'],
    ['/v1/notes', '{"text":1}', 'note text not a string'],
    ['/v1/notes', '{"text":"a","extra":1}', 'unknown field'],
  ]
  const before = h.backend.txs.size
  for (const [path, body, what] of cases) {
    const r = await raw(h.url, path, { method: 'POST', body })
    t.equal(r.status, 400, what)
    t.match(r.body, { error: { code: 'API_BAD_REQUEST', message: String } }, what)
  }
  t.equal(h.backend.txs.size, before, 'nothing was submitted')
})

t.test('unknown routes are 404, wrong methods 405', async (t) => {
  for (const path of ['/v1/nope', '/v2/status', '/', '/v1/status/', '/v1/txs/a/b']) {
    const r = await raw(h.url, path)
    t.equal(r.status, 404, path)
    t.match(r.body, { error: { code: 'API_NOT_FOUND' } }, path)
  }
  for (const [method, path, allow] of [
    ['GET', '/v1/txs', 'POST'],
    ['POST', '/v1/status', 'GET'],
    ['DELETE', `/v1/blocks/head`, 'GET'],
    ['PUT', '/v1/notes', 'POST'],
  ]) {
    const r = await raw(h.url, path ?? '', { method })
    t.equal(r.status, 405, `${method} ${path}`)
    t.match(r.body, { error: { code: 'API_METHOD_NOT_ALLOWED' } })
    t.equal(r.headers.get('allow'), allow)
  }
})

t.test('blocks by height, head and hash', async (t) => {
  t.match(await h.client.block('0'), { height: 0 })
  t.match(await h.client.block('head'), { height: 1, hash: HASH_B, big: '1099511627776' })
  t.match(await h.client.block(HASH_B), { height: 1 })
  t.match(await h.client.block(HASH_B.toUpperCase()), { height: 1 }, 'hash case does not matter')
  await t.rejects(h.client.block('7'), { code: 'API_NOT_FOUND', status: 404 })
  await t.rejects(h.client.block('ee'.repeat(32)), { code: 'API_NOT_FOUND', status: 404 })
  for (const ref of ['nope', '-1', '01', '1.5', 'ab', '99999999999999999999']) {
    await t.rejects(h.client.block(ref), { code: 'API_BAD_REQUEST', status: 400 }, ref)
  }
})

t.test('transaction status and wait', async (t) => {
  const unknown = await h.client.tx('ee'.repeat(32))
  t.same(unknown, { hash: 'ee'.repeat(32), status: 'unknown' })
  await t.rejects(h.client.tx('abc'), { code: 'API_BAD_REQUEST', status: 400 })
  for (const w of ['x', '-1', '60001', '1e3']) {
    const r = await raw(h.url, `/v1/txs/${'ee'.repeat(32)}?wait=${w}`)
    t.equal(r.status, 400, `wait=${w}`)
  }

  const bytes = new Uint8Array([9, 9, 9])
  const hash = await h.client.submitTx(bytes)
  const waiting = once(h.backend.ee, 'wait', waitLimit())
  const answer = h.client.tx(hash, 5_000)
  const [waitedHash] = await waiting
  t.equal(waitedHash, hash)
  h.backend.finalize(hash, 2)
  t.match(await answer, { hash, status: 'final', height: 2 })

  const other = await h.client.submitTx(new Uint8Array([9, 9, 8]))
  t.match(await h.client.tx(other, 30), { hash: other, status: 'pending' }, 'wait times out with the current status')
})

t.test('a waiting request is aborted when its client disconnects', async (t) => {
  const hash = await h.client.submitTx(new Uint8Array([8, 8, 8]))
  const ac = new AbortController()
  const waiting = once(h.backend.ee, 'wait', waitLimit())
  const req = fetch(`${h.url}/v1/txs/${hash}?wait=30000`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: ac.signal })
  const [, signal] = (await waiting) as [string, AbortSignal]
  t.notOk(signal.aborted)
  ac.abort()
  await t.rejects(req)
  if (!signal.aborted) await once(signal, 'abort', waitLimit())
  t.ok(signal.aborted, 'the backend saw the abort')
  t.match(await h.client.status(), { height: 1 }, 'server still serves')
})

t.test('events: block then tx, in order, and unsubscribe on close', async (t) => {
  const ac = new AbortController()
  const subscribed = once(h.backend.ee, 'subscribe', waitLimit())
  const it = h.client.events(ac.signal)
  const first = it.next()
  await subscribed
  const hash = await h.client.submitTx(new Uint8Array([7, 7]))
  h.backend.emit({ type: 'block', data: { height: 2, hash: 'cc'.repeat(32), txs: [hash] } })
  h.backend.finalize(hash, 2)
  t.same((await first).value, { type: 'block', data: { height: 2, hash: 'cc'.repeat(32), txs: [hash] } })
  t.same((await it.next()).value, { type: 'tx', data: { hash, status: 'final', height: 2 } })

  const unsubscribed = once(h.backend.ee, 'unsubscribe', waitLimit())
  ac.abort()
  await it.return(undefined)
  await unsubscribed
  t.equal(h.backend.listeners.size, 0)
})

t.test('a burst of events reaches a client that keeps up', async (t) => {
  const ac = new AbortController()
  const subscribed = once(h.backend.ee, 'subscribe', waitLimit())
  const it = h.client.events(ac.signal)
  const first = it.next()
  await subscribed
  // One synchronous burst, as when a block of many transactions is finalized.
  const N = 5_000
  for (let i = 0; i < N; i++) h.backend.emit({ type: 'tx', data: { hash: i.toString(16).padStart(64, '0'), status: 'final', height: 3 } })
  let n = 0
  let inOrder = true
  for (let r = await first; r.done !== true; r = await it.next()) {
    if (r.value.type !== 'tx' || r.value.data.hash !== n.toString(16).padStart(64, '0')) inOrder = false
    if (++n === N) break
  }
  t.equal(n, N, 'every event arrived')
  t.ok(inOrder, 'in order')
  t.equal(h.backend.listeners.size, 1, 'stream not cut')
  const unsubscribed = once(h.backend.ee, 'unsubscribe', waitLimit())
  await it.return(undefined)
  await unsubscribed
})

t.test('an event stream whose reader stalls is cut, not buffered without bound', async (t) => {
  const s = await harness({ sseStallMs: 50 })
  const { port } = new URL(s.url)
  const sock = connect(Number(port), '127.0.0.1')
  sock.on('error', () => {})
  t.teardown(() => sock.destroy())
  const subscribed = once(s.backend.ee, 'subscribe', waitLimit())
  // Never read: the kernel buffers fill, then res.write returns false and nothing drains.
  sock.pause()
  sock.write(`GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
  await subscribed
  const data = { pad: 'p'.repeat(10_000) }
  let sent = 0
  const deadline = performance.now() + 5_000
  while (s.backend.listeners.size > 0 && performance.now() < deadline) {
    for (let i = 0; i < 200; i++) s.backend.emit({ type: 'block', data })
    sent += 200
    await sleep(5)
  }
  t.equal(s.backend.listeners.size, 0, 'stream cut and unsubscribed')
  t.ok(sent > 1_000, `cut only after more than 1,000 waiting events (${sent} sent)`)
  t.ok(s.logs.some((l) => l.level === 'warn' && /slow/.test(l.msg)))
  t.match(await s.client.status(), { chainId: 'test-chain' }, 'server still serving')
})

t.test('a client that stops reading its events gets API_STREAM_BROKEN, not a silent gap', async (t) => {
  const s = await harness({ sseStallMs: 50 })
  const subscribed = once(s.backend.ee, 'subscribe', waitLimit())
  const it = s.client.events(AbortSignal.timeout(8_000))
  const first = it.next()
  await subscribed
  const data = { pad: 'q'.repeat(10_000) }
  s.backend.emit({ type: 'block', data: { n: 0 } })
  t.same((await first).value, { type: 'block', data: { n: 0 } })
  // The consumer stops pulling; the server must give up on it.
  const deadline = performance.now() + 5_000
  while (s.backend.listeners.size > 0 && performance.now() < deadline) {
    for (let i = 0; i < 200; i++) s.backend.emit({ type: 'block', data })
    await sleep(5)
  }
  t.equal(s.backend.listeners.size, 0, 'server cut the stream')
  let received = 0
  await t.rejects(
    (async () => {
      for (let r = await it.next(); r.done !== true; r = await it.next()) received++
    })(),
    { name: 'ApiError', code: 'API_STREAM_BROKEN' },
  )
  t.ok(received > 0, `what was already delivered is still yielded first (${received})`)
})

t.test('garbage on the wire never stops the server', async (t) => {
  const junk = await rawSocket(h.url, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a, 0x80, 0x81]))
  t.match(junk, /^HTTP\/1\.1 400 /)
  t.match(junk, /"API_BAD_REQUEST"/)
  const badLine = await rawSocket(h.url, 'GET /v1/status HTTP/9.9 what\r\n\r\n')
  t.match(badLine, /^HTTP\/1\.1 400 /)
  const hugeHeader = await rawSocket(h.url, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`)
  t.match(hugeHeader, /^HTTP\/1\.1 431 /)
  const badTarget = await rawSocket(h.url, `GET http://[::1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`)
  t.match(badTarget, /^HTTP\/1\.1 (400|404) /)
  // Half a request, then hang up.
  const half = connect(Number(new URL(h.url).port), '127.0.0.1')
  half.on('error', () => {})
  half.write('POST /v1/txs HTTP/1.1\r\nContent-Length: 100\r\nAuthorization: Bearer ' + TOKEN + '\r\n\r\n{"tx":')
  half.destroy()
  t.match(await h.client.status(), { chainId: 'test-chain' }, 'still serving')
})

t.test('bodies over maxBodyBytes are 413 and the server goes on', async (t) => {
  const s = await harness({ maxBodyBytes: 1024 })
  const big = JSON.stringify({ tx: '00'.repeat(4096) })
  const r = await raw(s.url, '/v1/txs', { method: 'POST', body: big })
  t.equal(r.status, 413, 'declared length too large')
  t.match(r.body, { error: { code: 'API_BODY_TOO_LARGE' } })

  // Chunked: no declared length, the limit is hit while reading.
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${s.url}/v1/txs`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.write('{"tx":"')
    for (let i = 0; i < 4; i++) req.write('00'.repeat(256))
    req.end('"}')
  })
  t.equal(res.status, 413, 'streamed body too large')
  t.match(JSON.parse(res.body), { error: { code: 'API_BODY_TOO_LARGE' } })

  t.equal((await raw(s.url, '/v1/txs', { method: 'POST', body: JSON.stringify({ tx: '00'.repeat(100) }) })).status, 202, 'small bodies still pass')
  t.equal(s.backend.txs.size, 1)
})

t.test('event streams send keepalive comments', async (t) => {
  const s = await harness({ sseKeepaliveMs: 30 })
  const { port } = new URL(s.url)
  const sock = connect(Number(port), '127.0.0.1')
  t.teardown(() => sock.destroy())
  let text = ''
  const seen = new Promise<void>((resolve) => {
    sock.on('data', (c: Buffer) => {
      text += c.toString('utf8')
      if (text.includes(': keepalive')) resolve()
    })
  })
  sock.write(`GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`)
  await Promise.race([seen, once(sock, 'close', waitLimit())])
  t.match(text, /^HTTP\/1\.1 200 /)
  t.match(text, /content-type: text\/event-stream/i)
  t.match(text, /: keepalive\n\n/)
})

t.test('stop() ends event streams and waits promptly; then the daemon is unreachable', async (t) => {
  const s = await harness()
  const ac = new AbortController()
  const subscribed = once(s.backend.ee, 'subscribe', waitLimit())
  const it = s.client.events(ac.signal)
  const next = it.next()
  await subscribed
  const hash = await s.client.submitTx(new Uint8Array([1]))
  const waiting = once(s.backend.ee, 'wait', waitLimit())
  const pendingWait = s.client.tx(hash, 30_000).then(
    () => 'resolved',
    (err: unknown) => (err instanceof Error && 'code' in err ? String(err.code) : 'other'),
  )
  await waiting
  const started = performance.now()
  await s.server.stop()
  t.ok(performance.now() - started < 2_000, 'stop is prompt')
  t.match(await next, { done: true }, 'event stream ended')
  t.equal(s.backend.listeners.size, 0, 'unsubscribed')
  t.match(await pendingWait, /^(API_BUSY|API_BAD_RESPONSE|API_UNREACHABLE)$/, 'the waiting request was answered or cut, not left hanging')
  await t.rejects(s.client.status(), { name: 'ApiError', code: 'API_UNREACHABLE', status: 0 })
})

t.test('logs carry requests but never the token or bodies', async (t) => {
  const text = JSON.stringify(h.logs)
  t.notMatch(text, TOKEN)
  t.notMatch(text, NOTE_SECRET)
  t.ok(
    h.logs.some((l) => l.level === 'debug' && l.ctx?.method === 'GET' && l.ctx.path === '/v1/status' && l.ctx.status === 200 && typeof l.ctx.ms === 'number'),
  )
})

t.test('peers and the devnet partition switch', async (t) => {
  const { backend, client } = await harness()
  const peers = await client.peers()
  t.equal(peers.length, 1)
  t.equal(peers[0]?.org, 'org-b')
  await client.partition(['AB'.repeat(32)])
  t.same(backend.blocked, ['ab'.repeat(32)], 'keys are passed on, lower-cased')
  await client.partition([])
  t.same(backend.blocked, [], 'an empty list heals')
  await t.rejects(client.partition(['xyz']), { code: 'API_BAD_REQUEST' }, 'keys must be hex')

  // A backend without the switch (a production daemon's) has no such route: 404 whatever the method or body.
  class NoSwitch extends FakeBackend {
    override setBlockedPeers = undefined
  }
  const prod = await harness({}, new NoSwitch())
  await t.rejects(prod.client.partition([]), { code: 'API_NOT_FOUND', status: 404 })
  t.equal((await raw(prod.url, '/v1/admin/partition')).status, 404, 'GET: 404, not 405')
  t.equal((await raw(prod.url, '/v1/admin/partition', { method: 'POST', body: '{' })).status, 404, 'a malformed body: 404, never read')
})

t.test('organization registry: list and vote', async (t) => {
  const { backend, client } = await harness()
  t.equal((await client.orgs()).orgs.length, 1)
  const hash = await client.voteOrg({
    action: 'admit',
    id: 'org5',
    name: 'Org 5',
    role: 'authority',
    signKey: 'aa'.repeat(32),
    encKey: 'bb'.repeat(32),
    addrs: ['/ip4/127.0.0.1/tcp/1'],
  })
  t.match(hash, /^[0-9a-f]{64}$/)
  t.equal(backend.votes[0]?.action, 'admit')
  await client.voteOrg({ action: 'remove', id: 'org2' })
  t.equal(backend.votes.length, 2)
  await t.rejects(
    client.voteOrg({ action: 'rekey', id: 'org2', signKey: 'zz', encKey: 'bb'.repeat(32) }),
    { code: 'API_BAD_REQUEST' },
    'keys must be 32 bytes of hex',
  )
  t.equal(backend.votes.length, 2, 'a refused vote reaches no backend')

  // The chain parameters: shown with the registry, changed by a vote.
  t.same((await client.orgs()).params, { maxStudyBytes: 32 * 1024 ** 3, maxStudyChunks: 32768 })
  await client.voteOrg({ action: 'params', params: { maxStudyBytes: 40 * 1024 ** 3, maxStudyChunks: 40960 } })
  t.same(backend.votes[2], { action: 'params', params: { maxStudyBytes: 40 * 1024 ** 3, maxStudyChunks: 40960 } }, 'a 64-bit size passes as a JSON number')
  await t.rejects(client.voteOrg({ action: 'params', params: {} }), { code: 'API_BAD_REQUEST' }, 'at least one parameter')
  await t.rejects(client.voteOrg({ action: 'params', params: { maxStudyChunks: -1 } }), { code: 'API_BAD_REQUEST' }, 'no negative value')
  t.equal(backend.votes.length, 3)
})

t.test('study jobs: start and follow', async (t) => {
  const { client, backend } = await harness()
  const id = await client.addStudies(['/data/study1'], { skipBad: true })
  const j = await client.job(id)
  t.same(j, backend.jobs.get(id), 'the job view as the backend made it')
  t.ok(isJobOfKind(j, 'add') && j.state === 'done' && j.files === 1, 'a study add job, done')
  t.same(backend.added[0], { paths: ['/data/study1'], skipBad: true, patient: null, extends: null })
  await t.rejects(client.job('cd'.repeat(8)), { code: 'API_NOT_FOUND' })
  await t.rejects(client.addStudies([]), { code: 'API_BAD_REQUEST' }, 'at least one path')
  await client.job(await client.addStudies(['/data/study1'], { patient: 'rcpatient1:AAAA' }))
  t.equal(backend.added[1]?.patient, 'rcpatient1:AAAA', 'the patient key reaches the backend')
  await client.job(await client.addStudies(['/data/study1'], { extends: '12'.repeat(16) }))
  t.equal(backend.added[2]?.extends, '12'.repeat(16), 'the earlier version reaches the backend')
})

t.test('study jobs: ?wait answers when the job ends, or after the wait with where it stands', async (t) => {
  const { client, backend } = await harness()
  const id = await client.getStudy('11'.repeat(16), { out: '/tmp/w' })
  const done = backend.jobs.get(id) as StudyJobView
  backend.jobs.set(id, { ...done, state: 'fetching' } as StudyJobView)
  const t0 = Date.now()
  const still = await client.job(id, 150)
  t.equal(still.state, 'fetching', 'still running at the end of the wait')
  t.ok(Date.now() - t0 >= 140, 'and only then')
  setTimeout(() => backend.jobs.set(id, done), 100)
  const ended = await client.job(id, 10_000)
  t.equal(ended.state, 'done', 'the end, as soon as it comes (the wait is 10 s)')
  await t.rejects(client.job(id, 10_001), { code: 'API_BAD_REQUEST', status: 400 }, 'at most 10 s')
  await t.rejects(client.job('cd'.repeat(8), 50), { code: 'API_NOT_FOUND' })
})

t.test('study jobs: 200 requests waiting on a job hold no more than their connections, and the API answers meanwhile', async (t) => {
  const { client, backend } = await harness()
  const id = await client.getStudy('11'.repeat(16), { out: '/tmp/w' })
  const done = backend.jobs.get(id) as StudyJobView
  backend.jobs.set(id, { ...done, state: 'fetching' } as StudyJobView)
  global.gc?.()
  const before = process.memoryUsage().heapUsed
  const waiting = Array.from({ length: 200 }, () => client.job(id, 10_000))
  await sleep(300)
  t.ok(await client.status(), 'status answers while they wait')
  const grown = process.memoryUsage().heapUsed - before
  t.ok(grown < 64 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB for 200 waiting requests`)
  backend.jobs.set(id, done)
  const answers = await Promise.all(waiting)
  t.ok(
    answers.every((j) => j.state === 'done'),
    'every one hears of the end',
  )
})

t.test('studies: list, show, get, fetch', async (t) => {
  const { client, url } = await harness()
  const sid = '11'.repeat(16)
  t.same(await client.studies(), [studyViewOf(sid)])
  t.same(await client.study(sid), studyViewOf(sid))
  await t.rejects(client.study('22'.repeat(16)), { code: 'STUDY_UNKNOWN', status: 404 }, 'unknown study: 404')
  await t.rejects(client.study('nope'), { code: 'STUDY_BAD_ID', status: 400 })
  const j = await client.job(await client.getStudy(sid, { out: '/tmp/x', scope: 'full' }))
  t.ok(isJobOfKind(j, 'get') && j.studyId === sid && j.out === '/tmp/x' && j.scope === 'full', 'a study get job with the study, folder and scope asked for')
  const dflt = await client.job(await client.getStudy(sid, { out: '/tmp/y' }))
  t.ok(isJobOfKind(dflt, 'get') && dflt.scope === 'images', 'images is the default scope')
  await t.rejects(client.getStudy(sid, { out: '/tmp/x', scope: 'everything' }), { code: 'STUDY_BAD_SCOPE', status: 400 })
  await t.rejects(client.getStudy('22'.repeat(16), { out: '/tmp/x' }), { code: 'STUDY_UNKNOWN', status: 404 })
  await t.rejects(client.getStudy(sid, { out: '' }), { code: 'API_BAD_REQUEST' }, 'an output folder is required')
  const f = await client.job(await client.fetchStudy(sid))
  t.ok(isJobOfKind(f, 'get') && f.studyId === sid && f.out === null, 'study fetch: a get job with no output folder')
  await t.rejects(client.fetchStudy('22'.repeat(16)), { code: 'STUDY_UNKNOWN', status: 404 })
  const extra = await raw(url, `/v1/studies/${sid}/fetch`, { method: 'POST', body: JSON.stringify({ out: '/tmp/x' }) })
  t.equal(extra.status, 400, 'study fetch takes no output folder (nor anything else)')
  t.same(await client.swarmStatus(), { transfers: [], queue: [sid], down: [] })
})

t.test('the client refuses an answer that is not the view it asked for', async (t) => {
  const { client, backend } = await harness()
  // A daemon of another version, as it were: the shapes are wrong on purpose.
  backend.studies = async () => [{ id: 'x' }] as unknown as StudyView[]
  backend.swarmStatus = () => ({ transfers: 'none' }) as unknown as SwarmStatusView
  backend.jobs.set('cd'.repeat(8), { id: 'cd'.repeat(8), kind: 'copy' } as unknown as StudyJobView)
  await t.rejects(client.studies(), { name: 'ApiError', code: 'API_BAD_RESPONSE' })
  await t.rejects(client.swarmStatus(), { name: 'ApiError', code: 'API_BAD_RESPONSE' })
  await t.rejects(client.job('cd'.repeat(8)), { name: 'ApiError', code: 'API_BAD_RESPONSE' })
})

t.test('leases: request, list, decisions, nonces', async (t) => {
  const { client, backend } = await harness()
  t.equal(await client.requestLease('11'.repeat(16), { scope: 'images', durationMs: 3_600_000, purpose: 'second opinion' }), 'aa'.repeat(32))
  await t.rejects(client.requestLease('22'.repeat(16), { scope: 'images', durationMs: 3_600_000, purpose: '' }), { code: 'STUDY_UNKNOWN', status: 404 })
  await t.rejects(client.requestLease('11'.repeat(16), { scope: 'all', durationMs: 3_600_000, purpose: '' }), { code: 'LEASE_BAD_SCOPE', status: 400 })
  t.same(await client.leases('incoming'), [leaseViewOf('aa'.repeat(32))])
  t.same(await client.leases(), [leaseViewOf('aa'.repeat(32))])
  t.same(backend.leaseQueries, ['incoming', undefined], 'the direction reaches the backend')
  t.equal(await client.decideLease('aa'.repeat(32), 'grant'), 'cc'.repeat(32))
  await t.rejects(client.decideLease('bb'.repeat(32), 'grant'), { code: 'LEASE_UNKNOWN', status: 404 })
  t.equal(await client.decideLease('aa'.repeat(32), 'deny', 'not now'), 'cd'.repeat(32))
  await t.rejects(client.decideLease('aa'.repeat(32), 'revoke'), { code: 'LEASE_NOT_CUSTODIAN', status: 403 })
  t.same(backend.decisions.slice(0, 2), [`grant ${'aa'.repeat(32)}`, `deny ${'aa'.repeat(32)} not now`])
  t.match(await client.audit('11'.repeat(16)), [{ type: 'study.register', height: 3, by: 'org-a', detail: { studyId: '11'.repeat(16) } }])
  await t.rejects(client.audit('22'.repeat(16)), { code: 'STUDY_UNKNOWN', status: 404 })
  t.equal(await client.eraseStudy('11'.repeat(16)), 'ef'.repeat(32))
  await t.rejects(client.eraseStudy('ee'.repeat(16)), { code: 'STUDY_ERASED', status: 410 })
  t.equal(await client.nonce('ab'.repeat(32)), 7)
  await t.rejects(client.nonce('ab'), { code: 'TX_MALFORMED', status: 400 })
})

t.test('patient links: link, replace, list, unlink; the Patient ID travels in bodies, never in a logged path', async (t) => {
  const { client, backend, logs } = await harness()
  const id = 'PID-in-the-body-only'
  const r = await client.linkPatient({ patientId: id, issuer: 'HOSP', patientKey: 'rcpatient1:AAAA' })
  t.same(r, {
    link: { patientId: id, issuer: 'HOSP', patientKey: 'rcpatient1:AAAA', keyId: 'ab'.repeat(32), linkedAt: '2025-01-01T00:00:00.000Z' },
    replaced: false,
  })
  await t.rejects(client.linkPatient({ patientId: id, issuer: 'HOSP', patientKey: 'rcpatient1:BBBB' }), { code: 'PATIENT_LINK_EXISTS', status: 409 })
  t.equal(
    (await client.linkPatient({ patientId: id, issuer: 'HOSP', patientKey: 'rcpatient1:BBBB', replace: true })).replaced,
    true,
    'replace reaches the backend',
  )
  await client.linkPatient({ patientId: 'other', patientKey: 'rcpatient1:CCCC' })
  t.same(
    (await client.patientLinks()).map((l) => [l.patientId, l.issuer, l.patientKey]),
    [
      [id, 'HOSP', 'rcpatient1:BBBB'],
      ['other', '', 'rcpatient1:CCCC'],
    ],
    'an issuer left out is the empty one',
  )
  await client.unlinkPatient(id, 'HOSP')
  await t.rejects(client.unlinkPatient(id, 'HOSP'), { code: 'PATIENT_LINK_UNKNOWN', status: 404 })
  t.same([...backend.links.keys()], [JSON.stringify(['other', ''])])
  await t.rejects(client.linkPatient({ patientId: id, patientKey: 'rcpatient1:AAAA', extra: 1 } as never), { code: 'API_BAD_REQUEST', status: 400 })
  t.ok(
    logs.some((l) => l.ctx?.path === '/v1/patient-links/unlink'),
    'the requests are logged',
  )
  t.notMatch(JSON.stringify(logs), id, 'without the Patient ID')
})

t.test('sockets that never finish their headers are closed within seconds, then the token holder gets in', async (t) => {
  const { client, url } = await harness()
  const { hostname, port } = new URL(url)
  // 300 connections without the token that send a request line and stop there
  // (more than the 256 the server takes at once).
  let closed = 0
  const sockets = await Promise.all(
    Array.from({ length: 300 }, async () => {
      const s = connect(Number(port), hostname)
      s.on('error', () => undefined)
      s.on('close', () => closed++)
      s.resume()
      await once(s, 'connect')
      s.write('GET /v1/status HTTP/1.1\r\nHost: localhost\r\n')
      return s
    }),
  )
  t.teardown(() => sockets.forEach((s) => s.destroy()))
  const t0 = Date.now()
  const deadline = t0 + 20_000
  while (closed < 300) {
    if (Date.now() > deadline) throw new Error(`only ${closed} of 300 stalled sockets closed in 20 s`)
    await sleep(25)
  }
  const took = Date.now() - t0
  t.ok(took < 3 * HEADERS_TIMEOUT_MS, `every stalled socket closed in ${took} ms (headers must come within ${HEADERS_TIMEOUT_MS} ms)`)
  const s = await client.status()
  t.equal(typeof s.height, 'number', 'then the token holder is answered')
})

t.test('the Unix socket: the same API with the same token, mode 0600, a stale file replaced, removed at stop', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'radchain-api-sock-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const socketPath = join(dir, 'api.sock')
  // A file left behind by a daemon that was killed.
  await writeFile(socketPath, 'stale')
  const s = await harness({ socketPath })
  t.equal(s.server.socketPath, socketPath)
  const st = await stat(socketPath)
  t.ok(st.isSocket(), 'the stale file was replaced by the socket')
  t.equal(st.mode & 0o777, 0o600, 'only the daemon user may connect')
  const viaSocket = new ApiClient({ url: 'http://127.0.0.1:1', token: TOKEN, socketPath, timeoutMs: 5_000 })
  t.match(await viaSocket.status(), { height: 1 }, 'answers on the socket (the URL only names it)')
  const hash = await viaSocket.submitTx(new Uint8Array([9, 9]))
  t.equal((await s.client.tx(hash)).status, 'pending', 'the TCP port serves the same node')
  // Events stream over the socket too.
  const ac = new AbortController()
  const subscribed = once(s.backend.ee, 'subscribe', waitLimit())
  const it = viaSocket.events(ac.signal)
  const first = it.next()
  await subscribed
  s.backend.emit({ type: 'block', data: { height: 2, hash: 'dd'.repeat(32), txs: [] } })
  t.same((await first).value, { type: 'block', data: { height: 2, hash: 'dd'.repeat(32), txs: [] } })
  ac.abort()
  await it.return(undefined)
  const stranger = new ApiClient({ url: 'http://127.0.0.1:1', token: 'wrong', socketPath, timeoutMs: 5_000 })
  await t.rejects(stranger.status(), { name: 'ApiError', code: 'API_UNAUTHORIZED' }, 'the token is still required')
  await s.server.stop()
  t.notOk(await exists(socketPath), 'stop removes the socket file')
  await t.rejects(
    viaSocket.status(),
    { name: 'ApiError', code: 'API_UNREACHABLE', message: new RegExp(`unix:${socketPath}`) },
    'a stopped daemon is unreachable, named by its socket',
  )
  t.throws(
    () =>
      new ApiServer(
        { host: '127.0.0.1', port: 0, token: TOKEN, logger: captureLogger([]), socketPath: `/tmp/${'x'.repeat(120)}` },
        { backend: new FakeBackend() },
      ),
    { code: 'API_BAD_CONFIG' },
    'a path longer than a socket address holds is refused',
  )
})

t.test('the client reaches a daemon on the IPv6 loopback by its bracketed URL', async (t) => {
  const h = await harness({ host: '::1' })
  t.match(h.url, /^http:\/\/\[::1\]:\d+$/)
  const st = await h.client.status()
  t.type(st.height, 'number', 'status answered over [::1]')
})

t.test('study fetch: a flood of oversized or malformed bodies is refused each, within a memory bound, and the API answers meanwhile', async (t) => {
  const { client, url, backend } = await harness({ maxBodyBytes: 64 * 1024 })
  const sid = '11'.repeat(16)
  const jobsBefore = backend.jobs.size
  global.gc?.()
  const before = process.memoryUsage().heapUsed
  const big = JSON.stringify({ pad: 'x'.repeat(256 * 1024) })
  const answers = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      raw(url, `/v1/studies/${sid}/fetch`, { method: 'POST', body: i % 2 === 0 ? big : '{"out":' }).catch(() => ({ status: 0 })),
    ),
  )
  t.ok(await client.status(), 'status answers after the flood')
  const grown = process.memoryUsage().heapUsed - before
  t.ok(grown < 64 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MiB for 100 refused fetches of 256 KiB or broken bodies`)
  t.same([...new Set(answers.map((a) => a.status))].sort(), [400, 413], 'oversized: 413; malformed: 400')
  t.equal(backend.jobs.size, jobsBefore, 'and no job was started')
})
