import { createHash, timingSafeEqual } from 'node:crypto'
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { z } from 'zod'
import { errorMessage, fromHex, isRadError, sleep, type Logger } from '../util/index.js'
import type { ApiBackend, NodeEvent, TxStatus } from './backend.js'
import { ApiError, type ApiErrorBody } from './errors.js'
import { SSE_KEEPALIVE, encodeSseEvent } from './sse.js'

/** Default bound on a request body (8 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
/** Most transactions one `POST /v1/txs` batch may carry. */
export const MAX_BATCH_TXS = 10_000
/** Longest `?wait=` a client may ask for on `GET /v1/txs/:hash`. */
export const MAX_WAIT_MS = 60_000
/** Interval of the `: keepalive` comment on event streams. */
export const SSE_KEEPALIVE_MS = 15_000
/** Events an event stream may hold back while its socket is full before it is closed. */
export const SSE_MAX_QUEUED = 1_000
/** How long an event stream may stay over SSE_MAX_QUEUED with no drain before it is closed. */
export const SSE_STALL_MS = 5_000
/** Hard bound on the bytes an event stream holds back: past it the stream is closed at once. */
export const SSE_MAX_QUEUED_BYTES = 16 * 1024 * 1024
/** Most event streams open at once; more are refused with 503 API_BUSY. */
export const MAX_EVENT_STREAMS = 64
/** Most simultaneous connections; the API serves one local daemon's tools. */
export const MAX_CONNECTIONS = 256
/** Host names the API may listen on: it is a local API, never exposed. */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', '::1', 'localhost']

// Batches yield to the event loop this often so one big batch cannot starve other requests.
const BATCH_YIELD_EVERY = 100
// How long stop() lets ended event streams flush before it cuts every socket.
const STOP_GRACE_MS = 250
const HASH_RE = /^[0-9a-f]{64}$/
const HEIGHT_RE = /^(?:0|[1-9][0-9]{0,15})$/
const WAIT_RE = /^[0-9]{1,5}$/
const BEARER_RE = /^Bearer +(\S+) *$/i

/** Options of the API server. */
export interface ApiServerOpts {
  /** Loopback host to listen on: 127.0.0.1, ::1 or localhost; anything else is refused. */
  host: string
  /** TCP port; 0 picks any free port (read it back from `url`). */
  port: number
  /** Bearer token every request must present. */
  token: string
  /** Largest accepted request body in bytes (default 8 MiB). */
  maxBodyBytes?: number
  /** Where requests (debug) and failures (error) are logged; never the token or bodies. */
  logger: Logger
  /** Interval of event-stream keepalive comments (default 15 s; tests shorten it). */
  sseKeepaliveMs?: number
  /** Grace for an event stream over SSE_MAX_QUEUED before it is cut (default 5 s; tests shorten it). */
  sseStallMs?: number
}

/** What the API server is built on. */
export interface ApiServerModules {
  /** The node, as the API sees it. */
  backend: ApiBackend
}

interface Ctx {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly url: URL
  /** The path parameter of routes that have one (`:hash`, `:ref`). */
  readonly param: string
  /** Aborted when the client disconnects or the server stops. */
  readonly signal: AbortSignal
}

type Handler = (c: Ctx) => Promise<void>

const HexTx = z.string().regex(/^(?:[0-9a-fA-F]{2})+$/, 'expected non-empty hex')
const SubmitBody = z
  .strictObject({ tx: HexTx.optional(), txs: z.array(HexTx).max(MAX_BATCH_TXS).optional() })
  .refine((b) => (b.tx === undefined) !== (b.txs === undefined), 'expected exactly one of "tx" or "txs"')
