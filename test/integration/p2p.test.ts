import '../../src/util/polyfill.js'
import t from 'tap'
import { randomBytes, createHash } from 'node:crypto'
import { once } from 'node:events'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tls } from '@libp2p/tls'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import {
  INBOUND_PER_PEER,
  P2PNode,
  STREAM_WINDOW_BYTES,
  PENALTY,
  encodeFrame,
  encodeFrameHeader,
  privateKeyFromSeed,
  type P2PInit,
} from '../../src/p2p/index.js'
import { Ed25519Signer } from '../../src/crypto/index.js'
import { RadError, concatBytes, equalBytes, toHex, sleep } from '../../src/util/index.js'
import { captureLogger, type LogLine } from './helpers/logger.js'

const NET = 'radchain-test'
const BAN_MS = 1_500
const FRAME_TIMEOUT_MS = 2_000 // short for the stalled-frame test, long enough for a loaded CI machine

/** Polls `pred` every 20 ms until true; fails after `ms`. */
async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

interface Org {
  name: string
  seed: Uint8Array
  publicKey: Uint8Array
  hex: string
  node: P2PNode
  allowed: Set<string>
  logs: LogLine[]
  inbox: Map<string, { from: string; data: Uint8Array }[]>
  events: { event: string; peer: string }[]
}

const orgs: Org[] = []
const slowStarted = new Set<string>()
/** Requests on 'held' a node's handler is working on, the most at once, and all begun, by node name; `heldGate` holds them until the test opens it. */
const held = { active: 0, most: 0, started: 0 }
let heldGate: Promise<void> = Promise.resolve()
/** Requests on 'big' (1 MiB answers) a node's handler has begun. */
let bigStarted = 0
/** Pipe requests with a delay of 200 ms or more that a node's handler has begun, by node name. */
const slowPipeStarted = new Map<string, number>()
// An admitted key that only a raw libp2p node (a misbehaving client) uses.
const rogueSeed = new Uint8Array(randomBytes(32))
const rogueKey = new Ed25519Signer(rogueSeed).publicKey
const rogue2Seed = new Uint8Array(randomBytes(32))
const rogue2Key = new Ed25519Signer(rogue2Seed).publicKey
const rogue3Seed = new Uint8Array(randomBytes(32))
const rogue3Key = new Ed25519Signer(rogue3Seed).publicKey

