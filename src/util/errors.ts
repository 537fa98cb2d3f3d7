/**
 * Base error of radchain. Every domain has its own code union (TX_*, BLOCK_*,
 * KEYSTORE_*, ...) so callers and tests branch on `code`, never on message text.
 */
export class RadError<C extends string = string> extends Error {
  /** Machine-readable code of this failure. */
  readonly code: C
  /** For errors caused by a remote peer: whether to penalize it (the network layer lowers the peer's score). */
  readonly penalize: boolean

  constructor(code: C, message: string, opts: { cause?: unknown; penalize?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RadError'
    this.code = code
    this.penalize = opts.penalize ?? false
  }
}

/** True when `err` is a RadError, optionally with the given code. */
export function isRadError(err: unknown, code?: string): err is RadError {
  return err instanceof RadError && (code === undefined || err.code === code)
}

/** Short text of any thrown value, for one-line error reports. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
