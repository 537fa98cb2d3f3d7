import t from 'tap'
import { randomBytes } from 'node:crypto'
// By file, not through the folder's index: that loads the whole DICOMweb server, which this unit does not need.
import { DicomwebError } from '../../../src/dicomweb/errors.js'
import {
  multipartBoundary,
  multipartRelated,
  newBoundary,
  parseMediaType,
  readMultipart,
  type MultipartLimits,
  type MultipartPart,
  type MultipartWritePart,
} from '../../../src/dicomweb/multipart.js'
import { concatBytes, equalBytes, statusOfCode, utf8 } from '../../../src/util/index.js'
import { splitAt } from '../split.js'

const LIMITS: MultipartLimits = { maxBodyBytes: 1 << 30, maxPartBytes: 1 << 30 }
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1')
const bin = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'))

async function* fromChunks(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c
}

async function bytesOf(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = []
  for await (const c of stream) out.push(c)
  return concatBytes(...out)
}

/** Every part read before the reader stopped, and the error it stopped with, if any. */
async function readAll(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  boundary: string,
  limits = LIMITS,
): Promise<{ parts: MultipartPart[]; err?: DicomwebError }> {
  const parts: MultipartPart[] = []
  try {
    for await (const p of readMultipart(body, boundary, limits)) parts.push(p)
  } catch (err) {
    if (!(err instanceof DicomwebError)) throw err
    return { parts, err }
  }
  return { parts }
}

