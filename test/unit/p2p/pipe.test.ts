import t from 'tap'
import { PIPE_MAX_UNSENT_BYTES, PipeBudget, servePipe } from '../../../src/p2p/index.js'
import { nullLogger } from '../../../src/util/index.js'
import { FakeStream, frame } from './fake-stream.js'

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

/** One turn of the event loop. */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r))

/** Lets pending promise reactions run, and nothing else: no timer can fire meanwhile, so what happened was woken by an event. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 100; i++) await Promise.resolve()
}

/** A responder on a fake stream whose handler the test releases request by request. */
function responder(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): {
  s: FakeStream
  served: Promise<void>
  answers: { id: number; status: number; body: string }[]
  release: (id: number) => void
} {
  const s = new FakeStream()
  const answers: { id: number; status: number; body: string }[] = []
  s.onFrame = (f) =>
    answers.push({ id: new DataView(f.buffer, f.byteOffset).getUint32(0), status: f[4] ?? -1, body: Buffer.from(f.subarray(5)).toString('latin1') })
  const waiting = new Map<number, () => void>()
  const served = servePipe(
    s.stream,
    new Uint8Array(32),
    {
      maxRequestBytes: 64,
      maxResponseBytes: 64,
      timeoutMs: opts.timeoutMs ?? 30_000,
      concurrency: 4,
      handler: (_from, req, signal) =>
        new Promise<Uint8Array>((resolve, reject) => {
          waiting.set(req[0] ?? 0, () => resolve(Uint8Array.from(Buffer.from('done'))))
          signal.addEventListener('abort', () => reject(new Error('deadline')), { once: true })
        }),
    },
    { signal: opts.signal ?? new AbortController().signal, onViolation: () => undefined, log: nullLogger() },
  )
  return { s, served, answers, release: (id) => waiting.get(id)?.() }
}

t.test('when the requester ends its side, what runs is answered and the stream closes on the last answer', async (t) => {
  const { s, served, answers, release } = responder()
  s.deliver(frame(u32(1), Uint8Array.of(1)))
  s.deliver(frame(u32(2), Uint8Array.of(2)))
  s.endRemote()
  await turn()
  t.equal(s.status, 'open', 'two handlers running: the stream stays open')
  release(1)
  await turn()
  t.same(answers, [{ id: 1, status: 0, body: 'done' }])
  t.equal(s.status, 'open', 'one still running')
  release(2)
  await microtasks()
  t.equal(s.status, 'closed', 'closed on the last answer, no timer waited for')
  t.same(
    answers.map((a) => a.id),
    [1, 2],
  )
  await served
  t.equal(s.abortedWith, undefined, 'a clean close')
})

t.test("with nothing running, the requester's end closes the stream at once", async (t) => {
  const { s, served } = responder()
  s.endRemote()
  await microtasks()
  t.equal(s.status, 'closed')
  await served
})

t.test('a handler that never answers: its deadline answers for it, then the stream closes', async (t) => {
  const { s, served, answers } = responder({ timeoutMs: 50 })
  s.deliver(frame(u32(7), Uint8Array.of(7)))
  s.endRemote()
  await served
  t.same(answers, [{ id: 7, status: 1, body: 'P2P_TIMEOUT' }])
  t.equal(s.status, 'closed')
})

t.test('the node stopping ends the wait: the stream is aborted', async (t) => {
  const ac = new AbortController()
  const { s, served } = responder({ signal: ac.signal })
  s.deliver(frame(u32(3), Uint8Array.of(3)))
  s.endRemote()
  await turn()
  t.equal(s.status, 'open')
  ac.abort()
  await served
  t.equal(s.status, 'aborted')
  t.match(s.abortedWith, { name: 'P2PError', code: 'P2P_ABORTED' })
})

/** A responder whose handler answers at once with `answerBytes`, on a stream whose reader the test stalls. */
function eager(opts: { answerBytes: number; drainTimeoutMs?: number; frameTimeoutMs?: number; budget?: PipeBudget }): {
  s: FakeStream
  served: Promise<void>
  started: () => number
  violations: { points: number; reason: string }[]
} {
  const s = new FakeStream()
  let started = 0
  const violations: { points: number; reason: string }[] = []
  const served = servePipe(
    s.stream,
    new Uint8Array(32),
    {
      maxRequestBytes: 64,
      maxResponseBytes: opts.answerBytes,
      timeoutMs: 30_000,
      concurrency: 4,
      handler: async () => {
        started++
        return new Uint8Array(opts.answerBytes)
      },
    },
    {
      signal: new AbortController().signal,
      onViolation: (points, reason) => violations.push({ points, reason }),
      log: nullLogger(),
      ...(opts.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: opts.drainTimeoutMs }),
      ...(opts.frameTimeoutMs === undefined ? {} : { frameTimeoutMs: opts.frameTimeoutMs }),
      ...(opts.budget === undefined ? {} : { budget: opts.budget }),
    },
  )
  return { s, served, started: () => started, violations }
}