const NoteBody = z.strictObject({ text: z.string() })
const Hex32 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits')
const OrgVoteBody = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('admit'), id: z.string().min(1).max(63), name: z.string().min(1).max(256), role: z.enum(['authority', 'member']), signKey: Hex32, encKey: Hex32, addrs: z.array(z.string().max(256)).max(16).default([]) }),
  z.strictObject({ action: z.literal('remove'), id: z.string().min(1).max(63) }),
  z.strictObject({ action: z.literal('rekey'), id: z.string().min(1).max(63), signKey: Hex32, encKey: Hex32 }),
])
const StudiesBody = z.strictObject({
  paths: z.array(z.string().min(1).max(4096)).min(1).max(10_000),
  skipBad: z.boolean().default(false),
  patient: z.string().min(1).max(4096).optional(),
})
const LeaseBody = z.strictObject({ studyId: z.string().min(1).max(64), scope: z.string().min(1).max(16), durationMs: z.number().int().min(0), purpose: z.string().max(1024).default('') })
const DenyBody = z.strictObject({ reason: z.string().max(1024).default('') })
const StudyGetBody = z.strictObject({ out: z.string().min(1).max(4096), scope: z.string().min(1).max(64).default('images') })
const PartitionBody = z.strictObject({ blocked: z.array(z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits')).max(1024) })

/**
 * The daemon's local HTTP API (node:http only). JSON in and out, every request
 * authenticated with `Authorization: Bearer <token>`, errors as
 * `{"error":{"code","message"}}`. Routes:
 * - `GET /v1/status`
 * - `POST /v1/txs` with `{"tx":"<hex>"}` (202) or `{"txs":["<hex>",...]}` (200, per-item results)
 * - `POST /v1/notes` with `{"text":"..."}` (202)
 * - `GET /v1/txs/:hash[?wait=ms]`
 * - `GET /v1/blocks/:ref` (`head`, a height or a hash)
 * - `GET /v1/events` (server-sent events `block` and `tx`)
 * - `GET /v1/studies`, `POST /v1/studies` with `{"paths":[...],"skipBad"?,"patient"?}` (202, a job)
 * - `GET /v1/studies/:id`, `POST /v1/studies/:id/get` with `{"out":"/abs/dir","scope":"images"|"full"}` (202, a job)
 * - `GET /v1/jobs/:id`
 * - `GET /v1/swarm`
 * - `GET /v1/leases[?direction=incoming|outgoing]`, `POST /v1/leases` with `{"studyId","scope","durationMs","purpose"}` (202, the lease id)
 * - `POST /v1/leases/:id/grant|deny|revoke` (202), `GET /v1/keys/:key/nonce`
 */
export class ApiServer {
  private readonly opts: Required<ApiServerOpts>
  private readonly backend: ApiBackend
  private readonly logger: Logger
  private readonly tokenDigest: Buffer
  private readonly streams = new Set<EventStream>()
  private server: Server | undefined
  private lifetime = new AbortController()

  constructor(opts: ApiServerOpts, modules: ApiServerModules) {
    if (!LOOPBACK_HOSTS.includes(opts.host)) {
      throw new ApiError('API_BAD_CONFIG', `API host must be a loopback address (${LOOPBACK_HOSTS.join(', ')}), got ${opts.host}`, 0)
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new ApiError('API_BAD_CONFIG', `API port must be an integer in [0, 65535], got ${opts.port}`, 0)
    }
    if (opts.token.length === 0) throw new ApiError('API_BAD_CONFIG', 'API token must not be empty', 0)
    const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
      throw new ApiError('API_BAD_CONFIG', 'maxBodyBytes must be a positive integer', 0)
    }
    this.opts = {
      ...opts,
      maxBodyBytes,
      sseKeepaliveMs: opts.sseKeepaliveMs ?? SSE_KEEPALIVE_MS,
      sseStallMs: opts.sseStallMs ?? SSE_STALL_MS,
    }
    this.backend = modules.backend
    this.logger = opts.logger
    this.tokenDigest = sha256(opts.token)
  }

  /** Base URL once started, e.g. `http://127.0.0.1:7460`. */
  get url(): string {
    const a = this.server?.address()
    if (a == null || typeof a === 'string') throw new ApiError('API_NOT_STARTED', 'API server is not started', 0)
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `http://${host}:${a.port}`
  }

  /** Listens on host:port; rejects if the port cannot be bound. */
  async start(): Promise<void> {
    if (this.server !== undefined) throw new ApiError('API_BAD_CONFIG', 'API server already started', 0)
    this.lifetime = new AbortController()
    const server = createServer({ requestTimeout: 60_000, headersTimeout: 20_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.onRequest(req, res)
    })
    server.keepAliveTimeout = 5_000
    server.maxConnections = MAX_CONNECTIONS
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.onClientError(err, socket))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', (err) => this.logger.error('api server error', { error: errorMessage(err) }))
    this.server = server
    this.logger.info('api listening', { url: this.url })
  }

  /** Ends event streams, aborts waiting requests and closes every socket. */
  async stop(): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.lifetime.abort(new ApiError('API_BUSY', 'API server is stopping', 503))
    const ended = [...this.streams].map((s) => s.close())
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    await Promise.race([Promise.all(ended), sleep(STOP_GRACE_MS)])
    server.closeAllConnections()
    await closed
    this.server = undefined
    this.logger.info('api stopped')
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    const path = (req.url ?? '').split('?', 1)[0]?.slice(0, 200) ?? ''
    res.on('close', () => {
      this.logger.debug('api request', { method: req.method, path, status: res.headersSent ? res.statusCode : 0, ms: Math.round(performance.now() - started) })
    })
    this.handle(req, res).catch((err: unknown) => {
      // handle() answers every error itself; reaching here is a bug in the error path.
      this.logger.error('api request failed', { error: errorMessage(err) })
      res.destroy()
    })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Aborted when the client goes away or the server stops. (Listeners rather than
    // AbortSignal.any, which keeps dependants of the long-lived lifetime signal around.)
    const ac = new AbortController()
    const lifetime = this.lifetime.signal
    const onStop = (): void => ac.abort(lifetime.reason)
    if (lifetime.aborted) onStop()
    else lifetime.addEventListener('abort', onStop, { once: true })
    res.on('close', () => {
      lifetime.removeEventListener('abort', onStop)
      ac.abort(new ApiError('API_BAD_REQUEST', 'client disconnected', 0))
    })
    const signal = ac.signal
    try {
      if (!this.authorized(req)) throw new ApiError('API_UNAUTHORIZED', 'missing or invalid bearer token', 401)
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://localhost')
      } catch {
        throw new ApiError('API_BAD_REQUEST', 'malformed request target', 400)
      }
      const route = this.route(url.pathname)
      if (route === undefined) throw new ApiError('API_NOT_FOUND', 'no such route', 404)
      const handler = route.handlers[req.method ?? '']
      if (handler === undefined) {
        res.setHeader('allow', Object.keys(route.handlers).join(', '))
        throw new ApiError('API_METHOD_NOT_ALLOWED', `method ${req.method ?? ''} not allowed here`, 405)
      }
      await handler({ req, res, url, param: route.param, signal })
    } catch (err) {
      this.sendError(req, res, err, signal)
    }
  }

  private route(path: string): { handlers: Partial<Record<string, Handler>>; param: string } | undefined {
    switch (path) {
      case '/v1/status':
        return { handlers: { GET: (c) => this.getStatus(c) }, param: '' }
      case '/v1/txs':
        return { handlers: { POST: (c) => this.postTxs(c) }, param: '' }
      case '/v1/notes':
        return { handlers: { POST: (c) => this.postNote(c) }, param: '' }
      case '/v1/events':
        return { handlers: { GET: (c) => this.getEvents(c) }, param: '' }
      case '/v1/orgs':
        return { handlers: { GET: async (c) => sendJson(c.res, 200, this.backend.orgs()) }, param: '' }
      case '/v1/orgs/votes':
        return { handlers: { POST: (c) => this.postOrgVote(c) }, param: '' }
      case '/v1/studies':
        return { handlers: { GET: async (c) => sendJson(c.res, 200, { studies: await this.backend.studies() }), POST: (c) => this.postStudies(c) }, param: '' }
      case '/v1/leases':
        return {
          handlers: {
            GET: async (c) => {
              const d = c.url.searchParams.get('direction')
              if (d !== null && d !== 'incoming' && d !== 'outgoing') throw new ApiError('API_BAD_REQUEST', 'direction must be incoming or outgoing', 400)
              sendJson(c.res, 200, { leases: this.backend.leases(d ?? undefined) })
            },
            POST: async (c) => {
              const b = parseBody(LeaseBody, await readJson(c.req, this.opts.maxBodyBytes))
              const leaseId = this.backend.requestLease(b.studyId, { scope: b.scope, durationMs: b.durationMs, purpose: b.purpose })
              sendJson(c.res, 202, { leaseId, hash: leaseId, status: 'pending' })
            },
          },
          param: '',
        }
      case '/v1/swarm':
        return { handlers: { GET: async (c) => sendJson(c.res, 200, this.backend.swarmStatus()) }, param: '' }
      case '/v1/peers':
        return { handlers: { GET: async (c) => sendJson(c.res, 200, { peers: this.backend.peers() }) }, param: '' }
      case '/v1/admin/partition':
        return { handlers: { POST: (c) => this.postPartition(c) }, param: '' }
    }
    const lease = /^\/v1\/leases\/([^/]+)\/(grant|deny|revoke)$/.exec(path)
    if (lease !== null) {
      const action = lease[2]
      return {
        handlers: {
          POST: async (c) => {
            let hash: string
            if (action === 'grant') hash = await this.backend.grantLease(c.param)
            else if (action === 'deny') hash = this.backend.denyLease(c.param, parseBody(DenyBody, await readJson(c.req, this.opts.maxBodyBytes)).reason)
            else hash = this.backend.revokeLease(c.param)
            sendJson(c.res, 202, { hash, status: 'pending' })
          },
        },
        param: lease[1] ?? '',
      }
    }
    const nonce = /^\/v1\/keys\/([^/]+)\/nonce$/.exec(path)
    if (nonce !== null) return { handlers: { GET: async (c) => sendJson(c.res, 200, { nonce: this.backend.nonce(c.param) }) }, param: nonce[1] ?? '' }
    const study = /^\/v1\/studies\/([^/]+)(\/get|\/erase|\/audit)?$/.exec(path)
    if (study !== null) {
      const param = study[1] ?? ''
      if (study[2] === '/audit') return { handlers: { GET: async (c) => sendJson(c.res, 200, { events: await this.backend.audit(c.param) }) }, param }
      if (study[2] === '/erase') return { handlers: { POST: async (c) => sendJson(c.res, 202, { hash: this.backend.eraseStudy(c.param), status: 'pending' }) }, param }
      return study[2] === undefined
        ? { handlers: { GET: async (c) => sendJson(c.res, 200, await this.backend.study(c.param)) }, param }
        : { handlers: { POST: (c) => this.postStudyGet(c) }, param }
    }
    const job = /^\/v1\/jobs\/([0-9a-f]{16})$/.exec(path)
    if (job !== null) {
      return {
        handlers: {
          GET: async (c) => {
            const v = this.backend.studyJob(c.param)
            if (v === undefined) throw new ApiError('API_NOT_FOUND', 'no such job', 404)
            sendJson(c.res, 200, v)
          },
        },
        param: job[1] ?? '',
      }
    }
    const m = /^\/v1\/(txs|blocks)\/([^/]+)$/.exec(path)
    if (m === null) return undefined
    const param = m[2] ?? ''
    return m[1] === 'txs'
      ? { handlers: { GET: (c) => this.getTx(c) }, param }
      : { handlers: { GET: (c) => this.getBlock(c) }, param }
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization
    if (typeof h !== 'string') return false
    const m = BEARER_RE.exec(h)
    if (m === null || m[1] === undefined) return false
    // Digests have equal length whatever was sent, so the comparison leaks neither content nor length.
    return timingSafeEqual(sha256(m[1]), this.tokenDigest)
  }

  private async getStatus(c: Ctx): Promise<void> {
    sendJson(c.res, 200, this.backend.status())
  }

  private async postTxs(c: Ctx): Promise<void> {
    const body = parseBody(SubmitBody, await readJson(c.req, this.opts.maxBodyBytes))
    if (body.tx !== undefined) {
      const hash = this.backend.submitTx(fromHex(body.tx))
      sendJson(c.res, 202, { hash, status: 'pending' })
      return
    }
    const list = body.txs ?? []
    const results: ({ hash: string } | ApiErrorBody)[] = []
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && i % BATCH_YIELD_EVERY === 0) {
        await nextTurn()
        // Client gone or server stopping: submit no more; what was admitted stays admitted.
        if (c.signal.aborted) return
      }
      try {
        results.push({ hash: this.backend.submitTx(fromHex(list[i] ?? '')) })
      } catch (err) {
        results.push({ error: this.itemError(err, c) })
      }
    }
    sendJson(c.res, 200, { results })
  }

  private async postStudies(c: Ctx): Promise<void> {
    const body = parseBody(StudiesBody, await readJson(c.req, this.opts.maxBodyBytes))
    const job = this.backend.addStudies(body.paths, { skipBad: body.skipBad, ...(body.patient === undefined ? {} : { patient: body.patient }) })
    sendJson(c.res, 202, { job })
  }

  private async postStudyGet(c: Ctx): Promise<void> {
    const body = parseBody(StudyGetBody, await readJson(c.req, this.opts.maxBodyBytes))
    const job = await this.backend.getStudy(c.param, { out: body.out, scope: body.scope })
    sendJson(c.res, 202, { job })
  }

  private async postOrgVote(c: Ctx): Promise<void> {
    const body = parseBody(OrgVoteBody, await readJson(c.req, this.opts.maxBodyBytes))
    const hash = this.backend.voteOrg(body)
    sendJson(c.res, 202, { hash, status: 'pending' })
  }

  // Devnet fault injection: refuse and cut the given peers (an empty list heals).
  private async postPartition(c: Ctx): Promise<void> {
    const body = parseBody(PartitionBody, await readJson(c.req, this.opts.maxBodyBytes))
    this.backend.setBlockedPeers(body.blocked.map((k) => k.toLowerCase()))
    sendJson(c.res, 200, { blocked: body.blocked.length })
  }

  private async postNote(c: Ctx): Promise<void> {
    const body = parseBody(NoteBody, await readJson(c.req, this.opts.maxBodyBytes))
    const hash = this.backend.submitNote(body.text)
    sendJson(c.res, 202, { hash, status: 'pending' })
  }

  private async getTx(c: Ctx): Promise<void> {
    const hash = c.param.toLowerCase()
    if (!HASH_RE.test(hash)) throw new ApiError('API_BAD_REQUEST', 'transaction hash must be 64 hex digits', 400)
    const wait = c.url.searchParams.get('wait')
    let status: TxStatus
    if (wait === null) {
      status = await this.backend.txStatus(hash)
    } else {
      const ms = Number(wait)
      if (!WAIT_RE.test(wait) || ms > MAX_WAIT_MS) {
        throw new ApiError('API_BAD_REQUEST', `wait must be an integer number of ms in [0, ${MAX_WAIT_MS}]`, 400)
      }
      status = await this.backend.waitTx(hash, ms, c.signal)
    }
    sendJson(c.res, 200, status)
  }

  private async getBlock(c: Ctx): Promise<void> {
    const raw = c.param
    let ref: string
    if (raw === 'head') ref = raw
    else if (HEIGHT_RE.test(raw) && Number.isSafeInteger(Number(raw))) ref = raw
    else if (HASH_RE.test(raw.toLowerCase())) ref = raw.toLowerCase()
    else throw new ApiError('API_BAD_REQUEST', 'block reference must be "head", a height or a 64-hex hash', 400)
    const block = await this.backend.block(ref)
    if (block === undefined) throw new ApiError('API_NOT_FOUND', `no block ${ref}`, 404)
    sendJson(c.res, 200, block)
  }

  private async getEvents(c: Ctx): Promise<void> {
    if (this.streams.size >= MAX_EVENT_STREAMS) throw new ApiError('API_BUSY', 'too many event streams', 503)
    // ?types=block,tx picks the kinds of events (default: all).
    const typesParam = c.url.searchParams.get('types')
    const types = typesParam === null ? null : new Set(typesParam.split(','))
    if (types !== null && [...types].some((x) => x !== 'block' && x !== 'tx')) throw new ApiError('API_BAD_REQUEST', 'types must be a comma-separated list of block and tx', 400)
    const { res } = c
    res.statusCode = 200
    res.setHeader('content-type', 'text/event-stream; charset=utf-8')
    res.setHeader('cache-control', 'no-store')
    const stream = new EventStream(res, this.logger, this.opts, () => this.streams.delete(stream))
    this.streams.add(stream)
    try {
      // Subscribe before the headers go out: a client that sees the response sees every later event.
      stream.attach(this.backend.subscribe((ev) => {
        if (types === null || types.has(ev.type)) stream.push(ev)
      }))
    } catch (err) {
      // Nothing was sent yet: leave the response to the error path.
      void stream.close('none')
      throw err
    }
    if (!res.headersSent) res.flushHeaders()
  }

  private itemError(err: unknown, c: Ctx): ApiErrorBody['error'] {
    if (isRadError(err)) return { code: err.code, message: err.message }
    this.logger.error('api backend failure', { method: c.req.method, path: c.url.pathname, error: errorMessage(err), stack: stackOf(err) })
    return { code: 'API_INTERNAL', message: 'internal error' }
  }

  private sendError(req: IncomingMessage, res: ServerResponse, err: unknown, signal: AbortSignal): void {
    if (res.headersSent || res.destroyed || res.writableEnded) {
      // Client gone, or an event stream already started: nobody left to tell.
      this.logger.debug('api error after response started', { path: req.url?.split('?', 1)[0]?.slice(0, 200), error: errorMessage(err) })
      if (!res.destroyed) res.destroy()
      return
    }
    let status: number
    let code: string
    let message: string
    if (err instanceof ApiError && err.status > 0) {
      status = err.status
      code = err.code
      message = err.message
    } else if (isRadError(err)) {
      code = err.code
      message = err.message
      status = statusOfCode(code)
    } else if (this.lifetime.signal.aborted && signal.aborted) {
      status = 503
      code = 'API_BUSY'
      message = 'API server is stopping'
    } else {
      this.logger.error('api backend failure', { method: req.method, path: req.url?.split('?', 1)[0]?.slice(0, 200), error: errorMessage(err), stack: stackOf(err) })
      status = 500
      code = 'API_INTERNAL'
      message = 'internal error'
    }
    // An unread body (401, 413, ...) is not drained on a kept-alive connection: close it instead.
    if (hasUnreadBody(req)) res.setHeader('connection', 'close')
    if (status === 503) res.setHeader('retry-after', '1')
    sendJson(res, status, { error: { code, message } })
  }

  private onClientError(err: Error & { code?: string }, socket: Duplex): void {
    this.logger.debug('api client error', { code: err.code })
    const pending = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent === true) {
      socket.destroy()
      return
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const body = JSON.stringify({ error: { code: status === 408 ? 'API_TIMEOUT' : 'API_BAD_REQUEST', message: 'malformed HTTP request' } })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  }
}

