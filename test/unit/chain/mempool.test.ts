import t from 'tap'
import fc from 'fast-check'
import { toHex } from '../../../src/util/index.js'
import { DEFAULT_MEMPOOL_LIMITS, Mempool, type Tx } from '../../../src/chain/index.js'
import { codeOf, note, testSigner } from './fixtures.js'

const A = testSigner('mp-a')
const B = testSigner('mp-b')
const C = testSigner('mp-c')
const LIMITS = { maxTxs: 100, maxBytes: 1 << 20, maxPerSender: 10, maxPerPeer: 100, maxBytesPerPeer: 1 << 20 }
const none = (): number => 0
const ids = (txs: Iterable<Tx>): string[] => [...txs].map((x) => toHex(x.id))

t.test('add: duplicate, stale nonce, gap, clash', async (t) => {
  const m = new Mempool(LIMITS)
  const a0 = note(A, 0)
  m.add(a0, 0)
  t.equal(m.size, 1)
  t.equal(m.bytes, a0.bytes.length)
  t.equal(m.get(a0.id)?.nonce, 0, 'get by bytes')
  t.equal(m.get(toHex(a0.id))?.nonce, 0, 'get by hex')
  t.throws(() => m.add(a0, 0), { name: 'TxError', code: 'TX_DUPLICATE' })
  t.throws(() => m.add(note(A, 0, 'other text'), 0), { name: 'TxError', code: 'TX_BAD_NONCE' }, 'second pending tx with the same nonce')
  t.throws(() => m.add(note(A, 2), 0), { name: 'TxError', code: 'TX_NONCE_GAP' }, 'gap after the pending run')
  t.throws(() => m.add(note(B, 3), 5), { name: 'TxError', code: 'TX_BAD_NONCE' }, 'below the state nonce')
  t.throws(() => m.add(note(B, 6), 5), { name: 'TxError', code: 'TX_NONCE_GAP' }, 'ahead of the state nonce')
  m.add(note(B, 5), 5)
  m.add(note(A, 1), 0)
  m.add(note(A, 2), 0)
  t.equal(m.size, 4)
  t.throws(() => m.add(note(A, 4), 0), { name: 'TxError', code: 'TX_NONCE_GAP' })
  t.equal(m.size, 4, 'refused transactions are not held')
})

t.test('bounds: per sender, by count, by bytes', async (t) => {
  const m = new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxPerSender: 3, maxPerPeer: 100, maxBytesPerPeer: 1 << 20 })
  for (let i = 0; i < 3; i++) m.add(note(A, i), 0)
  t.throws(() => m.add(note(A, 3), 0), { name: 'TxError', code: 'TX_SENDER_LIMIT' })
  t.doesNotThrow(() => m.add(note(B, 0), 0), 'other senders unaffected')

  const byCount = new Mempool({ maxTxs: 3, maxBytes: 1 << 20, maxPerSender: 10, maxPerPeer: 100, maxBytesPerPeer: 1 << 20 })
  byCount.add(note(A, 0), 0)
  byCount.add(note(B, 0), 0)
  byCount.add(note(A, 1), 0)
  t.throws(() => byCount.add(note(C, 0), 0), { name: 'TxError', code: 'TX_MEMPOOL_FULL' }, 'by count')
  t.equal(byCount.size, 3)

  const tx = note(A, 0, 'x'.repeat(100))
  const tx2 = note(A, 1, 'y'.repeat(100))
  const small = note(B, 0, '')
  const cap = tx.bytes.length + tx2.bytes.length + small.bytes.length
  const byBytes = new Mempool({ maxTxs: 100, maxBytes: cap, maxPerSender: 10, maxPerPeer: 100, maxBytesPerPeer: 1 << 20 })
  byBytes.add(tx, 0)
  byBytes.add(tx2, 0)
  t.throws(() => byBytes.add(note(B, 0, 'z'.repeat(100)), 0), { name: 'TxError', code: 'TX_MEMPOOL_FULL' }, 'by bytes')
  t.doesNotThrow(() => byBytes.add(small, 0), 'a smaller one fits exactly')
  t.equal(byBytes.bytes, cap)
  t.throws(() => byBytes.add(note(C, 0, ''), 0), { name: 'TxError', code: 'TX_MEMPOOL_FULL' }, 'now full to the byte')
  t.ok(DEFAULT_MEMPOOL_LIMITS.maxTxs > 0 && DEFAULT_MEMPOOL_LIMITS.maxBytes > 0 && DEFAULT_MEMPOOL_LIMITS.maxPerSender > 0)
})

