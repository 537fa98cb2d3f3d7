import t from 'tap'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { halfWindowUpdatesApplied } from '../../../src/p2p/yamux-window.js'

const MIB = 1024 * 1024

interface Frame {
  type: number
  flag: number
  streamID: number
  length: number
}

/** A Yamux stream's window state, on the library's own prototype, with its frames captured. */
function streamWith(state: StreamState, recvWindow: number, recvWindowCapacity: number): { s: YamuxStream; fields: Record<string, unknown>; frames: Frame[] } {
  const frames: Frame[] = []
  const fields: Record<string, unknown> = {
    state,
    recvWindow,
    recvWindowCapacity,
    maxStreamWindowSize: 16 * MIB,
    // Long ago, and no RTT known: the window does not grow in these cases.
    epochStart: Date.now() - 60_000,
    getRTT: () => -1,
    sendFrame: (f: Frame) => frames.push(f),
    streamId: 7,
  }
  const s = Object.assign(Object.create(YamuxStream.prototype) as YamuxStream, fields)
  return { s, fields: s as unknown as Record<string, unknown>, frames }
}

t.test('window updates go out once half the receive window is used, not after every data frame', async (t) => {
  t.ok(halfWindowUpdatesApplied(), 'in force once src/p2p/yamux-window.ts is imported')

  const early = streamWith(StreamState.Established, 2 * MIB, 2 * MIB - 64 * 1024)
  early.s.sendWindowUpdate()
  t.same(early.frames, [], 'one 64 KiB frame received: no update yet (the library would send one)')
  t.equal(early.fields.recvWindowCapacity, 2 * MIB - 64 * 1024, 'the window is left as it is')

  // 31 more frames of 64 KiB: still more than half open, then exactly half.
  const almost = streamWith(StreamState.Established, 2 * MIB, MIB + 1)
  almost.s.sendWindowUpdate()
  t.same(almost.frames, [], 'more than half open: nothing')
  const half = streamWith(StreamState.Established, 2 * MIB, MIB)
  half.s.sendWindowUpdate()
  t.equal(half.frames.length, 1, 'half used: one update')
  t.match(half.frames[0], { flag: 0, streamID: 7, length: MIB }, 'it reopens the window by what was used')
  t.equal(half.fields.recvWindowCapacity, 2 * MIB, 'the whole window is open again')

  const spent = streamWith(StreamState.Established, 2 * MIB, 0)
  spent.s.sendWindowUpdate()
  t.match(spent.frames, [{ length: 2 * MIB }], 'a spent window is reopened whole')
})

t.test('a stream that owes its peer a flag, or is paused, takes the library path unchanged', async (t) => {
  const opening = streamWith(StreamState.Init, 2 * MIB, 2 * MIB)
  opening.s.sendWindowUpdate()
  t.equal(opening.frames.length, 1, 'a new outbound stream sends its SYN at once, window full or not')
  t.not(opening.frames[0]?.flag, 0, 'with a flag set')
  t.equal(opening.fields.state, StreamState.SYNSent)

  const accepting = streamWith(StreamState.SYNReceived, 2 * MIB, 2 * MIB - 1)
  accepting.s.sendWindowUpdate()
  t.equal(accepting.frames.length, 1, 'an inbound stream sends its ACK at once')

  const paused = streamWith(StreamState.Paused, 2 * MIB, 0)
  paused.s.sendWindowUpdate()
  t.same(paused.frames, [], 'a paused stream asks for nothing')
})
