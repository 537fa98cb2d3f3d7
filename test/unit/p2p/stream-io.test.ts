import t from 'tap'
import type { Stream } from '@libp2p/interface'
import { FrameDecoder } from '../../../src/p2p/index.js'
import { sendFrame } from '../../../src/p2p/stream-io.js'
import { concatBytes } from '../../../src/util/index.js'

/** A stream that records what send() was given. */
function recorder(): { stream: Stream; sent: Uint8Array[] } {
  const sent: Uint8Array[] = []
  const stream = { writableNeedsDrain: false, send: (b: Uint8Array) => (sent.push(b), true) } as unknown as Stream
  return { stream, sent }
}

t.test('sendFrame joins the prefix and small parts into one send, and sends large parts as they are', async (t) => {
  const small = recorder()
  t.equal(sendFrame(small.stream, [Uint8Array.of(0, 0, 0, 7), Uint8Array.of(1), new Uint8Array(100).fill(2)]), true)
  t.equal(small.sent.length, 1, 'a small frame is one send (one muxer frame, one encrypted message)')
  t.same(new FrameDecoder(1000).push(concatBytes(...small.sent)), [concatBytes(Uint8Array.of(0, 0, 0, 7), Uint8Array.of(1), new Uint8Array(100).fill(2))])

  const big = recorder()
  const body = new Uint8Array(1 << 20).fill(9)
  sendFrame(big.stream, [Uint8Array.of(0, 0, 0, 7), Uint8Array.of(0), body])
  t.equal(big.sent.length, 2, 'prefix and id and status in one send, then the body')
  t.equal(big.sent[0]?.length, 4 + 4 + 1)
  t.equal(big.sent[1], body, 'the body is handed over without a copy')
  t.same(new FrameDecoder(2 << 20).push(concatBytes(...big.sent)), [concatBytes(Uint8Array.of(0, 0, 0, 7), Uint8Array.of(0), body)])

  const mixed = recorder()
  const tail = Uint8Array.of(5, 5)
  sendFrame(mixed.stream, [body, tail])
  t.equal(mixed.sent.length, 3, 'a small part after a large one goes in its own send, order kept')
  t.same(new FrameDecoder(2 << 20).push(concatBytes(...mixed.sent)), [concatBytes(body, tail)])
})