t.test("a peer's share: gossip from one peer, signed by any number of keys, fills its share and leaves the rest to others", async (t) => {
  const big = (from: typeof A, nonce: number): Tx => note(from, nonce, 'x'.repeat(1000))
  const one = big(A, 0).bytes.length
  const m = new Mempool({ maxTxs: 100, maxBytes: 10 * one, maxPerSender: 100, maxPerPeer: 3, maxBytesPerPeer: 3 * one })
  // Many senders, one peer: the share stops it by bytes...
  const sybils = Array.from({ length: 5 }, (_, i) => testSigner(`mp-sybil-${i}`))
  for (const s of sybils.slice(0, 3)) m.add(big(s, 0), 0, 'rogue')
  t.throws(
    () => m.add(big(sybils[3] as typeof A, 0), 0, 'rogue'),
    { name: 'TxError', code: 'TX_MEMPOOL_FULL', message: /share/ },
    'the flooding peer stops at its share',
  )
  t.same(m.peerShare('rogue'), { txs: 3, bytes: 3 * one })
  // ...other peers and local submissions keep room.
  m.add(big(B, 0), 0, 'honest')
  m.add(big(B, 1), 0, 'honest')
  m.add(big(C, 0), 0)
  m.add(big(C, 1), 0)
  t.equal(m.size, 7)
  t.same(m.peerShare('nobody'), { txs: 0, bytes: 0 })
  // ...and by count, for small transactions.
  const small = new Mempool({ maxTxs: 100, maxBytes: 1 << 20, maxPerSender: 100, maxPerPeer: 2, maxBytesPerPeer: 1 << 20 })
  small.add(note(sybils[0] as typeof A, 0), 0, 'rogue')
  small.add(note(sybils[1] as typeof A, 0), 0, 'rogue')
  t.throws(() => small.add(note(sybils[2] as typeof A, 0), 0, 'rogue'), { code: 'TX_MEMPOOL_FULL' }, 'by count')
  // What leaves the mempool, final or dropped, frees the share.
  m.prune([big(sybils[0] as typeof A, 0)], () => 0)
  t.same(m.peerShare('rogue'), { txs: 2, bytes: 2 * one }, 'a final transaction frees its place')
  m.drop(big(sybils[1] as typeof A, 0))
  m.drop(big(sybils[2] as typeof A, 0))
  t.same(m.peerShare('rogue'), { txs: 0, bytes: 0 }, 'dropped ones too')
  for (const s of sybils.slice(2, 5)) m.add(big(s, 0), 0, 'rogue')
  t.same(m.peerShare('rogue'), { txs: 3, bytes: 3 * one }, "the share is the peer's again")
})

t.test('candidates: each sender in nonce order from its state nonce, senders interleaved', async (t) => {
  const m = new Mempool(LIMITS)
  // Added in a scrambled sender order.
  m.add(note(A, 0), 0)
  m.add(note(B, 4), 4)
  m.add(note(A, 1), 0)
  m.add(note(C, 0), 0)
  m.add(note(A, 2), 0)
  m.add(note(B, 5), 4)
  m.add(note(A, 3), 0)
  const order = [...m.candidates((s) => (toHex(s) === toHex(B.publicKey) ? 4 : 0))]
  t.equal(order.length, 7, 'every pending transaction once')
  const who = (x: Tx): string => (toHex(x.sender) === toHex(A.publicKey) ? 'A' : toHex(x.sender) === toHex(B.publicKey) ? 'B' : 'C')
  for (const s of ['A', 'B', 'C']) {
    const ns = order.filter((x) => who(x) === s).map((x) => x.nonce)
    t.same(
      ns,
      [...ns].sort((a, b) => a - b),
      `${s} in nonce order`,
    )
  }
  t.same(new Set(order.slice(0, 3).map(who)), new Set(['A', 'B', 'C']), 'first round takes one from each sender')
  t.same(order.slice(3, 5).map(who).sort(), ['A', 'B'], 'second round: A and B (C ran out)')
  t.same(order.slice(5).map(who), ['A', 'A'], 'then the rest of A')

  const fromState = [...m.candidates((s) => (toHex(s) === toHex(A.publicKey) ? 2 : toHex(s) === toHex(B.publicKey) ? 4 : 0))]
  t.same(
    fromState.filter((x) => who(x) === 'A').map((x) => x.nonce),
    [2, 3],
    'starts at the state nonce, skipping stale ones',
  )
  t.same(
    [...m.candidates((s) => (toHex(s) === toHex(C.publicKey) ? 5 : 0))].filter((x) => who(x) === 'C'),
    [],
    'a sender whose run is all stale yields nothing',
  )
})