function makeOrg(name: string): Org {
  const seed = new Uint8Array(randomBytes(32))
  const publicKey = new Ed25519Signer(seed).publicKey
  const allowed = new Set<string>([toHex(rogueKey), toHex(rogue2Key), toHex(rogue3Key)])
  const logs: LogLine[] = []
  const inbox = new Map<string, { from: string; data: Uint8Array }[]>()
  const init: P2PInit = {
    listen: ['/ip4/127.0.0.1/tcp/0'],
    identitySeed: seed,
    networkId: NET,
    isAllowed: (k) => allowed.has(toHex(k)),
    peersToDial: () => orgs.filter((o) => o.name !== name && o.node.addrs.length > 0).map((o) => ({ publicKey: o.publicKey, addrs: o.node.addrs })),
    dialIntervalMs: 200,
    banMs: BAN_MS,
    scoreRecoveryPerSecond: 0,
    frameTimeoutMs: FRAME_TIMEOUT_MS,
  }
  const node = new P2PNode(init, { logger: captureLogger(logs) })
  const events: { event: string; peer: string }[] = []
  node.on('peer:connect', (k) => events.push({ event: 'connect', peer: toHex(k) }))
  node.on('peer:disconnect', (k) => events.push({ event: 'disconnect', peer: toHex(k) }))
  for (const ch of ['gossip', 'small']) {
    inbox.set(ch, [])
    node.channel(ch, {
      maxMessageBytes: ch === 'small' ? 1024 : 1024 * 1024,
      onMessage: (from, data) => inbox.get(ch)?.push({ from: toHex(from), data }),
    })
  }
  node.handle('echo', { maxRequestBytes: 1024 * 1024, maxResponseBytes: 16 * 1024 * 1024, timeoutMs: 5_000, handler: async (_from, req) => req })
  node.handle('blob', {
    maxRequestBytes: 16,
    maxResponseBytes: 16 * 1024 * 1024,
    timeoutMs: 5_000,
    handler: async (_from, req) => {
      const n = new DataView(req.buffer, req.byteOffset, req.byteLength).getUint32(0)
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = (i * 31) & 0xff
      return out
    },
  })
  node.handle('slowblob', {
    maxRequestBytes: 16,
    maxResponseBytes: 16 * 1024 * 1024,
    timeoutMs: 5_000,
    handler: async () => {
      slowStarted.add(name)
      await sleep(100)
      return new Uint8Array(8 * 1024 * 1024).fill(7)
    },
  })
  node.handle('fail', {
    maxRequestBytes: 64,
    maxResponseBytes: 64,
    timeoutMs: 5_000,
    handler: async (_from, req) => {
      if (req[0] === 1) throw new RadError('THING_NOT_FOUND', 'no such thing')
      if (req[0] === 2) throw new Error('a bug with secret details')
      return new Uint8Array(1000) // above maxResponseBytes: a local bug
    },
  })
  // Pipelined: byte 0 = delay in ms (out-of-order answers), byte 1 = 1 for an error; the answer echoes the request.
  node.handlePipe('pipe', {
    maxRequestBytes: 64,
    maxResponseBytes: 1024 * 1024,
    timeoutMs: 5_000,
    concurrency: 3,
    handler: async (_from, req, signal) => {
      if ((req[0] ?? 0) >= 200) slowPipeStarted.set(name, (slowPipeStarted.get(name) ?? 0) + 1)
      await sleep(req[0] ?? 0, signal)
      if (req[1] === 1) throw new RadError('PIPE_REFUSED', 'refused')
      const out = new Uint8Array(256 * 1024).fill(req[2] ?? 0)
      out.set(req.subarray(0, 8), 0)
      return out
    },
  })
  node.handle('held', {
    maxRequestBytes: 64,
    maxResponseBytes: 64,
    timeoutMs: 10_000,
    handler: async () => {
      if (name !== 'a') return Uint8Array.of(0)
      held.started++
      held.active++
      held.most = Math.max(held.most, held.active)
      try {
        await heldGate
      } finally {
        held.active--
      }
      return Uint8Array.of(1)
    },
  })
  node.handle('big', {
    maxRequestBytes: 64,
    maxResponseBytes: 1024 * 1024,
    timeoutMs: 5_000,
    handler: () => {
      if (name === 'a') bigStarted++
      return Promise.resolve(new Uint8Array(1024 * 1024))
    },
  })
  node.handle('slow', {
    maxRequestBytes: 64,
    maxResponseBytes: 64,
    timeoutMs: 5_000,
    handler: async (_from, _req, signal) => {
      await sleep(60_000, signal)
      return new Uint8Array(0)
    },
  })
  return { name, seed, publicKey, hex: toHex(publicKey), node, allowed, logs, inbox, events }
}

function peerHexes(o: Org): string[] {
  return o.node
    .peers()
    .map((p) => toHex(p.publicKey))
    .sort()
}

function fullMesh(): boolean {
  return orgs.every(
    (o) =>
      peerHexes(o).join() ===
      orgs
        .filter((x) => x !== o)
        .map((x) => x.hex)
        .sort()
        .join(),
  )
}

async function rawNode(seed?: Uint8Array): Promise<Libp2p> {
  const privateKey = seed === undefined ? await generateKeyPair('Ed25519') : await privateKeyFromSeed(seed)
  // The nodes' stream window (a peer with a smaller one gets more than it allows; see P2PNode).
  const streamOptions = { initialStreamWindowSize: STREAM_WINDOW_BYTES, maxStreamWindowSize: 16 * 1024 * 1024 }
  return createLibp2p({ privateKey, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux({ streamOptions })] })
}

const rawNodes: Libp2p[] = []

t.before(async () => {
  for (const n of ['a', 'b', 'c']) orgs.push(makeOrg(n))
  for (const o of orgs) for (const x of orgs) o.allowed.add(x.hex)
  await Promise.all(orgs.map((o) => o.node.start()))
})

t.teardown(async () => {
  await Promise.allSettled(rawNodes.map((n) => n.stop()))
  await Promise.allSettled(orgs.map((o) => o.node.stop()))
})

