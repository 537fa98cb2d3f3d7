import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { errorMessage, isErrorCode, statusOfCode, type Logger } from '../util/index.js'
import { TAG, firstString, parseDicom, type DicomDataset } from '../study/index.js'
import { FAILURE_REASON, type DicomwebBackend, type DicomwebClient, type Selection, type StoreOutcome } from './backend.js'
import { DicomwebError } from './errors.js'
import { multipartBoundary, multipartRelated, parseMediaType, readMultipart } from './multipart.js'
import { parseQidoQuery, runQido, toDicomJson } from './qido.js'
import { instanceFrames, parseFrameList } from './frames.js'
import { corsHeaders } from './cors.js'

/** Where every DICOMweb resource lives on the listener. */
export const DICOMWEB_ROOT = '/dicomweb'
/** Default bound on a STOW-RS request body (8 GiB: a large study in one request). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 ** 3
/** Default bound on one instance of a STOW-RS request (1 GiB; it is held in memory while it is checked and spooled). */
export const DEFAULT_MAX_PART_BYTES = 1024 ** 3
/** Deadline for a request's headers (a body has no deadline: a large study over a slow link takes long). */
const HEADERS_TIMEOUT_MS = 10_000
/** A refused request's body up to this size is read and dropped rather than cut (see #onRequest). */
const DRAIN_MAX_BYTES = 8 * 1024 * 1024
/** A connection silent this long is closed. */
const IDLE_TIMEOUT_MS = 60_000
/** Most simultaneous connections. */
const MAX_CONNECTIONS = 256
const BEARER_RE = /^Bearer +(\S+) *$/i
const DICOM_JSON = 'application/dicom+json'

/** Options of the DICOMweb listener. */
export interface DicomwebServerOpts {
  readonly host: string
  /** TCP port; 0 picks a free one (read it back from `url`). */
  readonly port: number
  /** PEM certificate and key: HTTPS. Without them, plain HTTP (the daemon allows that on loopback, or when told to). */
  readonly tls?: { readonly cert: Uint8Array; readonly key: Uint8Array }
  /** Origins a browser viewer may call from (CORS); none by default. `*` allows any. */
  readonly corsOrigins?: readonly string[]
  readonly maxBodyBytes?: number
  readonly maxPartBytes?: number
  /** Largest `limit` of a QIDO-RS query (default 1000). */
  readonly maxResults?: number
  /** Requests are logged here without patient data: method, resource level, status, client name, time. */
  readonly logger: Logger
}

interface Ctx {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  readonly segs: string[]
  readonly client: DicomwebClient
  readonly base: string
  readonly signal: AbortSignal
}

/**
 * The daemon's DICOMweb listener (DICOM PS3.18), for PACS and viewers, apart
 * from the local API. Every request but a CORS preflight needs
 * `Authorization: Bearer <token>` of a client token (`radchain dicomweb
 * token create`). Resources, under DICOMWEB_ROOT:
 * - STOW-RS: `POST /studies`, `POST /studies/{study}` (multipart/related; type="application/dicom")
 * - QIDO-RS: `GET /studies`, `/studies/{study}/series`, `/studies/{study}/series/{series}/instances`, `/studies/{study}/instances`
 * - WADO-RS: `GET /studies/{study}[/series/{series}[/instances/{instance}]]` (multipart/related; type="application/dicom"),
 *   and `.../metadata` at each level (application/dicom+json)
 */
export class DicomwebServer {
  readonly #opts: DicomwebServerOpts
  readonly #backend: DicomwebBackend
  readonly #log: Logger
  #server: Server | undefined
  readonly #lifetime = new AbortController()

  constructor(opts: DicomwebServerOpts, modules: { backend: DicomwebBackend }) {
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
      throw new DicomwebError('DICOMWEB_BAD_CONFIG', `dicomweb port must be an integer in [0, 65535], got ${opts.port}`)
    this.#opts = opts
    this.#backend = modules.backend
    this.#log = opts.logger
  }

