import t from 'tap'
import fc from 'fast-check'
import { SSE_KEEPALIVE, SseParser, encodeSseEvent, type SseMessage } from '../../../src/api/index.js'
import { splitAt as split } from '../split.js' // anywhere, inside UTF-8 sequences and CRLF too

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

function parseAll(chunks: Uint8Array[], max = 1 << 20): SseMessage[] {
  const p = new SseParser(max)
  return chunks.flatMap((c) => p.push(c))
}

t.test('encode then parse gives the events back, however the bytes are split', async (t) => {
  const eventArb = fc.record({
    event: fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/),
    data: fc.string({ unit: fc.constantFrom('a', 'é', '€', '𝄞', ' ', ':', '\n', '\r', '\r\n', '{', '"'), maxLength: 40 }),
  })
  fc.assert(
    fc.property(fc.array(eventArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (events, cuts, keepalives) => {
      const text = events.map((e) => encodeSseEvent(e.event, e.data) + (keepalives ? SSE_KEEPALIVE : '')).join('')
      const got = parseAll(split(enc(text), cuts))
      // Line breaks inside data come back as LF (9.2.6).
      const want = events.map((e) => ({ event: e.event, data: e.data.replace(/\r\n|\r/g, '\n') }))
      t.same(got, want)
      return true
    }),
    { numRuns: 300 },
  )
})

t.test('line endings, comments and fields', async (t) => {
  t.same(parseAll([enc('event: block\r\ndata: {"a":1}\r\n\r\n')]), [{ event: 'block', data: '{"a":1}' }], 'CRLF')
  t.same(parseAll([enc('event: tx\rdata: x\r\r')]), [{ event: 'tx', data: 'x' }], 'CR only')
  t.same(parseAll([enc('event: tx\r'), enc('\ndata: x\r'), enc('\n\r'), enc('\n')]), [{ event: 'tx', data: 'x' }], 'CRLF split across chunks')
  t.same(parseAll([enc(': comment\n\ndata:no-space\ndata\n\n')]), [{ event: 'message', data: 'no-space\n' }], 'comment, no space, bare field')
  t.same(parseAll([enc('event: lonely\n\ndata: d\n\n')]), [{ event: 'message', data: 'd' }], 'an event without data is not dispatched and resets the type')
  t.same(parseAll([enc('id: 7\nretry: 10\nfoo: bar\ndata: d\n\n')]), [{ event: 'message', data: 'd' }], 'other fields ignored')
  t.same(parseAll([enc('\uFEFFdata: bom\n\n')]), [{ event: 'message', data: 'bom' }], 'leading BOM skipped')
  t.same(parseAll([enc('data: incomplete\n')]), [], 'nothing before the blank line')
})

t.test('one event is bounded', async (t) => {
  const p = new SseParser(100)
  t.throws(() => p.push(enc('data: ' + 'x'.repeat(200))), { code: 'SSE_EVENT_TOO_LARGE' }, 'unterminated line')
  const q = new SseParser(100)
  t.throws(
    () => {
      for (let i = 0; i < 20; i++) q.push(enc('data: 0123456789\n'))
    },
    { code: 'SSE_EVENT_TOO_LARGE' },
    'many data lines',
  )
  t.same(parseAll([enc('data: 0123456789\n\n'.repeat(50))], 100).length, 50, 'the bound is per event, not per stream')
})

t.test('encode refuses event types that would break the framing', async (t) => {
  t.throws(() => encodeSseEvent('a\nb', 'x'), TypeError)
  t.throws(() => encodeSseEvent('', 'x'), TypeError)
  t.equal(encodeSseEvent('tx', '{"a":1}'), 'event: tx\ndata: {"a":1}\n\n')
})