t.test('identity is the organization key and addrs name the peer id', async (t) => {
  for (const o of orgs) {
    t.ok(equalBytes(o.node.publicKey, o.publicKey))
    t.ok(o.node.addrs.length > 0)
    for (const a of o.node.addrs) {
      t.match(a, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
      t.ok(a.endsWith(`/p2p/${o.node.peerId}`))
    }
  }
})

t.test('the nodes form a full mesh from peersToDial', async (t) => {
  await waitUntil(fullMesh, 5_000, 'full mesh')
  for (const o of orgs) {
    const ps = o.node.peers()
    t.equal(ps.length, 2)
    for (const p of ps) t.match(p.addr, /^\/ip4\/127\.0\.0\.1\/tcp\//)
    const connected = new Set(o.events.filter((e) => e.event === 'connect').map((e) => e.peer))
    t.same([...connected].sort(), peerHexes(o), 'peer:connect events name both peers')
  }
})

t.test('broadcast reaches every other node, in order', async (t) => {
  const [a, b, c] = orgs as [Org, Org, Org]
  for (const o of orgs) o.inbox.get('gossip')!.length = 0
  const N = 300
  const queued: number[] = []
  for (let i = 0; i < N; i++) {
    const msg = new Uint8Array(8 + (i % 5) * 1000)
    new DataView(msg.buffer).setUint32(0, i)
    queued.push(a.node.broadcast('gossip', msg))
  }
  t.ok(
    queued.every((n) => n === 2),
    'each broadcast queued for both peers',
  )
  await waitUntil(() => b.inbox.get('gossip')!.length === N && c.inbox.get('gossip')!.length === N, 5_000, 'broadcast delivery')
  for (const o of [b, c]) {
    const got = o.inbox.get('gossip')!
    t.ok(
      got.every((m, i) => new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) === i),
      'in order',
    )
    t.ok(
      got.every((m, i) => m.from === a.hex && m.data.length === 8 + (i % 5) * 1000),
      'from a, whole',
    )
  }
  t.equal(a.inbox.get('gossip')!.length, 0, 'no echo to the sender')
  // send() to one peer
  t.equal(b.node.send('gossip', c.publicKey, new Uint8Array([9, 9])), true)
  await waitUntil(() => c.inbox.get('gossip')!.length === N + 1, 5_000, 'send delivery')
  t.equal(b.node.send('gossip', new Ed25519Signer(new Uint8Array(randomBytes(32))).publicKey, new Uint8Array([1])), false, 'unknown peer')
  t.throws(() => a.node.broadcast('small', new Uint8Array(2000)), { name: 'P2PError', code: 'P2P_TOO_LARGE' })
  t.throws(() => a.node.broadcast('nope', new Uint8Array(1)), { name: 'P2PError', code: 'P2P_INVALID_ARGUMENT' })
})

t.test('request/response', async (t) => {
  const [a, b] = orgs as [Org, Org]
  const req = new Uint8Array(randomBytes(100_000))
  const res = await a.node.request('echo', b.publicKey, req)
  t.ok(equalBytes(res, req), 'echo')

  const big = 8 * 1024 * 1024
  const sizeReq = new Uint8Array(4)
  new DataView(sizeReq.buffer).setUint32(0, big)
  const blob = await a.node.request('blob', b.publicKey, sizeReq)
  t.equal(blob.length, big)
  const want = new Uint8Array(big)
  for (let i = 0; i < big; i++) want[i] = (i * 31) & 0xff
  t.equal(createHash('sha256').update(blob).digest('hex'), createHash('sha256').update(want).digest('hex'), 'large response intact')

  await t.rejects(a.node.request('blob', b.publicKey, sizeReq, { maxResponseBytes: 1024 }), { name: 'P2PError', code: 'P2P_TOO_LARGE' })
  await t.rejects(a.node.request('fail', b.publicKey, Uint8Array.of(1)), { name: 'P2PError', code: 'P2P_REMOTE_ERROR', remoteCode: 'THING_NOT_FOUND' })
  await t.rejects(a.node.request('fail', b.publicKey, Uint8Array.of(2)), { name: 'P2PError', code: 'P2P_REMOTE_ERROR', remoteCode: 'INTERNAL' })
  await t.rejects(a.node.request('fail', b.publicKey, Uint8Array.of(3)), { name: 'P2PError', code: 'P2P_REMOTE_ERROR', remoteCode: 'P2P_TOO_LARGE' })
  await t.rejects(a.node.request('slow', b.publicKey, Uint8Array.of(0), { timeoutMs: 300 }), { name: 'P2PError', code: 'P2P_TIMEOUT' })
  const ac = new AbortController()
  const p = a.node.request('slow', b.publicKey, Uint8Array.of(0), { signal: ac.signal })
  setTimeout(() => ac.abort(), 100)
  await t.rejects(p, { name: 'P2PError', code: 'P2P_ABORTED' })
  await t.rejects(a.node.request('unserved', b.publicKey, Uint8Array.of(0)), { name: 'P2PError', code: 'P2P_REFUSED' })
  await t.rejects(a.node.request('echo', rogueKey, Uint8Array.of(0)), { name: 'P2PError', code: 'P2P_NO_PEER' })
  await t.rejects(a.node.request('echo', b.publicKey, new Uint8Array(1024 * 1024 + 1)), { name: 'P2PError' }, 'request above the remote bound fails')
  t.ok(b.node.score(a.publicKey) < 0, 'and the oversized request penalized the requester')
  // Many concurrent requests to one peer: the requester queues above its per-peer limit.
  const many = await Promise.all(Array.from({ length: 100 }, (_, i) => a.node.request('echo', b.publicKey, Uint8Array.of(i))))
  t.same(
    many.map((r) => r[0]),
    Array.from({ length: 100 }, (_, i) => i),
  )
  t.ok(fullMesh(), 'mesh intact after errors')
})

t.test("an answer above the protocol's bound for the request penalizes the responder; above a local limit it does not", async (t) => {
  const [a, , c] = orgs as [Org, Org, Org]
  const sizeReq = new Uint8Array(4)
  new DataView(sizeReq.buffer).setUint32(0, 100)
  const before = a.node.score(c.publicKey)
  await t.rejects(a.node.request('blob', c.publicKey, sizeReq, { maxResponseBytes: 99 }), { name: 'P2PError', code: 'P2P_TOO_LARGE', penalize: false })
  t.equal(a.node.score(c.publicKey), before, 'a local limit: no penalty')
  await t.rejects(a.node.request('blob', c.publicKey, sizeReq, { maxResponseBytes: 99, penalizeOversize: true }), {
    name: 'P2PError',
    code: 'P2P_TOO_LARGE',
    penalize: true,
  })
  t.equal(a.node.score(c.publicKey), before - PENALTY.FRAME_TOO_LARGE, "the protocol's bound: penalized as an oversized frame")
  t.ok(a.logs.some((l) => l.level === 'warn' && l.msg === 'peer penalized' && l.ctx?.reason === 'oversized blob response'))
  t.equal(
    (await a.node.request('blob', c.publicKey, sizeReq, { maxResponseBytes: 100, penalizeOversize: true })).length,
    100,
    'an answer of the bound itself is fine',
  )
  await t.rejects(
    a.node.request('fail', c.publicKey, Uint8Array.of(1), { maxResponseBytes: 4, penalizeOversize: true }),
    { name: 'P2PError', code: 'P2P_REMOTE_ERROR', remoteCode: 'THING_NOT_FOUND' },
    'an error code fits a small bound',
  )
  t.equal(a.node.score(c.publicKey), before - PENALTY.FRAME_TOO_LARGE)
})

t.test('pipelined requests on one stream: answers matched by id, errors, timeouts, reconnect', async (t) => {
  const [a, b] = orgs as [Org, Org]
  const reqs = Array.from({ length: 60 }, (_, i) => Uint8Array.of((i * 7) % 23, 0, i, 0, 0, 0, 0, i))
  const answers = await Promise.all(reqs.map((r) => a.node.pipeRequest('pipe', b.publicKey, r)))
  t.ok(
    answers.every((x, i) => x.length === 256 * 1024 && x[2] === i && x[7] === i && x[100] === i),
    'each request got its own answer, whatever the order of completion',
  )
  await t.rejects(a.node.pipeRequest('pipe', b.publicKey, Uint8Array.of(0, 1)), { name: 'P2PError', code: 'P2P_REMOTE_ERROR', remoteCode: 'PIPE_REFUSED' })
  await t.rejects(a.node.pipeRequest('pipe', b.publicKey, Uint8Array.of(250, 0), { timeoutMs: 50 }), { name: 'P2PError', code: 'P2P_TIMEOUT' })
  t.equal((await a.node.pipeRequest('pipe', b.publicKey, Uint8Array.of(0, 0, 9)))[2], 9, 'the pipe still works after an error and a timeout')
  // The same answers as the views of the received buffers: 256 KiB crosses Noise in several messages.
  const partsAnswers = await Promise.all(reqs.slice(0, 8).map((r) => a.node.pipeRequestParts('pipe', b.publicKey, r)))
  t.ok(
    partsAnswers.every((p) => p.length > 1),
    `answers in parts (${partsAnswers.map((p) => p.length).join(', ')})`,
  )
  t.ok(
    partsAnswers.every((p, i) => toHex(concatBytes(...p)) === toHex(answers[i] as Uint8Array)),
    'joined, the parts are the answer',
  )
  await t.rejects(a.node.pipeRequest('pipe', rogueKey, Uint8Array.of(0)), { name: 'P2PError', code: 'P2P_NO_PEER' })
  // The peer goes away with requests in flight: they fail; after it is back a new stream is used.
  const startedBefore = slowPipeStarted.get('b') ?? 0
  const inFlight = Promise.allSettled(Array.from({ length: 5 }, () => a.node.pipeRequest('pipe', b.publicKey, Uint8Array.of(200, 0))))
  await waitUntil(() => (slowPipeStarted.get('b') ?? 0) > startedBefore, 5_000, 'b working on the requests')
  a.node.setBlocked(new Set([b.hex]))
  const settled = await inFlight
  t.ok(
    settled.every((x) => x.status === 'rejected'),
    'requests in flight fail when the peer is cut',
  )
  a.node.setBlocked(new Set())
  await waitUntil(() => fullMesh(), 10_000, 'mesh back')
  t.equal((await a.node.pipeRequest('pipe', b.publicKey, Uint8Array.of(0, 0, 11)))[2], 11, 'a new stream after the reconnect')
})

t.test('a pipe request frame without an id penalizes the sender', async (t) => {
  const [a] = orgs as [Org]
  const rogue = await rawNode(rogue3Seed)
  rawNodes.push(rogue)
  const before = a.node.score(rogue3Key)
  const s = await rogue.dialProtocol(multiaddr(a.node.addrs[0]!), `/radchain/${NET}/pipe/1`)
  const closed = once(s, 'close')
  s.send(Uint8Array.of(0, 0, 0, 2, 1, 2))
  await closed
  t.equal(a.node.score(rogue3Key), before - PENALTY.MALFORMED, 'penalized')
  await rogue.stop()
})

t.test('a peer with an unknown key cannot connect or open radchain protocols', async (t) => {
  const [a] = orgs as [Org]
  const stranger = await rawNode()
  rawNodes.push(stranger)
  const target = multiaddr(a.node.addrs[0]!)
  await t.rejects(stranger.dialProtocol(target, `/radchain/${NET}/echo/1`, { signal: AbortSignal.timeout(5_000) }), 'dialProtocol fails')
  await t.rejects(stranger.dialProtocol(target, `/radchain/${NET}/gossip/1`, { signal: AbortSignal.timeout(5_000) }), 'channel too')
  t.equal(stranger.getConnections().filter((c) => c.status === 'open').length, 0, 'no connection left open')
  t.notOk(a.node.peers().some((p) => p.peerId === stranger.peerId.toString()))
  t.ok(a.logs.some((l) => l.msg === 'connection refused' && l.ctx?.why === 'not admitted'))
})

t.test('oversized and malformed frames penalize the sender and do not crash the receiver', async (t) => {
  const [a, b] = orgs as [Org, Org]
  const rogue = await rawNode(rogueSeed)
  rawNodes.push(rogue)
  const target = multiaddr(a.node.addrs[0]!)
  const before = a.node.score(rogueKey)

  // Oversized frame on a channel (bound 1024).
  const s1 = await rogue.dialProtocol(target, `/radchain/${NET}/small/1`)
  const closed1 = once(s1, 'close')
  s1.send(encodeFrameHeader(1_000_000))
  s1.send(new Uint8Array(100))
  await closed1
  t.equal(a.node.score(rogueKey), before - PENALTY.FRAME_TOO_LARGE, 'penalized for the oversized frame')
  t.ok(a.logs.some((l) => l.level === 'warn' && l.msg === 'peer penalized' && l.ctx?.reason === 'channel frame too large'))

  // Truncated frame: the stream ends inside a frame.
  const s2 = await rogue.dialProtocol(target, `/radchain/${NET}/gossip/1`)
  const closed2 = once(s2, 'close')
  s2.send(Uint8Array.of(0, 0, 1, 0, 7, 7))
  await s2.close()
  await closed2
  t.equal(a.node.score(rogueKey), before - PENALTY.FRAME_TOO_LARGE - PENALTY.MALFORMED, 'penalized for the truncated frame')

  // A frame begun and left unfinished past the frame timeout.
  const s5 = await rogue.dialProtocol(target, `/radchain/${NET}/gossip/1`)
  const closed5 = once(s5, 'close')
  const t5 = Date.now()
  s5.send(Uint8Array.of(0, 0, 0, 10, 1, 2))
  await closed5
  t.ok(Date.now() - t5 >= FRAME_TIMEOUT_MS - 50, 'closed after the frame timeout')
  t.equal(a.node.score(rogueKey), before - PENALTY.FRAME_TOO_LARGE - PENALTY.MALFORMED - PENALTY.FRAME_TIMEOUT, 'penalized for the stalled frame')

  // A valid message from the rogue still arrives (it is admitted, only penalized).
  const s4 = await rogue.dialProtocol(target, `/radchain/${NET}/gossip/1`)
  a.inbox.get('gossip')!.length = 0
  s4.send(Uint8Array.of(0, 0, 0, 2, 42, 43))
  await waitUntil(() => a.inbox.get('gossip')!.length === 1, 3_000, 'valid rogue message')
  t.same([...a.inbox.get('gossip')![0]!.data], [42, 43])
  t.equal(a.inbox.get('gossip')![0]!.from, toHex(rogueKey))

  // Garbage on a request protocol (a 4 GiB length prefix) is the third offence: banned.
  const s3 = await rogue.dialProtocol(target, `/radchain/${NET}/echo/1`)
  s3.send(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3))
  await waitUntil(() => rogue.getConnections().length === 0, 3_000, 'rogue disconnected')
  t.equal(a.node.score(rogueKey), -50, 'banned: score set for the comeback')
  await t.rejects(rogue.dialProtocol(target, `/radchain/${NET}/gossip/1`, { signal: AbortSignal.timeout(3_000) }), 'refused while banned')
  // The receiver is alive and well.
  const echo = await b.node.request('echo', a.publicKey, Uint8Array.of(5))
  t.same([...echo], [5])
  await rogue.stop()
})