  /** Base URL of the DICOMweb root once started, e.g. `http://127.0.0.1:7462/dicomweb`. */
  get url(): string {
    const a = this.#server?.address()
    if (a == null || typeof a === 'string') throw new DicomwebError('DICOMWEB_BAD_CONFIG', 'the DICOMweb listener is not started')
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `${this.#opts.tls === undefined ? 'http' : 'https'}://${host}:${a.port}${DICOMWEB_ROOT}`
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#onRequest(req, res)
    const server =
      this.#opts.tls === undefined
        ? createHttpServer({ requestTimeout: 0, headersTimeout: HEADERS_TIMEOUT_MS, maxHeaderSize: 16 * 1024 }, handler)
        : createHttpsServer(
            {
              cert: Buffer.from(this.#opts.tls.cert),
              key: Buffer.from(this.#opts.tls.key),
              requestTimeout: 0,
              headersTimeout: 20_000,
              maxHeaderSize: 16 * 1024,
            },
            handler,
          )
    server.keepAliveTimeout = 30_000
    // A connection that sends nothing for this long is closed (a STOW body may be slow, but not silent).
    server.timeout = IDLE_TIMEOUT_MS
    server.maxConnections = MAX_CONNECTIONS
    server.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
      else socket.destroy()
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#opts.port, this.#opts.host, () => {
        server.off('error', reject)
        server.on('error', (err) => this.#log.error('dicomweb listener error', { error: errorMessage(err) }))
        resolve()
      })
    })
    this.#server = server
    this.#log.info('dicomweb listening', { url: this.url })
  }

  async stop(): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#lifetime.abort(new DicomwebError('DICOMWEB_NOT_FOUND', 'the DICOMweb listener is stopping'))
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    server.closeAllConnections()
    await closed
    this.#server = undefined
    this.#log.info('dicomweb stopped')
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    let resource = '?'
    let client = '-'
    res.on('close', () => {
      // No UIDs in the log: they identify studies and, before de-identification, patients.
      this.#log.info('dicomweb request', {
        method: req.method,
        resource,
        client,
        status: res.headersSent ? res.statusCode : 0,
        ms: Math.round(performance.now() - started),
      })
    })
    const ac = new AbortController()
    const onStop = (): void => ac.abort(this.#lifetime.signal.reason)
    this.#lifetime.signal.addEventListener('abort', onStop, { once: true })
    res.on('close', () => {
      this.#lifetime.signal.removeEventListener('abort', onStop)
      ac.abort(new DicomwebError('DICOMWEB_NOT_FOUND', 'client disconnected'))
    })
    const run = async (): Promise<void> => {
      this.#cors(req, res)
      if (req.method === 'OPTIONS') {
        res.writeHead(204).end()
        return
      }
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://localhost')
      } catch {
        throw new DicomwebError('DICOMWEB_NOT_FOUND', 'malformed request target')
      }
      const who = this.#authenticate(req, res)
      client = who.name
      if (url.pathname !== DICOMWEB_ROOT && !url.pathname.startsWith(DICOMWEB_ROOT + '/'))
        throw new DicomwebError('DICOMWEB_NOT_FOUND', `DICOMweb resources are under ${DICOMWEB_ROOT}`)
      const segs = url.pathname
        .slice(DICOMWEB_ROOT.length)
        .split('/')
        .filter((s) => s !== '')
        .map((s) => {
          try {
            return decodeURIComponent(s)
          } catch {
            throw new DicomwebError('DICOMWEB_NOT_FOUND', 'malformed percent-encoding in the request target')
          }
        })
      resource = describe(segs)
      const base = `${this.#opts.tls === undefined ? 'http' : 'https'}://${req.headers.host ?? 'localhost'}${DICOMWEB_ROOT}`
      await this.#route({ req, res, url, segs, client: who, base, signal: ac.signal })
    }
    run().catch((err: unknown) => {
      // Refused before its body was read: a small body is read and dropped, so that the client gets the answer
      // (a connection closed on unread bytes is reset, and the answer lost); of a larger one or one of unknown
      // length, the connection closes after the answer rather than waiting for the rest.
      if (!req.complete && !res.headersSent) {
        const length = Number(req.headers['content-length'])
        if (Number.isSafeInteger(length) && length <= DRAIN_MAX_BYTES) req.resume()
        else res.setHeader('connection', 'close')
      }
      this.#fail(res, err)
    })
  }

  #cors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin
    for (const [k, v] of Object.entries(corsHeaders(typeof origin === 'string' ? origin : undefined, this.#opts.corsOrigins ?? []))) res.setHeader(k, v)
  }

  #authenticate(req: IncomingMessage, res: ServerResponse): DicomwebClient {
    const h = req.headers.authorization
    const m = typeof h === 'string' ? BEARER_RE.exec(h) : null
    const c = m?.[1] === undefined ? undefined : this.#backend.authenticate(m[1])
    // Nothing else said: which of missing, wrong or revoked it was helps only a guesser.
    if (c === undefined) {
      res.setHeader('www-authenticate', 'Bearer realm="radchain DICOMweb"')
      throw new DicomwebError('DICOMWEB_UNAUTHORIZED', 'authentication required')
    }
    return c
  }

  async #route(ctx: Ctx): Promise<void> {
    const { segs, req } = ctx
    const method = req.method ?? ''
    if (segs[0] !== 'studies' || segs.length > 8) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'no such DICOMweb resource')
    const [, study, s2, series, s4, instance, s6, s7] = segs
    const allow = (methods: string): void => {
      if (!methods.split(', ').includes(method)) {
        ctx.res.setHeader('allow', methods)
        throw new DicomwebError('DICOMWEB_METHOD_NOT_ALLOWED', `${method} is not allowed here`)
      }
    }
    if (segs.length <= 2 && method === 'POST') return this.#stow(ctx, study)
    if (segs.length === 1) {
      allow('GET, POST')
      return this.#qido(ctx, 'study', {})
    }
    if (study === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'no such DICOMweb resource')
    if (segs.length === 2) {
      allow('GET, POST')
      return this.#wado(ctx, { study })
    }
    allow('GET')
    if (segs.length === 3 && s2 === 'series') return this.#qido(ctx, 'series', { study })
    if (segs.length === 3 && s2 === 'instances') return this.#qido(ctx, 'instance', { study })
    if (segs.length === 3 && s2 === 'metadata') return this.#metadata(ctx, { study })
    if (s2 !== 'series' || series === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'no such DICOMweb resource')
    if (segs.length === 4) return this.#wado(ctx, { study, series })
    if (segs.length === 5 && s4 === 'instances') return this.#qido(ctx, 'instance', { study, series })
    if (segs.length === 5 && s4 === 'metadata') return this.#metadata(ctx, { study, series })
    if (s4 !== 'instances' || instance === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'no such DICOMweb resource')
    if (segs.length === 6) return this.#wado(ctx, { study, series, instance })
    if (segs.length === 7 && s6 === 'metadata') return this.#metadata(ctx, { study, series, instance })
    if (segs.length === 8 && s6 === 'frames' && s7 !== undefined) return this.#frames(ctx, { study, series, instance }, parseFrameList(s7))
    if (segs.length === 8 && s6 === 'bulkdata' && s7?.toUpperCase() === '7FE00010') return this.#frames(ctx, { study, series, instance }, 'all')
    throw new DicomwebError('DICOMWEB_NOT_FOUND', 'no such DICOMweb resource')
  }

  #need(ctx: Ctx, what: 'read' | 'write'): void {
    const s = ctx.client.scope
    if (s !== 'readwrite' && s !== what) throw new DicomwebError('DICOMWEB_FORBIDDEN', `this client's token is for ${s} only`)
  }

  async #stow(ctx: Ctx, study: string | undefined): Promise<void> {
    this.#need(ctx, 'write')
    const boundary = multipartBoundary(headerText(ctx.req.headers['content-type']), { expectType: 'application/dicom' })
    const outcomes: StoreOutcome[] = []
    const parts = readMultipart(ctx.req, boundary, {
      maxBodyBytes: this.#opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      maxPartBytes: this.#opts.maxPartBytes ?? DEFAULT_MAX_PART_BYTES,
    })
    const session = this.#backend.openStore(ctx.client.name)
    for await (const part of parts) {
      const type = part.contentType === undefined ? 'application/dicom' : parseMediaType(part.contentType).type
      if (type !== 'application/dicom') {
        outcomes.push({ ok: false, reason: FAILURE_REASON.cannotUnderstand, message: `a part of type ${type.slice(0, 64)}, not application/dicom` })
        continue
      }
      outcomes.push(await session.store(part.body, study === undefined ? {} : { study }))
    }
    if (outcomes.length === 0) throw new DicomwebError('DICOMWEB_MULTIPART_MALFORMED', 'the body holds no instance')
    // Nothing is acknowledged before it is durable.
    await session.commit()
    const stored = outcomes.filter((o) => o.ok)
    const failed = outcomes.filter((o) => !o.ok)
    const body: DicomDataset = {}
    if (study !== undefined) body['00081190'] = { vr: 'UR', Value: [`${ctx.base}/studies/${study}`] }
    if (stored.length > 0)
      body['00081199'] = {
        vr: 'SQ',
        Value: stored.map((o) => ({
          '00081150': { vr: 'UI', Value: [o.sopClassUid] },
          '00081155': { vr: 'UI', Value: [o.sopInstanceUid] },
          '00081190': { vr: 'UR', Value: [`${ctx.base}/studies/${o.studyUid}/series/${o.seriesUid}/instances/${o.sopInstanceUid}`] },
        })),
      }
    if (failed.length > 0)
      body['00081198'] = {
        vr: 'SQ',
        Value: failed.map((o) => ({
          ...(o.sopClassUid === undefined ? {} : { '00081150': { vr: 'UI', Value: [o.sopClassUid] } }),
          ...(o.sopInstanceUid === undefined ? {} : { '00081155': { vr: 'UI', Value: [o.sopInstanceUid] } }),
          '00081197': { vr: 'US', Value: [o.reason] },
        })),
      }
    // PS3.18 10.5.3: 200 all stored, 202 some refused, 409 none stored.
    const status = failed.length === 0 ? 200 : stored.length > 0 ? 202 : 409
    if (failed.length > 0) ctx.res.setHeader('warning', `299 radchain: ${failed.length} instance(s) refused: ${warningText(failed)}`)
    sendJson(ctx.res, status, JSON.stringify((JSON.parse(toDicomJson([body])) as unknown[])[0]))
  }

  async #qido(ctx: Ctx, level: 'study' | 'series' | 'instance', scope: { study?: string; series?: string }): Promise<void> {
    this.#need(ctx, 'read')
    acceptJson(headerText(ctx.req.headers.accept))
    const query = parseQidoQuery(level, ctx.url.searchParams, { scope, ...(this.#opts.maxResults === undefined ? {} : { maxLimit: this.#opts.maxResults }) })
    const r = runQido(query, await this.#backend.instances(), ctx.base)
    if (r.warning !== undefined) ctx.res.setHeader('warning', `299 radchain: ${r.warning}`)
    sendJson(ctx.res, 200, toDicomJson(r.results))
  }

  async #metadata(ctx: Ctx, sel: Selection): Promise<void> {
    this.#need(ctx, 'read')
    acceptJson(headerText(ctx.req.headers.accept))
    const found = await this.#backend.metadata(sel)
    if (found === undefined || found.length === 0) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'nothing this node may show under that UID')
    sendJson(ctx.res, 200, toDicomJson(found.map((ds) => withBulkDataUri(ds, ctx.base))))
  }

  async #wado(ctx: Ctx, sel: Selection): Promise<void> {
    this.#need(ctx, 'read')
    acceptDicom(headerText(ctx.req.headers.accept))
    const found = await this.#backend.retrieve(sel, ctx.signal)
    if (found === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'nothing this node may show under that UID')
    const out = multipartRelated('application/dicom', found)
    const it = out.stream[Symbol.asyncIterator]()
    // The first instance before the head: a failure before it still gets a proper error answer.
    const first = await it.next()
    ctx.res.writeHead(200, { 'content-type': out.contentType })
    if (first.done !== true) await write(ctx.res, first.value)
    for (let r = await it.next(); r.done !== true; r = await it.next()) await write(ctx.res, r.value)
    ctx.res.end()
  }

  /** Frames (`/frames/{list}`), or the whole pixel data (`/bulkdata/7FE00010`), in the stored transfer syntax (PS3.18 8.7.3.5: no transcoding). */
  async #frames(ctx: Ctx, sel: Required<Selection>, which: number[] | 'all'): Promise<void> {
    this.#need(ctx, 'read')
    const bytes = await this.#backend.instance(sel, ctx.signal)
    if (bytes === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'nothing this node may show under that UID')
    const f = instanceFrames(parseDicom(bytes))
    if (f === undefined) throw new DicomwebError('DICOMWEB_NOT_FOUND', 'the instance has no pixel data')
    acceptOctets(headerText(ctx.req.headers.accept), f.transferSyntax)
    const picked = which === 'all' ? f.frames : which.map((n) => f.frames[n - 1])
    if (picked.some((x) => x === undefined)) throw new DicomwebError('DICOMWEB_NOT_FOUND', `the instance has ${f.frames.length} frame(s)`)
    const type = `application/octet-stream; transfer-syntax=${f.transferSyntax}`
    const out = multipartRelated(
      'application/octet-stream',
      (picked as Uint8Array[]).map((body) => ({ contentType: type, body })),
    )
    ctx.res.writeHead(200, { 'content-type': `${out.contentType}; transfer-syntax=${f.transferSyntax}` })
    for await (const b of out.stream) await write(ctx.res, b)
    ctx.res.end()
  }

  #fail(res: ServerResponse, err: unknown): void {
    const code =
      err instanceof DicomwebError || (err instanceof Error && 'code' in err && isErrorCode(String(err.code)))
        ? String((err as { code: string }).code)
        : 'API_INTERNAL'
    const status = statusOfCode(code) ?? 500
    const gone = res.destroyed || (err as { code?: string }).code === 'ECONNRESET' || errorMessage(err) === 'aborted'
    if (status >= 500 && !gone) this.#log.error('dicomweb request failed', { code, error: errorMessage(err) })
    if (res.headersSent || gone) {
      // Mid-answer: cut the connection so that the client cannot take a partial answer for a whole one.
      res.destroy()
      return
    }
    const message = status >= 500 && !(err instanceof DicomwebError) ? 'internal error: the node log has the details' : errorMessage(err)
    res.setHeader('warning', `299 radchain: ${code}`)
    sendJson(res, status, JSON.stringify({ error: { code, message } }), 'application/json')
  }
}

