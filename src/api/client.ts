import { errorMessage, toHex } from '../util/index.js'
import type { OrgVote } from './backend.js'
import type {
  AuditEventView,
  BlockView,
  LeaseView,
  NodeEvent,
  NodeStatus,
  OrgsView,
  PatientLinkResult,
  PatientLinkView,
  PeerView,
  StudyJobView,
  StudyView,
  SwarmStatusView,
  TxStatus,
} from './views.js'
import type { ErrorCode } from '../util/index.js'
import { ApiError } from './errors.js'
import { SseParser, type SseMessage } from './sse.js'
import { nodeHttpFetch } from './http-fetch.js'

export { ApiError } from './errors.js'
// What the CLI needs besides the client, so that it loads this module alone rather than the api barrel (docs/ARCHITECTURE.md).
export { readDaemonEndpoint } from './discovery.js'
export { isJobOfKind } from './views.js'

/** Default timeout of one API call. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 30_000
/** Extra time a `tx(hash, waitMs)` call allows beyond `waitMs`. */
export const WAIT_SLACK_MS = 10_000
/** Largest response body the client reads. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** Largest single server-sent event the client buffers (characters). */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024
// The server sends a keepalive every 15 s; three missed ones mean the stream is dead.
const EVENTS_IDLE_MS = 45_000

type TxEventData = Extract<NodeEvent, { type: 'tx' }>['data']

/** Options of the API client. */
export interface ApiClientOpts {
  /** Base URL of the daemon's API, e.g. `http://127.0.0.1:7460`. */
  url: string
  /** Bearer token (the data dir's api.token). */
  token: string
  /** Timeout of each call in ms (default 30 s). */
  timeoutMs?: number
  /**
   * The daemon's Unix socket (`<datadir>/api.sock`): when set, requests go
   * there instead of to `url`, which only names the daemon in messages.
   */
  socketPath?: string
}

/** Outcome of one transaction of a batch: its hash, or why it was refused. */
export type SubmitResult = { hash: string } | { error: { code: string; message: string } }

/**
 * Client of the daemon's local HTTP API (see ApiServer), over node:http (src/api/http-fetch.ts).
 * Every failure is an ApiError: the server's code, message and HTTP status;
 * API_UNREACHABLE when the daemon cannot be reached; API_TIMEOUT when it does
 * not answer in time; API_BAD_RESPONSE when the answer makes no sense.
 */
export class ApiClient {
  private readonly base: string
  /** How messages name the daemon: its URL or its socket. */
  private readonly where: string
  private readonly token: string
  private readonly timeoutMs: number
  private readonly socketPath: string | undefined
  /** fetch over node:http, made on first use. */
  private httpFetch: typeof fetch | undefined