t.test('a malformed response penalizes the responder', async (t) => {
  const [a] = orgs as [Org]
  const rogue = await rawNode(rogue2Seed)
  rawNodes.push(rogue)
  // The rogue answers every echo request with an unknown status byte, or with bytes after the frame.
  let mode = 0
  await rogue.handle(`/radchain/${NET}/echo/1`, (stream) => {
    stream.addEventListener(
      'message',
      () => {
        if (mode === 0) stream.send(Uint8Array.of(0, 0, 0, 2, 7, 1))
        else stream.send(Uint8Array.of(0, 0, 0, 2, 0, 1, 0xee))
      },
      { once: true },
    )
  })
  await rogue.dial(multiaddr(a.node.addrs[0]!))
  await waitUntil(() => a.node.peers().some((p) => equalBytes(p.publicKey, rogue2Key)), 3_000, 'rogue2 connected')
  await t.rejects(a.node.request('echo', rogue2Key, Uint8Array.of(1)), { name: 'P2PError', code: 'P2P_MALFORMED' })
  t.equal(a.node.score(rogue2Key), -PENALTY.MALFORMED)
  mode = 1
  await t.rejects(a.node.request('echo', rogue2Key, Uint8Array.of(1)), { name: 'P2PError', code: 'P2P_MALFORMED' })
  t.equal(a.node.score(rogue2Key), -2 * PENALTY.MALFORMED)
  await rogue.stop()
})