/** Deterministic PRNG (mulberry32), so a failing case can be replayed from its seed. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n)
  }
}

t.test('parseMediaType: case, quoting, escapes, whitespace', async (t) => {
  const m = parseMediaType(' Multipart/Related ;TYPE="application/dicom";  boundary = abc ; x="q\\"uo\\\\te; y" ;')
  t.equal(m.type, 'multipart/related', 'type and subtype lower-cased')
  t.same(
    [...m.params],
    [
      ['type', 'application/dicom'],
      ['boundary', 'abc'],
      ['x', 'q"uo\\te; y'],
    ],
  )
  t.equal(parseMediaType('application/dicom').params.size, 0, 'no parameters')
  t.equal(parseMediaType('multipart/related; type=application/dicom').params.get('type'), 'application/dicom', 'a bare value with a slash, as clients send')
  for (const bad of [undefined, '', 'application', 'a/', '/b', 'a/b c', 'a/b; x', 'a/b; x=', 'a/b; x="open', 'a/b; =v', 'a/b; x=1; X=2']) {
    t.throws(() => parseMediaType(bad), { code: 'DICOMWEB_UNSUPPORTED_MEDIA_TYPE', name: 'DicomwebError' }, `${JSON.stringify(bad)} is refused`)
  }
})

t.test('multipartBoundary: multipart/related, boundary and type checked', async (t) => {
  const dicom = { expectType: 'application/dicom' }
  t.equal(multipartBoundary('multipart/related; type="application/dicom"; boundary=abc-123', dicom), 'abc-123', 'unquoted boundary')
  t.equal(multipartBoundary('multipart/related; type="application/dicom"; boundary="a b:c?"', dicom), 'a b:c?', 'quoted boundary with a space')
  t.equal(multipartBoundary('multipart/related;type="application/dicom";boundary=myboundary', dicom), 'myboundary', 'no whitespace (dcm4che)')
  t.equal(multipartBoundary('multipart/related; boundary=x', dicom), 'x', 'absent type parameter accepted')
  t.equal(multipartBoundary('multipart/related; type="Application/DICOM"; boundary=x', dicom), 'x', 'type compared case-insensitively')
  t.equal(multipartBoundary('multipart/related; type="application/dicom+xml"; boundary=x'), 'x', 'no expected type: any type')
  t.equal(multipartBoundary(`multipart/related; boundary=${'b'.repeat(70)}`), 'b'.repeat(70), "70 characters, RFC 2046's most")
  const orthanc = `${'0'.repeat(8)}-1111-2222-3333-${'4'.repeat(12)}-${'5'.repeat(8)}-6666-7777-8888-${'9'.repeat(12)}`
  t.equal(multipartBoundary(`multipart/related; type="application/dicom"; boundary=${orthanc}`), orthanc, "Orthanc's two UUIDs, 73 characters, are taken")
  t.equal(multipartBoundary(`multipart/related; boundary=${'b'.repeat(200)}`), 'b'.repeat(200), 'up to 200 characters')
  const cases: [string | undefined, RegExp][] = [
    [
      'multipart/related; type="application/dicom+xml"; boundary=x',
      /expected multipart\/related; type="application\/dicom", got type="application\/dicom\+xml"/,
    ],
    ['application/dicom', /expected multipart\/related; type="application\/dicom", got application\/dicom/],
    ['multipart/form-data; boundary=x', /got multipart\/form-data/],
    ['multipart/related; type="application/dicom"', /boundary parameter/],
    [`multipart/related; boundary=${'b'.repeat(201)}`, /1-200/],
    ['multipart/related; boundary=""', /1-200/],
    ['multipart/related; boundary="ab "', /1-200/],
    ['multipart/related; boundary="a@b"', /1-200/],
    [undefined, /no Content-Type/],
  ]
  for (const [ct, message] of cases) {
    t.throws(() => multipartBoundary(ct, dicom), { code: 'DICOMWEB_UNSUPPORTED_MEDIA_TYPE', name: 'DicomwebError', message }, `${ct} is refused saying why`)
  }
  t.equal(statusOfCode('DICOMWEB_UNSUPPORTED_MEDIA_TYPE'), 415, 'answered as 415')
})

t.test('writer: content type, boundary, layout, bodies uncopied', async (t) => {
  const b = newBoundary()
  t.match(b, /^[0-9a-f]{32}$/, 'a fresh boundary is 32 hex digits')
  t.not(newBoundary(), b, 'and fresh each time')
  const body = utf8('hello')
  const pieces = [utf8('ab'), new Uint8Array(0), utf8('cd')]
  const parts: MultipartWritePart[] = [
    { contentType: 'application/dicom', body },
    { contentType: 'application/octet-stream', body: pieces, headers: { 'Content-Location': '/x' } },
  ]
  const out = multipartRelated('application/dicom', parts, 'BND')
  t.equal(out.contentType, 'multipart/related; type="application/dicom"; boundary=BND')
  t.equal(out.boundary, 'BND')
  const chunks: Uint8Array[] = []
  for await (const c of out.stream) chunks.push(c)
  t.ok(
    chunks.some((c) => c === body),
    'a body is yielded as the same array',
  )
  t.ok(
    chunks.some((c) => c === pieces[2]),
    'so is each piece of a body given in pieces',
  )
  t.equal(
    text(concatBytes(...chunks)),
    '--BND\r\nContent-Type: application/dicom\r\nContent-Length: 5\r\n\r\nhello\r\n' +
      '--BND\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\nContent-Location: /x\r\n\r\nabcd\r\n--BND--\r\n',
    'RFC 2046 layout',
  )
  t.equal(text(await bytesOf(multipartRelated('application/dicom', [], 'BND').stream)), '--BND--\r\n', 'no parts: the close delimiter alone')
  t.equal(
    text(await bytesOf(multipartRelated('application/dicom', [utf8('x')], 'BND').stream)),
    '--BND\r\nContent-Type: application/dicom\r\nContent-Length: 1\r\n\r\nx\r\n--BND--\r\n',
    'a bare byte array is a part of the given type',
  )
  t.match(multipartRelated('application/dicom', [], 'a b').contentType, /boundary="a b"$/, 'a boundary that is not a token is quoted')
  t.match(multipartRelated('application/dicom', []).contentType, /^multipart\/related; type="application\/dicom"; boundary=[0-9a-f]{32}$/, 'default boundary')
  t.throws(() => multipartRelated('application/dicom', [], 'x'.repeat(71)), RangeError, 'a boundary above 70 characters')
  const badHeaders: Record<string, string>[] = [{ 'X-A': 'a\r\nX-B: b' }, { 'content-length': '3' }, { 'bad name': 'v' }]
  for (const headers of badHeaders) {
    await t.rejects(bytesOf(multipartRelated('a/b', [{ contentType: 'a/b', body, headers }]).stream), RangeError, `header ${JSON.stringify(headers)} refused`)
  }
})

/** Bodies made to trouble a reader: delimiter prefixes, CRLFs, the boundary minus its last byte, at the start and end. */
function nastyBodies(b: string): Uint8Array[] {
  const short = b.slice(0, -1)
  return [
    '',
    'x',
    '\r',
    '\r\n',
    '\r\n\r\n',
    `--${short}`,
    `\r\n--${short}`,
    `\r\n-`,
    `\r\n--`,
    `${b}`,
    `--${b}`,
    `\r--${b}\n`,
    `\n--${b}--`,
    `a\r\n--${short}\r\n--${short}z\r\n`,
    `\r\n\r\n--${short}`,
  ].map(bin)
}

