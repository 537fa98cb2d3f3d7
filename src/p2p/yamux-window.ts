import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/**
 * Yamux window updates once half a stream's receive window is used, not
 * after every data frame.
 *
 * @chainsafe/libp2p-yamux 8 answers each data frame it receives with a
 * window-update frame: some 16 extra frames per 1 MiB chunk, each sealed by
 * Noise and written to the socket on its own (3.9% of a fetching daemon's
 * main thread in a profile of `study fetch`). The Yamux specification leaves
 * the timing to the receiver, and go-yamux and rust-yamux send an update only
 * when the window has shrunk by half: the sender still has the other half
 * to send meanwhile, so nothing stalls. A stream that owes its peer a flag
 * (SYN, ACK), or that is paused, takes the library's path unchanged, and so
 * does the window's growth (it is judged whenever an update goes out, as in
 * go-yamux).
 *
 * Applied once, to every Yamux stream of the process, by importing this
 * module (src/p2p/node.ts does).
 */
interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

const PATCHED = Symbol.for('radchain.yamux.halfWindowUpdates')

export function halfWindowUpdates(): void {
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: () => void; [PATCHED]?: true }
  if (proto[PATCHED] === true) return
  const send = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: YamuxStream) {
    const s = this as unknown as WindowFields
    if (s.state === StreamState.Established && s.recvWindowCapacity > s.recvWindow / 2) return
    send.call(this)
  }
  proto[PATCHED] = true
}

/** Whether {@link halfWindowUpdates} is in force in this process. */
export function halfWindowUpdatesApplied(): boolean {
  return (YamuxStream.prototype as unknown as { [PATCHED]?: true })[PATCHED] === true
}

halfWindowUpdates()