t.test('a peer penalized to -100 is disconnected and refused until its ban ends', async (t) => {
  const [a, b] = orgs as [Org, Org]
  const gone = new Promise<void>((resolve) => {
    const f = (k: Uint8Array): void => {
      if (equalBytes(k, b.publicKey)) {
        a.node.off('peer:disconnect', f)
        resolve()
      }
    }
    a.node.on('peer:disconnect', f)
  })
  const base = a.node.score(b.publicKey)
  a.node.penalize(b.publicKey, 40, 'test: first offence')
  t.equal(a.node.score(b.publicKey), base - 40)
  t.ok(peerHexes(a).includes(b.hex), 'still connected above -100')
  a.node.penalize(b.publicKey, 100, 'test: second offence')
  await gone
  t.equal(a.node.score(b.publicKey), -50, 'score reset to -50 for the comeback')
  t.ok(a.logs.some((l) => l.level === 'warn' && l.msg === 'peer banned'))
  // While banned neither side's dials get through.
  await sleep(500)
  t.notOk(peerHexes(a).includes(b.hex), 'not reconnected while banned')
  await waitUntil(fullMesh, BAN_MS + 6_000, 'reconnect after the ban')
  t.pass('reconnected after the ban')
})

t.test('setBlocked cuts a peer and clearing it reconnects', async (t) => {
  const [a, , c] = orgs as [Org, Org, Org]
  await waitUntil(fullMesh, 5_000, 'full mesh')
  a.node.setBlocked(new Set([c.hex.toUpperCase()]))
  c.node.setBlocked(new Set([a.hex]))
  await waitUntil(() => !peerHexes(a).includes(c.hex) && !peerHexes(c).includes(a.hex), 3_000, 'partition')
  await sleep(600) // three dial-loop ticks: the loop must not dial a blocked peer
  t.notOk(peerHexes(a).includes(c.hex), 'stays partitioned')
  t.equal(a.node.send('gossip', c.publicKey, Uint8Array.of(1)), false, 'no send to a blocked peer')
  const t0 = Date.now()
  a.node.setBlocked(new Set())
  c.node.setBlocked(new Set())
  await waitUntil(fullMesh, 4_000, 'heal')
  t.ok(Date.now() - t0 < 4_000, `healed in ${Date.now() - t0} ms`)
})

