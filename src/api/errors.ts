import { RadError } from '../util/index.js'

/**
 * Codes the API layer itself produces. Errors relayed from the node keep the
 * node's code (TX_*, ..._NOT_FOUND), so ApiError's code is any string.
 */
export type ApiCode =
  | 'API_UNAUTHORIZED' | 'API_BAD_REQUEST' | 'API_NOT_FOUND' | 'API_METHOD_NOT_ALLOWED'
  | 'API_BODY_TOO_LARGE' | 'API_BUSY' | 'API_INTERNAL'
  | 'API_UNREACHABLE' | 'API_TIMEOUT' | 'API_BAD_RESPONSE' | 'API_STREAM_BROKEN'
  | 'API_BAD_CONFIG' | 'API_NOT_STARTED'

/**
 * A failed API call: on the server, the error to answer with; on the client,
 * the server's `{"error":{"code","message"}}` together with the HTTP status.
 * `status` is 0 when no HTTP response was involved (unreachable daemon,
 * timeout, bad configuration).
 */
export class ApiError extends RadError<string> {
  /** HTTP status of the response, or 0 when there was none. */
  readonly status: number

  constructor(code: ApiCode | (string & {}), message: string, status: number, opts?: { cause?: unknown }) {
    super(code, message, opts)
    this.name = 'ApiError'
    this.status = status
  }
}

/** JSON body of every error response. */
export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string }
}
