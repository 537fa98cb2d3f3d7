/**
 * multipart/related (RFC 2387 over RFC 2046) for DICOMweb (PS3.18): STOW-RS
 * request bodies are read with `readMultipart`, WADO-RS answers written with
 * `multipartRelated`. Both stream: one part in memory at a time.
 */
import { randomBytes } from 'node:crypto'
import { asBuffer, bytesLength, partsOf, type Bytes } from '../util/index.js'
import { DicomwebError } from './errors.js'

/** A media type: lower-case `type/subtype`, lower-case parameter names, unquoted parameter values. */
export interface MediaType {
  type: string
  params: Map<string, string>
}

/** One part read from a multipart body. */
export interface MultipartPart {
  /** Header fields by lower-case name (repeated fields joined with ", "). */
  headers: Map<string, string>
  /** The part's Content-Type, as sent. */
  contentType: string | undefined
  /** The part's bytes (a view of the received chunk when the part lay inside one). */
  body: Uint8Array
}

/** Bounds of `readMultipart`. */
export interface MultipartLimits {
  /** Bytes of the whole body, preamble and epilogue included. */
  maxBodyBytes: number
  /** Bytes of one part's body. */
  maxPartBytes: number
  /** Bytes of one part's header block (default 16 KiB). */
  maxHeaderBytes?: number
  /** Number of parts (default 100000). */
  maxParts?: number
}

/** One part to write. */
export interface MultipartWritePart {
  contentType: string
  /** Written as given, never copied. */
  body: Bytes
  /** Further header fields (not Content-Type or Content-Length, which the writer sets). */
  headers?: Record<string, string>
}

/** Default bound on a part's header block. */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024
/** Default bound on the number of parts of a body. */
export const DEFAULT_MAX_PARTS = 100_000

const TOKEN_RE = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y
/** An unquoted parameter value: tolerant, as clients send `type=application/dicom` and `boundary=--=_x` bare. */
const BARE_VALUE_RE = /[^\s;"\\]+/y
/** RFC 2046 boundary: 1-70 bchars, not ending in a space (what this writer sends). */
const BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/
/**
 * A boundary this reader takes: RFC 2046's characters, up to 200 of them.
 * Longer than RFC 2046's 70 because real clients send longer ones: Orthanc's
 * DICOMweb plugin sends two UUIDs joined by a dash, 73 characters.
 */
const READ_BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,199}[0-9A-Za-z'()+_,\-./:=?]$/

const unsupported = (message: string): DicomwebError => new DicomwebError('DICOMWEB_UNSUPPORTED_MEDIA_TYPE', message)
const malformed = (message: string): DicomwebError => new DicomwebError('DICOMWEB_MULTIPART_MALFORMED', message)
const tooLarge = (message: string): DicomwebError => new DicomwebError('DICOMWEB_BODY_TOO_LARGE', message)

/**
 * Parses a Content-Type header: `type/subtype *(; name=value)`, values a
 * token-like word or a quoted-string with backslash escapes, whitespace
 * around the separators allowed, empty parameters skipped. Throws
 * DICOMWEB_UNSUPPORTED_MEDIA_TYPE when the header is absent or malformed, or
 * names a parameter twice.
 */
export function parseMediaType(header: string | undefined): MediaType {
  if (header === undefined || header.trim() === '') throw unsupported('no Content-Type')
  const s = header
  let i = 0
  const bad = (what: string): DicomwebError => unsupported(`malformed media type ${JSON.stringify(s)}: ${what} at character ${i}`)
  const ws = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++
  }
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i
    const m = re.exec(s)
    if (m !== null) i = re.lastIndex
    return m?.[0]
  }
  ws()
  const type = match(TOKEN_RE)
  if (type === undefined || s[i++] !== '/') throw bad('expected type/subtype')
  const subtype = match(TOKEN_RE)
  if (subtype === undefined) throw bad('expected a subtype')
  const params = new Map<string, string>()
  for (ws(); i < s.length; ws()) {
    if (s[i++] !== ';') throw bad('expected ";"')
    ws()
    if (i === s.length || s[i] === ';') continue
    const name = match(TOKEN_RE)?.toLowerCase()
    if (name === undefined) throw bad('expected a parameter name')
    ws()
    if (s[i++] !== '=') throw bad(`expected "=" after ${name}`)
    ws()
    let value: string | undefined = ''
    if (s[i] === '"') {
      for (i++; s[i] !== '"'; i++) {
        if (s[i] === '\\') i++
        if (i >= s.length) throw bad('unterminated quoted string')
        value += s[i]
      }
      i++
    } else if ((value = match(BARE_VALUE_RE)) === undefined) throw bad(`expected a value for ${name}`)
    if (params.has(name)) throw bad(`parameter ${name} repeated`)
    params.set(name, value)
  }
  return { type: `${type}/${subtype}`.toLowerCase(), params }
}

