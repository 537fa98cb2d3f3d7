// Fuzzing the p2p decoders: stream framing (src/p2p/frame.ts, stream-io.ts),
// request/response answers (reqresp.ts), the chunk protocols' messages
// (src/p2p/protocols/chunks/messages.ts) and the sync protocol's requests
// (src/node/sync.ts).
import t from 'tap'
import fc from 'fast-check'
import {
  Bitfield,
  FrameDecoder,
  PipeClient,
  P2PError,
  STATUS_ERROR,
  STATUS_OK,
  SwarmError,
  decodeChunkRequest,
  decodeHave,
  decodeList,
  decodeObjectRequest,
  decodeStudyRequest,
  encodeChunkRequest,
  encodeFrame,
  encodeHave,
  encodeList,
  encodeObjectRequest,
  encodeStudyRequest,
  haveResponseBytes,
} from '../../src/p2p/index.js'
import { exchange } from '../../src/p2p/reqresp.js'
import { readOneFrame } from '../../src/p2p/stream-io.js'
import { CodecError, decodeCanonical, encode, u64, type Encodable } from '../../src/chain/index.js'
import type { ChainService } from '../../src/node/index.js'
import { SyncService } from '../../src/node/sync.js'
import { concatBytes, equalBytes, nullLogger, utf8 } from '../../src/util/index.js'
import { FakeStream } from '../unit/p2p/fake-stream.js'
import { SMALL_GROWTH_BYTES, arrayBufferGrowth, mutated, mutatedOneOf, noteSeed, params, typedOrValue, typedOrValueAsync, wireBytesArb } from './fuzz.js'

noteSeed(t)
const P2P = [P2PError]
const SWARM = [SwarmError]

/** `b` cut into pieces at the given points (each taken modulo its length). */
function split(b: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % b.length)))].sort((x, y) => x - y)
  const out: Uint8Array[] = []
  let prev = 0
  for (const c of at) {
    out.push(b.subarray(prev, c))
    prev = c
  }
  out.push(b.subarray(prev))
  return out
}

const payloadsArb = fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 6 })
const cutsArb = fc.array(fc.nat(), { maxLength: 12 })

t.test('FrameDecoder: frames cut anywhere come back whole and in order', async (t) => {
  fc.assert(
    fc.property(payloadsArb, cutsArb, fc.boolean(), (payloads, cuts, parts) => {
      const d = new FrameDecoder(256)
      const got: Uint8Array[] = []
      for (const piece of split(concatBytes(...payloads.map(encodeFrame)), cuts)) {
        if (parts) for (const p of d.pushParts(piece)) got.push(concatBytes(...p))
        else got.push(...d.push(piece))
      }
      d.end()
      return got.length === payloads.length && got.every((g, i) => equalBytes(g, payloads[i] as Uint8Array))
    }),
    params(2000),
  )
  t.pass('round trips held')
})

t.test('FrameDecoder: any and mutated byte streams give frames within the bound, or a P2PError', async (t) => {
  const streams = fc.oneof(
    fc.uint8Array({ maxLength: 400 }),
    payloadsArb.chain((ps) => mutated(concatBytes(...ps.map(encodeFrame)))),
  )
  fc.assert(
    fc.property(streams, cutsArb, fc.nat(300), (b, cuts, max) => {
      const d = new FrameDecoder(max)
      let ok = true
      typedOrValue(() => {
        for (const piece of split(b, cuts)) for (const f of d.push(piece)) ok &&= f.length <= max
        d.end()
      }, P2P)
      return ok
    }),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('FrameDecoder: a prefix declaring more than the bound fails before any of the payload is held', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xffffffff }), fc.uint8Array({ maxLength: 64 }), (declared, tail) => {
      const max = declared - 1
      const d = new FrameDecoder(Math.min(max, 64 * 1024 * 1024))
      const head = new Uint8Array(4)
      new DataView(head.buffer).setUint32(0, declared, false)
      const { growth, error } = arrayBufferGrowth(() => d.push(concatBytes(head, tail)))
      return error instanceof P2PError && error.code === 'P2P_TOO_LARGE' && d.buffered === 0 && growth < SMALL_GROWTH_BYTES
    }),
    params(500),
  )
  t.pass('P2P_TOO_LARGE each time, nothing held')
})

/** A stream whose remote sends `b` in `pieces` a turn of the event loop after each other, then ends. */
function remoteSending(pieces: readonly Uint8Array[], answerAfterRequest: boolean): FakeStream {
  const s = new FakeStream()
  const send = (): void => {
    let i = 0
    const next = (): void => {
      if (i < pieces.length) {
        s.deliver(pieces[i++] as Uint8Array)
        setImmediate(next)
      } else s.endRemote()
    }
    setImmediate(next)
  }
  if (answerAfterRequest) s.onFrame = send
  else send()
  return s
}

