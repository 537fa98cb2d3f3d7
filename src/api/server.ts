import { createHash, timingSafeEqual } from 'node:crypto'
import { chmod, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { errorMessage, sleep, type Logger } from '../util/index.js'
import type { ApiBackend } from './backend.js'
import { ApiError } from './errors.js'
import { answerClientError, sendError } from './error-response.js'
import { SSE_KEEPALIVE_MS, SSE_STALL_MS, type EventStream } from './event-stream.js'
import { DEFAULT_MAX_BODY_BYTES } from './request-body.js'
import { Router } from './router.js'
import { chainRoutes } from './routes/chain.js'
import { eventRoutes } from './routes/events.js'
import { leaseRoutes } from './routes/leases.js'
import { orgRoutes } from './routes/orgs.js'
import { patientLinkRoutes } from './routes/patient-links.js'
import { peerRoutes } from './routes/peers.js'
import { studyRoutes } from './routes/studies.js'
import { swarmRoutes } from './routes/swarm.js'

/** Most simultaneous connections; the API serves one local daemon's tools. */
export const MAX_CONNECTIONS = 256
/**
 * Under connection pressure (more than PENDING_PRESSURE connections still
 * waiting for their first request's headers), a connection must bring them
 * within this time, or it is closed; otherwise Node's own deadline (20 s)
 * applies. A strict deadline at all times cut clients that were merely busy:
 * a client process under load can take seconds between opening a
 * connection and writing its request.
 */
export const HEADERS_TIMEOUT_MS = 5_000
/** The server's own deadline for a request's headers (Node.js enforces it at its connection checks, every 30 s). */
export const NODE_HEADERS_TIMEOUT_MS = 20_000
/** Connections waiting for their first request's headers above which the strict deadline applies. */
export const PENDING_PRESSURE = 64
/** Longest Unix socket path the API listens on (sun_path is 108 bytes on Linux, with its terminating zero). */
export const UNIX_SOCKET_PATH_MAX = 107

/** Host names the API may listen on: it is a local API, never exposed. */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', '::1', 'localhost']

// How long stop() lets ended event streams flush before it cuts every socket.
const STOP_GRACE_MS = 250
const BEARER_RE = /^Bearer +(\S+) *$/i

/** Options of the API server. */
export interface ApiServerOpts {
  /** Loopback host to listen on: 127.0.0.1, ::1 or localhost; anything else is refused. */
  host: string
  /** TCP port; 0 picks any free port (read it back from `url`). */
  port: number
  /**
   * Also serve on this Unix domain socket, made mode 0600 (the CLI's way in,
   * from any network namespace on the machine; a stale file there is
   * replaced). At most UNIX_SOCKET_PATH_MAX bytes long.
   */
  socketPath?: string
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
 * - `GET /v1/studies/:id`, `POST /v1/studies/:id/get` with `{"out":"/abs/dir","scope":"images"|"full"}` (202, a job),
 *   `POST /v1/studies/:id/fetch` with `{}` (202, a job: the chunks into the node's store, no files)
 * - `GET /v1/jobs/:id`
 * - `GET /v1/swarm`
 * - `GET /v1/leases[?direction=incoming|outgoing]`, `POST /v1/leases` with `{"studyId","scope","durationMs","purpose"}` (202, the lease id)
 * - `POST /v1/leases/:id/grant|deny|revoke` (202), `GET /v1/keys/:key/nonce`
 * - `GET /v1/patient-links`, `POST /v1/patient-links` with `{"patientId","issuer"?,"patientKey","replace"?}`,
 *   `POST /v1/patient-links/unlink` with `{"patientId","issuer"?}`
 */
export class ApiServer {
  private readonly opts: Required<ApiServerOpts>
  private readonly backend: ApiBackend
  private readonly logger: Logger
  private readonly tokenDigest: Buffer
  private readonly streams = new Set<EventStream>()
  /** Connections still waiting for their first request's headers, and when each was opened. */
  private readonly pending = new Map<Socket, number>()
  private sweeper: NodeJS.Timeout | undefined

  /**
   * Closes the connections that have waited too long for their first
   * request's headers: HEADERS_TIMEOUT_MS under pressure, else the server's
   * own header deadline (NODE_HEADERS_TIMEOUT_MS). Node.js enforces that one
   * only when it checks its connections (every 30 s), so a connection could
   * otherwise linger up to 50 s; swept every second, it goes at 20-21 s.
   */
  private sweepPending(): void {
    if (this.pending.size === 0) return
    const cutoff = performance.now() - (this.pending.size > PENDING_PRESSURE ? HEADERS_TIMEOUT_MS : NODE_HEADERS_TIMEOUT_MS)
    for (const [socket, at] of this.pending) {
      if (at > cutoff) continue
      this.pending.delete(socket)
      socket.destroy()
    }
  }
  private readonly router: Router
  private server: Server | undefined
  private socketServer: Server | undefined
  private lifetime = new AbortController()

  constructor(opts: ApiServerOpts, modules: ApiServerModules) {
    if (!LOOPBACK_HOSTS.includes(opts.host)) {
      throw new ApiError('API_BAD_CONFIG', `API host must be a loopback address (${LOOPBACK_HOSTS.join(', ')}), got ${opts.host}`, 0)
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new ApiError('API_BAD_CONFIG', `API port must be an integer in [0, 65535], got ${opts.port}`, 0)
    }
    if (opts.token.length === 0) throw new ApiError('API_BAD_CONFIG', 'API token must not be empty', 0)
    if (opts.socketPath !== undefined && (opts.socketPath === '' || Buffer.byteLength(opts.socketPath) > UNIX_SOCKET_PATH_MAX)) {
      throw new ApiError('API_BAD_CONFIG', `API socket path must be 1 to ${UNIX_SOCKET_PATH_MAX} bytes long, got ${JSON.stringify(opts.socketPath)}`, 0)
    }
    const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
      throw new ApiError('API_BAD_CONFIG', 'maxBodyBytes must be a positive integer', 0)
    }
    this.opts = {
      ...opts,
      socketPath: opts.socketPath ?? '',
      maxBodyBytes,
      sseKeepaliveMs: opts.sseKeepaliveMs ?? SSE_KEEPALIVE_MS,
      sseStallMs: opts.sseStallMs ?? SSE_STALL_MS,
    }
    this.backend = modules.backend
    this.logger = opts.logger
    this.tokenDigest = sha256(opts.token)
    const env = { backend: this.backend, maxBodyBytes, logger: this.logger }
    this.router = new Router([
      ...chainRoutes(env),
      ...eventRoutes({ ...env, streams: this.streams, sseKeepaliveMs: this.opts.sseKeepaliveMs, sseStallMs: this.opts.sseStallMs }),
      ...orgRoutes(env),
      ...studyRoutes(env),
      ...leaseRoutes(env),
      ...patientLinkRoutes(env),
      ...swarmRoutes(env),
      ...peerRoutes(env),
    ])
  }

  /** Base URL once started, e.g. `http://127.0.0.1:7460`. */
  get url(): string {
    const a = this.server?.address()
    if (a == null || typeof a === 'string') throw new ApiError('API_NOT_STARTED', 'API server is not started', 0)
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
    return `http://${host}:${a.port}`
  }

  /** Listens on host:port, and on the Unix socket when one is set; rejects if either cannot be bound. */
  async start(): Promise<void> {
    if (this.server !== undefined) throw new ApiError('API_BAD_CONFIG', 'API server already started', 0)
    this.lifetime = new AbortController()
    this.sweeper = setInterval(() => this.sweepPending(), 1_000)
    this.sweeper.unref()
    const server = this.createHttpServer()
    try {
      await listen(server, (cb) => server.listen(this.opts.port, this.opts.host, cb), this.logger)
      this.server = server
      const path = this.opts.socketPath
      if (path !== '') {
        const local = this.createHttpServer()
        // A socket file left by a daemon that was killed: one daemon runs per data dir (its lock), so it is stale.
        await rm(path, { force: true })
        await listen(local, (cb) => local.listen(path, cb), this.logger)
        this.socketServer = local
        await chmod(path, 0o600)
      }
    } catch (err) {
      await this.stop()
      throw err
    }
    this.logger.info('api listening', { url: this.url, ...(this.opts.socketPath === '' ? {} : { socket: this.opts.socketPath }) })
  }

  /** Path of the Unix socket served, if any. */
  get socketPath(): string | undefined {
    return this.socketServer === undefined ? undefined : this.opts.socketPath
  }

  private createHttpServer(): Server {
    const server = createServer(
      // Node's own header and request deadlines stay loose (checked every 30 s by default): checked every second,
      // they cut busy kept-alive connections of clients that are not slow at all (a long-lived client's requests
      // met 408s under load). The first request's header deadline below is this server's own.
      { requestTimeout: 60_000, headersTimeout: NODE_HEADERS_TIMEOUT_MS, maxHeaderSize: 16 * 1024 },
      (req, res) => {
        this.onRequest(req, res)
      },
    )
    // Other clients may keep a connection alive; it is kept idle a long while, so that such a client closes it
    // first rather than sending a request just as the server closes it (EPIPE, seen in the adversarial suite on a
    // loaded machine). radchain's own client opens one connection per request (src/api/http-fetch.ts).
    server.keepAliveTimeout = 30_000
    server.maxConnections = MAX_CONNECTIONS
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => answerClientError(err, socket, this.logger))
    // Connections that have not brought a first request yet; swept every second when there are many.
    server.on('connection', (socket: Socket) => {
      this.pending.set(socket, performance.now())
      socket.once('close', () => this.pending.delete(socket))
    })
    return server
  }

  /** Ends event streams, aborts waiting requests and closes every socket (and removes the Unix socket's file). */
  async stop(): Promise<void> {
    const servers = [this.server, this.socketServer].filter((x): x is Server => x !== undefined && x.listening)
    clearInterval(this.sweeper)
    if (servers.length === 0) {
      this.server = this.socketServer = undefined
      return
    }
    this.lifetime.abort(new ApiError('API_BUSY', 'API server is stopping'))
    const ended = [...this.streams].map((s) => s.close())
    const closed = servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
    for (const server of servers) server.closeIdleConnections()
    await Promise.race([Promise.all(ended), sleep(STOP_GRACE_MS)])
    for (const server of servers) server.closeAllConnections()
    await Promise.all(closed)
    // Closing a listening Unix socket server unlinks its file; nothing is left for the next start.
    this.server = this.socketServer = undefined
    this.logger.info('api stopped')
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.pending.delete(req.socket)
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
      if (!this.authorized(req)) throw new ApiError('API_UNAUTHORIZED', 'missing or invalid bearer token')
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://localhost')
      } catch {
        throw new ApiError('API_BAD_REQUEST', 'malformed request target')
      }
      const route = this.router.match(url.pathname)
      if (route === undefined) throw new ApiError('API_NOT_FOUND', 'no such route')
      const handler = route.handlers[req.method ?? '']
      if (handler === undefined) {
        res.setHeader('allow', Object.keys(route.handlers).join(', '))
        throw new ApiError('API_METHOD_NOT_ALLOWED', `method ${req.method ?? ''} not allowed here`)
      }
      await handler({ req, res, url, param: route.param, signal })
    } catch (err) {
      sendError(req, res, err, { stopping: this.lifetime.signal.aborted && signal.aborted, logger: this.logger })
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization
    if (typeof h !== 'string') return false
    const m = BEARER_RE.exec(h)
    if (m === null || m[1] === undefined) return false
    // Digests have equal length whatever was sent, so the comparison leaks neither content nor length.
    return timingSafeEqual(sha256(m[1]), this.tokenDigest)
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

/** Listens with `start(callback)`; rejects on the server's first error instead. */
function listen(server: Server, start: (cb: () => void) => void, logger: Logger): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    start(() => {
      server.off('error', reject)
      server.on('error', (err) => logger.error('api server error', { error: errorMessage(err) }))
      resolve()
    })
  })
}