/**
 * One server-sent-events response. Writes respect backpressure: while the
 * socket is full (res.write returned false), events wait in a queue. A stream
 * whose queue holds more than SSE_MAX_QUEUED events and sees no drain for
 * `sseStallMs`, or holds more than SSE_MAX_QUEUED_BYTES, is cut; the client
 * reconnects and re-reads what it missed.
 *
 * Why the grace: Node corks a response's socket for the rest of the tick, so
 * res.write returns false after ~16 KiB of one synchronous burst (a block of
 * many transactions) even for a client that keeps up; such a burst drains on
 * the next turns and must not cut the stream.
 */
class EventStream {
  // queue[head..] waits to be written; the written prefix is dropped in bulk (shift() per item is O(n)).
  private queue: string[] = []
  private head = 0
  private queuedBytes = 0
  private blocked = false
  private closed = false
  private unsubscribe: (() => void) | undefined
  private readonly keepalive: NodeJS.Timeout
  private stall: NodeJS.Timeout | undefined
  private readonly stallMs: number
  private readonly done: Promise<void>

  constructor(
    private readonly res: ServerResponse,
    private readonly logger: Logger,
    timing: { sseKeepaliveMs: number; sseStallMs: number },
    private readonly onClose: () => void,
  ) {
    this.stallMs = timing.sseStallMs
    this.done = new Promise((resolve) => res.once('close', resolve))
    res.on('drain', () => {
      this.blocked = false
      clearTimeout(this.stall)
      this.stall = undefined
      this.pump()
    })
    res.once('close', () => void this.close())
    this.keepalive = setInterval(() => {
      // Only when idle: anything queued already shows the connection is alive.
      if (!this.blocked && this.waiting() === 0) this.enqueue(SSE_KEEPALIVE)
    }, timing.sseKeepaliveMs)
  }

