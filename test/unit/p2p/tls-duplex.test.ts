// The adapter between a transport stream and Node's TLSSocket (src/p2p/tls.ts):
// a write waiting for the transport to drain must not stop reading (the
// library's adapter did, and traffic both ways then stalled).
import t from 'tap'
import type { MessageStream } from '@libp2p/interface'
import { transportDuplex } from '../../../src/p2p/tls.js'

/** A transport stream the test plays the far end of. */
class Transport extends EventTarget {
  full = false
  paused = false
  closed = false
  readonly sent: Uint8Array[] = []
  get stream(): MessageStream {
    return this as unknown as MessageStream
  }
  send(b: Uint8Array): boolean {
    this.sent.push(b)
    return !this.full
  }
  pause(): void {
    this.paused = true
  }
  resume(): void {
    this.paused = false
  }
  async close(): Promise<void> {
    this.closed = true
  }
  deliver(b: Uint8Array): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data: b }))
  }
  drain(): void {
    this.full = false
    this.dispatchEvent(new Event('drain'))
  }
  end(error?: Error): void {
    this.dispatchEvent(Object.assign(new Event('close'), { error }))
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

t.test('a write waiting for drain delays its own callback only: what arrives meanwhile is read', async (t) => {
  const tr = new Transport()
  const d = transportDuplex(tr.stream)
  const got: Buffer[] = []
  d.on('data', (b: Buffer) => got.push(b))
  await tick()
  tr.full = true
  let written: Error | null | undefined = undefined
  let called = false
  d.write(Buffer.from('out'), (err) => {
    called = true
    written = err
  })
  await tick()
  t.equal(tr.sent.length, 1, 'sent to the transport')
  t.notOk(called, 'the write waits for the transport to drain')
  tr.deliver(Uint8Array.of(1, 2, 3))
  await tick()
  t.same(Buffer.concat(got), Buffer.from([1, 2, 3]), 'data from the far end is read while the write waits')
  t.notOk(tr.paused, 'the transport is not paused for a write')
  tr.drain()
  await tick()
  t.ok(called, 'the write completes on drain')
  t.notOk(written, 'without an error')
})

t.test('reading is paused only while the reader does not read, and resumed when it does', async (t) => {
  const tr = new Transport()
  const d = transportDuplex(tr.stream)
  t.ok(tr.paused, 'nothing read from the transport before the TLS socket asks')
  d.read(0)
  await tick()
  t.notOk(tr.paused, 'asked: the transport flows')
  // No consumer: the Duplex's buffer fills (16 KiB high-water mark) and the transport is paused.
  for (let i = 0; i < 8; i++) tr.deliver(new Uint8Array(4096))
  t.ok(tr.paused, 'paused once the read buffer is full')
  const chunks: Buffer[] = []
  d.on('data', (b: Buffer) => chunks.push(b))
  await tick()
  t.equal(
    chunks.reduce((n, b) => n + b.length, 0),
    8 * 4096,
    'the buffered data reaches the reader',
  )
  t.notOk(tr.paused, 'and the transport flows again')
})

t.test('the transport closing while a write waits fails that write; closing the Duplex closes the transport', async (t) => {
  const tr = new Transport()
  const d = transportDuplex(tr.stream)
  d.on('error', () => undefined)
  tr.full = true
  const err = await new Promise<Error | null | undefined>((resolve) => {
    d.write(Buffer.from('x'), (e) => resolve(e))
    setImmediate(() => tr.end())
  })
  t.match(err?.message ?? '', /closed while a write waited/)
  const tr2 = new Transport()
  const d2 = transportDuplex(tr2.stream)
  d2.resume()
  await new Promise<void>((resolve) => d2.end(resolve))
  t.ok(tr2.closed, 'end() closes the transport')
})
