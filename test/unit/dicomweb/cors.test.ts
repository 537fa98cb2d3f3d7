import t from 'tap'
import { corsHeaders } from '../../../src/dicomweb/cors.js'

const VIEWER = 'https://viewer.example.org'

t.test('no origin allowed (the default): no CORS header and no CORP, whatever the request', async (t) => {
  t.same(corsHeaders(VIEWER, []), {})
  t.same(corsHeaders(undefined, []), {})
})

t.test("an allowed origin: named (not *), with the headers a viewer's preflight asks for and CORP for a require-corp page", async (t) => {
  const h = corsHeaders(VIEWER, ['https://other.example.org', VIEWER])
  t.equal(h['access-control-allow-origin'], VIEWER)
  t.same(
    h['access-control-allow-headers']
      ?.split(',')
      .map((x) => x.trim().toLowerCase())
      .sort(),
    ['accept', 'authorization', 'content-type'],
    'Authorization (the token), Accept, Content-Type',
  )
  t.match(h['access-control-allow-methods'], /\bGET\b/)
  t.match(h['access-control-allow-methods'], /\bPOST\b/)
  t.equal(h.vary, 'Origin')
  t.equal(h['cross-origin-resource-policy'], 'cross-origin')
})

t.test('`*` allows any origin, still answered by name', async (t) => {
  t.equal(corsHeaders('http://127.0.0.1:3000', ['*'])['access-control-allow-origin'], 'http://127.0.0.1:3000')
})

t.test('an origin not listed, or none: no Access-Control-* header, so the browser keeps the answer from the page; Vary and CORP stay', async (t) => {
  for (const origin of ['https://evil.example.org', 'https://viewer.example.org.evil.example', 'null', undefined]) {
    const h = corsHeaders(origin, [VIEWER])
    t.same(
      Object.keys(h).filter((k) => k.startsWith('access-control-')),
      [],
      String(origin),
    )
    t.equal(h.vary, 'Origin', 'the answer depends on the origin')
    t.equal(h['cross-origin-resource-policy'], 'cross-origin')
  }
})