// A hang would show as P2P_TIMEOUT: liveness is checked by the property, with a generous deadline.
// AbortSignal.timeout's timer does not keep the process alive, so this one does: a request left
// waiting fails its property with the input, rather than ending the test file unfinished.
const DEADLINE_MS = 10_000
const keepAlive = setInterval(() => undefined, 1_000)
t.teardown(() => clearInterval(keepAlive))

t.test('readOneFrame: any bytes from the remote give one frame within the bound, or a P2PError other than a timeout', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated(encodeFrame(new Uint8Array(40).fill(1)))), cutsArb, async (b, cuts) => {
      const s = remoteSending(split(b, cuts), false)
      let timedOut = false
      const f = await typedOrValueAsync(
        () =>
          readOneFrame(s.stream, 64, AbortSignal.timeout(DEADLINE_MS)).catch((err: unknown) => {
            timedOut = err instanceof P2PError && err.code === 'P2P_TIMEOUT'
            throw err
          }),
        P2P,
      )
      return !timedOut && (f === undefined || f.length <= 64)
    }),
    params(300, 5),
  )
  t.pass('no other error escaped, none hung')
})

t.test('exchange: any answer gives a body within the bound, or a P2PError other than a timeout', async (t) => {
  const answers = [
    encodeFrame(concatBytes(Uint8Array.of(STATUS_OK), new Uint8Array(20).fill(3))),
    encodeFrame(concatBytes(Uint8Array.of(STATUS_ERROR), Buffer.from('SWARM_NOT_HELD'))),
  ]
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 100 }), mutatedOneOf(answers)), cutsArb, async (b, cuts) => {
      const s = remoteSending(split(b, cuts), true)
      let timedOut = false
      const body = await typedOrValueAsync(
        () =>
          exchange(s.stream, Uint8Array.of(1), 32, AbortSignal.timeout(DEADLINE_MS)).catch((err: unknown) => {
            timedOut = err instanceof P2PError && err.code === 'P2P_TIMEOUT'
            if (err instanceof P2PError && err.code === 'P2P_REMOTE_ERROR' && !/^[A-Za-z0-9_.:-]{1,64}$/.test(err.remoteCode ?? ''))
              throw new Error('remote code not checked')
            throw err
          }),
        P2P,
      )
      return !timedOut && (body === undefined || body.length <= 32)
    }),
    params(300, 5),
  )
  t.pass('no other error escaped, none hung')
})

t.test('PipeClient: any answer gives a body within the bound, or a P2PError other than a timeout', async (t) => {
  // Answers are frames of [u32 request id, status, body] (src/p2p/pipe.ts); a fresh client's first request has id 1.
  const answer = (status: number, body: Uint8Array): Uint8Array => encodeFrame(concatBytes(Uint8Array.of(0, 0, 0, 1, status), body))
  const answers = [answer(0, new Uint8Array(20).fill(5)), answer(1, utf8('SWARM_NOT_HELD')), answer(0, new Uint8Array(0))]
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 60 }), mutatedOneOf(answers)), cutsArb, async (b, cuts) => {
      const s = new FakeStream()
      s.onFrame = () => {
        const pieces = split(b, cuts)
        let i = 0
        const next = (): void => {
          if (i < pieces.length) {
            s.deliver(pieces[i++] as Uint8Array)
            setImmediate(next)
          } else void s.close()
        }
        setImmediate(next)
      }
      const client = new PipeClient(async () => s.stream, { maxResponseBytes: 32 })
      let timedOut = false
      const body = await typedOrValueAsync(
        () =>
          client.request(Uint8Array.of(1, 2, 3), AbortSignal.timeout(DEADLINE_MS)).catch((err: unknown) => {
            timedOut = err instanceof P2PError && err.code === 'P2P_TIMEOUT'
            throw err
          }),
        P2P,
      )
      client.close()
      return !timedOut && (body === undefined || body.length <= 32)
    }),
    params(300, 5),
  )
  t.pass('no other error escaped, none hung')
})

t.test('regression: a pipe answer with an unknown status fails its request at once with P2P_MALFORMED', async (t) => {
  // Found by the property above: the answer to request 1 with status 0x41. The request was taken
  // off the pending list before its status was judged, so it waited for its deadline.
  const s = new FakeStream()
  s.onFrame = () => setImmediate(() => s.deliver(encodeFrame(concatBytes(Uint8Array.of(0, 0, 0, 1, 0x41), utf8('RM_NNT_HELD')))))
  const client = new PipeClient(async () => s.stream, { maxResponseBytes: 32 })
  const outcome = await Promise.race([
    client.request(Uint8Array.of(1), AbortSignal.timeout(60_000)).then(
      () => 'answered',
      (err: unknown) => (err instanceof P2PError ? err.code : String(err)),
    ),
    // A timer that keeps the process alive: a request left waiting shows as 'still waiting', not as an unfinished test.
    new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), 5_000)),
  ])
  client.close()
  t.equal(outcome, 'P2P_MALFORMED')
  t.ok(s.abortedWith instanceof P2PError, 'the pipe was aborted')
})