t.test('candidates property: per-sender runs are consecutive from the state nonce; no sender waits more than one round', async (t) => {
  const signers = [A, B, C, testSigner('mp-d')]
  fc.assert(
    fc.property(
      fc.array(fc.nat({ max: 6 }), { minLength: signers.length, maxLength: signers.length }),
      fc.array(fc.nat({ max: 3 }), { minLength: signers.length, maxLength: signers.length }),
      (counts, starts) => {
        const m = new Mempool(LIMITS)
        signers.forEach((s, i) => {
          for (let n = 0; n < (counts[i] as number); n++) m.add(note(s, (starts[i] as number) + n), starts[i] as number)
        })
        const order = [...m.candidates((k) => starts[signers.findIndex((s) => toHex(s.publicKey) === toHex(k))] as number)]
        if (order.length !== m.size) return false
        const idx = (x: Tx): number => signers.findIndex((s) => toHex(s.publicKey) === toHex(x.sender))
        for (let i = 0; i < signers.length; i++) {
          const ns = order.filter((x) => idx(x) === i).map((x) => x.nonce)
          if (ns.some((n, j) => n !== (starts[i] as number) + j)) return false
        }
        // Round-robin: in any prefix, the counts of two senders that still have transactions differ by at most one.
        const taken = signers.map(() => 0)
        for (const x of order) {
          taken[idx(x)] = (taken[idx(x)] as number) + 1
          for (let i = 0; i < signers.length; i++) {
            for (let j = 0; j < signers.length; j++) {
              const iLeft = (taken[i] as number) < (counts[i] as number)
              if (iLeft && (taken[j] as number) - (taken[i] as number) > 1) return false
            }
          }
        }
        return true
      },
    ),
    { numRuns: 100 },
  )
  t.pass('100 random pools')
})

t.test("drop removes the transaction and the same sender's later nonces only", async (t) => {
  const m = new Mempool(LIMITS)
  const a = [0, 1, 2, 3].map((n) => note(A, n))
  for (const x of a) m.add(x, 0)
  const b0 = note(B, 0)
  m.add(b0, 0)
  const dropped = m.drop(a[1] as Tx)
  t.same(ids(dropped).sort(), ids(a.slice(1)).sort(), 'nonces 1..3 dropped')
  t.equal(m.size, 2)
  t.equal(m.bytes, (a[0] as Tx).bytes.length + b0.bytes.length, 'byte count follows')
  t.ok(m.get(b0.id) !== undefined, 'other sender untouched')
  t.ok(m.get((a[0] as Tx).id) !== undefined, 'earlier nonce kept')
  t.equal(m.nextNonce(A.publicKey, 0), 1)
  t.doesNotThrow(() => m.add(note(A, 1, 'replacement'), 0), 'the freed nonce can be reused')
  t.same(m.drop(note(C, 0)), [], 'unknown sender: nothing')
})

t.test('prune removes committed and stale transactions', async (t) => {
  const m = new Mempool(LIMITS)
  const a = [0, 1, 2, 3].map((n) => note(A, n))
  for (const x of a) m.add(x, 0)
  const b = [0, 1].map((n) => note(B, n))
  for (const x of b) m.add(x, 0)
  // A block committed A's 0 and 1 and B's 0. A also has nonce 2 used by another (not pending) transaction.
  const stateNonce = (s: Uint8Array): number => (toHex(s) === toHex(A.publicKey) ? 3 : toHex(s) === toHex(B.publicKey) ? 1 : 0)
  m.prune([a[0] as Tx, a[1] as Tx, b[0] as Tx], stateNonce)
  t.same(ids(m.candidates(stateNonce)).sort(), ids([a[3] as Tx, b[1] as Tx]).sort(), 'A:3 and B:1 remain; A:2 is stale')
  t.equal(m.size, 2)
  t.equal(m.bytes, (a[3] as Tx).bytes.length + (b[1] as Tx).bytes.length)
  t.equal(m.nextNonce(A.publicKey, 3), 4)
  t.equal(m.nextNonce(B.publicKey, 1), 2)
  m.prune([a[3] as Tx, b[1] as Tx], () => 99)
  t.equal(m.size, 0)
  t.equal(m.bytes, 0)
  t.equal(
    codeOf(() => m.add(note(A, 99), 99)),
    undefined,
    'empty sender queues are forgotten',
  )
})

t.test('nextNonce follows the pending run', async (t) => {
  const m = new Mempool(LIMITS)
  t.equal(m.nextNonce(A.publicKey, 7), 7, 'nothing pending: the state nonce')
  m.add(note(A, 7), 7)
  m.add(note(A, 8), 7)
  t.equal(m.nextNonce(A.publicKey, 7), 9)
  t.equal(m.nextNonce(B.publicKey, 0), 0)
  t.equal(m.nextNonce(A.publicKey, 9), 9, 'state already past the run')
  t.same([...m.candidates(none)].length, 0, 'state nonce 0 with a run starting at 7: nothing to offer')
})
