import t from 'tap'
import { PeerScores, BAN_THRESHOLD, SCORE_AFTER_BAN, RECOVERY_PER_SECOND, DialBackoff, BoundedQueue, MAX_DIAL_BACKOFF_MS } from '../../../src/p2p/index.js'
import { Limiter } from '../../../src/p2p/limiter.js'

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t0 = 1_000_000
  return {
    now: () => t0,
    advance: (ms) => {
      t0 += ms
    },
  }
}

t.test('scores: start at 0, ban at -100 for banMs, come back at -50', async (t) => {
  const c = clock()
  const s = new PeerScores({ now: c.now, banMs: 60_000 })
  t.equal(BAN_THRESHOLD, -100)
  t.equal(SCORE_AFTER_BAN, -50)
  t.equal(s.score('p'), 0)
  t.same(s.penalize('p', 60), { score: -60, banned: false })
  t.notOk(s.isBanned('p'))
  t.same(s.penalize('p', 40), { score: -50, banned: true }, 'exactly -100 bans')
  t.ok(s.isBanned('p'))
  t.equal(s.banRemainingMs('p'), 60_000)
  t.same(s.penalize('p', 500), { score: -50, banned: false }, 'penalties while banned change nothing')
  c.advance(59_999)
  t.ok(s.isBanned('p'))
  c.advance(1)
  t.notOk(s.isBanned('p'), 'ban over after 60 s')
  t.equal(s.score('p'), -50)
  t.same(s.penalize('p', 49), { score: -99, banned: false })
  t.same(s.penalize('p', 1), { score: -50, banned: true }, 'second ban from -50')
  t.equal(s.score('other'), 0, 'peers are independent')
  t.throws(() => s.penalize('p', -5), RangeError)
  t.throws(() => s.penalize('p', Number.NaN), RangeError)
})

t.test('scores: bounded number of entries', async (t) => {
  const c = clock()
  const s = new PeerScores({ now: c.now, maxEntries: 3 })
  s.penalize('banned', 100)
  s.penalize('a', 1)
  s.penalize('b', 1)
  s.penalize('c', 1)
  t.ok(s.isBanned('banned'), 'a banned entry is kept while others can go')
  t.equal(s.score('a'), 0, 'oldest unbanned entry evicted')
  t.equal(s.score('c'), -1)
})

t.test('dial backoff doubles to 30 s and resets on success', async (t) => {
  const c = clock()
  const b = new DialBackoff({ baseMs: 1000, now: c.now })
  t.ok(b.due('p'))
  const delays = Array.from({ length: 7 }, () => b.failure('p'))
  t.same(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000])
  t.equal(MAX_DIAL_BACKOFF_MS, 30_000)
  t.notOk(b.due('p'))
  c.advance(29_999)
  t.notOk(b.due('p'))
  c.advance(1)
  t.ok(b.due('p'))
  b.success('p')
  t.equal(b.failure('p'), 1000, 'reset after success')
  b.retain(new Set(['q']))
  t.ok(b.due('p'), 'forgotten when no longer wanted')
})

t.test('bounded queue drops the oldest when full', async (t) => {
  const q = new BoundedQueue({ maxMessages: 3, maxBytes: 10 })
  t.equal(q.push(Uint8Array.of(1)), 0)
  t.equal(q.push(Uint8Array.of(2)), 0)
  t.equal(q.push(Uint8Array.of(3)), 0)
  t.equal(q.push(Uint8Array.of(4)), 1, 'count bound')
  t.same([...(q.peek() as Uint8Array)], [2])
  t.equal(q.push(new Uint8Array(8)), 1, 'room for one more message and 10 bytes')
  t.equal(q.length, 3)
  t.equal(q.bytes, 10)
  t.equal(q.push(new Uint8Array(9)), 3, 'byte bound drops as many as needed')
  t.equal(q.length, 1)
  t.equal(q.bytes, 9)
  t.equal(q.push(new Uint8Array(11)), -1, 'a message above the byte bound is refused')
  t.equal(q.length, 1)
  t.equal(q.push(Uint8Array.of(5)), 0)
  t.equal(q.shift()?.length, 9)
  t.same([...(q.shift() as Uint8Array)], [5])
  t.equal(q.shift(), undefined)
  t.equal(q.bytes, 0)
  const big = new BoundedQueue({ maxMessages: 1000, maxBytes: 1 << 20 })
  for (let i = 0; i < 5000; i++) big.push(Uint8Array.of(i & 0xff))
  t.equal(big.length, 1000)
  t.equal(big.peek()?.[0], 4000 & 0xff, 'keeps the newest')
  t.equal(big.clear(), 1000)
  t.equal(big.length, 0)
})

t.test('limiter: at most max holders, FIFO waiters, abortable, bounded', async (t) => {
  const l = new Limiter(2, 1)
  const never = new AbortController().signal
  await l.acquire(never)
  await l.acquire(never)
  let third = false
  const p3 = l.acquire(never).then(() => {
    third = true
  })
  await t.rejects(l.acquire(never), { name: 'P2PError', code: 'P2P_REFUSED' }, 'waiting line is bounded')
  await Promise.resolve()
  t.notOk(third)
  l.release()
  await p3
  t.ok(third, 'a release admits the first waiter')
  const ac = new AbortController()
  const p4 = l.acquire(ac.signal)
  ac.abort()
  await t.rejects(p4, { name: 'P2PError', code: 'P2P_ABORTED' })
  await t.rejects(l.acquire(AbortSignal.abort()), { code: 'P2P_ABORTED' })
  l.release()
  l.release()
  t.ok(l.idle)
})

t.test('scores recover toward 0 over time, but not while banned', async (t) => {
  let now = 1_000_000
  const s = new PeerScores({ now: () => now, banMs: 60_000 })
  s.penalize('p', 40)
  t.equal(s.score('p'), -40)
  now += 10_000
  t.equal(s.score('p'), -40 + 10 * RECOVERY_PER_SECOND, 'recovers with time')
  now += 1_000_000
  t.equal(s.score('p'), 0, 'never above 0')
  // Penalties spread out far enough never reach a ban.
  for (let i = 0; i < 20; i++) {
    t.notOk(s.penalize('q', 30).banned)
    now += 60_000
  }
  const r = s.penalize('r', 100)
  t.ok(r.banned)
  now += 30_000
  t.equal(s.score('r'), SCORE_AFTER_BAN, 'no recovery during the ban')
  now += 40_000
  t.equal(s.score('r'), SCORE_AFTER_BAN + 10 * RECOVERY_PER_SECOND, 'recovery starts when the ban ends')
})