t.test('recheck() drops a peer that is no longer admitted', async (t) => {
  const [a, b] = orgs as [Org, Org]
  await waitUntil(fullMesh, 5_000, 'full mesh')
  a.allowed.delete(b.hex)
  a.node.recheck()
  await waitUntil(() => !peerHexes(a).includes(b.hex), 3_000, 'disconnect after recheck')
  await sleep(600)
  t.notOk(peerHexes(a).includes(b.hex), 'b cannot come back')
  a.allowed.add(b.hex)
  await waitUntil(fullMesh, 5_000, 'readmitted')
})

t.test('stop() lets an in-flight response arrive whole', async (t) => {
  const [a, b] = orgs as [Org, Org]
  await waitUntil(fullMesh, 5_000, 'full mesh')
  const pending = a.node.request('slowblob', b.publicKey, Uint8Array.of(0))
  // Stop the responder while its handler is still working.
  await waitUntil(() => slowStarted.has('b'), 2_000, 'handler started')
  const stopping = b.node.stop()
  const res = await pending
  await stopping
  t.equal(res.length, 8 * 1024 * 1024, 'whole response despite the stop')
  t.ok(res.every((x) => x === 7))
  await waitUntil(() => !peerHexes(a).includes(b.hex), 3_000, 'a sees b leave')
  await t.rejects(a.node.request('echo', b.publicKey, Uint8Array.of(1)), { name: 'P2PError', code: 'P2P_NO_PEER' }, 'b is gone')
})