  attach(unsubscribe: () => void): void {
    if (this.closed) unsubscribe()
    else this.unsubscribe = unsubscribe
  }

  /** Called from the backend's emitter: must never throw into it. */
  push(ev: NodeEvent): void {
    if (this.closed) return
    let data: string
    try {
      data = stringify(ev.data)
    } catch (err) {
      this.logger.error('api event not serializable', { type: ev.type, error: errorMessage(err) })
      return
    }
    this.enqueue(encodeSseEvent(ev.type, data))
  }

  /**
   * Stops the stream: `end` finishes the response, `cut` destroys it (stalled
   * consumer), `none` leaves the response alone. Resolves once the response is closed.
   */
  close(how: 'end' | 'cut' | 'none' = 'end'): Promise<void> {
    if (!this.closed) {
      this.closed = true
      clearInterval(this.keepalive)
      clearTimeout(this.stall)
      this.queue = []
      this.head = 0
      this.queuedBytes = 0
      try {
        this.unsubscribe?.()
      } catch (err) {
        this.logger.error('api unsubscribe failed', { error: errorMessage(err) })
      }
      this.unsubscribe = undefined
      this.onClose()
      if (how === 'cut') this.res.destroy()
      else if (how === 'end' && !this.res.writableEnded && !this.res.destroyed) this.res.end()
    }
    return this.done
  }