/**
 * The boundary of a `multipart/related` Content-Type, checked: 1-70 RFC 2046
 * bchars; with `expectType`, a `type` parameter, when present, must name
 * that media type (case-insensitive; an absent one is accepted, many clients
 * omit it). Throws DICOMWEB_UNSUPPORTED_MEDIA_TYPE saying what was expected.
 */
export function multipartBoundary(contentType: string | undefined, opts: { expectType?: string } = {}): string {
  const want = opts.expectType === undefined ? 'multipart/related' : `multipart/related; type="${opts.expectType}"`
  const mt = parseMediaType(contentType)
  if (mt.type !== 'multipart/related') throw unsupported(`expected ${want}, got ${mt.type}`)
  const type = mt.params.get('type')
  const typeOnly = type?.split(';')[0]?.trim().toLowerCase()
  if (opts.expectType !== undefined && typeOnly !== undefined && typeOnly !== opts.expectType.toLowerCase()) {
    throw unsupported(`expected ${want}, got type="${type}"`)
  }
  const boundary = mt.params.get('boundary')
  if (boundary === undefined) throw unsupported(`expected ${want} with a boundary parameter, got none`)
  if (!READ_BOUNDARY_RE.test(boundary))
    throw unsupported(`expected ${want} with a boundary of 1-200 RFC 2046 characters, got ${JSON.stringify(boundary.slice(0, 240))}`)
  return boundary
}

/** A fresh boundary: 32 hex digits from the system's random source. */
export function newBoundary(): string {
  return randomBytes(16).toString('hex')
}

const CR = 0x0d
const LF = 0x0a
const DASH = 0x2d
const EMPTY = new Uint8Array(0)
/** Views shorter than this are copied into a shared block rather than kept (1-byte chunks must not become a view each). */
const SMALL_VIEW = 4096
const BLOCK = 64 * 1024

/**
 * The bytes of one part, gathered from chunk views: the first and the large
 * ones kept as views, small ones copied into blocks; joined once at the end
 * (a part that came as one view is that view).
 */
class Collector {
  private pieces: Uint8Array[] = []
  private block = EMPTY
  private start = 0
  private fill = 0
  length = 0

  add(b: Uint8Array): void {
    if (b.length === 0) return
    this.length += b.length
    if (this.length === b.length || b.length >= SMALL_VIEW) {
      this.flush()
      this.pieces.push(b)
      return
    }
    if (this.fill + b.length > this.block.length) {
      this.flush()
      this.block = new Uint8Array(BLOCK)
      this.start = this.fill = 0
    }
    this.block.set(b, this.fill)
    this.fill += b.length
  }

  take(): Uint8Array {
    this.flush()
    const pieces = this.pieces
    let out = pieces[0] ?? EMPTY
    if (pieces.length > 1) {
      out = new Uint8Array(this.length)
      let o = 0
      for (const p of pieces) {
        out.set(p, o)
        o += p.length
      }
    }
    this.pieces = []
    this.length = 0
    return out
  }

  private flush(): void {
    if (this.fill > this.start) this.pieces.push(this.block.subarray(this.start, this.fill))
    this.start = this.fill
  }
}