t.test('TLS 1.3 instead of Noise: the same gate and protocols', async (t) => {
  const seeds = [new Uint8Array(randomBytes(32)), new Uint8Array(randomBytes(32))]
  const keys = seeds.map((s) => new Ed25519Signer(s).publicKey)
  const nodes: P2PNode[] = []
  for (const seed of seeds) {
    const n: P2PNode = new P2PNode(
      {
        listen: ['/ip4/127.0.0.1/tcp/0'],
        identitySeed: seed,
        networkId: NET,
        isAllowed: (k) => keys.some((x) => equalBytes(x, k)),
        peersToDial: () => nodes.filter((m) => m !== n && m.addrs.length > 0).map((m) => ({ publicKey: m.publicKey, addrs: m.addrs })),
        dialIntervalMs: 100,
        encryption: ['tls'],
      },
      { logger: captureLogger([]) },
    )
    n.handle('echo', { maxRequestBytes: 64, maxResponseBytes: 64, timeoutMs: 2_000, handler: async (_f, req) => req })
    nodes.push(n)
  }
  t.teardown(() => Promise.allSettled(nodes.map((n) => n.stop())))
  await Promise.all(nodes.map((n) => n.start()))
  await waitUntil(() => nodes.every((n) => n.peers().length === 1), 5_000, 'tls connection')
  const res = await nodes[0]!.request('echo', keys[1]!, Uint8Array.of(1, 2, 3))
  t.same([...res], [1, 2, 3])
  t.ok((await nodes[0]!.ping(keys[1]!)) >= 0, 'ping service')
  const stranger = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    transports: [tcp()],
    connectionEncrypters: [tls()],
    streamMuxers: [yamux()],
  })
  rawNodes.push(stranger)
  await t.rejects(
    stranger.dialProtocol(multiaddr(nodes[0]!.addrs[0]!), `/radchain/${NET}/echo/1`, { signal: AbortSignal.timeout(5_000) }),
    'unknown key refused over TLS too',
  )
})