function headerText(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(', ') : h
}

const RESOURCE_WORDS = new Set(['studies', 'series', 'instances', 'metadata', 'frames', 'bulkdata', 'rendered', 'thumbnail'])

/** The resource of a request path for the log: its known words, and `{uid}` for anything else (never a UID or a name). */
function describe(segs: string[]): string {
  return segs.map((s) => (RESOURCE_WORDS.has(s) ? s : '{uid}')).join('/') || 'root'
}

function warningText(failed: StoreOutcome[]): string {
  const first = failed[0]
  return (first !== undefined && !first.ok ? first.message : '').replace(/[^\x20-\x7e]/g, '?').slice(0, 200)
}

function sendJson(res: ServerResponse, status: number, text: string, type = DICOM_JSON): void {
  const body = Buffer.from(text, 'utf8')
  res.writeHead(status, { 'content-type': type, 'content-length': body.length })
  res.end(body)
}

/** Refuses an Accept header that lists no form of the DICOM JSON model (QIDO-RS results, metadata; PS3.18 8.7.5: 406). */
function acceptJson(accept: string | undefined): void {
  if (accept === undefined || accept.trim() === '') return
  for (const item of accept.split(',')) {
    if (item.trim() === '') continue
    const { type } = parseMediaType(item)
    if (['*/*', 'application/*', 'application/dicom+json', 'application/json'].includes(type)) return
  }
  throw new DicomwebError('DICOMWEB_NOT_ACCEPTABLE', 'this resource answers with application/dicom+json')
}