type State = 'preamble' | 'after' | 'dash' | 'padding' | 'headers' | 'body' | 'epilogue'

/** The reader's state machine; `feed` takes any chunking and yields each part as its delimiter arrives. */
class Scanner {
  private state: State = 'preamble'
  /** Bytes that may begin a delimiter (fewer than its length); at first a virtual CRLF, so a body may open with "--boundary". */
  private carry: Uint8Array = Uint8Array.of(CR, LF)
  private readonly delim: Buffer
  private readonly maxHeaderBytes: number
  private readonly maxParts: number
  /** Bytes of the body before the current chunk. */
  private seen = 0
  private part = 0
  private partStart = 0
  private headerBytes = 0
  private lineStart = 0
  private sawCr = false
  private line = new Collector()
  private body = new Collector()
  private headers = new Map<string, string>()
  private lastName: string | undefined
  private contentLength: number | undefined

  constructor(
    private readonly boundary: string,
    private readonly limits: MultipartLimits,
  ) {
    this.delim = Buffer.from(`\r\n--${boundary}`, 'latin1')
    this.maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES
    this.maxParts = limits.maxParts ?? DEFAULT_MAX_PARTS
  }

  *feed(chunk: Uint8Array): Generator<MultipartPart> {
    let off = 0
    while (off < chunk.length) {
      switch (this.state) {
        case 'preamble':
        case 'body': {
          const inBody = this.state === 'body'
          const end = this.scan(off === 0 ? chunk : chunk.subarray(off), inBody ? this.body : undefined)
          if (inBody && this.body.length > this.limits.maxPartBytes) throw tooLarge(`part ${this.part} is above ${this.limits.maxPartBytes} bytes`)
          if (end < 0) {
            off = chunk.length
            break
          }
          off += end
          this.state = 'after'
          if (inBody) yield this.finishPart()
          break
        }
        case 'after':
          if (chunk[off] === DASH) {
            off++
            this.state = 'dash'
          } else this.startPart()
          break
        case 'dash':
          if (chunk[off] !== DASH) throw malformed(`at byte ${this.seen + off}: "--${this.boundary}-" is neither a delimiter nor the close delimiter`)
          off++
          this.state = 'epilogue'
          break
        case 'padding':
          off = this.padding(chunk, off)
          break
        case 'headers':
          off = this.headerLine(chunk, off)
          break
        case 'epilogue':
          off = chunk.length
      }
    }
    this.seen += chunk.length
  }

  /** Checks that the body ended after the close delimiter. */
  end(): void {
    const at = `at byte ${this.seen}`
    switch (this.state) {
      case 'epilogue':
        return
      case 'preamble':
        throw malformed(`no delimiter "--${this.boundary}" in the ${this.seen}-byte body`)
      case 'body':
        throw malformed(`body ended ${at} inside part ${this.part} (data from byte ${this.partStart}) before the close delimiter "--${this.boundary}--"`)
      case 'padding':
      case 'headers':
        throw malformed(`body ended ${at} inside the header block of part ${this.part}`)
      default:
        throw malformed(`body ended ${at}, after a delimiter, before the close delimiter "--${this.boundary}--"`)
    }
  }

  /**
   * Looks for the delimiter in carry + data, handing the bytes before it to
   * `sink` (views, no copy of `data`); returns the offset in `data` just
   * past it, or -1 after keeping the last delimiter-length - 1 bytes as the
   * carry. Each byte is scanned a bounded number of times.
   */
  private scan(data: Uint8Array, sink: Collector | undefined): number {
    const d = this.delim
    const c = this.carry
    let at = -1
    if (c.length > 0) {
      // A delimiter starting in the carry lies within its length - 1 bytes of `data`.
      const win = Buffer.concat([c, data.subarray(0, d.length - 1)])
      at = win.indexOf(d)
    }
    if (at < 0) {
      const j = asBuffer(data).indexOf(d)
      if (j >= 0) at = c.length + j
    }
    if (at >= 0) {
      if (at <= c.length) sink?.add(c.subarray(0, at))
      else {
        sink?.add(c)
        sink?.add(data.subarray(0, at - c.length))
      }
      this.carry = EMPTY
      return at + d.length - c.length
    }
    const total = c.length + data.length
    const commit = total - Math.min(d.length - 1, total)
    if (commit <= c.length) {
      sink?.add(c.subarray(0, commit))
      this.carry = Buffer.concat([c.subarray(commit), data])
    } else {
      sink?.add(c)
      sink?.add(data.subarray(0, commit - c.length))
      this.carry = data.subarray(commit - c.length)
    }
    return -1
  }