t.test('a requester that stops reading holds a bounded amount of answers, then loses the stream', async (t) => {
  const answerBytes = 1024 * 1024
  const { s, served, started, violations } = eager({ answerBytes, drainTimeoutMs: 300 })
  s.stalled = true
  // 200 requests (under the queue bound), never read.
  for (let i = 1; i <= 200; i++) s.deliver(frame(u32(i), Uint8Array.of(i & 0xff)))
  await new Promise((r) => setTimeout(r, 50))
  t.ok(started() <= PIPE_MAX_UNSENT_BYTES / answerBytes + 4, `handlers started only up to the unsent bound (${started()} of 200)`)
  t.ok(s.buffered <= PIPE_MAX_UNSENT_BYTES + 4 * answerBytes, `answers held: ${s.buffered} bytes`)
  await served
  t.equal(s.status, 'aborted', 'the stream is dropped once the reader has been stalled past the deadline')
  t.match(s.abortedWith, { name: 'P2PError', code: 'P2P_TIMEOUT' })
  t.same(
    violations.map((v) => v.reason),
    ['pipe answers left unread'],
    'and the requester is penalized',
  )
})

t.test('a requester that reads again in time gets every answer', async (t) => {
  const { s, served, violations } = eager({ answerBytes: 1024 * 1024, drainTimeoutMs: 5_000 })
  const got: number[] = []
  s.onFrame = (f) => got.push(new DataView(f.buffer, f.byteOffset).getUint32(0))
  s.stalled = true
  for (let i = 1; i <= 40; i++) s.deliver(frame(u32(i), Uint8Array.of(i)))
  await new Promise((r) => setTimeout(r, 50))
  const drains = async (): Promise<void> => {
    while (got.length < 40) {
      s.drain()
      await new Promise((r) => setTimeout(r, 5))
    }
  }
  await drains()
  t.same(
    [...got].sort((a, b) => a - b),
    Array.from({ length: 40 }, (_, i) => i + 1),
  )
  t.same(violations, [])
  s.endRemote()
  await served
  t.equal(s.status, 'closed')
})

t.test('a request frame left unfinished is cut at the deadline and costs points', async (t) => {
  const { s, served, violations } = eager({ answerBytes: 16, frameTimeoutMs: 100 })
  const whole = frame(u32(1), Uint8Array.of(1))
  s.deliver(whole.subarray(0, whole.length - 1))
  await served
  t.equal(s.status, 'aborted')
  t.match(s.abortedWith, { name: 'P2PError', code: 'P2P_TIMEOUT' })
  t.same(
    violations.map((v) => v.reason),
    ['pipe request frame not completed in time'],
  )
})

t.test('a peer that opens many pipes and reads none holds no more than with one', async (t) => {
  const answerBytes = 1024 * 1024
  const budget = new PipeBudget()
  // 16 streams of one peer (a protocol admits up to 64), 200 requests each, never read.
  const pipes = Array.from({ length: 16 }, () => eager({ answerBytes, drainTimeoutMs: 400, budget }))
  for (const p of pipes) {
    p.s.stalled = true
    for (let i = 1; i <= 200; i++) p.s.deliver(frame(u32(i), Uint8Array.of(i & 0xff)))
  }
  await new Promise((r) => setTimeout(r, 100))
  const started = pipes.reduce((n, p) => n + p.started(), 0)
  const held = pipes.reduce((n, p) => n + p.s.buffered, 0)
  t.ok(started <= PIPE_MAX_UNSENT_BYTES / answerBytes + 4, `handlers started over all pipes: ${started} (one pipe alone may start as many)`)
  t.ok(held <= PIPE_MAX_UNSENT_BYTES + 4 * answerBytes, `answers held over all pipes: ${held} bytes`)
  t.ok(budget.unsent <= PIPE_MAX_UNSENT_BYTES + 4 * answerBytes, 'the shared count agrees')
  await Promise.all(pipes.map((p) => p.served))
  t.same(
    pipes.map((p) => p.s.status),
    pipes.map(() => 'aborted'),
    'every stalled pipe is dropped in turn, each at its deadline',
  )
  t.ok(
    pipes.every((p) => p.violations.length === 1),
    'and each costs the peer points',
  )
  await microtasks()
  t.equal(budget.unsent, 0, 'nothing counts against the peer once its pipes are gone')
  t.equal(budget.active, 0)
  t.equal(budget.pipes, 0)
})

t.test("one peer's pipes share the budget: a pipe waits while another holds it, and goes on when it is freed", async (t) => {
  const answerBytes = 1024 * 1024
  const budget = new PipeBudget()
  const a = eager({ answerBytes, drainTimeoutMs: 300, budget })
  const b = eager({ answerBytes, drainTimeoutMs: 10_000, budget })
  a.s.stalled = true
  for (let i = 1; i <= 40; i++) a.s.deliver(frame(u32(i), Uint8Array.of(i)))
  await new Promise((r) => setTimeout(r, 50))
  const got: number[] = []
  b.s.onFrame = (f) => got.push(new DataView(f.buffer, f.byteOffset).getUint32(0))
  for (let i = 1; i <= 3; i++) b.s.deliver(frame(u32(i), Uint8Array.of(i)))
  await new Promise((r) => setTimeout(r, 50))
  t.equal(b.started(), 0, 'the second pipe starts nothing while the first holds the budget unread')
  await a.served
  t.equal(a.s.status, 'aborted', 'the stalled pipe is dropped at its deadline')
  const until = Date.now() + 5_000
  while (got.length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  t.same(
    [...got].sort((x, y) => x - y),
    [1, 2, 3],
    'then the other pipe of the peer is served',
  )
  t.same(b.violations, [])
  b.s.endRemote()
  await b.served
})