  private enqueue(chunk: string): void {
    this.queue.push(chunk)
    this.queuedBytes += chunk.length
    if (!this.blocked) {
      this.pump()
      return
    }
    if (this.queuedBytes > SSE_MAX_QUEUED_BYTES) {
      this.cut()
    } else if (this.waiting() > SSE_MAX_QUEUED && this.stall === undefined) {
      this.stall = setTimeout(() => {
        this.stall = undefined
        if (this.blocked && this.waiting() > SSE_MAX_QUEUED) this.cut()
      }, this.stallMs)
    }
  }

  private cut(): void {
    this.logger.warn('api event stream too slow, closing it', { queued: this.waiting(), bytes: this.queuedBytes })
    void this.close('cut')
  }

  private waiting(): number {
    return this.queue.length - this.head
  }

  private pump(): void {
    while (!this.closed && !this.blocked && this.head < this.queue.length) {
      const chunk = this.queue[this.head] as string
      this.head++
      this.queuedBytes -= chunk.length
      if (!this.res.write(chunk)) this.blocked = true
    }
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }
}

/** HTTP status for an error code raised by the node. */
function statusOfCode(code: string): number {
  if (code === 'TX_MEMPOOL_FULL' || code === 'TX_SENDER_LIMIT') return 503
  if (code.startsWith('TX_')) return 400
  if (code.endsWith('_NOT_FOUND') || code === 'STUDY_UNKNOWN') return 404
  if (code === 'STUDY_ERASED') return 410
  if (code === 'STUDY_NO_ACCESS' || code === 'LEASE_NOT_CUSTODIAN') return 403
  if (code === 'LEASE_UNKNOWN') return 404
  return 400
}