  private startPart(): void {
    if (++this.part > this.maxParts) throw tooLarge(`more than ${this.maxParts} parts`)
    this.state = 'padding'
    this.headerBytes = 0
    this.sawCr = false
    this.headers = new Map()
    this.lastName = undefined
    this.contentLength = undefined
  }

  private countHeader(n: number): void {
    this.headerBytes += n
    if (this.headerBytes > this.maxHeaderBytes) throw malformed(`part ${this.part}: header block above ${this.maxHeaderBytes} bytes`)
  }

  /** Transport padding (spaces, tabs) after the boundary, then CRLF (or a bare LF). */
  private padding(chunk: Uint8Array, from: number): number {
    for (let off = from; off < chunk.length; off++) {
      const b = chunk[off]
      if (b === LF) {
        this.countHeader(off + 1 - from)
        this.state = 'headers'
        return off + 1
      }
      if (this.sawCr || (b !== 0x20 && b !== 0x09 && b !== CR)) {
        throw malformed(`part ${this.part}: unexpected byte 0x${b?.toString(16)} at byte ${this.seen + off} after the boundary (expected CRLF)`)
      }
      this.sawCr = b === CR
    }
    this.countHeader(chunk.length - from)
    return chunk.length
  }

  /** One header line (CRLF or bare LF); the empty line ends the block. */
  private headerLine(chunk: Uint8Array, off: number): number {
    const lf = chunk.indexOf(LF, off)
    const end = lf < 0 ? chunk.length : lf
    this.countHeader(end - off + 1)
    if (this.line.length === 0) this.lineStart = this.seen + off
    this.line.add(chunk.subarray(off, end))
    if (lf < 0) return chunk.length
    let text = asBuffer(this.line.take()).toString('utf8')
    if (text.endsWith('\r')) text = text.slice(0, -1)
    const where = `part ${this.part}, byte ${this.lineStart}`
    if (text === '') this.endHeaders(this.seen + lf + 1)
    else if (text[0] === ' ' || text[0] === '\t') {
      // obsolete line folding: continues the previous field
      if (this.lastName === undefined) throw malformed(`${where}: header block starts with a continuation line`)
      this.headers.set(this.lastName, `${this.headers.get(this.lastName) ?? ''} ${text.trim()}`)
    } else {
      const colon = text.indexOf(':')
      const name = text.slice(0, colon).trim().toLowerCase()
      if (colon < 0 || name === '') throw malformed(`${where}: header line without a field name and colon: ${JSON.stringify(text.slice(0, 80))}`)
      const value = text.slice(colon + 1).trim()
      const prev = this.headers.get(name)
      this.headers.set(name, prev === undefined ? value : `${prev}, ${value}`)
      this.lastName = name
    }
    return lf + 1
  }

  private endHeaders(bodyStart: number): void {
    const cl = this.headers.get('content-length')
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw malformed(`part ${this.part}: Content-Length ${JSON.stringify(cl)} is not a number`)
      this.contentLength = Number(cl)
      if (this.contentLength > this.limits.maxPartBytes) throw tooLarge(`part ${this.part} declares ${cl} bytes, above ${this.limits.maxPartBytes}`)
    }
    this.state = 'body'
    this.partStart = bodyStart
  }

  private finishPart(): MultipartPart {
    const body = this.body.take()
    if (this.contentLength !== undefined && this.contentLength !== body.length) {
      throw malformed(`part ${this.part}: Content-Length ${this.contentLength} but ${body.length} bytes before the next delimiter`)
    }
    return { headers: this.headers, contentType: this.headers.get('content-type'), body }
  }
}