const studyId = new Uint8Array(16).fill(9)

t.test('chunk protocol requests: any bytes decode to a request that encodes back to them, or SWARM_BAD_REQUEST', async (t) => {
  const bases = [encodeStudyRequest(studyId), encodeChunkRequest(studyId, 5), encodeObjectRequest(studyId, new Uint8Array(32).fill(4))]
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutatedOneOf(bases)), (b) => {
      const s = typedOrValue(() => decodeStudyRequest(b), SWARM)
      if (s !== undefined && !equalBytes(encodeStudyRequest(s), b)) return false
      const o = typedOrValue(() => decodeObjectRequest(b), SWARM)
      if (o !== undefined && !equalBytes(encodeObjectRequest(o.studyId, o.hash), b)) return false
      const c = typedOrValue(() => decodeChunkRequest(b), SWARM)
      if (c === undefined) return true
      if (c.claim === undefined) return equalBytes(encodeChunkRequest(c.studyId, c.index), b)
      // A lessee's request: the signed part then the signature, and the signed part opens with the plain request.
      return equalBytes(concatBytes(c.claim.signed, c.claim.signature), b) && equalBytes(c.claim.signed.subarray(0, 20), encodeChunkRequest(c.studyId, c.index))
    }),
    params(3000),
  )
  t.pass('no other error escaped')
})

t.test('chunks.have answers: any bytes decode to an answer that encodes back to them, or a SwarmError', async (t) => {
  const have = (n: number, bits: number[]): Uint8Array => {
    const f = new Bitfield(n)
    for (const i of bits) if (i < n) f.set(i)
    return encodeHave({ chunks: f, list: bits.length % 2 === 0, objects: bits.length % 3 === 0 })
  }
  const bases = [have(0, []), have(7, [0, 6]), have(16, [1, 2, 3]), have(77, [0, 9, 76])]
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), mutatedOneOf(bases)), fc.nat(100), fc.boolean(), (b, n, fromAnswer) => {
      // The chunk count is the ledger's: take the one the answer states, or another.
      const expected = fromAnswer && b.length >= 4 ? Buffer.from(b).readUInt32BE(0) : n
      const h = typedOrValue(() => decodeHave(b, expected), SWARM)
      return h === undefined || equalBytes(encodeHave(h), b)
    }),
    params(3000),
  )
  t.pass('no other error escaped')
})

t.test('chunks.have: a short answer for a study of 2^32-1 chunks fails without allocating its bitfield', async (t) => {
  // Regression: the bitfield (512 MiB for 2^32-1 chunks) was allocated before the answer's length was checked.
  fc.assert(
    fc.property(fc.integer({ min: 1 << 26, max: 0xffffffff }), fc.uint8Array({ maxLength: 64 }), (count, tail) => {
      const b = concatBytes(Buffer.from(u32be(count)), Uint8Array.of(0), tail)
      const { growth, error } = arrayBufferGrowth(() => decodeHave(b, count))
      return error instanceof SwarmError && error.code === 'SWARM_BAD_REQUEST' && growth < SMALL_GROWTH_BYTES && b.length < haveResponseBytes(count)
    }),
    params(50),
  )
  t.pass('SWARM_BAD_REQUEST each time, with little memory')
})

function u32be(n: number): Uint8Array {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

t.test('chunks.list answers: any bytes decode to ids that encode back to them, or SWARM_BAD_LIST', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated(encodeList([new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)]))),
      fc.nat(8),
      (b, n) => {
        const ids = typedOrValue(() => decodeList(b, n), SWARM)
        return ids === undefined || equalBytes(encodeList(ids), b)
      },
    ),
    params(2000),
  )
  t.pass('no other error escaped')
})

t.test('sync requests: any bytes are answered, or refused with a CodecError', async (t) => {
  // A chain of 100 blocks as the sync service sees it: only the head and the stored entries.
  const chain = {
    head: () => ({ header: { height: 100 } }),
    syncEntry: async (h: number) => (h <= 100 ? { block: new Uint8Array(8).fill(h & 0xff), cert: new Uint8Array(4) } : undefined),
  } as unknown as ChainService
  const net = { peers: () => [], request: async () => new Uint8Array(0), penalize: () => undefined }
  const sync = new SyncService({}, { chain, net, logger: nullLogger() })
  const requests = [encode(['status']), encode(['blocks', u64(5), 10]), encode(['blocks', u64(99), 64])]
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        wireBytesArb,
        mutatedOneOf(requests),
        fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat()).map(([from, n]) => encode(['blocks', from, n])),
      ),
      async (b) => {
        const res = await typedOrValueAsync(() => sync.serve(b as Uint8Array), [CodecError])
        // An answer is a canonical value: a height, or at most 64 [block, certificate] pairs.
        if (res === undefined) return true
        const v = decodeCanonical(res) as Encodable[]
        return Array.isArray(v) && v.length <= 64
      },
    ),
    params(1000),
  )
  t.pass('no other error escaped')
})