async function roundTrip(parts: MultipartWritePart[], boundary: string, split: (whole: Uint8Array) => Uint8Array[]): Promise<string | undefined> {
  const whole = await bytesOf(multipartRelated('application/dicom', parts, boundary).stream)
  const { parts: got, err } = await readAll(fromChunks(split(whole)), boundary)
  if (err !== undefined) return `reader failed: ${err.code} ${err.message}`
  if (got.length !== parts.length) return `${got.length} parts read, ${parts.length} written`
  for (const [i, p] of parts.entries()) {
    const g = got[i] as MultipartPart
    const want = p.body instanceof Uint8Array ? p.body : concatBytes(...p.body)
    if (!equalBytes(g.body, want)) return `part ${i + 1}: body ${JSON.stringify(text(g.body))}, written ${JSON.stringify(text(want))}`
    if (g.contentType !== p.contentType) return `part ${i + 1}: content type ${g.contentType}`
    if (g.headers.get('content-length') !== String(want.length)) return `part ${i + 1}: content-length header ${g.headers.get('content-length')}`
    for (const [k, v] of Object.entries(p.headers ?? {})) if (g.headers.get(k.toLowerCase()) !== v) return `part ${i + 1}: header ${k}`
  }
  return undefined
}

t.test('round trip writer -> reader: 0, 1, many parts, troublesome bodies, every chunking', async (t) => {
  const boundary = 'simple-boundary'
  const bodies = nastyBodies(boundary)
  const sets: [string, MultipartWritePart[]][] = [
    ['no parts', []],
    ['one part', [{ contentType: 'application/dicom', body: utf8('DICM') }]],
    ['one empty part', [{ contentType: 'application/dicom', body: new Uint8Array(0) }]],
    ['many troublesome parts', bodies.map((body, i) => ({ contentType: 'application/dicom', body, headers: { 'Content-ID': `<p${i}>` } }))],
  ]
  const chunkings: [string, (b: Uint8Array) => Uint8Array[]][] = [
    ['one chunk', (b) => [b]],
    ['1-byte chunks', (b) => [...b].map((x) => Uint8Array.of(x))],
    [
      '2-byte chunks',
      (b) =>
        splitAt(
          b,
          Array.from({ length: b.length / 2 }, (_, i) => 2 * i),
        ),
    ],
    ['empty chunks between', (b) => splitAt(b, [0, 0, 3, 3, 7]).flatMap((c) => [c, new Uint8Array(0)])],
  ]
  for (const [name, parts] of sets) {
    for (const [how, split] of chunkings) t.equal(await roundTrip(parts, boundary, split), undefined, `${name}, ${how}: parts read back as written`)
  }
})

t.test('property: random parts, boundaries and chunkings (seeded; replay with MULTIPART_SEED)', async (t) => {
  const base = Number(process.env['MULTIPART_SEED'] ?? randomBytes(4).readUInt32LE())
  const boundaries = ['b', 'ab', 'simple-boundary', newBoundary(), "a'()+_,-./:=? z", 'x'.repeat(70)]
  const cases = 200
  for (let i = 0; i < cases; i++) {
    const seed = (base + i) >>> 0
    const rnd = prng(seed)
    const boundary = boundaries[rnd(boundaries.length)] as string
    const frags = [...nastyBodies(boundary), randomBytes(rnd(200)), bin(boundary.slice(0, rnd(boundary.length + 1)))]
    const delim = Buffer.from(`\r\n--${boundary}`, 'latin1')
    const parts: MultipartWritePart[] = []
    for (let n = rnd(6); parts.length < n;) {
      const body = concatBytes(...Array.from({ length: rnd(5) }, () => frags[rnd(frags.length)] as Uint8Array))
      if (Buffer.from(body).includes(delim) || Buffer.from(concatBytes(body, bin('\r\n'))).includes(delim)) continue // RFC 2046: a body never holds its delimiter
      parts.push({
        contentType: rnd(2) === 0 ? 'application/dicom' : 'application/octet-stream',
        body: rnd(3) === 0 ? splitAt(body, [rnd(body.length + 1)]) : body,
      })
    }
    const split = (b: Uint8Array): Uint8Array[] => {
      const mode = rnd(4)
      if (mode === 0) return [b]
      if (mode === 1) return splitAt(b, [...b.keys()])
      return splitAt(
        b,
        Array.from({ length: rnd(b.length + 1) }, () => rnd(b.length + 1)),
      )
    }
    const problem = await roundTrip(parts, boundary, split)
    if (problem !== undefined) {
      t.fail(`seed ${seed} (MULTIPART_SEED=${seed}): ${problem}`)
      return
    }
  }
  t.pass(`${cases} random cases from seed ${base} read back as written`)
})