/** Refuses an Accept header that lists no form of DICOM instances this listener answers with (PS3.18 8.7.5: 406). */
function acceptDicom(accept: string | undefined): void {
  if (accept === undefined || accept.trim() === '') return
  for (const item of accept.split(',')) {
    if (item.trim() === '') continue
    const { type, params } = parseMediaType(item)
    if (type === '*/*' || type === 'multipart/*') return
    if (type === 'multipart/related') {
      const t = params.get('type')
      if (t === undefined || t.toLowerCase() === 'application/dicom') return
    }
    if (type === 'application/dicom') return
  }
  throw new DicomwebError('DICOMWEB_NOT_ACCEPTABLE', 'this resource answers with multipart/related; type="application/dicom"')
}

/**
 * Refuses an Accept header that lists no form this listener answers frames
 * with: `multipart/related; type="application/octet-stream"` with
 * `transfer-syntax` absent, `*` or the stored one (no transcoding).
 */
function acceptOctets(accept: string | undefined, stored: string): void {
  if (accept === undefined || accept.trim() === '') return
  for (const item of accept.split(',')) {
    if (item.trim() === '') continue
    const { type, params } = parseMediaType(item)
    const ts = params.get('transfer-syntax')
    const tsOk = ts === undefined || ts === '*' || ts === stored
    if (type === '*/*' || type === 'multipart/*') return
    if (type === 'multipart/related' && tsOk && ['application/octet-stream', undefined, '*/*'].includes(params.get('type')?.toLowerCase())) return
    if (type === 'application/octet-stream' && tsOk) return
  }
  throw new DicomwebError(
    'DICOMWEB_NOT_ACCEPTABLE',
    `frames are answered as multipart/related; type="application/octet-stream" in their stored transfer syntax (${stored}); radchain does not transcode`,
  )
}

