import { ERROR_CODES, RadError, type ErrorCode, type ErrorCodes } from '../util/index.js'

/**
 * Codes the API layer itself produces: the server's refusals, and the
 * client's failures to get an answer. Errors relayed from the node keep the
 * node's code (TX_*, STUDY_*, ...).
 */
export type ApiCode = ErrorCodes<
  | 'API_UNAUTHORIZED'
  | 'API_BAD_REQUEST'
  | 'API_NOT_FOUND'
  | 'API_METHOD_NOT_ALLOWED'
  | 'API_BODY_TOO_LARGE'
  | 'API_BUSY'
  | 'API_INTERNAL'
  | 'API_UNREACHABLE'
  | 'API_TIMEOUT'
  | 'API_BAD_RESPONSE'
  | 'API_STREAM_BROKEN'
  | 'API_BAD_CONFIG'
  | 'API_NOT_STARTED'
>

/**
 * A failed API call: on the server, the error to answer with; on the client,
 * the server's `{"error":{"code","message"}}` together with the HTTP status
 * (the client keeps the server's code as sent, even one a newer daemon added).
 * `status` is 0 when no HTTP response was involved (unreachable daemon,
 * timeout, bad configuration).
 */
export class ApiError extends RadError<string> {
  /** HTTP status of the response, or 0 when there was none. */
  readonly status: number

  /** `status` defaults to the registry's status of `code`. */
  constructor(code: ErrorCode, message: string, status: number = ERROR_CODES[code].status, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'ApiError'
    this.status = status
  }
}

/** JSON body of every error response. */
export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string }
}
