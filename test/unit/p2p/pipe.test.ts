import t from 'tap'
import { servePipe } from '../../../src/p2p/index.js'
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