/**
 * Reads a multipart body (RFC 2046) part by part, whatever its chunking:
 * the preamble and epilogue are skipped, transport padding after a boundary
 * and bare LF line ends in header blocks are accepted, a part's
 * Content-Length, when given, must match. Holds one part and the current
 * chunk; scans each byte a bounded number of times. Throws
 * DICOMWEB_BODY_TOO_LARGE as soon as a bound of `limits` is crossed (without
 * reading further), DICOMWEB_MULTIPART_MALFORMED (saying where) for a
 * missing delimiter, a bad header line or block, a wrong Content-Length or a
 * body that ends before the close delimiter; parts read before stay read.
 */
export async function* readMultipart(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits,
): AsyncGenerator<MultipartPart> {
  if (!READ_BOUNDARY_RE.test(boundary)) throw new RangeError(`invalid multipart boundary ${JSON.stringify(boundary)}`)
  const scanner = new Scanner(boundary, limits)
  let total = 0
  for await (const chunk of body) {
    total += chunk.length
    if (total > limits.maxBodyBytes) throw tooLarge(`multipart body above ${limits.maxBodyBytes} bytes`)
    yield* scanner.feed(chunk)
  }
  scanner.end()
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`
const TOKEN_ONLY_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const FIELD_VALUE_RE = /^[^\r\n]*$/

/**
 * A multipart/related body of the given parts: its Content-Type
 * (`multipart/related; type="<type>"; boundary=<b>`), its boundary (by
 * default a fresh random one, which is what keeps it out of the bodies:
 * they are not scanned) and the stream of its bytes, which yields the part
 * bodies themselves, uncopied. A part given as bare bytes is of `type`.
 * Throws RangeError for an invalid boundary; the stream throws RangeError
 * for a header name or value that would break the header block.
 */
export function multipartRelated(
  type: string,
  parts: AsyncIterable<MultipartWritePart | Uint8Array> | Iterable<MultipartWritePart | Uint8Array>,
  boundary: string = newBoundary(),
): { contentType: string; boundary: string; stream: AsyncGenerator<Uint8Array> } {
  if (!BOUNDARY_RE.test(boundary)) throw new RangeError(`invalid multipart boundary ${JSON.stringify(boundary)}`)
  const b = TOKEN_ONLY_RE.test(boundary) ? boundary : quote(boundary)
  return { contentType: `multipart/related; type=${quote(type)}; boundary=${b}`, boundary, stream: writeParts(type, parts, boundary) }
}

async function* writeParts(
  type: string,
  parts: AsyncIterable<MultipartWritePart | Uint8Array> | Iterable<MultipartWritePart | Uint8Array>,
  boundary: string,
): AsyncGenerator<Uint8Array> {
  let sep = ''
  for await (const item of parts) {
    const p: MultipartWritePart = item instanceof Uint8Array ? { contentType: type, body: item } : item
    const fields: [string, string][] = [['Content-Type', p.contentType], ['Content-Length', String(bytesLength(p.body))], ...Object.entries(p.headers ?? {})]
    let head = `${sep}--${boundary}\r\n`
    for (const [i, [name, value]] of fields.entries()) {
      const lower = name.toLowerCase()
      if (!TOKEN_ONLY_RE.test(name) || !FIELD_VALUE_RE.test(value) || (i > 1 && (lower === 'content-type' || lower === 'content-length'))) {
        throw new RangeError(`cannot write part header ${JSON.stringify(name)}: ${JSON.stringify(value)}`)
      }
      head += `${name}: ${value}\r\n`
    }
    yield Buffer.from(`${head}\r\n`, 'utf8')
    for (const piece of partsOf(p.body)) if (piece.length > 0) yield piece
    sep = '\r\n'
  }
  yield Buffer.from(`${sep}--${boundary}--\r\n`, 'latin1')
}