/**
 * The dataset with its pixel data named by a BulkDataURI (PS3.18 F.2.6)
 * rather than held, and any other binary value (small ones the index keeps)
 * inline in base64 (F.2.7).
 */
function withBulkDataUri(ds: DicomDataset, base: string): DicomDataset {
  const study = firstString(ds, TAG.StudyInstanceUID)
  const series = firstString(ds, TAG.SeriesInstanceUID)
  const sop = firstString(ds, TAG.SOPInstanceUID)
  const out = inlineBinaries(ds)
  const pixel = ds['7FE00010']
  if (pixel !== undefined && study !== undefined && series !== undefined && sop !== undefined)
    out['7FE00010'] = { vr: pixel.vr, BulkDataURI: `${base}/studies/${study}/series/${series}/instances/${sop}/bulkdata/7FE00010` } as DicomDataset[string]
  return out
}

/** Binary values in base64 (InlineBinary, PS3.18 F.2.7), in sequence items too (an Icon Image Sequence). */
function inlineBinaries(ds: DicomDataset): DicomDataset {
  const out: DicomDataset = {}
  for (const [tag, el] of Object.entries(ds)) {
    const values = el.Value
    if (values === undefined) out[tag] = el
    else if (el.vr === 'SQ')
      out[tag] = {
        vr: 'SQ',
        Value: values.map((item) =>
          item !== null && typeof item === 'object' && !(item instanceof ArrayBuffer) ? inlineBinaries(item as DicomDataset) : item,
        ),
      }
    else if (values.some((v) => v instanceof ArrayBuffer))
      out[tag] = {
        vr: el.vr,
        InlineBinary: Buffer.concat(values.map((v) => (v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.alloc(0)))).toString('base64'),
      } as DicomDataset[string]
    else out[tag] = el
  }
  return out
}

function write(res: ServerResponse, b: Uint8Array): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.reject(new DicomwebError('DICOMWEB_NOT_FOUND', 'client disconnected'))
  if (res.write(b)) return Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', closed)
      resolve()
    }
    const closed = (): void => {
      res.off('drain', done)
      reject(new DicomwebError('DICOMWEB_NOT_FOUND', 'client disconnected'))
    }
    res.once('drain', done)
    res.once('close', closed)
  })
}
