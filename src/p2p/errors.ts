import { RadError, type ErrorCodes } from '../util/index.js'

/**
 * Why a network operation failed.
 * - P2P_TIMEOUT: the operation's deadline passed.
 * - P2P_ABORTED: the caller's signal aborted, or the node is stopping.
 * - P2P_TOO_LARGE: a frame or a response exceeded its size bound.
 * - P2P_MALFORMED: bytes from the peer break the framing rules (penalize).
 * - P2P_NO_PEER: the peer is not connected (or not admitted).
 * - P2P_REFUSED: the peer refused the protocol or the stream.
 * - P2P_REMOTE_ERROR: the peer's handler answered with an error code.
 * - P2P_STREAM_ERROR: the stream closed or was reset before the exchange completed.
 * - P2P_NOT_STARTED: the node is not running.
 * - P2P_INVALID_ARGUMENT: a local caller passed a bad name, size or key.
 */
export type P2PErrorCode = ErrorCodes<
  | 'P2P_TIMEOUT'
  | 'P2P_ABORTED'
  | 'P2P_TOO_LARGE'
  | 'P2P_MALFORMED'
  | 'P2P_NO_PEER'
  | 'P2P_REFUSED'
  | 'P2P_REMOTE_ERROR'
  | 'P2P_STREAM_ERROR'
  | 'P2P_NOT_STARTED'
  | 'P2P_INVALID_ARGUMENT'
>

/**
 * A network-layer failure. `penalize` is true when the remote peer broke the
 * protocol (malformed or oversized data): the caller may penalize it; false
 * when the failure may be innocent (timeouts, closed streams, local limits).
 */
export class P2PError extends RadError<P2PErrorCode> {
  /** For P2P_REMOTE_ERROR: the code the remote handler reported (printable ASCII, at most 64 chars). */
  readonly remoteCode: string | undefined

  constructor(code: P2PErrorCode, message: string, opts: { cause?: unknown; penalize?: boolean; remoteCode?: string } = {}) {
    super(code, message, opts)
    this.name = 'P2PError'
    this.remoteCode = opts.remoteCode
  }
}

/** True when `err` is a P2PError, optionally with the given code. */
export function isP2PError(err: unknown, code?: P2PErrorCode): err is P2PError {
  return err instanceof P2PError && (code === undefined || err.code === code)
}
