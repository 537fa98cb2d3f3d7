import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { errorMessage, isRadError, type Logger } from '../util/index.js'
import { ERROR_CODES, statusOfCode, type ErrorCode } from '../util/index.js'
import type { ApiErrorBody } from './errors.js'
import { sendJson } from './response.js'

/**
 * Answers a failed request with `{"error":{"code","message"}}` and the status
 * the registry gives its code (ERROR_CODES). `stopping` tells that the request
 * failed because the server is stopping (503 API_BUSY). An error that is not
 * a RadError is a bug: logged with its stack and answered as a 500
 * API_INTERNAL without details; a RadError whose code the registry does not
 * list is a bug too: logged, and answered as a 500 with its code.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown, opts: { stopping: boolean; logger: Logger }): void {
  const { logger } = opts
  if (res.headersSent || res.destroyed || res.writableEnded) {
    // Client gone, or an event stream already started: nobody left to tell.
    logger.debug('api error after response started', { path: pathOf(req), error: errorMessage(err) })
    if (!res.destroyed) res.destroy()
    return
  }
  let code: string
  let message: string
  if (isRadError(err)) {
    code = err.code
    message = err.message
  } else if (opts.stopping) {
    code = 'API_BUSY' satisfies ErrorCode
    message = 'API server is stopping'
  } else {
    logger.error('api backend failure', { method: req.method, path: pathOf(req), error: errorMessage(err), stack: stackOf(err) })
    code = 'API_INTERNAL' satisfies ErrorCode
    message = 'internal error'
  }
  let status = statusOfCode(code)
  if (status === undefined) {
    logger.error('api error code not in the registry', { code, path: pathOf(req), stack: stackOf(err) })
    status = 500
  }
  // An unread body (401, 413, ...) is not drained on a kept-alive connection: close it instead.
  if (hasUnreadBody(req)) res.setHeader('connection', 'close')
  if (status === 503) res.setHeader('retry-after', '1')
  sendJson(res, status, { error: { code, message } })
}

/** The error of one item of a batch: its code and message, or API_INTERNAL (logged) for a bug. */
export function itemError(err: unknown, where: { method: string | undefined; path: string }, logger: Logger): ApiErrorBody['error'] {
  if (isRadError(err)) return { code: err.code, message: err.message }
  logger.error('api backend failure', { method: where.method, path: where.path, error: errorMessage(err), stack: stackOf(err) })
  return { code: 'API_INTERNAL' satisfies ErrorCode, message: 'internal error' }
}

/** Answers a request node:http could not parse (400, 408, 431) and closes the socket. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex, logger: Logger): void {
  logger.debug('api client error', { code: err.code })
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage
  if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent === true) {
    socket.destroy()
    return
  }
  const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'API_TIMEOUT' : 'API_BAD_REQUEST'
  // Headers too large get the status HTTP has for them, whatever the code's usual status.
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : ERROR_CODES[code].status
  const body = JSON.stringify({ error: { code, message: 'malformed HTTP request' } })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}

function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? '0') > 0
}

function pathOf(req: IncomingMessage): string | undefined {
  return req.url?.split('?', 1)[0]?.slice(0, 200)
}

function stackOf(err: unknown): string | undefined {
  return err instanceof Error ? err.stack : undefined
}
