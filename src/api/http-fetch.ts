import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'

/**
 * A fetch for the daemon's local API on node:http: plain HTTP to a host and
 * port, or through a Unix socket. The client needs only what this gives
 * (method, headers, a string body, a signal; status, headers and a streamed
 * body back). node:http rather than undici, whose HTTP parser is a
 * WebAssembly module: loading it and waiting at exit for its background
 * compilation cost a command some 150 ms of its start-up (measured: one
 * status request and exit, 232 ms with undici against 88 ms).
 *
 * One connection per request, closed when its answer is read: on a Unix
 * socket or loopback a connection costs a fraction of a millisecond, and no
 * request is ever sent on a kept-alive connection that the server is closing
 * (EPIPE), nor does an idle one hold the process open.
 */
export function nodeHttpFetch(opts: { socketPath?: string }): typeof fetch {
  const agent = new Agent({ keepAlive: false })
  const doFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      if (input instanceof Request) throw new TypeError('nodeHttpFetch takes a URL')
      const url = new URL(input)
      if (url.protocol !== 'http:') throw new TypeError(`nodeHttpFetch speaks plain HTTP, not ${url.protocol}`)
      const body = init.body
      if (body !== undefined && body !== null && typeof body !== 'string') throw new TypeError('nodeHttpFetch sends string bodies only')
      const headers: Record<string, string> = {}
      new Headers(init.headers).forEach((v, k) => (headers[k] = v))
      if (body !== undefined && body !== null) headers['content-length'] = String(Buffer.byteLength(body))
      const req = request(
        {
          agent,
          method: init.method ?? 'GET',
          path: url.pathname + url.search,
          headers,
          // URL keeps an IPv6 host in brackets ([::1]); node:http wants the address alone.
          ...(opts.socketPath === undefined
            ? { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 80 : Number(url.port) }
            : { socketPath: opts.socketPath }),
          ...(init.signal === undefined || init.signal === null ? {} : { signal: init.signal }),
        },
        (res) => {
          const status = res.statusCode ?? 0
          const empty = status === 204 || status === 205 || status === 304 || (init.method ?? 'GET').toUpperCase() === 'HEAD'
          if (empty) res.resume()
          try {
            resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: toHeaders(res.headers) }))
          } catch (err) {
            // A status fetch cannot represent (outside 200-599): what a server that is not radchain's may send.
            res.destroy()
            reject(new TypeError('fetch failed', { cause: err }))
          }
        },
      )
      // The shape fetch gives its failures: a TypeError whose cause is the system error (ECONNREFUSED, ENOENT, ...).
      req.on('error', (err) => reject(err.name === 'AbortError' ? err : new TypeError('fetch failed', { cause: err })))
      req.end(body ?? undefined)
    })
  return doFetch as typeof fetch
}

function toHeaders(h: IncomingHttpHeaders): Headers {
  const out = new Headers()
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) out.append(k, x)
    else out.set(k, v)
  }
  return out
}