  constructor(opts: ApiClientOpts) {
    let u: URL
    try {
      u = new URL(opts.url)
    } catch {
      throw new ApiError('API_BAD_CONFIG', `not a URL: ${opts.url}`, 0)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ApiError('API_BAD_CONFIG', `not an http URL: ${opts.url}`, 0)
    // Through the socket, the URL's host and port play no part (and fetch refuses some ports outright).
    this.base = opts.socketPath === undefined ? u.href.replace(/\/+$/, '') : 'http://localhost'
    this.socketPath = opts.socketPath
    this.where = opts.socketPath === undefined ? this.base : `unix:${opts.socketPath}`
    this.token = opts.token
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS
  }

  /** `GET /v1/status`. */
  async status(): Promise<NodeStatus> {
    const body = await this.call('GET', '/v1/status')
    if (!isNodeStatus(body)) throw badResponse('status')
    return body
  }

  /** `POST /v1/txs` with one signed transaction; returns its hash (admitted, pending). */
  async submitTx(bytes: Uint8Array): Promise<string> {
    return hashOf(await this.call('POST', '/v1/txs', { tx: toHex(bytes) }))
  }

  /** `POST /v1/txs` with a batch (at most 10,000); one result per transaction, in order. */
  async submitTxs(list: Uint8Array[]): Promise<SubmitResult[]> {
    const body = await this.call('POST', '/v1/txs', { txs: list.map(toHex) })
    if (!isRecord(body) || !Array.isArray(body.results) || body.results.length !== list.length) throw badResponse('batch')
    const results: unknown[] = body.results
    return results.map((r) => {
      if (isRecord(r) && typeof r.hash === 'string') return { hash: r.hash }
      if (isErrorBody(r)) return { error: { code: r.error.code, message: r.error.message } }
      throw badResponse('batch item')
    })
  }

  /** `POST /v1/notes`: the node signs the note with its organization key; returns the hash. */
  /** `GET /v1/peers`: connected peers. */
  async peers(): Promise<PeerView[]> {
    const body = await this.call('GET', '/v1/peers')
    if (!isRecord(body) || !Array.isArray(body.peers)) throw badResponse('peers')
    return body.peers as PeerView[]
  }

  /** `POST /v1/studies`: starts adding studies from paths the daemon can read (with `extends`, as a new version of that study); returns the job id. */
  async addStudies(paths: string[], opts: { skipBad?: boolean; patient?: string; extends?: string } = {}): Promise<string> {
    const body = await this.call('POST', '/v1/studies', {
      paths,
      skipBad: opts.skipBad === true,
      ...(opts.patient === undefined ? {} : { patient: opts.patient }),
      ...(opts.extends === undefined ? {} : { extends: opts.extends }),
    })
    if (!isRecord(body) || typeof body.job !== 'string') throw badResponse('study job')
    return body.job
  }

  /** `POST /v1/studies/:id/get`: starts writing a study's files into `out` (absolute, on the daemon's machine); returns the job id. */
  async getStudy(studyId: string, opts: { out: string; scope?: string }): Promise<string> {
    const body = await this.call('POST', `/v1/studies/${encodeURIComponent(studyId)}/get`, { out: opts.out, scope: opts.scope ?? 'images' })
    if (!isRecord(body) || typeof body.job !== 'string') throw badResponse('study job')
    return body.job
  }

  /** `POST /v1/studies/:id/send`: starts sending a study to a configured DICOM peer (AE title `to`) with C-STORE; returns the job id. */
  async sendStudy(studyId: string, opts: { to: string; scope?: string }): Promise<string> {
    const body = await this.call('POST', `/v1/studies/${encodeURIComponent(studyId)}/send`, { to: opts.to, scope: opts.scope ?? 'images' })
    if (!isRecord(body) || typeof body.job !== 'string') throw badResponse('study job')
    return body.job
  }

  /** `POST /v1/studies/:id/fetch`: starts fetching a study's chunks into the node's store, no files written (a prefetch); returns the job id. */
  async fetchStudy(studyId: string): Promise<string> {
    const body = await this.call('POST', `/v1/studies/${encodeURIComponent(studyId)}/fetch`, {})
    if (!isRecord(body) || typeof body.job !== 'string') throw badResponse('study job')
    return body.job
  }

  /** `GET /v1/studies/:id/audit`: the study's events in ledger order. */
  async audit(studyId: string): Promise<AuditEventView[]> {
    const body = await this.call('GET', `/v1/studies/${encodeURIComponent(studyId)}/audit`)
    if (!isRecord(body) || !Array.isArray(body.events) || !body.events.every(isAuditEventView)) throw badResponse('audit')
    return body.events
  }

  /** `POST /v1/studies/:id/erase`: this organization's half of an erasure; returns the transaction hash. */
  async eraseStudy(studyId: string): Promise<string> {
    const body = await this.call('POST', `/v1/studies/${encodeURIComponent(studyId)}/erase`, {})
    if (!isRecord(body) || typeof body.hash !== 'string') throw badResponse('erase')
    return body.hash
  }

  /** `GET /v1/studies`: registered studies with what this node holds of each. */
  async studies(): Promise<StudyView[]> {
    const body = await this.call('GET', '/v1/studies')
    if (!isRecord(body) || !Array.isArray(body.studies) || !body.studies.every(isStudyView)) throw badResponse('studies')
    return body.studies
  }

  /** `GET /v1/studies/:id`: one study's ledger record and local presence. */
  async study(studyId: string): Promise<StudyView> {
    const body = await this.call('GET', `/v1/studies/${encodeURIComponent(studyId)}`)
    if (!isStudyView(body)) throw badResponse('study')
    return body
  }

  /** `POST /v1/leases`: asks for a lease; returns the lease id (the request's transaction hash). */
  async requestLease(studyId: string, opts: { scope: string; durationMs: number; purpose: string; deliverTo?: string }): Promise<string> {
    const body = await this.call('POST', '/v1/leases', { studyId, ...opts })
    if (!isRecord(body) || typeof body.leaseId !== 'string') throw badResponse('lease')
    return body.leaseId
  }

  /** `GET /v1/leases`. */
  async leases(direction?: 'incoming' | 'outgoing'): Promise<LeaseView[]> {
    const body = await this.call('GET', `/v1/leases${direction === undefined ? '' : `?direction=${direction}`}`)
    if (!isRecord(body) || !Array.isArray(body.leases) || !body.leases.every(isLeaseView)) throw badResponse('leases')
    return body.leases
  }

  /** `POST /v1/leases/:id/grant|deny|revoke`: the custodian's decision; returns the transaction hash. */
  async decideLease(leaseId: string, action: 'grant' | 'deny' | 'revoke', reason = ''): Promise<string> {
    const body = await this.call('POST', `/v1/leases/${encodeURIComponent(leaseId)}/${action}`, action === 'deny' ? { reason } : {})
    if (!isRecord(body) || typeof body.hash !== 'string') throw badResponse('lease decision')
    return body.hash
  }

  /** `GET /v1/keys/:key/nonce`: the next nonce of a key, pending transactions included. */
  async nonce(keyHex: string): Promise<number> {
    const body = await this.call('GET', `/v1/keys/${encodeURIComponent(keyHex)}/nonce`)
    if (!isRecord(body) || typeof body.nonce !== 'number') throw badResponse('nonce')
    return body.nonce
  }

  /** `GET /v1/swarm`: transfers, the replication queue, organizations considered down. */
  async swarmStatus(): Promise<SwarmStatusView> {
    const body = await this.call('GET', '/v1/swarm')
    if (!isSwarmStatusView(body)) throw badResponse('swarm status')
    return body
  }

  /** `GET /v1/jobs/:id`: where a `study add`, `study get` or `study send` job stands; with `waitMs`, at its end or after that long, whichever comes first. */
  async job(id: string, waitMs?: number): Promise<StudyJobView> {
    const path = `/v1/jobs/${encodeURIComponent(id)}${waitMs === undefined ? '' : `?wait=${waitMs}`}`
    const body = await this.call('GET', path, undefined, waitMs === undefined ? this.timeoutMs : waitMs + WAIT_SLACK_MS)
    if (!isStudyJobView(body)) throw badResponse('job')
    return body
  }

  /** `GET /v1/patient-links`: this node's patient links. */
  async patientLinks(): Promise<PatientLinkView[]> {
    const body = await this.call('GET', '/v1/patient-links')
    if (!isRecord(body) || !Array.isArray(body.links) || !body.links.every(isPatientLinkView)) throw badResponse('patient links')
    return body.links
  }

  /** `POST /v1/patient-links`: links a Patient ID (with its issuer, '' for none) to a patient key; `replace` a link to another key. */
  async linkPatient(link: { patientId: string; issuer?: string; patientKey: string; replace?: boolean }): Promise<PatientLinkResult> {
    const body = await this.call('POST', '/v1/patient-links', { ...link, issuer: link.issuer ?? '', replace: link.replace === true })
    if (!isRecord(body) || !isPatientLinkView(body.link) || typeof body.replaced !== 'boolean') throw badResponse('patient link')
    return { link: body.link, replaced: body.replaced }
  }

  /** `POST /v1/patient-links/unlink`: removes a patient link. */
  async unlinkPatient(patientId: string, issuer = ''): Promise<void> {
    const body = await this.call('POST', '/v1/patient-links/unlink', { patientId, issuer })
    if (!isRecord(body) || body.unlinked !== true) throw badResponse('patient unlink')
  }

  /** `GET /v1/orgs`: admitted organizations, pending changes and the chain parameters in force. */
  async orgs(): Promise<OrgsView> {
    const body = await this.call('GET', '/v1/orgs')
    if (!isOrgsView(body)) throw badResponse('orgs')
    return body
  }

  /** `POST /v1/orgs/votes`: this organization votes for a registry or parameter change; returns the transaction hash. */
  async voteOrg(vote: OrgVote): Promise<string> {
    return hashOf(await this.call('POST', '/v1/orgs/votes', vote))
  }

  /** Devnet fault injection: refuse and disconnect these peers (hex public keys); [] heals. */
  async partition(blocked: string[]): Promise<void> {
    await this.call('POST', '/v1/admin/partition', { blocked })
  }

  async submitNote(text: string): Promise<string> {
    return hashOf(await this.call('POST', '/v1/notes', { text }))
  }

  /** `GET /v1/txs/:hash`; with `waitMs`, waits up to that long for the transaction to be final or rejected. */
  async tx(hash: string, waitMs?: number): Promise<TxStatus> {
    const path = `/v1/txs/${encodeURIComponent(hash)}${waitMs === undefined ? '' : `?wait=${waitMs}`}`
    const body = await this.call('GET', path, undefined, waitMs === undefined ? this.timeoutMs : waitMs + WAIT_SLACK_MS)
    if (!isTxStatus(body)) throw badResponse('transaction status')
    return body
  }

  /** `GET /v1/blocks/:ref` with `head`, a height or a hash; API_NOT_FOUND (404) if there is none. */
  async block(ref: string): Promise<BlockView> {
    const body = await this.call('GET', `/v1/blocks/${encodeURIComponent(ref)}`)
    if (!isRecord(body)) throw badResponse('block')
    return body
  }

  /**
   * `GET /v1/events`: yields `block` and `tx` events as they happen. Returns
   * when `signal` aborts or the server ends the stream (shutdown). Throws
   * API_STREAM_BROKEN when the connection breaks, which is how the server
   * drops a consumer that fell too far behind, and API_TIMEOUT after 45 s
   * without even a keepalive. Events in between are lost: after
   * reconnecting, re-read the state that matters (status, tx). `onOpen` is
   * called once the server has answered: from then on every event reaches
   * this stream (the server subscribes before it answers).
   */
  async *events(signal: AbortSignal, types?: readonly NodeEvent['type'][], onOpen?: () => void): AsyncGenerator<NodeEvent, void, undefined> {
    if (signal.aborted) return
    const ctl = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const arm = (ms: number, what: string): void => {
      clearTimeout(timer)
      timer = setTimeout(() => ctl.abort(new ApiError('API_TIMEOUT', `${what} from the radchain daemon at ${this.where} within ${ms} ms`, 0)), ms)
    }
    const onAbort = (): void => ctl.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
    try {
      arm(this.timeoutMs, 'no answer')
      let res: Response
      try {
        const query = types === undefined ? '' : `?types=${types.join(',')}`
        res = await this.fetch(`${this.base}/v1/events${query}`, { headers: this.headers('text/event-stream'), signal: ctl.signal })
      } catch (err) {
        if (signal.aborted) return
        throw this.fetchError(err, ctl.signal)
      }
      if (!res.ok) {
        const text = await readText(res, MAX_RESPONSE_BYTES).catch((err: unknown) => {
          throw this.fetchError(err, ctl.signal)
        })
        throw decodeError(res.status, text)
      }
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream') || res.body === null) throw badResponse('event stream')
      reader = res.body.getReader()
      onOpen?.()
      const parser = new SseParser(MAX_EVENT_BYTES)
      for (;;) {
        arm(EVENTS_IDLE_MS, 'no event or keepalive')
        let chunk: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>
        try {
          chunk = await reader.read()
        } catch (err) {
          if (signal.aborted) return
          if (ctl.signal.aborted) throw ctl.signal.reason
          throw new ApiError('API_STREAM_BROKEN', `event stream from ${this.where} broke`, 0, { cause: err })
        }
        clearTimeout(timer)
        if (chunk.done) return
        let msgs: SseMessage[]
        try {
          msgs = parser.push(chunk.value)
        } catch (err) {
          throw new ApiError('API_BAD_RESPONSE', errorMessage(err), 0, { cause: err })
        }
        for (const msg of msgs) {
          // Unknown event types are for newer clients.
          const ev = toNodeEvent(msg)
          if (ev !== undefined) yield ev
        }
      }
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      // Closes the connection, so the server unsubscribes at once.
      ctl.abort()
      reader?.cancel().catch(() => {})
    }
  }

  /** node:http to the daemon (src/api/http-fetch.ts), through its Unix socket or to its http URL; the global fetch for an https one. */
  private fetch(url: string, init: RequestInit): Promise<Response> {
    if (this.socketPath === undefined && !url.startsWith('http:')) return fetch(url, init)
    this.httpFetch ??= nodeHttpFetch(this.socketPath === undefined ? {} : { socketPath: this.socketPath })
    return this.httpFetch(url, init)
  }

  private headers(accept: string, json = false): Record<string, string> {
    const h: Record<string, string> = { authorization: `Bearer ${this.token}`, accept }
    if (json) h['content-type'] = 'application/json'
    return h
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<unknown> {
    const signal = AbortSignal.timeout(timeoutMs)
    let res: Response
    try {
      res = await this.fetch(this.base + path, {
        method,
        headers: this.headers('application/json', body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (err) {
      throw this.fetchError(err, signal)
    }
    let text: string
    try {
      text = await readText(res, MAX_RESPONSE_BYTES)
    } catch (err) {
      if (err instanceof ApiError) throw err
      if (signal.aborted) throw this.fetchError(err, signal)
      throw new ApiError('API_BAD_RESPONSE', `connection to the radchain daemon at ${this.where} broke`, res.status, { cause: err })
    }
    if (!res.ok) throw decodeError(res.status, text)
    try {
      return JSON.parse(text) as unknown
    } catch {
      throw new ApiError('API_BAD_RESPONSE', 'the radchain daemon answered with invalid JSON', res.status)
    }
  }

  private fetchError(err: unknown, timeout: AbortSignal): ApiError {
    if (err instanceof ApiError) return err
    if (timeout.aborted) {
      const reason: unknown = timeout.reason
      if (reason instanceof ApiError) return reason
      return new ApiError('API_TIMEOUT', `no answer from the radchain daemon at ${this.where} in time`, 0, { cause: err })
    }
    const cause = isRecord(err) && isRecord(err.cause) && typeof err.cause.code === 'string' ? ` (${err.cause.code})` : ''
    return new ApiError('API_UNREACHABLE', `cannot reach the radchain daemon at ${this.where}: is it running?${cause}`, 0, { cause: err })
  }
}

/** The NodeEvent an SSE message carries, or undefined for event types this client does not know. */
function toNodeEvent(msg: SseMessage): NodeEvent | undefined {
  if (msg.event !== 'block' && msg.event !== 'tx') return undefined
  let data: unknown
  try {
    data = JSON.parse(msg.data)
  } catch {
    throw new ApiError('API_BAD_RESPONSE', `event ${msg.event} carries invalid JSON`, 0)
  }
  if (msg.event === 'block' && isRecord(data)) return { type: 'block', data }
  if (msg.event === 'tx' && isRecord(data) && typeof data.hash === 'string' && typeof data.status === 'string') {
    return { type: 'tx', data: data as TxEventData }
  }
  throw new ApiError('API_BAD_RESPONSE', `event ${msg.event} has an unexpected shape`, 0)
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

// The views' guards check the fields that tell one view from another and that
// callers branch on; the daemon is trusted for the rest of the shape.

function isNodeStatus(v: unknown): v is NodeStatus {
  return isRecord(v) && typeof v.chainId === 'string' && typeof v.height === 'number'
}

function isTxStatus(v: unknown): v is TxStatus {
  return isRecord(v) && typeof v.hash === 'string' && typeof v.status === 'string'
}

function isOrgsView(v: unknown): v is OrgsView {
  return isRecord(v) && Array.isArray(v.orgs) && Array.isArray(v.proposals) && isRecord(v.params)
}

function isStudyView(v: unknown): v is StudyView {
  return (
    isRecord(v) &&
    typeof v.studyId === 'string' &&
    typeof v.custodian === 'string' &&
    typeof v.chunkCount === 'number' &&
    isRecord(v.local) &&
    (v.versions === undefined || Array.isArray(v.versions))
  )
}

function isLeaseView(v: unknown): v is LeaseView {
  return isRecord(v) && typeof v.leaseId === 'string' && typeof v.studyId === 'string' && typeof v.status === 'string'
}

function isAuditEventView(v: unknown): v is AuditEventView {
  return isRecord(v) && typeof v.type === 'string' && typeof v.height === 'number' && isRecord(v.detail)
}

function isSwarmStatusView(v: unknown): v is SwarmStatusView {
  return isRecord(v) && Array.isArray(v.transfers) && Array.isArray(v.queue) && Array.isArray(v.down)
}

function isStudyJobView(v: unknown): v is StudyJobView {
  return (
    isRecord(v) &&
    typeof v.id === 'string' &&
    (v.kind === 'get' ||
      (v.kind === 'send' && Array.isArray(v.results)) ||
      (v.kind === 'add' && Array.isArray(v.bad) && Array.isArray(v.ignored) && Array.isArray(v.studies))) &&
    typeof v.state === 'string'
  )
}

function isPatientLinkView(v: unknown): v is PatientLinkView {
  return isRecord(v) && typeof v.patientId === 'string' && typeof v.issuer === 'string' && typeof v.patientKey === 'string'
}

function isErrorBody(v: unknown): v is { error: { code: string; message: string } } {
  return isRecord(v) && isRecord(v.error) && typeof v.error.code === 'string' && typeof v.error.message === 'string'
}

function badResponse(what: string): ApiError {
  return new ApiError('API_BAD_RESPONSE', `unexpected ${what} response from the radchain daemon`, 0)
}

function hashOf(body: unknown): string {
  if (!isRecord(body) || typeof body.hash !== 'string') throw badResponse('submit')
  return body.hash
}

function decodeError(status: number, text: string): ApiError {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  // The daemon's code is kept as sent, even one this client's registry does not list (a newer daemon's).
  if (isErrorBody(json)) return new ApiError(json.error.code as ErrorCode, json.error.message, status)
  return new ApiError('API_BAD_RESPONSE', `HTTP ${status} from the radchain daemon`, status)
}

/** Reads a response body as UTF-8, refusing more than `max` bytes. */
async function readText(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0')
  if (declared > max || res.body === null) {
    await res.body?.cancel()
    if (declared > max) throw new ApiError('API_BAD_RESPONSE', `response larger than ${max} bytes`, res.status)
    return ''
  }
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let n = 0
  for (;;) {
    const r = await reader.read()
    if (r.done) break
    n += r.value.length
    if (n > max) {
      await reader.cancel()
      throw new ApiError('API_BAD_RESPONSE', `response larger than ${max} bytes`, res.status)
    }
    chunks.push(r.value)
  }
  return Buffer.concat(chunks, n).toString('utf8')
}
