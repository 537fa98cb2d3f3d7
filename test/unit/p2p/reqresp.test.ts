import t from 'tap'
import { STATUS_ERROR, STATUS_OK, encodeFrameHeader } from '../../../src/p2p/index.js'
import { exchange } from '../../../src/p2p/reqresp.js'
import { FakeStream, frame } from './fake-stream.js'

/** A peer that answers the request with `answer` (raw bytes on the stream), a turn of the event loop later. */
function peer(answer: Uint8Array): FakeStream {
  const s = new FakeStream()
  s.onFrame = () => setImmediate(() => s.deliver(answer))
  return s
}

const signal = (): AbortSignal => new AbortController().signal
const ok = (n: number): Uint8Array => frame(Uint8Array.of(STATUS_OK), new Uint8Array(n).fill(7))

t.test('an answer up to the bound comes back whole', async (t) => {
  const s = peer(ok(6))
  const res = await exchange(s.stream, Uint8Array.of(1), 6, signal())
  t.same(res, new Uint8Array(6).fill(7))
  t.equal(s.abortedWith, undefined)
})

t.test("one byte above the bound: P2P_TOO_LARGE, penalized only when the bound is the protocol's", async (t) => {
  await t.rejects(
    exchange(peer(ok(7)).stream, Uint8Array.of(1), 6, signal()),
    { name: 'P2PError', code: 'P2P_TOO_LARGE', penalize: false },
    'a local limit: the peer may be innocent',
  )
  await t.rejects(
    exchange(peer(ok(7)).stream, Uint8Array.of(1), 6, signal(), { penalizeOversize: true }),
    { name: 'P2PError', code: 'P2P_TOO_LARGE', penalize: true },
    "the protocol's bound: the peer broke it",
  )
  // Above the error-code room too (the frame itself is too long).
  const s = peer(ok(1000))
  await t.rejects(exchange(s.stream, Uint8Array.of(1), 6, signal(), { penalizeOversize: true }), { name: 'P2PError', code: 'P2P_TOO_LARGE', penalize: true })
  t.equal(s.status, 'aborted', 'the stream is dropped')
})

t.test('a huge answer is refused at its length prefix, before its bytes arrive', async (t) => {
  // Only the prefix of a 512 MiB answer is ever sent: the refusal cannot wait for the body.
  const s = peer(encodeFrameHeader(512 * 1024 * 1024))
  await t.rejects(exchange(s.stream, Uint8Array.of(1), 5 + 2, signal(), { penalizeOversize: true }), {
    name: 'P2PError',
    code: 'P2P_TOO_LARGE',
    penalize: true,
  })
  t.equal(s.status, 'aborted')
})

t.test('an error code fits whatever the bound', async (t) => {
  const s = peer(frame(Uint8Array.of(STATUS_ERROR), new Uint8Array(Buffer.from('SWARM_UNKNOWN_STUDY', 'latin1'))))
  await t.rejects(exchange(s.stream, Uint8Array.of(1), 6, signal(), { penalizeOversize: true }), {
    name: 'P2PError',
    code: 'P2P_REMOTE_ERROR',
    remoteCode: 'SWARM_UNKNOWN_STUDY',
  })
})