t.test('preamble, epilogue, transport padding, bare LF, folding, Content-Length', async (t) => {
  const body = bin(
    'This is the preamble, to be ignored.\r\n--b \t\r\nContent-Type: application/dicom\r\nContent-Length: 3\r\n\r\nabc' +
      '\r\n--b\r\ncontent-type: text/plain\r\nX-Folded: one\r\n  two\r\n\r\nno length' +
      '\r\n--b\nContent-Type: application/dicom\nX-A: 1\n\nbare LF headers' +
      '\r\n--b-- \r\nThis is the epilogue.\r\n--b\r\nnot a part\r\n',
  )
  const { parts, err } = await readAll([body], 'b')
  t.equal(err, undefined, 'read to the end')
  t.same(
    parts.map((p) => [p.contentType, text(p.body)]),
    [
      ['application/dicom', 'abc'],
      ['text/plain', 'no length'],
      ['application/dicom', 'bare LF headers'],
    ],
    'three parts; preamble and epilogue dropped',
  )
  t.equal(parts[1]?.headers.get('x-folded'), 'one two', 'a folded header line continues its field')
  t.equal(parts[2]?.headers.get('x-a'), '1', 'bare LF header lines')
  t.equal(parts[1]?.headers.has('content-length'), false, 'a part without Content-Length is normal')

  const view = new Uint8Array(Buffer.from('--b\r\n\r\n0123456789\r\n--b--'))
  const [only] = (await readAll([view], 'b')).parts
  t.equal(only?.body.buffer, view.buffer, 'a part inside one chunk is a view of it, not a copy')
  t.equal(only?.contentType, undefined, 'a part without headers')

  const wrong = await readAll([bin('--b\r\nContent-Length: 2\r\n\r\nok\r\n--b\r\nContent-Length: 4\r\n\r\nabc\r\n--b--')], 'b')
  t.equal(wrong.parts.length, 1, 'the part before the wrong one was read')
  t.match(
    wrong.err,
    { code: 'DICOMWEB_MULTIPART_MALFORMED', name: 'DicomwebError', message: /part 2: Content-Length 4 but 3 bytes/ },
    'a wrong Content-Length is refused',
  )
  t.equal(statusOfCode('DICOMWEB_MULTIPART_MALFORMED'), 400, 'answered as 400')
  t.match(
    (await readAll([bin('--b\r\nContent-Length: 1e3\r\n\r\nabc\r\n--b--')], 'b')).err,
    { code: 'DICOMWEB_MULTIPART_MALFORMED', message: /not a number/ },
    'a Content-Length that is not a number',
  )
  t.same((await readAll([bin('\r\n--b--\r\n')], 'b')).parts, [], 'a close delimiter alone: no parts')
})

