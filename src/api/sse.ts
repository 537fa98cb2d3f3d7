/**
 * Server-sent events, the `text/event-stream` format (HTML Living Standard,
 * section 9.2 "Server-sent events"): encoding on the server, an incremental
 * parser on the client. Only the `event` and `data` fields are used.
 */
import { RadError, type ErrorCodes } from '../util/index.js'

/** Why an event stream could not be parsed: SSE_EVENT_TOO_LARGE, one event (or one unterminated line) over the bound. */
export type SseCode = ErrorCodes<'SSE_EVENT_TOO_LARGE'>

/** An event stream the parser refuses. */
export class SseError extends RadError<SseCode> {
  constructor(code: SseCode, message: string) {
    super(code, message)
    this.name = 'SseError'
  }
}

/** One dispatched event: its type (`message` when the stream named none) and its data. */
export interface SseMessage {
  readonly event: string
  readonly data: string
}

/** The comment line the server sends on idle streams so clients can tell a live stream from a dead one. */
export const SSE_KEEPALIVE = ': keepalive\n\n'

const NEWLINE_RE = /\r\n|\r|\n/

/** Encodes one event; data with line breaks becomes several `data:` lines (9.2.5). */
export function encodeSseEvent(event: string, data: string): string {
  if (event === '' || NEWLINE_RE.test(event)) throw new TypeError('event type must be one non-empty line')
  return `event: ${event}\n${data
    .split(NEWLINE_RE)
    .map((l) => `data: ${l}\n`)
    .join('')}\n`
}

/**
 * Incremental `text/event-stream` parser (9.2.6 "Interpreting an event
 * stream"): feed it the body in chunks as they come, in any split; it returns
 * the events each chunk completes. Throws an SseError `SSE_EVENT_TOO_LARGE`
 * when one event (or one unterminated line) exceeds `maxEventChars`.
 */
export class SseParser {
  // Strips a leading BOM, as 9.2.6 asks.
  private readonly decoder = new TextDecoder()
  private readonly maxEventChars: number
  private buf = ''
  private afterCr = false
  private event = ''
  private data: string[] = []
  private size = 0

  constructor(maxEventChars: number) {
    this.maxEventChars = maxEventChars
  }

  /** Parses the next chunk of the body; returns the events it completes, in order. */
  push(bytes: Uint8Array): SseMessage[] {
    this.buf += this.decoder.decode(bytes, { stream: true })
    if (this.afterCr && this.buf.length > 0) {
      // The previous chunk ended in CR and that line is done; an LF now is the rest of that CRLF.
      if (this.buf.startsWith('\n')) this.buf = this.buf.slice(1)
      this.afterCr = false
    }
    const out: SseMessage[] = []
    const re = /\r\n|\r|\n/g
    let from = 0
    for (;;) {
      re.lastIndex = from
      const m = re.exec(this.buf)
      if (m === null) break
      // A CR at the very end ends the line now, but may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === this.buf.length - 1) this.afterCr = true
      const ev = this.line(this.buf.slice(from, m.index))
      if (ev !== undefined) out.push(ev)
      from = m.index + m[0].length
    }
    this.buf = this.buf.slice(from)
    if (this.buf.length + this.size > this.maxEventChars) {
      throw new SseError('SSE_EVENT_TOO_LARGE', `server-sent event larger than ${this.maxEventChars} characters`)
    }
    return out
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch()
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') {
      this.event = value
    } else if (field === 'data') {
      this.data.push(value)
      this.size += value.length + 1
      if (this.size > this.maxEventChars) {
        throw new SseError('SSE_EVENT_TOO_LARGE', `server-sent event larger than ${this.maxEventChars} characters`)
      }
    }
    // `id`, `retry` and unknown fields are ignored: this client does not resume streams.
    return undefined
  }

  private dispatch(): SseMessage | undefined {
    const had = this.data.length > 0
    const msg = { event: this.event === '' ? 'message' : this.event, data: this.data.join('\n') }
    this.event = ''
    this.data = []
    this.size = 0
    return had ? msg : undefined
  }
}