function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? '0') > 0
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

function stackOf(err: unknown): string | undefined {
  return err instanceof Error ? err.stack : undefined
}

// bigint is how the chain carries integers above 2^32; JSON has no type for it, so send decimal text.
function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  res.end(text)
}

/** Reads at most `max` bytes of body; past that, stops buffering and throws API_BODY_TOO_LARGE. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = (): ApiError => new ApiError('API_BODY_TOO_LARGE', `request body exceeds ${max} bytes`, 413)
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > max) return Promise.reject(tooLarge())
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      n += chunk.length
      if (n > max) {
        cleanup()
        chunks.length = 0
        reject(tooLarge())
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(Buffer.concat(chunks, n))
    }
    const onError = (err: Error): void => {
      cleanup()
      reject(new ApiError('API_BAD_REQUEST', 'request body aborted', 400, { cause: err }))
    }
    const onClose = (): void => onError(new Error('closed before end'))
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const buf = await readBody(req, max)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    throw new ApiError('API_BAD_REQUEST', 'request body is not UTF-8', 400)
  }
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new ApiError('API_BAD_REQUEST', 'request body is not valid JSON', 400)
  }
}

function parseBody<T>(schema: z.ZodType<T>, json: unknown): T {
  const r = schema.safeParse(json)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `
  throw new ApiError('API_BAD_REQUEST', `invalid request body: ${where}${issue?.message ?? 'invalid'}`, 400)
}