t.test('malformed bodies: MULTIPART_MALFORMED saying where, parts before the damage yielded', async (t) => {
  const good = '--b\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n'
  const cases: [string, string, number, RegExp][] = [
    ['no delimiter at all', 'just some bytes\r\n-b\r\n', 0, /no delimiter "--b" in the 21-byte body/],
    ['an empty body', '', 0, /no delimiter/],
    ['truncated in a part', `${good}--b\r\n\r\nsecond, cut`, 1, /ended at byte \d+ inside part 2 \(data from byte 54\) before the close delimiter "--b--"/],
    ['truncated after a delimiter', `${good}--b`, 1, /after a delimiter, before the close delimiter/],
    ['truncated in headers', `${good}--b\r\nContent-Type: appl`, 1, /inside the header block of part 2/],
    [
      'a header line without a colon',
      `${good}--b\r\nContent-Type application/dicom\r\n\r\nx\r\n--b--`,
      1,
      /part 2, byte 52: header line without a field name and colon/,
    ],
    ['a header line with an empty name', `${good}--b\r\n: x\r\n\r\nx\r\n--b--`, 1, /part 2.*without a field name/],
    ['a continuation line first', `${good}--b\r\n x\r\n\r\nx\r\n--b--`, 1, /part 2.*continuation/],
    ['a header block too big', `${good}--b\r\nX-Big: ${'y'.repeat(17000)}\r\n\r\nx\r\n--b--`, 1, /part 2: header block above 16384 bytes/],
    ['bytes after the boundary', `${good}--bX\r\n\r\nx\r\n--b--`, 1, /part 2: unexpected byte 0x58 at byte 50 after the boundary/],
    ['a lone dash after the boundary', `${good}--b-x`, 1, /neither a delimiter nor the close delimiter/],
  ]
  for (const [name, body, before, message] of cases) {
    for (const [how, chunks] of [
      ['one chunk', [bin(body)]],
      ['1-byte chunks', [...bin(body)].map((x) => Uint8Array.of(x))],
    ] as const) {
      const { parts, err } = await readAll(chunks, 'b')
      t.match(err, { code: 'DICOMWEB_MULTIPART_MALFORMED', name: 'DicomwebError', message }, `${name} (${how}): refused saying where`)
      t.equal(parts.length, before, `${name} (${how}): ${before} part(s) before the damage yielded`)
      if (before > 0) t.equal(text(parts[0]?.body ?? new Uint8Array()), 'first', `${name} (${how}): intact first part`)
    }
  }
})

t.test('limits: body, part, parts; crossing a bound stops reading', async (t) => {
  const part = (s: string): string => `--b\r\n\r\n${s}\r\n`
  let pulls = 0
  async function* counted(): AsyncGenerator<Uint8Array> {
    pulls++
    yield bin(`${part('one')}--b\r\n\r\n`)
    pulls++
    yield new Uint8Array(100)
    pulls++
    throw new Error('pulled past the bound')
  }
  const r = await readAll(counted(), 'b', { maxBodyBytes: 40, maxPartBytes: 1000 })
  t.match(r.err, { code: 'DICOMWEB_BODY_TOO_LARGE', name: 'DicomwebError', message: /body above 40 bytes/ }, 'body bound crossed')
  t.equal(pulls, 2, 'nothing read past the chunk that crossed it')
  t.equal(r.parts.length, 1, 'the part before it was yielded')
  t.equal(statusOfCode('DICOMWEB_BODY_TOO_LARGE'), 413, 'answered as 413')

  let partPulls = 0
  async function* endless(): AsyncGenerator<Uint8Array> {
    yield bin(part('ok'))
    yield bin('--b\r\n\r\n')
    for (;;) {
      partPulls++
      if (partPulls > 20) throw new Error('pulled past the bound')
      yield new Uint8Array(64)
    }
  }
  const p = await readAll(endless(), 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 500 })
  t.match(p.err, { code: 'DICOMWEB_BODY_TOO_LARGE', message: /part 2 is above 500 bytes/ }, 'part bound crossed mid-stream')
  t.ok(partPulls <= 9, `stopped within a chunk of the bound (${partPulls} chunks of 64 bytes)`)
  t.equal(p.parts.length, 1, 'the first part was yielded')

  const exact = await readAll([bin(`${part('x'.repeat(500))}--b--`)], 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 500 })
  t.equal(exact.err, undefined, 'a part of exactly maxPartBytes is taken')
  const over = await readAll([bin(`${part('x'.repeat(501))}--b--`)], 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 500 })
  t.match(over.err, { code: 'DICOMWEB_BODY_TOO_LARGE' }, 'one byte more is not, even inside one chunk')
  const declared = await readAll([bin('--b\r\nContent-Length: 9999\r\n\r\n')], 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 500 })
  t.match(
    declared.err,
    { code: 'DICOMWEB_BODY_TOO_LARGE', message: /declares 9999 bytes/ },
    'a declared Content-Length above the bound is refused before its body',
  )

  const three = bin(`${part('1')}${part('2')}${part('3')}--b--`)
  const m = await readAll([three], 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 10, maxParts: 2 })
  t.match(m.err, { code: 'DICOMWEB_BODY_TOO_LARGE', message: /more than 2 parts/ }, 'part count bound')
  t.equal(m.parts.length, 2, 'the parts within the bound were yielded')
  t.equal((await readAll([three], 'b', { maxBodyBytes: 1 << 20, maxPartBytes: 10, maxParts: 3 })).parts.length, 3, 'exactly maxParts is fine')

  const h = await readAll([bin(`--b\r\nX: ${'y'.repeat(100)}\r\n\r\nz\r\n--b--`)], 'b', { ...LIMITS, maxHeaderBytes: 64 })
  t.match(h.err, { code: 'DICOMWEB_MULTIPART_MALFORMED', message: /header block above 64 bytes/ }, 'maxHeaderBytes is honoured')
  await t.rejects(readAll([], 'bad\r\n'), RangeError, 'an invalid boundary is a caller error')
})