t.test('secure channel: two default nodes use Noise; a node preferring TLS connects to a default one over Noise and is served', async (t) => {
  const seeds = [0, 1, 2].map(() => new Uint8Array(randomBytes(32)))
  const keys = seeds.map((s) => new Ed25519Signer(s).publicKey)
  const encryptions: (('noise' | 'tls')[] | undefined)[] = [undefined, undefined, ['tls', 'noise']]
  const nodes: P2PNode[] = []
  for (const [i, seed] of seeds.entries()) {
    const enc = encryptions[i]
    const n: P2PNode = new P2PNode(
      {
        listen: ['/ip4/127.0.0.1/tcp/0'],
        identitySeed: seed,
        networkId: NET,
        isAllowed: (k) => keys.some((x) => equalBytes(x, k)),
        peersToDial: () => nodes.filter((m) => m !== n && m.addrs.length > 0).map((m) => ({ publicKey: m.publicKey, addrs: m.addrs })),
        dialIntervalMs: 100,
        ...(enc === undefined ? {} : { encryption: enc }),
      },
      { logger: captureLogger([]) },
    )
    n.handle('echo', { maxRequestBytes: 64, maxResponseBytes: 64, timeoutMs: 2_000, handler: async (_f, req) => req })
    nodes.push(n)
  }
  t.teardown(() => Promise.allSettled(nodes.map((n) => n.stop())))
  await Promise.all(nodes.map((n) => n.start()))
  await waitUntil(() => nodes.every((n) => n.peers().length === 2), 5_000, 'all three connected')
  const channel = (n: P2PNode, k: Uint8Array): string | undefined => n.peers().find((p) => equalBytes(p.publicKey, k))?.encryption
  t.equal(channel(nodes[0]!, keys[1]!), 'noise', 'default and default: Noise')
  t.equal(channel(nodes[1]!, keys[0]!), 'noise', 'the same seen from the other side')
  t.equal(channel(nodes[0]!, keys[2]!), 'noise', 'default and TLS-preferring: Noise, the one both take')
  t.equal(channel(nodes[2]!, keys[1]!), 'noise', 'the TLS-preferring node sees Noise')
  t.same([...(await nodes[2]!.request('echo', keys[0]!, Uint8Array.of(4, 5)))], [4, 5], 'the TLS-preferring node is served')
  t.same([...(await nodes[0]!.request('echo', keys[2]!, Uint8Array.of(6)))], [6], 'and serves')
  t.same([...(await nodes[0]!.request('echo', keys[1]!, Uint8Array.of(7)))], [7], 'the default pair is served')
})

/** A raw libp2p node with rogue2's (admitted) key, connected to `a`. */
async function rogueConnectedTo(a: Org): Promise<{ rogue: Libp2p; target: ReturnType<typeof multiaddr> }> {
  const rogue = await rawNode(rogue2Seed)
  rawNodes.push(rogue)
  const target = multiaddr(a.node.addrs[0]!)
  await rogue.dial(target)
  await waitUntil(() => a.node.peers().some((p) => equalBytes(p.publicKey, rogue2Key)), 3_000, 'rogue2 connected')
  return { rogue, target }
}

t.test('requests of one peer on one protocol are handled INBOUND_PER_PEER at a time; the others wait their turn and are answered', async (t) => {
  const { rogue, target } = await rogueConnectedTo(orgs[0] as Org)
  let open!: () => void
  heldGate = new Promise((resolve) => (open = resolve))
  const streams = await Promise.all(Array.from({ length: 16 }, () => rogue.dialProtocol(target, `/radchain/${NET}/held/1`)))
  // Each requester sends its request, reads its answer (a 4-byte length, then the frame) and closes its end, as P2PNode does.
  const answers = streams.map(async (s) => {
    const chunks: Uint8Array[] = []
    const whole = new Promise<void>((resolve) =>
      s.addEventListener('message', (e) => {
        chunks.push(e.data.subarray())
        const got = concatBytes(...chunks)
        if (got.length >= 4 && got.length >= 4 + new DataView(got.buffer, got.byteOffset).getUint32(0)) resolve()
      }),
    )
    s.send(encodeFrame(Uint8Array.of(1)))
    await whole
    await s.close()
    return concatBytes(...chunks)
  })
  await waitUntil(() => held.active === INBOUND_PER_PEER, 5_000, `${INBOUND_PER_PEER} requests being handled`)
  await sleep(500)
  t.equal(held.active, INBOUND_PER_PEER, 'no more are handled at once')
  t.equal(held.started, INBOUND_PER_PEER, 'the others wait')
  open()
  const got = await Promise.all(answers)
  t.equal(held.started, 16, 'every request was handled in turn')
  t.equal(held.most, INBOUND_PER_PEER, `never more than ${INBOUND_PER_PEER} at once`)
  t.ok(
    got.every((b) => equalBytes(b, encodeFrame(Uint8Array.of(0, 1)))),
    'every requester got its answer',
  )
  await rogue.stop()
})

t.test('a peer that opens many request streams and reads no answer holds at most INBOUND_PER_PEER answers of 1 MiB', async (t) => {
  const { rogue, target } = await rogueConnectedTo(orgs[0] as Org)
  const before = bigStarted
  const streams = await Promise.all(Array.from({ length: 16 }, () => rogue.dialProtocol(target, `/radchain/${NET}/big/1`)))
  for (const s of streams) {
    s.maxReadBufferLength = 64 * 1024 * 1024
    s.pause()
    s.send(encodeFrame(Uint8Array.of(1)))
  }
  await waitUntil(() => bigStarted > before, 5_000, 'a first request handled')
  await sleep(1_500)
  const started = bigStarted - before
  t.ok(started <= INBOUND_PER_PEER, `${started} of 16 handled while no answer was read (at most ${INBOUND_PER_PEER})`)
  for (const s of streams) s.abort(new Error('done'))
  await rogue.stop()
})