t.test('a 64 MiB part in 64 KiB chunks is read whole, in linear time', async (t) => {
  const big = randomBytes(64 * 1024 * 1024)
  const boundary = newBoundary()
  const whole = await bytesOf(multipartRelated('application/dicom', [{ contentType: 'application/dicom', body: big }], boundary).stream)
  const chunks = splitAt(
    whole,
    Array.from({ length: Math.ceil(whole.length / 65536) }, (_, i) => i * 65536),
  )
  const started = Date.now()
  const { parts, err } = await readAll(fromChunks(chunks), boundary)
  t.equal(err, undefined, 'read without error')
  t.equal(parts.length, 1, 'one part')
  t.ok(equalBytes(parts[0]?.body ?? new Uint8Array(), big), 'the body is identical')
  t.comment(`read in ${Date.now() - started} ms`)
})

t.test('bodies as other implementations send them', async (t) => {
  // Orthanc (WADO-RS answers, STOW-RS client): unquoted type, Content-Length on each part, no trailing CRLF.
  const orthancCt = 'multipart/related; type=application/dicom; boundary=ab0a2a23-b7e3-4b5e-a9ad-38b0e4dc7b09'
  const ob = multipartBoundary(orthancCt, { expectType: 'application/dicom' })
  const dicm = `${'\0'.repeat(128)}DICM\x02\0\x01\0OB\0\0\x02\0\0\0\0\x01`
  const orthanc = bin(
    `--${ob}\r\nContent-Type: application/dicom\r\nContent-Length: ${dicm.length}\r\n\r\n${dicm}\r\n` +
      `--${ob}\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\n\r\n--\r\n--${ob}--`,
  )
  const o = await readAll([orthanc], ob)
  t.equal(o.err, undefined, 'Orthanc body read')
  t.same(
    o.parts.map((p) => [p.contentType, text(p.body)]),
    [
      ['application/dicom', dicm],
      ['application/dicom', '\r\n--'],
    ],
    'both instances, binary intact',
  )
  // Python requests-toolbelt / dcm4che stowrs style: quoted boundary, no Content-Length, extra headers.
  const pyCt = 'multipart/related; type="application/dicom"; boundary="5f0e8b53c1a54a8e9b0b1d5c2ae9c7f1"'
  const pb = multipartBoundary(pyCt, { expectType: 'application/dicom' })
  t.equal(pb, '5f0e8b53c1a54a8e9b0b1d5c2ae9c7f1', 'quoted boundary unquoted')
  const py = bin(
    `--${pb}\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\nContent-Type: application/dicom\r\n\r\n${dicm}\r\n` + `--${pb}--\r\n`,
  )
  const p = await readAll(splitAt(py, [7, 60, 61, 200]), pb)
  t.equal(p.err, undefined, 'requests-toolbelt body read')
  t.equal(p.parts.length, 1, 'one instance')
  t.equal(p.parts[0]?.headers.get('content-disposition'), 'form-data; name="file"; filename="a.dcm"', 'other headers kept')
  t.equal(text(p.parts[0]?.body ?? new Uint8Array()), dicm, 'body intact')
})
